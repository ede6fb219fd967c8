"""From a folder of videos and an annotation file to a trained model: matching, features, splits,
training, and the held-out test score."""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..checkpoint import build_model, load_checkpoint
from ..data import apply_splits, fill_gaps, load_captions, load_count_labels, match_videos
from ..distributed import barrier, current, from_main, in_process_group, per_rank_batch
from ..features.cache import CACHE_DTYPE, cached_features, decoded_frames, extract_settings
from ..files import n_videos, some_of, videos_at
from ..metrics import mean_predictor_errors
from ..models.captioner import build_captioner, captioner_class
from ..models.counter import RecurrentCounter
from ..models.encoder import FrameEncoder
from ..outputs import write_json
from ..tasks.captioning import CaptionSamples, CaptionTask
from ..tasks.counting import CountTask, build_samples, split_in_time
from ..text import SPECIALS, Vocab, tokenize
from ..video import Sampling
from .loop import TrainConfig, fit

TASKS = ("caption", "count")

log = logging.getLogger("vidrnn.train")


@dataclass
class DataConfig:
    video_dir: str
    annotations: str
    frame_annotations: str | None = None  # count: per-frame counts (CSV or MOT) beside clip counts
    splits: str | None = None  # each video's split from this file (``apply_splits``) instead of the annotations'
    time_split: float | None = None  # count: train on windows before this fraction of each video, test after
    cache_dir: str = ".vidrnn_cache"
    features_dir: str | None = None  # an extract output folder to train on (with its settings), not the cache
    val_fraction: float = 0.15  # of the training videos, where the annotations name no validation split
    # (0: none, the last epoch is kept)
    min_count: int = 1  # vocabulary: words seen fewer times become <unk>
    max_len: int = 20  # caption tokens, <bos> and <eos> included


@dataclass
class ExtractConfig:
    encoder: dict  # name, weights, layer, pooling, grid
    sampling: object  # vidrnn.video.Sampling
    size: int = 224
    backend: str = "auto"
    workers: int = 2
    batch_size: int = 32
    progress: bool = True
    trainable: bool = False  # train the encoder end to end on decoded frames instead of cached features
    dtype: str = CACHE_DTYPE  # how features are stored


def _vocabulary(captions: list[str], min_count: int) -> Vocab:
    """The training captions' vocabulary; none of their words kept is an error, most of them lost a warning."""
    vocab = Vocab.build(captions, min_count)
    tokens = [t for c in captions for t in tokenize(c)]
    unknown = sum(t not in vocab.ids for t in tokens) / max(len(tokens), 1)
    if len(vocab) == len(SPECIALS):
        raise ValueError(f"no word occurs data.min_count={min_count} times in the {len(captions)} training "
                         "captions: every word would be <unk>; lower data.min_count")
    if unknown > 0.3:
        log.warning("%.0f%% of the training captions' words occur fewer than data.min_count=%d times and "
                    "become <unk>", 100 * unknown, min_count)
    return vocab


def _settings_of(features_dir: str, extract: ExtractConfig) -> ExtractConfig:
    """``extract`` with the encoder, sampling, size and storage of the features in an ``extract`` output
    folder, so a model trained on them is applied to new videos the same way."""
    if extract.trainable:
        raise ValueError("data.features_dir holds features, but encoder.trainable=true trains the encoder on frames")
    s = extract_settings(features_dir)
    log.info("features from %s: encoder %s, sampling %s, size %d", features_dir, s["encoder"], s["sampling"], s["size"])
    return replace(extract, encoder=s["encoder"], sampling=Sampling(**s["sampling"]), size=s["size"], dtype=s["dtype"])


@dataclass
class ModelConfig:
    kind: str = "attention"
    kwargs: dict = field(default_factory=dict)  # cell, hidden, layers, embed, dropout, ...


def split_videos(splits: dict[str, str | None], ids: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """train / val / test lists: the annotations' splits, with a seeded share of train moved to val
    when no video is marked val."""
    out = {s: sorted(v for v in ids if splits.get(v) == s) for s in ("train", "val", "test")}
    out["train"] += sorted(v for v in ids if splits.get(v) not in ("train", "val", "test"))
    if not out["val"]:
        shuffled = sorted(out["train"])
        random.Random(seed).shuffle(shuffled)
        n = max(1, round(len(shuffled) * val_fraction)) if len(shuffled) > 1 and val_fraction > 0 else 0
        out["val"], out["train"] = sorted(shuffled[:n]), sorted(shuffled[n:])
    if not out["train"]:
        raise ValueError("no training videos: every annotated video with a file is in val or test")
    return out


def _stack(arrays: list[np.ndarray], like: dict[str, np.ndarray]) -> np.ndarray:
    """np.stack, also of no arrays (an empty split): then shaped like any of ``like``'s values."""
    if arrays:
        return np.stack(arrays)
    example = next(iter(like.values()))
    return np.zeros((0, *example.shape), example.dtype)


def _inputs(data: DataConfig, extract: ExtractConfig, videos: list[str], device: torch.device):
    """Per video: cached features (frozen encoder) or sampled frames (encoder trained end to end), the
    sampled frame indices, and the videos that could not be read."""
    if extract.trainable:
        frames, metas, failed = decoded_frames(data.video_dir, videos, sampling=extract.sampling, size=extract.size,
                                               backend=extract.backend, workers=extract.workers)
        return frames, {v: np.asarray(m["frame_indices"]) for v, m in metas.items()}, failed
    cached = partial(cached_features, data.video_dir, videos, cache_root=data.cache_dir, folder=data.features_dir,
                     dtype=extract.dtype, encoder_spec=extract.encoder, sampling=extract.sampling, size=extract.size,
                     backend=extract.backend, batch_size=extract.batch_size, workers=extract.workers, device=device,
                     progress=extract.progress)  # the frame encoder is built only where a video is not cached
    r = current()
    if r.world > 1:  # under torchrun each process first extracts its share of the videos missing from the cache
        cached(shard=(r.rank, r.world))
        barrier()
    feats, summary = cached()
    return feats, {v: np.asarray(e["frame_indices"]) for v, e in summary.entries.items()}, summary.failed


def _cells(task: str, model_cfg: ModelConfig, extract: ExtractConfig) -> int:
    """Spatial cells the model reads one by one (``model.<task>.per_cell``); a setting that cannot work
    stops here, before any video is read."""
    if not model_cfg.kwargs.get("per_cell"):
        return 1
    if extract.encoder.get("pooling") != "grid":
        raise ValueError(f"model.{task}.per_cell needs encoder.pooling=grid (cells to read), "
                         f"not {extract.encoder.get('pooling')!r}")
    if task == "caption" and not captioner_class(model_cfg.kind).reads_cells:
        raise ValueError(f"model.caption.per_cell needs model.caption.kind=attention, not {model_cfg.kind!r}")
    return extract.encoder["grid"] ** 2


def _warn_missing(missing: dict[str, str], video_dir: str, listed: int = 5) -> None:
    """Annotated videos without a file: the first few by name with the reason, the rest counted (a part
    of MSR-VTT downloaded would otherwise give thousands of lines)."""
    for vid, why in list(missing.items())[:listed]:
        log.warning("annotated video %s skipped: %s", vid, why)
    if len(missing) > listed:
        log.warning("... and %d more annotated videos skipped (%d in all have no single file under %s)",
                    len(missing) - listed, len(missing), video_dir)


@in_process_group
def train_model(task: str, data: DataConfig, extract: ExtractConfig, model_cfg: ModelConfig, trainer: TrainConfig,
                *, out_dir: str, batch_size: int = 32, label_smoothing: float = 0.1, scheduled_sampling: float = 0.0,
                device: torch.device = torch.device("cpu"), seed: int = 0, resume: bool = True,
                test_beam: int = 1, need_validation: str | None = None) -> dict:
    """Train a ``caption`` or ``count`` model on ``data`` and write the run into ``out_dir``; returns
    metrics.json's content with the best checkpoint's scores on the test split under ``test`` (captions
    decoded with a beam of ``test_beam``, as the caption app does; validation decodes greedily).
    ``need_validation``: why the run is of no use without validation videos (an error then says so).

    Under torchrun every process calls this: they train together (``batch_size`` is the global batch,
    split evenly over the processes) and rank 0 writes the run into its ``out_dir``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if data.features_dir:
        extract = _settings_of(data.features_dir, extract)
    if extract.sampling.mode == "fps":
        raise ValueError("video.sampling=fps gives each video its own number of frames, and the models train on the "
                         "same number from every video: use video.sampling=uniform (video.num_frames a video) or "
                         "window" + (f" (the features of {data.features_dir} are sampled at fixed fps)"
                                     if data.features_dir else ""))
    cells = _cells(task, model_cfg, extract)
    out_dir, batch_size = from_main(lambda: out_dir), per_rank_batch(batch_size)
    video_dir, videos = videos_at(data.video_dir)  # a folder, or one video file
    data = replace(data, video_dir=video_dir)
    stems = [PurePosixPath(f).stem for f in videos]  # a MOT gt.txt beside the folder's only video is that video's
    if task == "caption":
        labels = load_captions(data.annotations)
    else:
        labels = load_count_labels(data.annotations).for_videos(stems)
        if data.frame_annotations:
            labels = labels.with_frames_of(load_count_labels(data.frame_annotations).for_videos(stems))
    ids = list(labels.captions) if task == "caption" else sorted(set(labels.clip) | set(labels.frames))
    if task == "count" and data.time_split and (extract.sampling.mode != "window" or not labels.frames):
        raise ValueError("data.time_split splits each video's windows in time: it needs video.sampling=window and "
                         "per-frame counts (video_id,frame,count or a MOT gt.txt), not "
                         + (f"video.sampling={extract.sampling.mode}" if extract.sampling.mode != "window"
                            else f"clip counts ({data.annotations})"))
    if data.splits:
        apply_splits(data.splits, labels.splits, ids, getattr(labels, "paths", None))
    report = match_videos(ids, videos, getattr(labels, "paths", None))
    _warn_missing(report.missing, data.video_dir)
    if not report.matched:
        raise ValueError(f"none of the {len(ids)} annotated videos ({some_of(ids)}) has a file under "
                         f"{data.video_dir}: a video_id names a file by its stem or its relative path without "
                         "extension" if ids else f"{data.annotations}: no annotated videos")
    if report.unlabelled:
        log.info("%s without labels, not used: %s", n_videos(len(report.unlabelled)), some_of(report.unlabelled))
    inputs, indices, failed = _inputs(data, extract, sorted(report.matched.values()), device)
    for path, why in failed.items():
        log.warning("video %s skipped: %s", path, why)
    torch.manual_seed(seed)  # after extraction, which draws from the generator only when the cache is cold
    usable = [v for v, f in report.matched.items() if f in inputs]
    if task == "count":  # MOT labels reach to the last frame sampled (nobody in view after the file's last row)
        labels = labels.reaching({v: int(np.max(indices[report.matched[v]])) + 1 for v in usable})
    splits = split_videos(labels.splits, usable, data.val_fraction, seed)
    log.info("videos: %s", {s: len(v) for s, v in splits.items()})
    if need_validation and not splits["val"]:
        raise ValueError(f"{need_validation}, and no video is for validation: give a validation split in the "
                         "annotations or data.splits, or hold out training videos with data.val_fraction > 0")
    if task == "caption":
        log.info("captions: %s", {s: sum(len(labels.captions[v]) for v in ids) for s, ids in splits.items()})
    files = report.matched
    extra = {"task": task, "encoder": extract.encoder, "encoder_trained": extract.trainable,
             "sampling": extract.sampling.as_dict(), "size": extract.size}
    encoder = FrameEncoder(**extract.encoder, trainable=True) if extract.trainable else None
    feat_dim = encoder.out_dim if encoder else next(iter(inputs.values())).shape[-1]
    model_kw = {k: v for k, v in model_cfg.kwargs.items() if k != "per_cell"} | {"encoder": encoder}
    if task == "caption":
        def samples(split):
            ids = splits[split]
            return CaptionSamples(ids, torch.from_numpy(_stack([inputs[files[v]] for v in ids], like=inputs)),
                                  {v: labels.captions[v] if split == "train" else labels.scored(v) for v in ids})

        train = samples("train")
        vocab = _vocabulary([c for v in train.ids for c in train.refs[v]], data.min_count)
        model = build_captioner(model_cfg.kind, feat_dim, len(vocab), cells=cells, **model_kw)
        make_task = partial(CaptionTask, vocab, train, batch_size=batch_size, max_len=data.max_len,
                            label_smoothing=label_smoothing, scheduled_sampling=scheduled_sampling,
                            max_epochs=trainer.max_epochs, device=device, seed=seed)
        extra.update(model_kind=model_cfg.kind, vocab=vocab.to_dict(), max_len=data.max_len)
    else:
        def count_samples(ids):  # sparse per-frame labels (every n-th frame) filled in between
            return build_samples(ids, [inputs[files[v]] for v in ids], [indices[files[v]] for v in ids],
                                 [labels.clip.get(v) for v in ids], [fill_gaps(labels.frames.get(v)) for v in ids])

        if data.time_split:  # one timeline per video: its first part trains, the rest is the test
            parts = split_in_time(count_samples(usable), data.time_split, data.val_fraction)
            splits = {s: sorted(set(part.videos)) for s, part in parts.items()}
            log.info("windows split in time at %g of each video: %s", data.time_split,
                     {s: len(part.ids) for s, part in parts.items()})
        else:
            parts = {s: count_samples(ids) for s, ids in splits.items()}
        samples = parts.get
        train = samples("train")
        model = RecurrentCounter(feat_dim, cells=cells, **model_kw)
        make_task = partial(CountTask, train, batch_size=batch_size, device=device, seed=seed)
        extra["targets"] = [name for name, known in (("clip", train.clip), ("frames", train.frames))
                            if not torch.isnan(known).all()]
        if not extra["targets"]:
            raise ValueError(f"none of the {len(train.ids)} training clips has a count: no clip count, and no frame "
                             "sampled from them is labelled or lies between two labelled frames")
    if current().main:  # which videos trained, picked the best epoch and scored it
        write_json(Path(out_dir, "splits.json"), splits)
    model.to(device).features.set_stats(train.feats)  # a trained encoder runs on the device it trains on
    task_obj = make_task(samples("val"))
    trainer = replace(trainer, monitor=task_obj.monitor, mode=task_obj.mode)  # (the caller's config left as it is)
    extra["model_config"] = model.config
    result = fit(model, task_obj.batches, task_obj.step, task_obj.evaluate, cfg=trainer, out_dir=out_dir,
                 device=device, checkpoint_extra=extra, resume=resume, complete=False)
    result["complete"] = True  # once the scores below are in metrics.json
    if failed:
        result["unreadable"] = failed  # relative path -> why
    if splits["test"]:
        def test_scores() -> tuple[dict, dict]:
            best = build_model(load_checkpoint(Path(out_dir, "checkpoints", "best.pt"), task=task)).to(device)
            caption = {"beam": test_beam, "exact_tokens": True, "every_metric": True} if task == "caption" else {}
            scoring = make_task(samples("test"), **caption)
            return scoring.evaluate(best), getattr(scoring, "tokens", {})

        result["test"], tokens = from_main(test_scores)
        if not result["test"]:  # counts: no test window holds a labelled frame
            log.warning("the test split has no labelled %s: not scored", "window" if data.time_split else "video")
            del result["test"]
        elif task == "caption":
            result.update(test_beam=test_beam, **tokens)  # the tokens' backend, and why not the jar's
    if task == "count":  # the baseline a counter must beat: always the mean training count
        train_truth = train.truth()[0]
        result["mean_predictor"] = {s: mean_predictor_errors(train_truth, truth) for s in ("val", "test")
                                    for truth in [samples(s).truth()[0]] if any(np.isfinite(list(truth.values())))}
        for errors in result["mean_predictor"].values():
            errors.pop("per_video")
    if current().main:
        write_json(Path(out_dir, "metrics.json"), result)
    barrier()  # every rank returns once the run's files are in place
    return result
