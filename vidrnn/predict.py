"""From a folder of raw videos and a checkpoint to caption and count files."""
from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .checkpoint import build_model, checkpoint_file, load_checkpoint
from .data import CountLabels, load_count_labels
from .features import Encoded, Mapped, VideoBar, encode_videos, map_frames
from .features.store import RunRecords, atomic_write, file_sha256
from .files import (VIDEO_EXTENSIONS, file_name, n_videos, printable, select_shard, single_line, some_of,
                    tree_path, videos_at)
from .metrics import count_errors
from .models.encoder import EncoderError, FrameEncoder, weights_file
from .models.hog import HogPeopleCounter
from .outputs import (
    CAPTION_FORMATS,
    TIMED_FORMATS,
    not_an_input,
    output_format,
    write_captions,
    write_csv,
    write_json,
    write_timed_captions,
)
from .pictures import Pictures, draw_each, per_frame
from .tasks.captioning import describe
from .tasks.counting import predict_counts
from .text import Vocab
from .video import Sampling, VideoMeta, window_bounds

log = logging.getLogger("vidrnn.predict")


@dataclass
class PredictSummary:
    done: list[str] = field(default_factory=list)  # ids of the videos this run computed
    skipped: int = 0  # videos an earlier run already did with the same checkpoint and settings
    failed: dict[str, str] = field(default_factory=dict)  # relative path -> reason
    output: str = ""  # where the results went, as a line of the run's report says it
    videos: list[str] = field(default_factory=list)  # ids of every video of the input, all shards (the report's)


def video_ids(files: list[str]) -> dict[str, str]:
    """Relative path -> video id: the file's stem; its path without extension where stems repeat; the
    relative path itself where that repeats too (``clip.avi`` beside ``clip.mp4``). Bytes of a file name
    that are not UTF-8 are written as ``\\xNN`` (``caf\\xe9``), so every id is plain text."""
    stems = [PurePosixPath(f).stem for f in files]
    bare = [str(PurePosixPath(f).with_suffix("")) for f in files]
    stem_repeats, bare_repeats = Counter(stems), Counter(bare)
    return {f: printable(s if stem_repeats[s] == 1 else b if bare_repeats[b] == 1 else f)
            for f, s, b in zip(files, stems, bare)}


def window_times(sampling: Sampling, meta) -> list[tuple[float, float]]:
    """(start_s, end_s) of each window of a video read with window ``sampling``: timed by the decoder's
    timestamps (``meta.window_bounds``), or, for records written before they were kept, by index / fps."""
    if meta.window_bounds is not None:
        return [(start, end) for start, end in meta.window_bounds]
    return window_bounds(sampling, meta.frame_count / meta.fps)


def _frame_encoder(ckpt: dict, model) -> FrameEncoder:
    """The encoder that turns a checkpoint's frames into its model's features: the model's own when it
    was trained end to end, else a fresh one as the checkpoint's settings describe."""
    if ckpt.get("encoder_trained"):
        return model.features.encoder
    try:
        return FrameEncoder(**ckpt["encoder"])
    except EncoderError as e:  # e.g. its weights file was moved since
        raise EncoderError(f"the checkpoint's frame encoder (its model reads that encoder's features): {e}") from e


def _identity(checkpoint: str, ckpt: dict) -> dict:
    """What makes a run's results: the checkpoint file's bytes, and those of the weights file its encoder is
    built from (replaced under its name, it gives other features)."""
    identity = {"checkpoint": file_sha256(checkpoint_file(checkpoint))}
    weights = None if ckpt.get("encoder_trained") else weights_file(ckpt["encoder"].get("weights"))
    return {**identity, "encoder_weights_sha256": file_sha256(weights)} if weights else identity


def beside(output: str, name: str) -> Path:
    """A file or folder that goes with ``output``: ``<output without suffix>_<name>``."""
    return Path(f"{Path(output).with_suffix('')}_{name}")


def records_dir(output: str) -> Path:
    """Where a prediction run records each finished video's result and each failure, as it goes:
    ``<output without suffix>_records/`` (``manifest.jsonl``, ``failures.jsonl``)."""
    return beside(output, "records")


def plots_dir(output: str) -> Path:
    """Where a count run draws each video's count timeline: ``<output without suffix>_plots/``."""
    return beside(output, "plots")


def _written_by_run(output: str, pictures: Pictures | None) -> list[Path]:
    """The folders that caption and count runs into ``output`` write (records, count timelines, pictures)."""
    return [records_dir(output), plots_dir(output), *(pictures.folders() if pictures is not None else [])]


def _outside(videos: list[str], input_dir: str, folders: list[Path]) -> list[str]:
    """``videos`` (relative to ``input_dir``) less those in any of ``folders`` below ``input_dir``: a run's
    outputs inside its input folder are not read back as input."""
    root, real = Path(os.path.realpath(input_dir)), [Path(os.path.realpath(d)) for d in folders]
    inside = [d.relative_to(root).parts for d in real if d.is_relative_to(root)]
    return [v for v in videos if not any(p and PurePosixPath(v).parts[:len(p)] == p for p in inside)]


@dataclass
class _Job:
    """This shard's videos still to do, the ids of every video in the folder, and the records that keep
    each finished video's result under the settings (checkpoint included) that determine it."""

    input_dir: str
    todo: list[str]  # relative paths
    ids: dict[str, str]  # relative path -> video id
    mine: set[str]  # ids of this shard's videos
    records: RunRecords
    settings: dict
    summary: PredictSummary

    def finish(self, video: str, result: dict) -> None:
        self.records.add_finished({"video": video, "settings": self.settings, "result": result})
        self.summary.done.append(self.ids[video])

    def fail(self, video: str, reason: str) -> None:
        self.records.add_failure(video, reason)
        self.summary.failed[video] = reason
        log.warning("FAILED %s: %s", single_line(video), single_line(reason))

    def results(self) -> dict[str, dict]:
        """Video id -> result of every finished video in the folder (by this run, an earlier one or another
        shard), in id order."""
        found = self.records.finished(self.settings)
        return dict(sorted(((self.ids[v], e["result"]) for v, e in found.items() if v in self.ids), key=lambda r: r[0]))

    def own(self, results: dict) -> dict:
        """The part of ``results`` that is this shard's to draw (shards never draw each other's videos)."""
        return {vid: r for vid, r in results.items() if vid in self.mine}


def _start(input_dir: str, output: str, settings: dict, *, extensions, shard, pictures: Pictures | None) -> _Job:
    """The job over this shard's videos under ``input_dir`` (or that one video file) that no earlier run
    finished with ``settings``, those in the folders the run writes left out; a shard without videos is an
    error."""
    input_dir, every = videos_at(input_dir, extensions)
    every = _outside(every, input_dir, _written_by_run(output, pictures))
    files = select_shard(every, *shard)
    if not files:
        raise ValueError(f"shard {shard[0]} of {shard[1]} has no videos ({input_dir} holds {len(every)})")
    records = RunRecords(records_dir(output), input_dir)
    finished, todo = records.start(files, settings)
    log.info("%s: %d already done (%s), %d to do", n_videos(len(files)), len(files) - len(todo), records.dir,
             len(todo))
    ids = video_ids(every)
    return _Job(input_dir, todo, ids, {ids[f] for f in files}, records, settings,
                PredictSummary(skipped=len(files) - len(todo), videos=sorted(ids.values())))


def _encode_folder(job: _Job, ckpt: dict, model, sampling: Sampling, *, backend: str, workers: int,
                   batch_size: int, device: torch.device, progress: bool) -> Iterator[tuple[str, Encoded]]:
    """(relative path, features) of every readable video still to do; failures are recorded."""
    if not job.todo:
        return
    encoder = _frame_encoder(ckpt, model)
    bar = VideoBar(len(job.todo), progress)
    for res in encode_videos([(f, str(Path(job.input_dir, f))) for f in job.todo], encoder, sampling,
                             size=ckpt["size"], backend=backend, batch_size=batch_size, workers=workers, device=device,
                             on_frames=bar.add_frames):
        bar.update(1)
        if isinstance(res, Encoded):
            yield res.key, res
        else:
            job.fail(res.key, res.reason)
    bar.close()


def caption_folder(input_dir: str, checkpoint: str, output: str, *, beam: int = 5, max_len: int | None = None,
                   length_penalty: float = 1.0, n_best: int = 1, window_s: float = 4.0, stride_s: float = 4.0,
                   decode_batch: int = 32, backend: str = "auto", workers: int = 2, batch_size: int = 32,
                   device: torch.device = torch.device("cpu"), extensions=VIDEO_EXTENSIONS, shard=(0, 1),
                   progress: bool = True, pictures: Pictures | None = None) -> PredictSummary:
    """Caption every video under ``input_dir`` (or that one video file) into ``output`` (.json or .csv: one
    caption per video; .srt or .vtt: one caption per window of ``window_s`` seconds every ``stride_s``, one
    file per video, named ``output`` for a single video, else ``<output without suffix>/<video id>.<suffix>``).
    Beam search runs over ``decode_batch`` videos at once; each video's captions are recorded
    (``records_dir``) as soon as they are decoded, a rerun with the same checkpoint and settings skips them,
    and ``output`` is written at the end from the records."""
    if n_best > beam:
        raise ValueError(f"decode.n_best={n_best} needs decode.beam >= {n_best} "
                         f"(a beam of {beam} keeps {beam} caption{'s' if beam > 1 else ''})")
    timed = output_format(output, CAPTION_FORMATS, "caption") in TIMED_FORMATS  # checked before any video
    if timed and n_best > 1:
        raise ValueError(f"decode.n_best={n_best}: a {Path(output).suffix} file holds one caption per window; "
                         "n-best captions go into .json or .csv")
    ckpt = load_checkpoint(checkpoint, task="caption")
    model, vocab = build_model(ckpt).to(device), Vocab.from_dict(ckpt["vocab"])
    sampling = Sampling(**ckpt["sampling"])
    if timed:
        sampling = replace(sampling, mode="window", window_s=window_s, stride_s=stride_s)
    decode = {"beam": beam, "max_len": max_len or ckpt["max_len"], "length_penalty": length_penalty, "n_best": n_best}
    job = _start(input_dir, output, {**_identity(checkpoint, ckpt), "timed": timed, "sampling": sampling.as_dict(),
                                     "decode": decode},
                 extensions=extensions, shard=shard, pictures=pictures)
    pending = []

    def flush() -> None:
        """Decode the pending videos together: every window (or whole video) is one batch row."""
        keys = [(f, w) for f, res in pending for w in range(len(res.features) if timed else 1)]
        whole = [np.asarray(r.features) for _, r in pending]  # (W, N, D) each when timed, else (N, D)
        feats = torch.from_numpy(np.concatenate(whole if timed else [x[None] for x in whole]))
        found = describe(model, vocab, feats, ids=keys, device=device, **decode)
        for f, res in pending:
            if timed:
                job.finish(f, {"segments": [(start, end, found[(f, w)][0][0])
                                            for w, (start, end) in enumerate(window_times(sampling, res.meta))]})
            else:
                best = found[(f, 0)]
                result = {"caption": best[0][0], "score": best[0][1]}
                if n_best > 1:
                    result["n_best"] = [{"caption": c, "score": sc} for c, sc in best]
                job.finish(f, result)
        pending.clear()

    for f, res in _encode_folder(job, ckpt, model, sampling, backend=backend, workers=workers, batch_size=batch_size,
                                 device=device, progress=progress):
        pending.append((f, res))
        if len(pending) == decode_batch:
            flush()
    if pending:
        flush()
    with job.records.lock():  # shards finishing at once: the last one writes every shard's results
        results = job.results()
        out = Path(output)
        folder = timed and len(job.ids) > 1  # a file per video in a folder (all the folder's videos: every shard's)
        job.summary.output = f"{out.with_suffix('')}/ (a {out.suffix} file per video)" if folder else output
        if timed:
            for vid, result in results.items():
                write_timed_captions(out.with_suffix("") / tree_path(vid, out.suffix) if folder else out,
                                     result["segments"])
        else:
            write_captions(output, [{"video_id": vid, **results[vid]} for vid in sorted(results)])
    if pictures is not None:  # contact sheets, annotated videos
        pictures.add_captions(job.input_dir, job.ids, job.own(results), job.summary.done)
    return job.summary


def count_folder(input_dir: str, output: str, *, checkpoint: str | None = None, counter: str = "rnn",
                 hog: dict | None = None, num_frames: int = 16, window_s: float | None = None, stride_s: float = 2.0,
                 labels: str | None = None, plots: bool = True, backend: str = "auto", workers: int = 2,
                 batch_size: int = 32, device: torch.device = torch.device("cpu"), extensions=VIDEO_EXTENSIONS,
                 shard=(0, 1), progress: bool = True, pictures: Pictures | None = None
                 ) -> tuple[PredictSummary, dict | None]:
    """Count people in every video under ``input_dir`` (or that one video file): ``output`` (CSV
    ``video_id,count``), with ``window_s`` also ``<output>_windows.csv`` (``video_id,start_s,end_s,count``:
    mean people visible in each window), timeline plots in ``<output>_plots/``, and with ``labels`` MAE/RMSE
    in ``<output>_metrics.json`` (returned too).

    counter ``rnn`` uses the checkpoint's model (its sampling, ``num_frames`` ignored); ``hog`` runs
    OpenCV's HOG people detector on ``num_frames`` frames per clip (clip count: the most people seen in
    one frame).

    Each video's counts are recorded (``records_dir``) as soon as they are computed, a rerun with the
    same counter and settings skips them, and the files are written at the end from the records.
    """
    output_format(output, (".csv",), "count")  # before any video: the counts are a CSV table
    not_an_input(output, labels=labels)
    if counter == "rnn":
        if not checkpoint:
            raise ValueError("counter=rnn needs checkpoint=<checkpoints/best.pt of a count training run>, or use "
                             "counter=hog (OpenCV's people detector: no training)")
        ckpt = load_checkpoint(checkpoint, task="count")
        model, sampling = build_model(ckpt).to(device), Sampling(**ckpt["sampling"])
        identity = {"counter": "rnn", **_identity(checkpoint, ckpt)}
    elif counter == "hog":
        hog_counter, sampling = HogPeopleCounter(**(hog or {})), Sampling(num_frames=num_frames)
        identity = {"counter": "hog", "hog": hog or {}}
    else:
        raise ValueError(f"counter must be rnn or hog, not {counter!r}")
    if window_s:
        sampling = replace(sampling, mode="window", window_s=window_s, stride_s=stride_s)
    truth = load_count_labels(labels) if labels else None  # a bad file stops the job before any video is read
    job = _start(input_dir, output, {**identity, "sampling": sampling.as_dict()}, extensions=extensions, shard=shard,
                 pictures=pictures)
    if truth is not None:
        truth, unmatched = truth.for_files(job.ids)
        if unmatched and (truth.clip or truth.frames):  # (none matched: a warning with the metrics)
            log.warning("%s labels %s with no file under %s: %s", labels, n_videos(len(unmatched)), job.input_dir,
                        some_of(unmatched))
    if counter == "rnn":
        found = _rnn_counts(job, ckpt, model, sampling, backend=backend, workers=workers, batch_size=batch_size,
                            device=device, progress=progress)
    else:
        found = _hog_counts(job, sampling, hog_counter, backend=backend, workers=workers, progress=progress)
    for f, clip, frames, meta in found:
        job.finish(f, {"clip": clip.tolist(), "frames": frames.tolist(), "meta": meta.as_dict()})
    with job.records.lock():  # shards finishing at once: the last one writes every shard's results
        results = {vid: (np.asarray(r["clip"]), np.asarray(r["frames"], np.float32), VideoMeta(**r["meta"]))
                   for vid, r in job.results().items()}
        if truth is not None:
            truth = truth.reaching({vid: meta.frame_count for vid, (_, _, meta) in results.items()})
        metrics = _write_counts(output, results, sampling, truth=truth, labels=labels, plots=plots,
                                computed=set(job.summary.done), workers=workers)
        job.summary.output = output
    if pictures is not None:  # contact sheets, annotated videos
        pictures.add_counts(job.input_dir, job.ids, job.own(results), job.summary.done, output, truth=truth)
    return job.summary, metrics


def _rnn_counts(job: _Job, ckpt: dict, model, sampling: Sampling, **encode_kw):
    """(relative path, clip counts (W,), per-frame counts (W, N), meta) of every readable video still to do,
    from a trained counter."""
    for f, res in _encode_folder(job, ckpt, model, sampling, **encode_kw):
        clips = [np.asarray(res.features)[None]] if res.features.ndim == 2 else res.features.blocks()  # (W, N, D)
        preds = [p for block in clips
                 for p in predict_counts(model, torch.from_numpy(block), device=encode_kw["device"])]
        frames = np.stack([counts for _, counts in preds])  # (W, N)
        if "frames" not in ckpt["targets"]:  # the frame head never learned: spread the clip count
            frames = np.repeat(np.array([[c] for c, _ in preds], np.float32), frames.shape[1], 1)
        clip = np.array([c for c, _ in preds]) if "clip" in ckpt["targets"] else frames.mean(1)
        yield f, clip, frames, res.meta


def _hog_counts(job: _Job, sampling: Sampling, hog_counter: HogPeopleCounter, *, backend: str, workers: int,
                progress: bool):
    """(relative path, clip counts (W,), per-frame counts (W, N), meta) of every readable video still to do,
    from the HOG detector run in the decode workers on full-size frames (clip count: the most people in one
    frame)."""
    bar = VideoBar(len(job.todo), progress)
    for res in map_frames([(f, str(Path(job.input_dir, f))) for f in job.todo], hog_counter.count_frames, sampling,
                          backend=backend, workers=workers, on_frames=bar.add_frames):
        bar.update(1)
        if isinstance(res, Mapped):
            frames = res.values.reshape(-1, res.values.shape[-1])  # (W, N), W = 1 without windows
            yield res.key, frames.max(-1), frames, res.meta
        else:
            job.fail(res.key, res.reason)
    bar.close()


DRAWN_WITH_LABELS = "plots_show_labels"  # in the records of an output whose timeline plots show ground truth


def _write_counts(output: str, results: dict, sampling: Sampling, *, truth: CountLabels | None, labels: str | None,
                  plots: bool, computed: set[str], workers: int = 1) -> dict | None:
    """counts.csv, the per-window CSV, timeline plots (with labels all of them, else those of the videos
    ``computed`` now and those whose plot is missing; drawn in up to ``workers`` processes) and, with
    ``truth`` (read from the file ``labels``), metrics; returns the metrics. Those of these files that the
    options do not ask for are removed, so that none is left from an earlier run with other options."""
    out = Path(output)
    plotted, drawn = plots_dir(output), records_dir(output) / DRAWN_WITH_LABELS  # drawn: the plots show labels
    windows_csv, metrics_json = beside(output, "windows.csv"), beside(output, "metrics.json")
    rows, window_rows, windowed = [], [], sampling.mode == "window"
    for vid, (clip, frames, meta) in sorted(results.items()):
        if windowed:
            window_rows += [[vid, start, end, float(f.mean())]
                            for (start, end), f in zip(window_times(sampling, meta), frames)]
            rows.append([vid, float(per_frame(meta, frames)[1].mean())])  # frames that windows share: once
        else:
            rows.append([vid, float(clip[0])])
    write_csv(out, ["video_id", "count"], rows)
    if windowed:
        write_csv(windows_csv, ["video_id", "start_s", "end_s", "count"], window_rows)
    else:
        windows_csv.unlink(missing_ok=True)
    if plots:
        paths = {vid: plotted / file_name(vid, ".png") for vid in results}
        all_again = truth is not None or drawn.exists()  # a rerun without labels redraws plots that show them
        jobs = [(paths[vid], vid, meta, frames, truth.frames.get(vid) if truth else None)
                for vid, (_, frames, meta) in results.items()
                if all_again or vid in computed or not paths[vid].exists()]
        for job in jobs:  # gone before they are redrawn: a run stopped while drawing leaves no plot of old counts
            job[0].unlink(missing_ok=True)
        for job, error in zip(jobs, draw_each(_plot_timeline, jobs, workers=workers)):
            if error:
                log.warning("PLOT FAILED %s: %s", job[1], error)
        if truth is not None and jobs:
            drawn.touch()
        elif truth is None:
            drawn.unlink(missing_ok=True)
    else:  # an earlier run's plots of the videos counted now are out of date (a later run would keep them)
        for vid in computed:
            (plotted / file_name(vid, ".png")).unlink(missing_ok=True)
        if not any(plotted.glob("*.png")):
            drawn.unlink(missing_ok=True)
    if truth is None:
        metrics_json.unlink(missing_ok=True)
        return None
    for vid, (_, _, meta) in sorted(results.items()):
        labelled = np.flatnonzero(np.isfinite(truth.frames.get(vid, np.empty(0))))
        if len(labelled) and labelled[-1] >= meta.frame_count:
            log.warning("%s labels %s up to frame %d, past its %d frames (frames counted from 0; labels of "
                        "another video, or numbered at another frame rate?)", labels, vid, labelled[-1],
                        meta.frame_count)
    metrics = {}
    clip_truth = {v: truth.clip[v] for v in results if v in truth.clip}
    if clip_truth:
        metrics["clip"] = count_errors(clip_truth, {vid: count for vid, count in rows if vid in clip_truth})
        if windowed:
            log.warning("%s: clip counts (the people in a whole clip) scored against each video's mean count over "
                        "its windows, as counts.csv holds it with window_s: without window_s the counter's own "
                        "clip count is scored", labels)
    frame_truth, frame_pred, window_truth, window_pred = {}, {}, {}, {}
    for vid, (_, frames, meta) in results.items():
        if vid in truth.frames:
            (idx, _), predicted = per_frame(meta, frames)
            labelled = truth.frames[vid]
            keep = (idx < len(labelled)) & ~np.isnan(labelled[np.minimum(idx, len(labelled) - 1)])
            if keep.any():
                frame_truth[vid], frame_pred[vid] = labelled[idx[keep]], predicted[keep]
            if windowed:  # the mean of the labelled frames in a window against the window's count
                ranges = _window_frames(sampling, meta)
                pairs = [(np.nanmean(labelled[a:b]), f.mean()) for (a, b), f in zip(ranges, frames)
                         if np.isfinite(labelled[a:b]).any()]
                if pairs:
                    window_truth[vid], window_pred[vid] = (np.array(p, np.float32) for p in zip(*pairs))
    if frame_truth:
        metrics["frames"] = count_errors(frame_truth, frame_pred)
    if window_truth:
        metrics["windows"] = count_errors(window_truth, window_pred)
    if not metrics:
        named = sum(v in truth.clip or v in truth.frames for v in results)
        log.warning("%s labels %s", labels, f"{named} of these videos but none of the frames sampled from them: no "
                    "MAE (count in windows, window_s=..., to score each window against its labelled frames)" if named
                    else "none of these videos (ids are file stems, or relative paths where stems repeat): no MAE")
    write_json(metrics_json, metrics)
    return metrics


def _window_frames(sampling: Sampling, meta) -> list[tuple[int, int]]:
    """The [start, end) frame range of each window (recomputed from the frame count for older records)."""
    return meta.window_frames if meta.window_frames is not None else sampling.windows(meta.frame_count, meta.fps)


def plot_title(vid: str, width: int = 70) -> str:
    """A video id that fits across a timeline plot: a longer one keeps its start and end around an ellipsis."""
    return vid if len(vid) <= width else f"{vid[:width // 2 - 1]}…{vid[-(width // 2 - 1):]}"


def frame_times(meta, idx: np.ndarray, times: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """When ``frames`` (indices) are shown, on the clock the sampled frames ``idx`` were timed by (the
    decoder's timestamps: right for variable frame rates, where frame / fps is not): interpolated between
    them, from 0 at frame 0 to the video's end after its last frame."""
    end = meta.duration_s if meta.duration_s else meta.frame_count / meta.fps if meta.fps else float(times[-1])
    return np.interp(frames, np.r_[0, idx, meta.frame_count], np.r_[0.0, times, end])


def _plot_timeline(path: Path, vid: str, meta, frames: np.ndarray, truth: np.ndarray | None) -> None:
    """Predicted people per sampled frame over time, the true per-frame count overlaid when known."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    (idx, times), counts = per_frame(meta, frames)
    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    ax.plot(times, counts, marker=".", lw=1, label="predicted")
    if truth is not None:  # the labelled frames, joined (labels on every n-th frame get dots)
        known = np.flatnonzero(np.isfinite(truth))
        sparse = len(known) < len(truth) / 2
        ax.plot(frame_times(meta, idx, times, known), truth[known], color="0.3", lw=1.5,
                marker="o" if sparse else None, ms=3, label="ground truth", zorder=3)
    top = max(1.0, counts.max(initial=0) * 1.2, np.nanmax(truth, initial=0) * 1.2 if truth is not None else 0)
    ax.set(xlabel="time (s)", ylabel="people", ylim=(0, top))
    ax.set_title(plot_title(vid, 48), loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncol=2, frameon=False, borderaxespad=0.3)  # above the data
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.17, top=0.8)  # fixed margins: tight_layout costs a third
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
