"""Decoding backends: OpenCV versus decord, as the extraction reads videos, case by case.

    python bench/decode_backends.py [--quick] [--videos-at 320x240 640x480 1280x720] [--short 50] [--long 500]
                                    [--codecs mp4v h264] [--repeats 2]

For each generated video (short and long, each size and codec) and each sampling (uniform 16 frames,
and every frame), ``stream_video`` reads it with ``backend=opencv`` and ``backend=decord`` the way
extraction does (sequentially, frames resized to 224, decoding to the end to check the frame count),
pinned to one CPU core (one decode worker's share). Each time is the best of --repeats, the backends
taking turns. The last column says which backend ``auto`` picked (what the manifest records as
``backend``) and whether that was the faster one.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import machine, parse_args, peak_rss_mib, reset_peak, rss_mib

from vidrnn.synth import render_clip, sample_spec, write_video
from vidrnn.video import Sampling, VideoMeta, stream_video

SAMPLINGS = {"uniform16": Sampling(mode="uniform", num_frames=16), "all": Sampling(mode="fps", fps=1000.0)}
BACKENDS = ("opencv", "decord")
QUICK = {"videos_at": ["640x480"], "short": 25, "long": 100, "repeats": 1}


def write_h264(path: Path, frames, fps: float) -> None:
    """H.264 (yuv420p, B-frames, keyframe every 2 s) through PyAV: what cameras and the web mostly give."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        for i, frame in enumerate(frames):
            if i == 0:
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt, stream.options = "yuv420p", {"preset": "veryfast", "bf": "2", "g": str(2 * round(fps))}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def make_video(folder: Path, codec: str, width: int, height: int, frames: int) -> Path:
    clip = render_clip(sample_spec(1, width=width, height=height, num_frames=frames, fps=25.0))
    path = folder / f"{codec}_{width}x{height}_{frames}.{'avi' if codec == 'MJPG' else 'mp4'}"
    if codec == "h264":
        write_h264(path, clip, 25.0)
    else:
        write_video(path, clip, 25.0, codec=codec)
    return path


def read_seconds(path: Path, sampling: Sampling, backend: str) -> tuple[float, VideoMeta]:
    start = time.perf_counter()
    for item in stream_video(str(path), sampling, size=224, backend=backend):
        pass  # chunks of frames are dropped as they come; the last item is the metadata
    return time.perf_counter() - start, item


def compare(path: Path, sampling: Sampling, repeats: int, peaks: dict) -> tuple[dict[str, float], int]:
    """Best seconds per backend (taking turns) and the video's frame count; ``peaks`` gets the most a
    read raised the resident memory (MiB) above what the process held before it."""
    best = dict.fromkeys(BACKENDS, np.inf)
    for _ in range(repeats):
        for backend in BACKENDS:
            reset_peak()
            before = rss_mib()
            seconds, meta = read_seconds(path, sampling, backend)
            best[backend] = min(best[backend], seconds)
            peaks[backend] = max(peaks.get(backend, 0.0), peak_rss_mib() - before)
    return best, meta.frame_count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos-at", nargs="+", default=["320x240", "640x480", "1280x720"], metavar="WxH")
    ap.add_argument("--short", type=int, default=50, help="frames of a short video (25 fps)")
    ap.add_argument("--long", type=int, default=500, help="frames of a long video (25 fps)")
    ap.add_argument("--codecs", nargs="+", default=["mp4v", "h264"], help="mp4v, MJPG (OpenCV), h264 (PyAV)")
    ap.add_argument("--repeats", type=int, default=2)
    args = parse_args(ap, QUICK, device=False)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    codecs = list(args.codecs)
    if "h264" in codecs:
        try:
            import av  # noqa: F401
        except ImportError:
            codecs.remove("h264")
            print("# PyAV is not installed: no h264 videos")
    print(f"# {machine()}; pinned to one core")
    print(f"# stream_video(..., size=224) per backend, best of {args.repeats}; ms per video (frames decoded/s)")
    print(f"{'video':26s} {'sampling':>9s} {'opencv ms':>10s} {'decord ms':>10s}  {'faster':7s} {'by':>5s}  auto")
    wins, peaks = dict.fromkeys(BACKENDS, 0), {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec in codecs:
            for at in args.videos_at:
                width, height = map(int, at.split("x"))
                for frames in (args.short, args.long):
                    path = make_video(Path(tmp), codec, width, height, frames)
                    compare(path, SAMPLINGS["uniform16"], 1, {})  # warm-up: libraries, file cache
                    for name, sampling in SAMPLINGS.items():
                        best, total = compare(path, sampling, args.repeats, peaks)
                        _, auto = read_seconds(path, sampling, "auto")
                        fast, slow = sorted(best, key=best.get)
                        wins[fast] += 1
                        print(f"{path.name:26s} {name:>9s} {best['opencv'] * 1e3:10.1f} {best['decord'] * 1e3:10.1f}  "
                              f"{fast:7s} {best[slow] / best[fast]:4.2f}x  {auto.backend}"
                              f"{'' if auto.backend == fast else ' (slower)'}   "
                              f"[{total / best['opencv']:.0f} / {total / best['decord']:.0f} frames/s]")
    print(f"faster backend: opencv in {wins['opencv']} cases, decord in {wins['decord']}")
    print(f"memory a read needs (peak RSS above the process's before it, largest case): opencv "
          f"{peaks['opencv']:.0f} MiB, decord {peaks['decord']:.0f} MiB")


if __name__ == "__main__":
    main()
