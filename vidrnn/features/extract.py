"""The ``extract`` job: a folder of videos -> one feature file per video, a manifest and failures."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import VIDEO_EXTENSIONS, n_videos, select_shard, single_line, some_of, videos_at
from ..models.encoder import FrameEncoder, weights_file
from ..video import Sampling
from .encode import Encoded, VideoBar, encode_videos
from .spool import SpooledFeatures
from .store import (MANIFEST, RunRecords, changes, feature_path, file_sha256, flat, latest_entries,
                    save_features)

log = logging.getLogger("vidrnn.extract")
_FP16_RANGE = (1e-3, 6e4)  # max |feature| where float16 keeps ~3 significant digits and cannot overflow


@dataclass
class ExtractSummary:
    total: int  # videos in this shard
    skipped: int  # already done by an earlier run
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)  # manifest entry of every finished video


def storage_dtype(features: np.ndarray | SpooledFeatures, dtype: str) -> np.dtype:
    """``float16`` when asked for and the values fit it, else ``float32``."""
    if dtype == "float32":
        return np.dtype(np.float32)
    if dtype != "float16":
        raise ValueError(f"feature dtype must be float16 or float32, not {dtype!r}")
    if isinstance(features, SpooledFeatures):
        peak = features.abs_max()
    else:
        peak = float(np.abs(features).max()) if features.size else 1.0
    ok = np.isfinite(peak) and _FP16_RANGE[0] <= peak <= _FP16_RANGE[1]
    return np.dtype(np.float16 if ok else np.float32)


def extract_folder(input_dir: str, output_dir: str, *, encoder: FrameEncoder | None = None, encoder_spec: dict,
                   sampling: Sampling, size: int = 224, backend: str = "auto", batch_size: int = 32,
                   workers: int = 2, dtype: str = "float16", device: torch.device = torch.device("cpu"),
                   shard: tuple[int, int] = (0, 1), extensions=VIDEO_EXTENSIONS, videos: list[str] | None = None,
                   replace: bool = False, progress: bool = True) -> ExtractSummary:
    """Extract every video under ``input_dir`` (or that one video file) in this ``shard`` that an earlier
    run with the same settings has not finished (its features still in their file, from the video file as it
    is now). Each video's features land atomically in ``output_dir/features/<relative path>.npz`` and its
    line in ``manifest.jsonl``; a video that cannot be read gets a one-line reason in ``failures.jsonl``
    and the run goes on. ``videos`` (relative paths) restricts the job to those files instead of listing
    the folder. Without an ``encoder`` one is built from ``encoder_spec`` where a video is left to extract
    (so finished features need no weights). Features of other settings already in ``output_dir`` are an
    error unless ``replace`` (they would be overwritten: hours of work on a big folder)."""
    if videos is None:
        input_dir, videos = videos_at(input_dir, extensions)
    videos = select_shard(sorted(videos), *shard)
    records = RunRecords(output_dir, input_dir)
    settings = {"encoder": encoder_spec, "sampling": sampling.as_dict(), "size": size, "dtype": dtype}
    weights = weights_file(encoder_spec.get("weights"))
    if weights:  # a state_dict file replaced under its name gives other features
        settings["weights_sha256"] = file_sha256(weights)
    finished, todo = records.start(videos, settings)
    if not replace:
        _refuse_other_settings(output_dir, todo, settings)
    summary = ExtractSummary(total=len(videos), skipped=len(videos) - len(todo),
                             entries={v: finished[v] for v in videos if v in finished})
    log.info("%s in shard %d/%d: %d already done, %d to extract", n_videos(len(videos)), shard[0], shard[1],
             summary.skipped, len(todo))
    if todo and encoder is None:
        encoder = FrameEncoder(**encoder_spec)
    bar = VideoBar(len(todo), progress)
    results = encode_videos([(v, str(Path(input_dir, v))) for v in todo], encoder, sampling, size=size,
                            backend=backend, batch_size=batch_size, workers=workers, device=device,
                            on_frames=bar.add_frames)
    for res in results:
        if isinstance(res, Encoded):
            entry = _save(output_dir, res, dtype, settings)
            records.add_finished(entry)
            summary.done.append(res.key)
            summary.entries[res.key] = entry
        else:
            records.add_failure(res.key, res.reason)
            summary.failed[res.key] = res.reason
            log.warning("FAILED %s: %s", single_line(res.key), single_line(res.reason))
        bar.update(1)
    bar.close()
    return summary


def _refuse_other_settings(output_dir: str, todo: list[str], settings: dict) -> None:
    """A ValueError where videos of ``todo`` have features of other settings in ``output_dir`` (a weights file
    replaced under its name is no other setting: its videos are extracted again, as a video file replaced is)."""
    def comparable(values: dict) -> dict:
        return {k: v for k, v in flat(values).items() if k != "weights_sha256"}

    wanted, now = set(todo), comparable(settings)
    other = [e for e in latest_entries(Path(output_dir, MANIFEST)) if e["video"] in wanted
             and isinstance(e.get("settings"), dict) and comparable(e["settings"]) != now
             and Path(output_dir, e.get("feature_file") or "").is_file()]
    if other:
        changed = "; ".join(changes(comparable(other[0]["settings"]), now, "then"))
        names = some_of(e["video"] for e in other)
        raise ValueError(f"{output_dir} holds features of {n_videos(len(other))} ({names}) extracted with other "
                         f"settings ({changed}): give another output_dir, or replace=true to extract them again over "
                         "the old ones")


def _save(output_dir: str, res: Encoded, dtype: str, settings: dict) -> dict:
    """Write one video's feature file; returns its manifest entry."""
    m = res.meta
    stored = storage_dtype(res.features, dtype)
    path = feature_path(output_dir, res.key)
    save_features(path, res.features, m.frame_indices, m.timestamps, dtype=stored)
    return {
        "video": res.key, "feature_file": path.relative_to(output_dir).as_posix(),
        "frame_count": m.frame_count, "header_frames": m.header_frames,
        "frame_count_source": m.frame_count_source, "fps": m.fps,
        "duration_s": m.duration_s, "damaged_frames": m.damaged_frames,
        "width": m.width, "height": m.height, "backend": m.backend, "access": m.access,
        "frame_indices": m.frame_indices, "timestamps": m.timestamps,
        "feature_shape": list(res.features.shape), "dtype": str(stored), "settings": settings,
    }
