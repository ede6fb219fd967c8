"""Inference throughput: videos/s of ``caption`` (greedy, beam 5) and ``count`` over a folder, and where
the time goes.

    python bench/inference.py [--quick] [--videos 32] [--frames 100] [--width 320 --height 240] [--device auto]

A captioner and a counter are trained for one epoch on a small synthetic set (the default settings of
conf/: resnet18 layer3 2x2 grid over 8 frames at 112 px, LSTM 256); then ``caption_folder`` and
``count_folder`` (what ``vidrnn caption`` / ``vidrnn count`` call; counting also with ``plots=false``)
run over a folder of generated mp4s, each after a warm-up run, the best of --repeats kept. Time is split
by timing the library functions as they are called: the CNN (``FrameEncoder.forward``), decoding
captions (``beam_search`` / ``greedy_decode``), the counter (``predict_counts``), writing (each video's
record, the caption file; counts CSV and timeline plots), and the rest (waiting for decoded frames,
batching, loading the checkpoint). Peak RSS: the main process per run, and the largest decode worker.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from measure import (
    Stopwatch,
    machine,
    make_videos,
    parse_args,
    peak_rss_mib,
    reset_peak,
    sync,
    worker_peak_rss_mib,
)
from train_throughput import ENCODER, MODEL, TASK_MODEL

from vidrnn import predict
from vidrnn.device import resolve_device
from vidrnn.features.store import RunRecords
from vidrnn.models.encoder import FrameEncoder
from vidrnn.synth import make_dataset
from vidrnn.tasks import captioning
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

QUICK = {"videos": 8, "frames": 50, "repeats": 1}
PARTS = ("cnn", "captions", "counter", "writing")


def train_checkpoints(folder: Path, device: torch.device) -> dict[str, str]:
    """best.pt of a captioner and a counter trained for one epoch on 24 synthetic videos."""
    data = make_dataset(folder, num_videos=24)
    out = {}
    for task in ("caption", "count"):
        train_model(task, DataConfig(data["videos_dir"], data["captions"] if task == "caption" else data["counts"],
                                     cache_dir=str(folder / "cache")),
                    ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=8), size=112, progress=False),
                    ModelConfig("attention" if task == "caption" else None, {**MODEL, **TASK_MODEL[task]}),
                    TrainConfig(max_epochs=1), out_dir=str(folder / task), device=device)
        out[task] = str(folder / task / "checkpoints" / "best.pt")
    return out


def timed_run(job, device: torch.device) -> dict:
    """Run ``job()`` with its parts timed: seconds per part and in all, peak RSS."""
    watch = Stopwatch()
    watch.wrap(FrameEncoder, "forward", "cnn", after=lambda: sync(device))
    for owner, attr, part in ((captioning, "beam_search", "captions"), (captioning, "greedy_decode", "captions"),
                              (predict, "predict_counts", "counter"), (predict, "write_captions", "writing"),
                              (predict, "_write_counts", "writing"), (RunRecords, "add_finished", "writing")):
        watch.wrap(owner, attr, part)
    reset_peak()
    try:
        start = time.perf_counter()
        job()
        total = time.perf_counter() - start
    finally:
        watch.restore()
    parts = {p: watch.seconds.get(p, 0.0) for p in PARTS}
    return {"total": total, **parts, "rest": total - sum(parts.values()), "rss": peak_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--frames", type=int, default=100, help="frames per video (25 fps)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--workers", type=int, default=2, help="decode processes")
    ap.add_argument("--repeats", type=int, default=2)
    args = parse_args(ap, QUICK)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = train_checkpoints(Path(tmp, "train"), device)
        folder = Path(tmp, "videos")
        make_videos(folder, args.videos, args.width, args.height, args.frames)
        common = {"workers": args.workers, "device": device, "progress": False}
        jobs = {  # output folder -> job (a new folder each run: a rerun into the same one skips finished videos)
            "caption greedy": lambda out: predict.caption_folder(str(folder), ckpt["caption"], f"{out}/c.json",
                                                                 beam=1, **common),
            "caption beam 5": lambda out: predict.caption_folder(str(folder), ckpt["caption"], f"{out}/c.json",
                                                                 beam=5, **common),
            "count": lambda out: predict.count_folder(str(folder), f"{out}/counts.csv", checkpoint=ckpt["count"],
                                                      **common),
            "count, no plots": lambda out: predict.count_folder(str(folder), f"{out}/counts.csv", plots=False,
                                                                checkpoint=ckpt["count"], **common),
        }
        jobs["caption greedy"](tempfile.mkdtemp(dir=tmp))  # warm-up
        best = {}
        for _ in range(args.repeats):
            for name, job in jobs.items():
                out = tempfile.mkdtemp(dir=tmp)
                r = timed_run(partial(job, out), device)
                if name not in best or r["total"] < best[name]["total"]:
                    best[name] = r
    print(f"# {machine(device)}, device {device}")
    print(f"# {args.videos} mp4 videos {args.width}x{args.height}, {args.frames} frames at 25 fps; checkpoints: "
          f"8 frames at 112 px, resnet18 layer3 2x2 grid, LSTM 256; {args.workers} decode workers; "
          f"best of {args.repeats}")
    print(f"{'run':16s} {'videos/s':>8s} {'total s':>7s}  share of time: {'cnn':>5s} {'captions':>8s} {'counter':>7s} "
          f"{'writing':>7s} {'rest':>5s} | outside CNN  peak RSS MiB")
    for name, r in best.items():
        share = {p: r[p] / r["total"] for p in (*PARTS, "rest")}
        print(f"{name:16s} {args.videos / r['total']:8.2f} {r['total']:7.2f}  {'':14s} {share['cnn']:5.1%} "
              f"{share['captions']:8.1%} {share['counter']:7.1%} {share['writing']:7.1%} {share['rest']:5.1%} | "
              f"{1 - share['cnn']:11.1%}  {r['rss']:5.0f}")
    print(f"largest decode worker: peak RSS {worker_peak_rss_mib():.0f} MiB (pages shared with the main process "
          "counted)")
    print("(captions: greedy_decode / beam_search of the whole run; rest: waiting for decoded frames, batching, "
          "loading the checkpoint)")


if __name__ == "__main__":
    main()
