"""Training throughput on cached features: the real training loop versus the bare model step.

    python bench/train_throughput.py [--quick] [--videos 96] [--epochs 5] [--count-epochs 30] [--batch 32]
                                     [--device auto]

A synthetic set (``make_dataset``) goes through ``train_model`` as ``vidrnn train`` runs it: features are
extracted into the cache, then ``fit`` trains the default captioner and counter (the settings of conf/:
resnet18 layer3 2x2 grid over 8 frames at 112 px, LSTM 256, batch 32). Timed there (epoch 1 is warm-up):

- loop: samples/s of the training phase (the task's batches -> loss -> backward -> clip -> AdamW), the
  data path (gathering features, captions, counts per batch) included; data: its share of that time;
- epoch: samples/s over whole epochs, validation, checkpoints, metrics.json and curves.png included.

The bound, pure: the same model's forward + backward + clip + AdamW step on random tensors of the same
batch shapes and value range, already in memory (on the device). Samples are (video, caption) pairs for the captioner
and clips for the counter. Peak RSS is per stage (main process).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from measure import machine, parse_args, peak_rss_mib, reset_peak, sync

from vidrnn.device import resolve_device
from vidrnn.synth import make_dataset
from vidrnn.train import run
from vidrnn.train.loop import TrainConfig
from vidrnn.video import Sampling

QUICK = {"videos": 24, "epochs": 2, "count_epochs": 3}
ENCODER = {"name": "resnet18", "weights": None, "layer": "layer3", "pooling": "grid", "grid": 2}
MODEL = {"cell": "lstm", "hidden": 256, "layers": 1, "dropout": 0.3}
TASK_MODEL = {"caption": {"embed": 128}, "count": {"bidirectional": False, "loss": "huber"}}


class TimedFit:
    """Stands in for ``fit`` inside ``train_model``. Each epoch it times the training phase (first batch
    asked for -> batches exhausted), then one pass of the bare step over random batches of the same
    shapes (weights restored afterwards), so loop and bound are measured side by side under the same
    machine load. Epoch 1 warms both up and is not counted."""

    def __init__(self, fit):
        self.fit, self.loop, self.pure, self.data, self.rss = fit, [], [], [], {}

    def __call__(self, model, batches, step, evaluate, *, cfg, out_dir, device, **kw):
        starts, pure_seconds = [], []

        def timed_batches(epoch):
            n, seen, data = 0, [], 0.0
            sync(device)
            start = time.perf_counter()
            starts.append(start)
            it = iter(batches(epoch))
            while True:
                t = time.perf_counter()
                batch = next(it, None)
                data += time.perf_counter() - t
                if batch is None:
                    break
                n += len(batch[1])  # captions (a caption batch holds each video once), or clips
                seen.append(batch)
                yield batch
            sync(device)
            self.loop.append((n, time.perf_counter() - start))
            self.data.append(data)
            self.rss["loop"] = max(self.rss.get("loop", 0.0), peak_rss_mib())
            reset_peak()
            self.pure.append(pure_pass(model, step, random_like(seen), epoch, cfg, device))
            pure_seconds.append(self.pure[-1][1])
            self.rss["pure"] = max(self.rss.get("pure", 0.0), peak_rss_mib())
            reset_peak()

        reset_peak()
        result = self.fit(model, timed_batches, step, evaluate, cfg=cfg, out_dir=out_dir, device=device, **kw)
        starts.append(time.perf_counter())  # an epoch: from its first batch to the next epoch's first batch
        self.epoch = [(k, b - a - p) for (k, _), a, b, p in zip(self.loop, starts, starts[1:], pure_seconds)]
        return result

    def rates(self) -> dict[str, float]:
        """samples/s of loop, pure and whole epochs, and the data path's share of the loop's time, epoch 1
        left out."""
        rates = {name: sum(k for k, _ in runs[1:]) / sum(s for _, s in runs[1:])
                 for name, runs in (("loop", self.loop), ("pure", self.pure), ("epoch", self.epoch))}
        return {**rates, "data": sum(self.data[1:]) / sum(s for _, s in self.loop[1:])}


def random_like(batches: list[tuple]) -> list[tuple]:
    """Random tensors shaped like ``batches``, on their device: features drawn per dimension with the
    batch's own mean and spread (N(0, 1) would land far outside the model's input standardisation:
    random-weight CNN features have dimensions with almost no spread), token ids below the largest seen,
    counts in [0, 4)."""
    def like(t):
        if t.dtype == torch.long:
            return torch.randint(0, int(t.max()) + 1, t.shape, device=t.device)
        if t.dim() == 3:  # (B, N, D) features
            return torch.randn_like(t) * t.std((0, 1)) + t.mean((0, 1))
        return torch.rand_like(t) * 4

    return [tuple(like(t) for t in b) for b in batches]


def pure_pass(model, step, batches, epoch, cfg, device) -> tuple[int, float]:
    """(samples, seconds) of forward + backward + clip + AdamW step over in-memory ``batches``, with the
    model's weights put back afterwards."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = cfg.amp and device.type == "cuda"
    model.train()
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = step(model, batch, epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        optimizer.step()
    sync(device)
    seconds = time.perf_counter() - start
    model.load_state_dict(saved)
    return sum(len(b[1]) for b in batches), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=5, help="captioner epochs (the first one is not timed)")
    ap.add_argument("--count-epochs", type=int, default=30, help="counter epochs (one clip per video: few batches)")
    ap.add_argument("--batch", type=int, default=32)
    args = parse_args(ap, QUICK)
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(tmp, num_videos=args.videos)
        for task, epochs in (("caption", args.epochs), ("count", args.count_epochs)):
            timed = TimedFit(run.fit)
            run.fit = timed
            try:
                run.train_model(
                    task,
                    run.DataConfig(data["videos_dir"], data["captions"] if task == "caption" else data["counts"],
                                   frame_annotations=data["frame_counts"] if task == "count" else None,
                                   cache_dir=str(Path(tmp, "cache"))),
                    run.ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=8), size=112, progress=False),
                    run.ModelConfig("attention" if task == "caption" else None, {**MODEL, **TASK_MODEL[task]}),
                    TrainConfig(max_epochs=epochs, lr=2e-3, patience=0),
                    out_dir=str(Path(tmp, task)), batch_size=args.batch, device=device)
            finally:
                run.fit = timed.fit
            rows.append((task, epochs, timed))
    print(f"# {machine(device)}, device {device}")
    print(f"# {args.videos} synthetic videos; batch {args.batch}; epoch 1 not timed; samples/s")
    print(f"{'model':8s} {'epochs':>6s} {'samples/epoch':>13s} {'pure':>7s} {'loop':>7s} {'loop/pure':>9s} "
          f"{'epoch':>7s} {'epoch/pure':>10s} {'data':>6s}  peak RSS MiB: loop / pure")
    for task, epochs, t in rows:
        r = t.rates()
        print(f"{task:8s} {epochs:6d} {t.loop[0][0]:13d} {r['pure']:7.0f} {r['loop']:7.0f} "
              f"{r['loop'] / r['pure']:9.3f} {r['epoch']:7.0f} {r['epoch'] / r['pure']:10.3f} {r['data']:6.1%}  "
              f"{t.rss['loop']:6.0f} / {t.rss['pure']:4.0f}")
    print("(data: the share of the loop's time spent getting batches from the task)")


if __name__ == "__main__":
    main()
