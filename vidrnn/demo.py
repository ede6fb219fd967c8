"""The demo: synthetic videos -> features -> a captioner and a counter -> captions and counts of the
held-out videos, scored next to trivial baselines, with pictures and a report of the held-out videos."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .data import load_captions
from .evaluate import evaluate_captions, evaluate_counts
from .features import extract_folder
from .features.cache import CACHE_DTYPE, cache_dir_for
from .models.encoder import FrameEncoder
from .outputs import write_json
from .pictures import Pictures
from .predict import caption_folder, count_folder
from .report import write_report
from .sweeps import check_settings, finished_result
from .synth import make_dataset
from .train.loop import TrainConfig
from .train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from .video import Sampling

log = logging.getLogger("vidrnn.demo")


def _same_run(run_dir: Path, settings: dict) -> bool:
    """Whether ``run_dir`` holds a run (finished or stopped) of these settings, to go on with; else it is
    made ready for a run afresh."""
    try:
        check_settings(run_dir, settings, resume=True)
        return True
    except ValueError:  # an earlier demo of another size or seed
        check_settings(run_dir, settings, resume=False)
        return False


def run_demo(out_dir: str, *, num_videos: int, trainer: TrainConfig, captioner: ModelConfig, counter: ModelConfig,
             encoder: dict, sampling: Sampling, seed: int = 0, frame_size: int = 112, workers: int = 2,
             device: torch.device = torch.device("cpu"), progress: bool = True, title: str = "vidrnn demo") -> dict:
    """Make ``num_videos`` synthetic videos, train ``captioner`` and ``counter`` on them with ``trainer``, and
    write everything under ``out_dir`` (contact sheets, annotated videos and ``report.html`` of the held-out
    videos included); returns the numbers of the summary."""
    start, out = time.perf_counter(), Path(out_dir)
    data = make_dataset(out / "data", num_videos=num_videos, seed=seed)
    videos = data["videos_dir"]
    log.info("wrote %d synthetic videos with captions and people counts to %s", data["num_videos"], out / "data")
    # extracted where training looks for them first (its feature cache), so they are computed once
    feature_dir = cache_dir_for(out / "cache", videos, encoder_spec=encoder, sampling=sampling, size=frame_size)
    features = extract_folder(videos, str(feature_dir), encoder=FrameEncoder(**encoder), encoder_spec=encoder,
                              sampling=sampling, size=frame_size, dtype=CACHE_DTYPE, workers=workers, device=device,
                              replace=True, progress=progress)
    extract = ExtractConfig(encoder=encoder, sampling=sampling, size=frame_size, workers=workers, progress=progress)
    runs = {}
    for task, data_cfg, model in (
            ("caption", DataConfig(videos, data["captions"], cache_dir=str(out / "cache")), captioner),
            ("count", DataConfig(videos, data["counts"], frame_annotations=data["frame_counts"],
                                 cache_dir=str(out / "cache")), counter)):
        run_dir = out / f"{task}_run"
        resume = _same_run(run_dir, {"task": task, "videos": num_videos, "seed": seed, "encoder": encoder,
                                     "sampling": sampling.as_dict(), "frame_size": frame_size,
                                     "trainer": asdict(trainer), "model": {"kind": model.kind, **model.kwargs}})
        runs[task] = finished_result(run_dir, trainer.max_epochs, trainer.patience) if resume else None
        if runs[task] is None:
            log.info("training the %s model", task)
            runs[task] = train_model(task, data_cfg, extract, model, trainer, out_dir=str(run_dir),
                                     device=device, seed=seed, resume=resume, test_beam=5)  # as the captions below
        else:
            log.info("the %s model of %s is trained already", task, run_dir)
    refs = load_captions(data["captions"])
    held_out = sorted(v for v, split in refs.splits.items() if split == "test")
    notes = Pictures(out, sheets=False, references=data["captions"], labels=[data["counts"], data["frame_counts"]])
    caption_folder(videos, str(out / "caption_run/checkpoints/best.pt"), str(out / "captions.json"), beam=5,
                   workers=workers, device=device, progress=progress, pictures=notes)
    first = Path(videos, refs.paths[held_out[0]])  # timed captions of one held-out clip
    (out / "long").mkdir(exist_ok=True)
    link = out / "long" / first.name
    if not link.exists():
        link.symlink_to(first.resolve())
    caption_folder(str(out / "long"), str(out / "caption_run/checkpoints/best.pt"), str(out / "captions.srt"),
                   window_s=1.0, stride_s=1.0, workers=0, device=device, progress=False, pictures=notes)
    count_folder(videos, str(out / "counts.csv"), checkpoint=str(out / "count_run/checkpoints/best.pt"),
                 labels=data["frame_counts"], workers=workers, device=device, progress=progress, pictures=notes)
    pictures = Pictures(out, sheets=True, render=True, workers=workers, progress=progress)  # from the runs' notes
    pictures.draw(held_out)
    captions = evaluate_captions(str(out / "captions.json"), data["captions"], split="test", meteor=False)
    counts = evaluate_counts(str(out / "counts.csv"), data["counts"], split="test")
    summary = {
        "videos": data["num_videos"], "splits": data["splits"], "extracted": len(features.done) + features.skipped,
        "features": str(feature_dir),
        "test_videos": captions["videos"], "BLEU-4": captions["corpus"]["BLEU-4"],
        "CIDEr-D": captions["corpus"]["CIDEr-D"], "count_MAE": counts["MAE"],
        "mean_predictor_MAE": runs["count"]["mean_predictor"]["test"]["MAE"],
        "minutes": (time.perf_counter() - start) / 60,
    }
    write_json(out / "demo_metrics.json", summary)
    note = (f"The pictures are of the {len(held_out)} held-out videos (colour/shape pairs never seen in training), "
            f"and demo_metrics.json scores them. counts_metrics.json scores the counter's per-frame counts on all "
            f"{data['num_videos']} videos; caption_run/ and count_run/metrics.json hold the training runs' "
            f"validation and test scores.")
    report = write_report(out, title=title, videos=held_out, note=note)
    return {**summary, "out_dir": str(out), "report": str(report), "pictures_failed": pictures.failed}
