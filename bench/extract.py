"""Extraction speed: decode-only, CNN-only and end-to-end frames/s on the same videos and settings.

    python bench/extract.py [--model resnet18] [--width 640 --height 480] [--videos 8] ...

Frames/s counts sampled frames (the frames the CNN sees). The bound for end to end is
min(decode-only, CNN-only); the ratio end-to-end / bound is the target (>= 0.9).
"""
from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidrnn.device import resolve_device  # noqa: E402
from vidrnn.features.encode import _init_worker, _VideoStreams, encode_videos  # noqa: E402
from vidrnn.models import FrameEncoder  # noqa: E402
from vidrnn.synth import render_clip, sample_spec, write_video  # noqa: E402
from vidrnn.video import Sampling  # noqa: E402


def make_videos(folder: Path, n: int, width: int, height: int, frames: int, ext: str) -> list[tuple[str, str]]:
    videos = []
    for i in range(n):
        path = folder / f"v{i:03d}{ext}"
        write_video(path, render_clip(sample_spec(i, width=width, height=height, num_frames=frames, fps=25.0)), 25.0)
        videos.append((path.name, str(path)))
    return videos


def decode_only(videos, sampling, size, workers, backend) -> tuple[float, int]:
    loader = DataLoader(_VideoStreams(videos, sampling, size, backend, chunk=32), batch_size=None,
                        num_workers=workers, worker_init_fn=_init_worker, prefetch_factor=4 if workers else None)
    start, n = time.perf_counter(), 0
    for msg in loader:
        if msg[0] == "chunk":
            n += len(msg[2])
    return n / (time.perf_counter() - start), n


def cnn_only(encoder, device, frames: int, batch: int, size: int) -> float:
    encoder = encoder.to(device).eval()
    if device.type == "cpu":
        encoder = encoder.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
        encoder(x.to(device))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, done = time.perf_counter(), 0
        while done < frames:
            encoder(x.to(device, non_blocking=True))
            done += batch
        if device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def end_to_end(videos, encoder, sampling, size, workers, batch, device, backend) -> float:
    start, n = time.perf_counter(), 0
    for res in encode_videos(videos, encoder, sampling, size=size, backend=backend, batch_size=batch,
                             workers=workers, device=device):
        n += res.features.shape[0] * (res.features.shape[1] if res.features.ndim == 3 else 1)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=250, help="frames per generated video (25 fps)")
    ap.add_argument("--sampling", default="fps", choices=["uniform", "fps"])
    ap.add_argument("--num-frames", type=int, default=16, help="uniform: frames per video")
    ap.add_argument("--fps", type=float, default=5.0, help="fps sampling rate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--ext", default=".mp4")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    sampling = Sampling(mode=args.sampling, num_frames=args.num_frames, fps=args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(Path(tmp), args.videos, args.width, args.height, args.frames, args.ext)
        encoder = FrameEncoder(args.model)
        dec, frames = decode_only(videos, sampling, args.size, args.workers, args.backend)
        cnn = cnn_only(encoder, device, frames, args.batch, args.size)
        e2e = end_to_end(videos, encoder, sampling, args.size, args.workers, args.batch, device, args.backend)
    bound = min(dec, cnn)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")
    print(f"# {args.videos} videos {args.width}x{args.height}{args.ext}, {args.frames} frames each, "
          f"sampling {sampling.mode} -> {frames} frames, {args.model} {args.size}x{args.size}, "
          f"batch {args.batch}, {args.workers} decode workers")
    print(f"decode-only  {dec:8.1f} frames/s")
    print(f"cnn-only     {cnn:8.1f} frames/s")
    print(f"end-to-end   {e2e:8.1f} frames/s")
    print(f"ratio end-to-end / min(decode, cnn) = {e2e / bound:.3f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (main process)")


if __name__ == "__main__":
    main()
