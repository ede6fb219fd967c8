"""What the benchmarks share: the machine line, peak memory, generated test videos, timing hooks and
running one case in a fresh process (so its peak memory is its own)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from vidrnn.synth import render_clip, sample_spec, write_video


def parse_args(ap: argparse.ArgumentParser, quick: dict, *, device: bool = True) -> argparse.Namespace:
    """Add the options every benchmark has (--device, --threads, --quick), parse, and apply them."""
    if device:
        ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads of the main process (0: torch's default, one per core); on a machine "
                         "shared with other jobs 1 avoids threads waiting on each other")
    ap.add_argument("--quick", action="store_true", help=f"a smoke run: {quick}")
    args = ap.parse_args()
    if args.quick:
        vars(args).update(quick)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device | None = None) -> str:
    """One line: cores, CPU, torch, threads, and the GPU when ``device`` is CUDA."""
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else "no GPU"
    return (f"{os.cpu_count()} cores {cpu_model()}, {gpu}, python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def reset_peak() -> None:
    """Start a new peak-RSS measurement for this process (Linux: clear_refs 5 resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_mib(field: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB) since the last ``reset_peak``."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident memory now (MiB); 0 where /proc is missing."""
    return _status_mib("VmRSS") or 0.0


def worker_peak_rss_mib() -> float:
    """The largest peak resident memory (MiB) of any finished child process (decode workers). A forked
    worker's pages shared with its parent count in full."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def make_videos(folder: Path, n: int, width: int, height: int, frames: int, ext: str = ".mp4",
                fps: float = 25.0) -> list[tuple[str, str]]:
    """``n`` synthetic clips (walking figures, a moving shape) as real files: ``(name, path)`` pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(n):
        path = folder / f"v{i:03d}{ext}"
        write_video(path, render_clip(sample_spec(i, width=width, height=height, num_frames=frames, fps=fps)), fps)
        videos.append((path.name, str(path)))
    return videos


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds spent in named parts of a run: ``with watch("beam"):``, or ``watch.wrap`` a module's
    function so every call to it is counted (the original is put back by ``restore``)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._undo: list = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, owner, attr: str, name: str, after=None) -> None:
        """Count the calls of ``owner.attr`` (a module's function or a class's method) under ``name``;
        ``after()`` runs inside the timing (e.g. waiting for the GPU)."""
        original = getattr(owner, attr)

        def timed(*args, **kw):
            with self(name):
                out = original(*args, **kw)
                if after is not None:
                    after()
                return out

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        while self._undo:
            owner, attr, original = self._undo.pop()
            setattr(owner, attr, original)


def run_case(script: str, case: dict, timeout: float = 900) -> dict:
    """Run ``script --case JSON`` in a fresh Python process and return the JSON dict it prints last."""
    proc = subprocess.run([sys.executable, script, "--case", json.dumps(case)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
