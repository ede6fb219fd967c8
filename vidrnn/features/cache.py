"""Features for training and inference, computed once per video and setting and kept in a cache."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from .encode import Mapped, map_frames
from .extract import ExtractSummary, extract_folder
from .store import MANIFEST, latest_entries, load_features

log = logging.getLogger("vidrnn.extract")
CACHE_DTYPE = "float32"


def cache_dir_for(cache_root: str | os.PathLike, video_dir: str | os.PathLike, *, encoder_spec: dict, sampling,
                  size: int) -> Path:
    """The folder of ``cache_root`` where ``cached_features`` keeps this video folder's features under
    these extraction settings (an ``extract`` output with ``dtype=float32``)."""
    settings = {"encoder": encoder_spec, "sampling": sampling.as_dict(), "size": size}
    key = json.dumps({"videos": os.path.abspath(video_dir), **settings}, sort_keys=True)
    return Path(cache_root, hashlib.sha1(key.encode()).hexdigest()[:16])


def cached_features(video_dir: str, videos: list[str], *, cache_root: str, encoder_spec: dict, sampling,
                    size: int, folder: str | None = None, dtype: str = CACHE_DTYPE,
                    **extract_kw) -> tuple[dict[str, np.ndarray], ExtractSummary]:
    """Features (as float32) of ``videos`` under ``video_dir``, extracted into the cache where missing, or
    into ``folder`` (an ``extract`` output, its files stored as ``dtype``) where given; videos that
    cannot be read are in the summary's ``failed``."""
    out = Path(folder) if folder else cache_dir_for(cache_root, video_dir, encoder_spec=encoder_spec,
                                                     sampling=sampling, size=size)
    with _one_at_a_time(out):
        summary = extract_folder(video_dir, str(out), encoder_spec=encoder_spec, sampling=sampling, size=size,
                                 videos=videos, dtype=dtype, replace=folder is None, **extract_kw)  # a cache: yes
    feats = {v: load_features(out / e["feature_file"])["features"].astype(np.float32)
             for v, e in summary.entries.items()}
    return feats, summary


@contextlib.contextmanager
def _one_at_a_time(out: Path):
    """Extraction into ``out`` by one run at a time: the runs of a parallel sweep (hydra/launcher=joblib) that
    share a cache wait for the first, then find its features (each extracted them all before)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".extracting.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run that extracts features into %s", out)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def extract_settings(folder: str | os.PathLike) -> dict:
    """The settings (encoder, sampling, size, dtype) of the features in an ``extract`` output folder (its
    latest line per video): those of most of its videos, where runs with other settings wrote into it too,
    and of the one written last among as many."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    keys = [json.dumps(e["settings"], sort_keys=True) for e in latest_entries(Path(folder, MANIFEST))
            if isinstance(e.get("settings"), dict)]
    if not keys:
        raise FileNotFoundError(f"{folder}: no extracted features (not an extract output_dir?)")
    videos = Counter(keys)
    return json.loads(max(reversed(keys), key=videos.__getitem__))  # max keeps the first of equals: the latest


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux: /proc/meminfo's MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def decoded_frames(video_dir: str, videos: list[str], *, sampling, size: int, backend: str = "auto",
                   workers: int = 2) -> tuple[dict[str, np.ndarray], dict[str, dict], dict[str, str]]:
    """Sampled frames of ``videos`` (uint8, laid out like each plan) for end-to-end training, decoded in
    ``workers`` processes (a native crash costs only its video, as in extraction): (frames, video metadata,
    failures) by relative path. Where they would not fit in the memory available (uniform sampling: their
    size is known before decoding), an error says so."""
    if sampling.mode == "uniform":
        need, free = len(videos) * sampling.num_frames * size * size * 3, available_memory()
        if free is not None and 2 * need > 0.8 * free:  # two copies while the splits are stacked
            raise MemoryError(f"training the encoder end to end keeps the sampled frames in memory: {len(videos)} "
                              f"videos x {sampling.num_frames} frames x {size}x{size} x 3 bytes = {need / 2**30:.1f} "
                              f"GiB, twice that at the start: more than the {free / 2**30:.1f} GiB available; sample "
                              "fewer or smaller frames (video.num_frames, video.size) or train on cached features "
                              "(encoder.trainable=false)")
    frames, metas, failed = {}, {}, {}
    for res in map_frames([(v, str(Path(video_dir, v))) for v in videos], None, sampling, size=size, backend=backend,
                          workers=workers):
        if isinstance(res, Mapped):
            frames[res.key], metas[res.key] = res.values, res.meta.as_dict()
        else:
            failed[res.key] = res.reason
    return frames, metas, failed
