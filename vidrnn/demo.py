"""The demo: synthetic videos -> features -> a captioner and a counter -> captions and counts of the
held-out videos, scored next to trivial baselines."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .evaluate import evaluate_captions, evaluate_counts
from .features import extract_folder
from .models.encoder import FrameEncoder
from .predict import caption_folder, count_folder
from .synth import make_dataset
from .train.loop import TrainConfig
from .train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from .video import Sampling

log = logging.getLogger("vidrnn.demo")
SIZES = {"tiny": {"num_videos": 24, "epochs": 3}, "small": {"num_videos": 60, "epochs": 30},
         "large": {"num_videos": 300, "epochs": 60}}


def run_demo(out_dir: str, *, size: str = "small", seed: int = 0, encoder: dict, sampling: Sampling,
             frame_size: int = 112, workers: int = 2, device: torch.device = torch.device("cpu"),
             progress: bool = True) -> dict:
    """Write everything under ``out_dir`` and return the numbers of the summary."""
    if size not in SIZES:
        raise ValueError(f"demo.size must be one of {sorted(SIZES)}, not {size!r}")
    start, out = time.perf_counter(), Path(out_dir)
    data = make_dataset(out / "data", num_videos=SIZES[size]["num_videos"], seed=seed)
    videos = data["videos_dir"]
    log.info("wrote %d synthetic videos with captions and people counts to %s", data["num_videos"], out / "data")
    features = extract_folder(videos, str(out / "features"), encoder=FrameEncoder(**encoder), encoder_spec=encoder,
                              sampling=sampling, size=frame_size, workers=workers, device=device,
                              progress=progress)
    extract = ExtractConfig(encoder=encoder, sampling=sampling, size=frame_size, workers=workers, progress=progress)
    trainer = {"max_epochs": SIZES[size]["epochs"], "lr": 2e-3, "patience": 0}
    runs = {}
    for task, data_cfg, model in (
            ("caption", DataConfig(videos, data["captions"], cache_dir=str(out / "cache")),
             ModelConfig("attention", {"hidden": 256, "embed": 128, "dropout": 0.3})),
            ("count", DataConfig(videos, data["counts"], frame_annotations=data["frame_counts"],
                                 cache_dir=str(out / "cache")),
             ModelConfig(None, {"hidden": 128, "dropout": 0.1}))):
        log.info("training the %s model", task)
        runs[task] = train_model(task, data_cfg, extract, model, TrainConfig(**trainer),
                                 out_dir=str(out / f"{task}_run"), device=device, seed=seed, resume=False)
    caption_folder(videos, str(out / "caption_run/checkpoints/best.pt"), str(out / "captions.json"), beam=5,
                   workers=workers, device=device, progress=progress)
    first = sorted(Path(videos).rglob("*.mp4"))[0]
    (out / "long").mkdir(exist_ok=True)
    link = out / "long" / first.name
    if not link.exists():
        link.symlink_to(first.resolve())
    caption_folder(str(out / "long"), str(out / "caption_run/checkpoints/best.pt"), str(out / "captions.srt"),
                   window_s=1.0, stride_s=1.0, workers=0, device=device, progress=False)
    count_folder(videos, str(out / "counts.csv"), checkpoint=str(out / "count_run/checkpoints/best.pt"),
                 labels=data["frame_counts"], workers=workers, device=device, progress=progress)
    captions = evaluate_captions(str(out / "captions.json"), data["captions"], split="test", meteor=False)
    counts = evaluate_counts(str(out / "counts.csv"), data["counts"], split="test")
    return {
        "out_dir": str(out), "videos": data["num_videos"], "splits": data["splits"],
        "extracted": len(features.done) + features.skipped, "test_videos": captions["videos"],
        "BLEU-4": captions["corpus"]["BLEU-4"], "CIDEr-D": captions["corpus"]["CIDEr-D"],
        "count_MAE": counts["MAE"], "mean_predictor_MAE": runs["count"]["mean_predictor"]["test"]["MAE"],
        "minutes": (time.perf_counter() - start) / 60,
    }
