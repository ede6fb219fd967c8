"""Write synthetic clips to video files plus MSR-VTT-style captions and people-count ground truth."""

from __future__ import annotations

import csv
import filecmp
import itertools
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .scene import ALL_COMBOS, ClipSpec, render_clip, sample_spec

DEFAULT_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
DEFAULT_HELDOUT: tuple[tuple[str, str], ...] = (("blue", "triangle"), ("yellow", "circle"))
SPLITS = ("train", "validate", "test")


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, codec: str | None = None) -> int:
    """Encode RGB uint8 frames (H, W, 3) to ``path``; size comes from the first frame. Returns frames written."""
    path = Path(path)
    codec = codec or DEFAULT_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"no default codec for {path.suffix!r}; pass codec= (e.g. 'mp4v', 'MJPG')")
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"cv2.VideoWriter cannot open {path} with codec {codec!r} at {width}x{height}")
    written = 0
    try:
        for frame in itertools.chain([first], stream):
            if frame.shape != first.shape or frame.dtype != np.uint8:
                raise ValueError(f"frame {written}: expected uint8 {first.shape}, got {frame.dtype} {frame.shape}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            written += 1
    finally:
        writer.release()
    return written


@dataclass(frozen=True)
class _Entry:
    """One dataset clip: id, path relative to videos/, split and spec."""

    video_id: str
    path: str
    split: str
    spec: ClipSpec


def _spread(fraction: float, k: int) -> bool:
    """Whether item ``k`` is picked when picking ``fraction`` of a sequence evenly."""
    return math.floor((k + 1) * fraction + 0.5) > math.floor(k * fraction + 0.5)


def _combo_schedule(seed: int, n: int) -> list[tuple[str, str]]:
    """Balanced (colour, shape) order: shuffled rounds through every pair."""
    rng = np.random.default_rng(seed)
    rounds = -(-n // len(ALL_COMBOS))
    return [ALL_COMBOS[j] for _ in range(rounds) for j in rng.permutation(len(ALL_COMBOS))][:n]


def _clip_seed(seed: int, index: int) -> int:
    """Independent per-clip seed derived from the dataset seed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _assign_splits(combos: Sequence[tuple[str, str]], heldout: set[tuple[str, str]], val_fraction: float) -> list[str]:
    """Held-out pairs go to test; ``val_fraction`` of the rest to validate, spread evenly."""
    splits, seen = [], 0
    for combo in combos:
        if combo in heldout:
            splits.append("test")
            continue
        splits.append("validate" if _spread(val_fraction, seen) else "train")
        seen += 1
    return splits


def _video_path(index: int, num_videos: int, avi_fraction: float, subdirs: bool) -> str:
    """Path of clip ``index`` relative to videos/ (POSIX style); subdirs split the clips in two halves."""
    name = f"vid{index:04d}{'.avi' if _spread(avi_fraction, index) else '.mp4'}"
    return f"part{2 * index // num_videos}/{name}" if subdirs else name


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a small CSV with Unix line endings."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_captions(path: Path, entries: Sequence[_Entry]) -> None:
    """captions.json in MSR-VTT layout, plus a "path" per video record."""
    videos = [{"video_id": e.video_id, "split": e.split, "path": e.path, "id": i} for i, e in enumerate(entries)]
    pairs = [(e.video_id, caption) for e in entries for caption in e.spec.captions()]
    sentences = [{"video_id": v, "caption": c, "sen_id": k} for k, (v, c) in enumerate(pairs)]
    path.write_text(json.dumps({"videos": videos, "sentences": sentences}, indent=1) + "\n")


def _write_clip(videos: Path, entry: _Entry) -> int:
    """Render ``entry`` to its file; a file already there with the same bytes is left as it is, so its
    modification time, and the features extracted from it, stay valid (clips render deterministically)."""
    target, scratch = videos / entry.path, videos / ".writing"  # hidden: not listed as a video
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(exist_ok=True)
    written = write_video(scratch / target.name, render_clip(entry.spec), entry.spec.fps)
    if target.is_file() and filecmp.cmp(scratch / target.name, target, shallow=False):
        (scratch / target.name).unlink()
    else:
        os.replace(scratch / target.name, target)
    return written


def _remove_stale_clips(videos: Path, keep: set[str]) -> None:
    """Delete clips an earlier ``make_dataset`` wrote into ``videos`` that this one does not (another size or
    layout), so the folder holds this dataset alone; other files are left alone."""
    for path in videos.rglob("vid[0-9][0-9][0-9][0-9].*") if videos.is_dir() else ():
        if path.suffix in (".mp4", ".avi") and path.relative_to(videos).as_posix() not in keep:
            path.unlink()


def make_dataset(
    out_dir: str | Path,
    *,
    num_videos: int = 24,
    seed: int = 0,
    width: int = 160,
    height: int = 120,
    num_frames: int = 48,
    fps: float = 12.0,
    max_people: int = 4,
    avi_fraction: float = 0.25,
    val_fraction: float = 0.15,
    heldout_combos: Iterable[Sequence[str]] = DEFAULT_HELDOUT,
    subdirs: bool = True,
) -> dict:
    """Render clips to out_dir/videos and write captions.json, counts.csv and frame_counts.csv."""
    out = Path(out_dir)
    heldout = {(c[0], c[1]) for c in heldout_combos}
    specs = [
        sample_spec(_clip_seed(seed, i), width=width, height=height, num_frames=num_frames, fps=fps,
                    max_people=max_people, combos=[combo])
        for i, combo in enumerate(_combo_schedule(seed, num_videos))
    ]
    splits = _assign_splits([s.combo for s in specs], heldout, val_fraction)
    entries = [
        _Entry(f"vid{i:04d}", _video_path(i, num_videos, avi_fraction, subdirs), split, spec)
        for i, (spec, split) in enumerate(zip(specs, splits))
    ]
    _remove_stale_clips(out / "videos", {e.path for e in entries})
    frames_written = 0
    for e in entries:
        frames_written += _write_clip(out / "videos", e)
    shutil.rmtree(out / "videos" / ".writing", ignore_errors=True)
    paths = {name: out / name for name in ("captions.json", "counts.csv", "frame_counts.csv")}
    _write_captions(paths["captions.json"], entries)
    _write_csv(
        paths["counts.csv"], ("video_id", "count", "split"), ((e.video_id, e.spec.count, e.split) for e in entries)
    )
    _write_csv(
        paths["frame_counts.csv"],
        ("video_id", "frame", "count"),
        ((e.video_id, t, c) for e in entries for t, c in enumerate(e.spec.frame_counts())),
    )
    return {
        "videos_dir": str(out / "videos"),
        **{name.split(".")[0]: str(p) for name, p in paths.items()},
        "num_videos": len(entries),
        "num_frames": frames_written,
        "splits": {s: splits.count(s) for s in SPLITS},
    }
