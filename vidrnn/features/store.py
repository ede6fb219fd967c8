"""Where extraction writes: feature files, the manifest and the failures file, all crash-safe."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

FEATURE_SUFFIX = ".npz"
MANIFEST, FAILURES = "manifest.jsonl", "failures.jsonl"


def atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def feature_path(output_dir: str | os.PathLike, video: str) -> Path:
    """The feature file of a video at relative path ``video`` (its extension kept, so
    ``a/clip.mp4`` and ``a/clip.avi`` do not collide)."""
    return Path(output_dir, "features", video + FEATURE_SUFFIX)


def save_features(path: str | os.PathLike, features: np.ndarray, frame_indices, timestamps) -> None:
    """Write one video's features with the frame indices and timestamps they came from."""
    atomic_write(path, lambda f: np.savez(f, features=features, frame_indices=np.asarray(frame_indices),
                                          timestamps=np.asarray(timestamps, dtype=np.float64)))


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``features`` (..., D), ``frame_indices`` and ``timestamps`` of one feature file."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class RunRecords:
    """The manifest (one JSON line per finished video) and failures file of an output folder.

    Lines are appended under an exclusive lock, so shards running at once can share one folder; a
    video counts as done only once its line is in the manifest, after its feature file is in place.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest, self.failures = self.dir / MANIFEST, self.dir / FAILURES

    def finished(self, settings: dict) -> dict[str, dict]:
        """Manifest entries made with ``settings`` whose feature file still exists, by video."""
        return {e["video"]: e for e in _read_jsonl(self.manifest)
                if e.get("settings") == settings and (self.dir / e["feature_file"]).is_file()}

    def add_finished(self, entry: dict) -> None:
        _append_jsonl(self.manifest, [entry])

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


class _locked:
    """Open ``path`` for read/append under an exclusive ``flock``."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "a+", encoding="utf-8")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        self.f.seek(0)
        return self.f

    def __exit__(self, *exc):
        self.f.flush()
        os.fsync(self.f.fileno())
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    with _locked(path) as f:
        f.seek(0, os.SEEK_END)
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


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
