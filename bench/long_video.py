"""Peak memory of ``extract`` and ``count`` on one long video read in windows, at two lengths: it must not
grow with the length.

    python bench/long_video.py [--minutes 5 20] [--size 160x120] [--fps 10] [--cache DIR] [overrides ...]

The long videos (synthetic scenes from ``vidrnn.synth``, one after another) are written once into
``--cache`` and reused. A tiny counter is trained once on short synthetic clips with the same encoder and
sampling. Then, for each length, ``python -m pipelines.extract`` and ``python -m pipelines.count`` run in
windows (``video.sampling=window``, the default 2 s windows every second), each in a fresh process; its
peak RSS is the largest of the process and its decode workers (``os.wait4``'s ``ru_maxrss``), with glibc
returning large freed blocks at once (``MALLOC_MMAP_THRESHOLD_``) so that the peak is memory held, not heap
kept. Extra arguments are Hydra overrides for both.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import ROOT, machine

from vidrnn.synth import make_dataset, render_clip, sample_spec, write_video

SEGMENT_S = 20  # the long video is a chain of synthetic scenes this long
SETTINGS = ["video.size=64", "video.num_frames=16", "encoder.name=resnet18", "encoder.pooling=avg"]
WINDOW_S, STRIDE_S = 2.0, 1.0  # the window defaults: 16 frames a second of video, 512 floats each
# glibc returns large freed blocks to the system at once, so a peak is what the process held at some
# moment, not what its heap kept from an earlier moment (without it, peaks jitter by about +-50 MiB)
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def long_video(cache: Path, minutes: float, width: int, height: int, fps: float) -> Path:
    """The cached long video (written once, atomically): synthetic scenes of ``SEGMENT_S`` seconds each."""
    path = cache / f"{minutes:g}min_{width}x{height}_{fps:g}fps" / "long.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seg = round(SEGMENT_S * fps)
        segments = -(-round(minutes * 60 * fps) // seg)
        frames = itertools.chain.from_iterable(
            render_clip(sample_spec(k, width=width, height=height, num_frames=seg, fps=fps)) for k in range(segments))
        partial = path.with_name(".partial.mp4")
        write_video(partial, frames, fps)
        os.replace(partial, path)
    return path


def counter_checkpoint(cache: Path, overrides: list[str]) -> Path:
    """A counter trained (once per setting) on short synthetic clips with the bench's encoder and sampling."""
    run = cache / ("counter_" + hashlib.sha1(" ".join(SETTINGS + overrides).encode()).hexdigest()[:12])
    best = run / "checkpoints" / "best.pt"
    if not best.exists():
        data = make_dataset(run / "data", num_videos=12, width=160, height=120, num_frames=24, fps=12.0)
        pipeline("train", "task=count", f"data.video_dir={data['videos_dir']}", f"data.annotations={data['counts']}",
                 "trainer.max_epochs=2", f"data.cache_dir={run / 'cache'}", f"hydra.run.dir={run}", *overrides)
    return best


def pipeline(name: str, *args: str) -> tuple[float, float]:
    """Run ``python -m pipelines.<name> args quiet=true``; returns (peak RSS MiB of the process or any of its
    workers, seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"pipelines.{name}", *args, "quiet=true"], cwd=ROOT,
                            env={**os.environ, **MALLOC, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs=2, default=[5, 20])
    ap.add_argument("--size", default="160x120", help="video width x height")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vidrnn_long_video")
    args, overrides = ap.parse_known_args()
    width, height = map(int, args.size.split("x"))
    print(machine())
    print(f"window {WINDOW_S:g} s every {STRIDE_S:g} s; {' '.join(SETTINGS + overrides)}")
    ckpt = counter_checkpoint(args.cache, overrides)
    rows = []
    for minutes in args.minutes:
        video = long_video(args.cache, minutes, width, height, args.fps)
        with tempfile.TemporaryDirectory() as tmp:
            window = ["video.sampling=window", f"video.window_s={WINDOW_S}", f"video.stride_s={STRIDE_S}"]
            ex = pipeline("extract", f"input_dir={video.parent}", f"output_dir={tmp}/features", *window, *SETTINGS,
                          *overrides)
            ct = pipeline("count", f"input_dir={video.parent}", f"checkpoint={ckpt}", f"output={tmp}/counts.csv",
                          f"window_s={WINDOW_S}", f"stride_s={STRIDE_S}", "plots=false", f"hydra.run.dir={tmp}/logs")
            shape = json.loads(Path(tmp, "features", "manifest.jsonl").read_text().splitlines()[0])["feature_shape"]
        rows.append((minutes, *ex, *ct))
        print(f"{minutes:6g} min ({video.stat().st_size / 2**20:5.1f} MiB file): features {tuple(shape)} = "
              f"{np.prod(shape) * 4 / 2**20:6.1f} MiB as float32; peak RSS: extract {ex[0]:6.1f} MiB ({ex[1]:5.1f} s), "
              f"count {ct[0]:6.1f} MiB ({ct[1]:5.1f} s)")
    (m0, e0, _, c0, _), (m1, e1, _, c1, _) = rows[0], rows[-1]
    print(f"{m1 / m0:g}x longer: extract peak {e1 - e0:+.1f} MiB ({e1 / e0:.3f}x), "
          f"count peak {c1 - c0:+.1f} MiB ({c1 / c0:.3f}x)")


if __name__ == "__main__":
    main()
