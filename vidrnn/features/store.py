"""Where extraction and prediction write: feature files, the manifest (one line per finished video) and the
failures file, all crash-safe."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..files import NAME_MAX, fitted_name, tree_path

FEATURE_SUFFIX = ".npz"
MANIFEST, FAILURES = "manifest.jsonl", "failures.jsonl"


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place (with the
    permissions a plain ``open`` would give: mkstemp's are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _naming(path):
        prefix = "." + fitted_name(path.name, ".", NAME_MAX - 13)  # mkstemp adds 8 characters and .tmp
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def _naming(path: Path):
    """A write that fails for a file-system reason (disk full, read-only, ...) raises an OSError naming
    ``path``: writes to an open file name no file (or a temporary one), and some writers (``torch.save``)
    wrap the OSError in their own error."""
    try:
        yield
    except Exception as e:
        cause = e if isinstance(e, OSError) else e.__cause__ or e.__context__
        if not isinstance(cause, OSError) or cause.errno is None or (
                cause.filename is not None and not Path(cause.filename).name.startswith(f".{path.name}.")):
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from e


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex): what identifies a checkpoint in prediction records."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_path(output_dir: str | os.PathLike, video: str) -> Path:
    """The feature file of a video at relative path ``video`` (its extension kept, so
    ``a/clip.mp4`` and ``a/clip.avi`` do not collide; a long name cut to fit the file system's limit)."""
    return Path(output_dir, "features", tree_path(video, FEATURE_SUFFIX))


def save_features(path: str | os.PathLike, features, frame_indices, timestamps, *, dtype=None) -> None:
    """Write one video's features as ``dtype`` (default: their own) with the frame indices and timestamps
    they came from, in ``np.savez``'s layout. ``features``: an array, or ``SpooledFeatures``, written a
    block at a time (never all in memory)."""
    dtype = np.dtype(dtype or features.dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(features.shape)}

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", allowZip64=True) as z:
            with z.open("features.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                for block in features.blocks() if hasattr(features, "blocks") else [features]:
                    member.write(np.ascontiguousarray(block, dtype).tobytes())
            for name, values in (("frame_indices", np.asarray(frame_indices)),
                                 ("timestamps", np.asarray(timestamps, dtype=np.float64))):
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, values, allow_pickle=False)

    atomic_write(path, write)


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``features`` (..., D), ``frame_indices`` and ``timestamps`` of one feature file."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def fingerprint(path: str | os.PathLike) -> dict | None:
    """What tells a file replaced under the same name, cheaply: its size and modification time (None where
    it cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def flat(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: settings as a rerun compares them, key by key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changes(before: dict, now: dict, then: str) -> list[str]:
    """``key <value before> <then>, <value now> now`` for each key of two flat settings that differs."""
    return [f"{k} {before.get(k)!r} {then}, {now.get(k)!r} now" for k in sorted(before.keys() | now.keys())
            if before.get(k) != now.get(k)]


def latest_entries(manifest: str | os.PathLike) -> list[dict]:
    """The last line of each video in a manifest, in the order they were written."""
    rows = [e for e in _read_jsonl(Path(manifest)) if isinstance(e, dict) and isinstance(e.get("video"), str)]
    last = {e["video"]: k for k, e in enumerate(rows)}
    return [rows[k] for k in sorted(last.values())]


class RunRecords:
    """The manifest (one JSON line per finished video) and failures file of an output folder, for the videos
    under ``videos_dir``.

    Lines are appended under an exclusive lock, so shards running at once can share one folder; a
    video counts as done only once its line is in the manifest, after its feature file is in place.
    Each line keeps the fingerprint of its video file as this run first saw it, so a video replaced since
    is done again.
    """

    def __init__(self, output_dir: str | os.PathLike, videos_dir: str | os.PathLike):
        self.dir, self.videos_dir = Path(output_dir), Path(videos_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest, self.failures = self.dir / MANIFEST, self.dir / FAILURES
        self._prints: dict[str, dict | None] = {}

    def fingerprint(self, video: str) -> dict | None:
        """The fingerprint of ``video`` (a relative path) when this run first asked for it."""
        if video not in self._prints:
            self._prints[video] = fingerprint(self.videos_dir / video)
        return self._prints[video]

    def start(self, videos: list[str], settings: dict) -> tuple[dict[str, dict], list[str]]:
        """(entries finished with ``settings``, ``videos`` still to do); the fingerprints of ``videos`` are
        taken now, before any is read, and the earlier failures of those to do are forgotten."""
        for video in videos:
            self.fingerprint(video)
        finished = self.finished(settings)
        todo = [v for v in videos if v not in finished]
        self.forget_failures(todo)
        return finished, todo

    def finished(self, settings: dict) -> dict[str, dict]:
        """Manifest entries made with ``settings`` from their video file as it is now (lines of older
        versions, without a fingerprint, are taken as they are), by video. An entry that names a feature file
        counts only while it is its video's latest line (a later run overwrote the file) and the file exists."""
        rows = _read_jsonl(self.manifest)
        latest = {e.get("video"): e for e in rows}
        return {e["video"]: e for e in rows if e.get("settings") == settings
                and ("source" not in e or e["source"] == self.fingerprint(e["video"]))
                and ("feature_file" not in e or (latest[e["video"]] is e and (self.dir / e["feature_file"]).is_file()))}

    def lock(self) -> _locked:
        """An exclusive lock to hold while writing files from the records: of shards that finish at once,
        the last to take it writes with every shard's records."""
        return _locked(self.dir / ".lock")

    def add_finished(self, entry: dict) -> None:
        _append_jsonl(self.manifest, [{**entry, "source": self.fingerprint(entry["video"])}])

    def add_failure(self, video: str, reason: str) -> None:
        _append_jsonl(self.failures, [{"video": video, "reason": reason}])

    def forget_failures(self, videos) -> None:
        """Drop earlier failure lines of ``videos`` (they are being tried again)."""
        videos = set(videos)
        with _locked(self.failures) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
            keep = [ln for ln in lines if _video_of(ln) not in videos]
            if len(keep) != len(lines):
                f.seek(0)
                f.truncate()
                f.write("".join(ln + "\n" for ln in keep))


def _video_of(line: str) -> str | None:
    try:
        return json.loads(line).get("video")
    except (json.JSONDecodeError, AttributeError):
        return None


@contextlib.contextmanager
def _locked(path: Path):
    """``path`` open for read/append under an exclusive ``flock`` (released when it is closed)."""
    with _naming(path), open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        yield f
        f.flush()
        os.fsync(f.fileno())


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` as lines; a torn last line left by a killed writer is ended first, so it cannot
    swallow the first new row."""
    with _locked(path) as f:
        f.seek(0, os.SEEK_END)
        torn = f.tell() > 0 and not _ends_with_newline(path)
        f.write("\n" * torn + "".join(json.dumps(r) + "\n" for r in rows))  # ASCII: any file name fits


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (from a killed writer) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
