"""A video's features kept in a temporary file as the CNN computes them, and read back a block of rows at
a time, so a long video never has all of its features in memory."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np

SPOOL_BYTES = 1 << 20  # a video's features beyond this size go to a temporary file instead of memory
BLOCK_BYTES = 1 << 20  # features read back at once


class FeatureSpool:
    """Features of a video's sorted unique sampled frames, appended in frame order."""

    def __init__(self):
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by close())
        self.rows, self.dim = 0, 0

    def append(self, feats: np.ndarray) -> None:
        """Add the features (B, D) of the next B frames."""
        self.file.write(np.ascontiguousarray(feats, np.float32).tobytes())
        self.rows, self.dim = self.rows + len(feats), feats.shape[1]

    def close(self) -> None:
        self.file.close()


class SpooledFeatures:
    """One video's features laid out like its sampling plan (``plan.shape + (D,)``, float32), read from its
    spool on demand: ``blocks()`` a few plan rows at a time, ``np.asarray`` all at once."""

    dtype = np.dtype(np.float32)

    def __init__(self, spool: FeatureSpool, unique: np.ndarray, plan):
        self.spool, self.unique, self.plan = spool, unique, np.asarray(plan)  # unique: (U,) sorted frame indices
        self.shape = self.plan.shape + (spool.dim,)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def blocks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """The features, ``rows`` plan rows at a time (default: about ``BLOCK_BYTES``): (r, N, D) for windows,
        (r, D) otherwise."""
        dim, f = self.shape[-1], self.spool.file
        rows = rows or max(1, BLOCK_BYTES // (4 * int(np.prod(self.shape[1:]))))
        for start in range(0, len(self.plan), rows):
            pos = np.searchsorted(self.unique, self.plan[start:start + rows])  # rows of the spool
            lo, hi = int(pos.min()), int(pos.max()) + 1  # plan rows run forward in time: one stretch
            f.seek(lo * dim * 4)
            part = np.frombuffer(f.read((hi - lo) * dim * 4), np.float32).reshape(hi - lo, dim)
            yield part[pos - lo]

    def abs_max(self) -> float:
        """The largest |feature| (nan where one is not a number)."""
        return float(np.max([np.abs(block).max() for block in self.blocks()]))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate(list(self.blocks()))
        return whole if dtype is None else whole.astype(dtype, copy=False)
