"""From a folder of raw videos and a checkpoint to caption and count files."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import build_model, load_checkpoint
from .data import load_count_labels
from .features import Encoded, encode_videos
from .features.store import atomic_write
from .files import VIDEO_EXTENSIONS, list_videos, select_shard
from .metrics import count_errors
from .models.encoder import FrameEncoder
from .models.hog import HogPeopleCounter
from .outputs import write_captions, write_csv, write_json, write_timed_captions
from .tasks.captioning import describe
from .tasks.counting import predict_counts
from .text import Vocab
from .video import Chunk, Restart, Sampling, arrange, failure_reason, stream_video

log = logging.getLogger("vidrnn.predict")


@dataclass
class PredictSummary:
    done: list[str] = field(default_factory=list)  # video ids
    failed: dict[str, str] = field(default_factory=dict)  # relative path -> reason


def video_ids(files: list[str]) -> dict[str, str]:
    """Relative path -> video id: the file's stem, or its path without extension where stems repeat."""
    stems = [PurePosixPath(f).stem for f in files]
    return {f: s if stems.count(s) == 1 else str(PurePosixPath(f).with_suffix("")) for f, s in zip(files, stems)}


def window_times(sampling: Sampling, meta) -> list[tuple[float, float]]:
    """(start_s, end_s) of each window of a video read with window ``sampling``."""
    return [(a / meta.fps, b / meta.fps) for a, b in sampling.windows(meta.frame_count, meta.fps)]


def _frame_encoder(ckpt: dict, model) -> FrameEncoder:
    """The encoder that turns a checkpoint's frames into its model's features: the model's own when it
    was trained end to end, else a fresh one as the checkpoint's settings describe."""
    return model.features.encoder if ckpt.get("encoder_trained") else FrameEncoder(**ckpt["encoder"])


def _videos_in(input_dir: str, extensions, shard) -> tuple[list[str], dict[str, str]]:
    """This shard's video files under ``input_dir`` and their ids; none at all is an error."""
    files = select_shard(list_videos(input_dir, extensions), *shard)
    if not files:
        raise FileNotFoundError(f"{input_dir}: no video files ({', '.join(extensions)})")
    return files, video_ids(files)


def _encode_folder(input_dir: str, ckpt: dict, model, sampling: Sampling, summary: PredictSummary, *, backend: str,
                   workers: int, batch_size: int, device: torch.device, extensions, shard, progress: bool
                   ) -> Iterator[tuple[str, Encoded]]:
    """(video id, features) of every readable video; failures go into ``summary``."""
    files, ids = _videos_in(input_dir, extensions, shard)
    encoder = _frame_encoder(ckpt, model)
    bar = tqdm(total=len(files), unit="video", disable=not progress, dynamic_ncols=True)
    for res in encode_videos([(f, str(Path(input_dir, f))) for f in files], encoder, sampling, size=ckpt["size"],
                             backend=backend, batch_size=batch_size, workers=workers, device=device):
        bar.update(1)
        if isinstance(res, Encoded):
            yield ids[res.key], res
        else:
            summary.failed[res.key] = res.reason
            log.warning("FAILED %s: %s", res.key, res.reason)
    bar.close()


def caption_folder(input_dir: str, checkpoint: str, output: str, *, beam: int = 5, max_len: int | None = None,
                   length_penalty: float = 1.0, n_best: int = 1, window_s: float = 4.0, stride_s: float = 4.0,
                   decode_batch: int = 32, backend: str = "auto", workers: int = 2, batch_size: int = 32,
                   device: torch.device = torch.device("cpu"), extensions=VIDEO_EXTENSIONS, shard=(0, 1),
                   progress: bool = True) -> PredictSummary:
    """Caption every video under ``input_dir`` into ``output`` (.json or .csv: one caption per video;
    .srt or .vtt: one caption per window of ``window_s`` seconds every ``stride_s``, one file per video,
    named ``output`` for a single video, else ``<output without suffix>/<video id>.<suffix>``). Beam search
    runs over ``decode_batch`` videos at once."""
    ckpt = load_checkpoint(checkpoint, task="caption")
    model, vocab = build_model(ckpt).to(device), Vocab.from_dict(ckpt["vocab"])
    sampling = Sampling(**ckpt["sampling"])
    timed = Path(output).suffix in (".srt", ".vtt")
    if timed:
        sampling = replace(sampling, mode="window", window_s=window_s, stride_s=stride_s)
    decode = dict(beam=beam, max_len=max_len or ckpt["max_len"], length_penalty=length_penalty, n_best=n_best,
                  device=device)
    summary, rows, timed_files, pending = PredictSummary(), [], {}, []

    def flush() -> None:
        """Decode the pending videos together: every window (or whole video) is one batch row."""
        keys = [(vid, w) for vid, res in pending for w in range(len(res.features) if timed else 1)]
        feats = torch.from_numpy(np.concatenate([r.features if timed else r.features[None] for _, r in pending]))
        found = describe(model, vocab, feats, ids=keys, **decode)
        for vid, res in pending:
            if timed:
                timed_files[vid] = [(start, end, found[(vid, w)][0][0])
                                    for w, (start, end) in enumerate(window_times(sampling, res.meta))]
            else:
                best = found[(vid, 0)]
                row = {"video_id": vid, "caption": best[0][0], "score": best[0][1]}
                if n_best > 1:
                    row["n_best"] = [{"caption": c, "score": sc} for c, sc in best]
                rows.append(row)
            summary.done.append(vid)
        pending.clear()

    for vid, res in _encode_folder(input_dir, ckpt, model, sampling, summary, backend=backend, workers=workers,
                                   batch_size=batch_size, device=device, extensions=extensions, shard=shard,
                                   progress=progress):
        pending.append((vid, res))
        if len(pending) == decode_batch:
            flush()
    if pending:
        flush()
    if timed:
        out = Path(output)
        for vid, segments in timed_files.items():
            write_timed_captions(out if len(timed_files) == 1 else out.with_suffix("") / f"{vid}{out.suffix}", segments)
    else:
        write_captions(output, sorted(rows, key=lambda r: r["video_id"]))
    return summary


def count_folder(input_dir: str, output: str, *, checkpoint: str | None = None, counter: str = "rnn",
                 hog: dict | None = None, num_frames: int = 16, window_s: float | None = None, stride_s: float = 2.0,
                 labels: str | None = None, plots: bool = True, backend: str = "auto", workers: int = 2,
                 batch_size: int = 32, device: torch.device = torch.device("cpu"), extensions=VIDEO_EXTENSIONS,
                 shard=(0, 1), progress: bool = True) -> tuple[PredictSummary, dict | None]:
    """Count people in every video under ``input_dir``: ``output`` (CSV ``video_id,count``), with
    ``window_s`` also ``<output>_windows.csv`` (``video_id,start_s,end_s,count``: mean people visible in
    each window), timeline plots in ``<output>_plots/``, and with ``labels`` MAE/RMSE in
    ``<output>_metrics.json`` (returned too).

    counter ``rnn`` uses the checkpoint's model (its sampling, ``num_frames`` ignored); ``hog`` runs
    OpenCV's HOG people detector on ``num_frames`` frames per clip (clip count: the most people seen in
    one frame).
    """
    if counter == "rnn":
        if not checkpoint:
            raise ValueError("counter=rnn needs checkpoint=<checkpoints/best.pt of a count training run>")
        ckpt = load_checkpoint(checkpoint, task="count")
        model, sampling = build_model(ckpt).to(device), Sampling(**ckpt["sampling"])
    elif counter == "hog":
        hog_counter, sampling = HogPeopleCounter(**(hog or {})), Sampling(num_frames=num_frames)
    else:
        raise ValueError(f"counter must be rnn or hog, not {counter!r}")
    if window_s:
        sampling = replace(sampling, mode="window", window_s=window_s, stride_s=stride_s)
    summary, results = PredictSummary(), {}
    if counter == "rnn":
        for vid, res in _encode_folder(input_dir, ckpt, model, sampling, summary, backend=backend, workers=workers,
                                       batch_size=batch_size, device=device, extensions=extensions, shard=shard,
                                       progress=progress):
            feats = torch.from_numpy(res.features)
            preds = predict_counts(model, feats[None] if feats.ndim == 2 else feats, device=device)
            frames = np.stack([f for _, f in preds])  # (W, N)
            if "frames" not in ckpt["targets"]:  # the frame head never learned: spread the clip count
                frames = np.repeat(np.array([[c] for c, _ in preds], np.float32), frames.shape[1], 1)
            clip = np.array([c for c, _ in preds]) if "clip" in ckpt["targets"] else frames.mean(1)
            results[vid] = (clip, frames, res.meta)
            summary.done.append(vid)
    else:
        for vid, frames, meta in _hog_counts(input_dir, sampling, hog_counter, summary, backend=backend,
                                             extensions=extensions, shard=shard, progress=progress):
            frames = frames.reshape(-1, frames.shape[-1])  # (W, N), W = 1 without windows
            results[vid] = (frames.max(-1), frames, meta)
            summary.done.append(vid)
    return summary, _write_counts(output, results, sampling, labels=labels, plots=plots)


def _hog_counts(input_dir, sampling, hog_counter, summary, *, backend, extensions, shard, progress):
    """(video id, per-frame HOG counts shaped like the sampling plan, meta) of every readable video."""
    files, ids = _videos_in(input_dir, extensions, shard)
    for f in tqdm(files, unit="video", disable=not progress, dynamic_ncols=True):
        indices, counts = [], []  # full-size frames are counted chunk by chunk, never all held at once
        try:
            for item in stream_video(str(Path(input_dir, f)), sampling, size=None, backend=backend):
                if isinstance(item, Restart):
                    indices, counts = [], []
                elif isinstance(item, Chunk):
                    indices.append(item.indices)
                    counts.append(hog_counter.count_frames(item.frames))
                else:
                    yield ids[f], arrange(np.concatenate(indices), np.concatenate(counts), item.frame_indices), item
        except Exception as e:  # a decoder failing in an unforeseen way must not end the batch
            reason = failure_reason(e)
            summary.failed[f] = reason
            log.warning("FAILED %s: %s", f, reason)


def _write_counts(output: str, results: dict, sampling: Sampling, *, labels: str | None, plots: bool) -> dict | None:
    """counts.csv, the per-window CSV, timeline plots and (with labels) metrics; returns the metrics."""
    out = Path(output)
    base = out.with_suffix("")
    rows, window_rows, windowed = [], [], sampling.mode == "window"
    for vid, (clip, frames, meta) in sorted(results.items()):
        if windowed:
            window_rows += [[vid, start, end, float(f.mean())] for (start, end), f in zip(window_times(sampling, meta), frames)]
            rows.append([vid, float(frames.mean())])
        else:
            rows.append([vid, float(clip[0])])
    write_csv(out, ["video_id", "count"], rows)
    if windowed:
        write_csv(f"{base}_windows.csv", ["video_id", "start_s", "end_s", "count"], window_rows)
    truth = load_count_labels(labels) if labels else None
    if plots:
        for vid, (_, frames, meta) in results.items():
            _plot_timeline(Path(f"{base}_plots") / f"{vid.replace('/', '__')}.png", vid, meta, frames,
                           truth.frames.get(vid) if truth else None)
    if truth is None:
        return None
    metrics = {}
    clip_truth = {v: truth.clip[v] for v in results if v in truth.clip}
    if clip_truth:
        metrics["clip"] = count_errors(clip_truth, {vid: count for vid, count in rows if vid in clip_truth})
    frame_truth, frame_pred = {}, {}
    for vid, (_, frames, meta) in results.items():
        if vid in truth.frames:
            idx, labelled = np.asarray(meta.frame_indices).reshape(-1), truth.frames[vid]
            keep = (idx < len(labelled)) & ~np.isnan(labelled[np.minimum(idx, len(labelled) - 1)])
            if keep.any():
                frame_truth[vid], frame_pred[vid] = labelled[idx[keep]], frames.reshape(-1)[keep]
    if frame_truth:
        metrics["frames"] = count_errors(frame_truth, frame_pred)
    write_json(f"{base}_metrics.json", metrics)
    return metrics


def _plot_timeline(path: Path, vid: str, meta, frames: np.ndarray, truth: np.ndarray | None) -> None:
    """Predicted people per sampled frame over time, the true per-frame count overlaid when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, counts = np.asarray(meta.timestamps).reshape(-1), frames.reshape(-1)
    order = np.argsort(times, kind="stable")
    fig, ax = plt.subplots(figsize=(8, 3))
    if truth is not None and meta.fps:
        ax.plot(np.arange(len(truth)) / meta.fps, truth, color="0.6", lw=1.5, label="ground truth")
    ax.plot(times[order], counts[order], marker=".", lw=1, label="predicted")
    ax.set(xlabel="time (s)", ylabel="people", title=vid, ylim=(-0.3, max(1.0, counts.max(initial=0) * 1.2,
                                                                         np.nanmax(truth, initial=0) * 1.2 if truth is not None else 0)))
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)
