"""Features for training and inference, computed once per video and setting and kept in a cache."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .extract import ExtractSummary, extract_folder
from .store import load_features


def cache_dir_for(cache_root: str | os.PathLike, video_dir: str | os.PathLike, settings: dict) -> Path:
    """A folder of ``cache_root`` unique to this video folder and these extraction settings."""
    key = json.dumps({"videos": os.path.abspath(video_dir), **settings}, sort_keys=True)
    return Path(cache_root, hashlib.sha1(key.encode()).hexdigest()[:16])


def cached_features(video_dir: str, videos: list[str], *, cache_root: str, encoder_spec: dict, sampling,
                    size: int, **extract_kw) -> tuple[dict[str, np.ndarray], ExtractSummary]:
    """Features (float32) of ``videos`` under ``video_dir``, extracted into the cache where missing;
    videos that cannot be read are in the summary's ``failed``."""
    settings = {"encoder": encoder_spec, "sampling": sampling.as_dict(), "size": size}
    out = cache_dir_for(cache_root, video_dir, settings)
    summary = extract_folder(video_dir, str(out), encoder_spec=encoder_spec, sampling=sampling, size=size,
                             videos=videos, dtype="float32", **extract_kw)
    feats = {v: load_features(out / e["feature_file"])["features"].astype(np.float32)
             for v, e in summary.entries.items()}
    return feats, summary
