"""Choosing the hardware from config strings: the torch device, the number of decode processes and their
threads."""
from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.context import BaseContext

import torch

MAX_AUTO_WORKERS = 16


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a GPU that is not there is an error naming what there is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} was asked for, but no CUDA GPU is available (use device=auto or cpu)")
    if device.type == "cuda" and (device.index or 0) >= (gpus := torch.cuda.device_count()):
        raise RuntimeError(f"device={name} was asked for, but this machine has {gpus} CUDA GPU"
                           f"{'s' if gpus > 1 else ''} (cuda:0{f' to cuda:{gpus - 1}' if gpus > 1 else ''})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device=mps was asked for, but this machine has no Apple GPU (use device=auto or cpu)")
    return device


def process_context() -> BaseContext:
    """How the decode and drawing processes start: Python's default way, unless another library made its own
    the default (a joblib sweep's worker: "loky", which cannot hand a new process a shared array or a lambda),
    then fork where the system has it."""
    method = mp.get_start_method(allow_none=True)
    if method in (None, "fork", "spawn", "forkserver"):
        return mp.get_context(method)
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def loader_context(workers: int) -> dict:
    """A DataLoader's ``multiprocessing_context`` argument for ``workers`` processes (none without them)."""
    return {"multiprocessing_context": process_context()} if workers else {}


def decode_workers(setting: str | int = "auto") -> int:
    """Decode processes for ``video.workers``: a number as given; ``auto`` one per CPU this process may run
    on, at most 16 (decoding every frame of a video to sample a few is the heavy part of a folder job)."""
    if str(setting) != "auto":
        return int(setting)
    return min(usable_cpus(), MAX_AUTO_WORKERS)


def decoder_threads(workers: int, videos: int) -> int:
    """Decoding threads for one of ``workers`` decode processes: its share of the CPUs but one (the process
    that feeds the CNN), among the workers that have one of the ``videos`` to read. Left to itself,
    OpenCV's decoder starts one thread per CPU in every worker (16 x 12 threads on a 16-core machine)."""
    return max(1, (usable_cpus() - 1) // max(1, min(workers, videos)))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resident(data: torch.Tensor, device: torch.device, share: float = 0.5) -> torch.Tensor:
    """``data`` moved to ``device``, or left in host memory where it would take more than ``share`` of a
    GPU's free memory (the frames of a large set trained end to end): batches then go over one at a time."""
    if device.type == "cuda" and data.nbytes > share * torch.cuda.mem_get_info(device)[0]:
        return data
    return data.to(device)
