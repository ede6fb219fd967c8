"""Training on several processes under torchrun: joining the process group, this process's rank, its
share of each epoch's shuffle, and the few collective steps the training loop needs."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

T = TypeVar("T")
PROCESS_GROUP_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and logs epochs."""
        return self.rank == 0


def current() -> Rank:
    """This process's rank and the number of processes (0 of 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return Rank(dist.get_rank(), dist.get_world_size())
    return Rank()


def launched_by_torchrun() -> bool:
    env = os.environ
    return all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")) and int(env["WORLD_SIZE"]) > 1


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Under torchrun (its RANK, WORLD_SIZE, MASTER_ADDR/PORT set, more than one process), join the
    process group for the block (nccl on CUDA, gloo on the CPU) and leave it after; yields this process's
    device (``cuda:LOCAL_RANK`` on CUDA). Otherwise, or when a group exists already, yields ``device``."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # ranks wait for each other after extracting their share of the features and while rank 0 validates:
    # longer than the 10-minute default allows on a big folder
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def per_rank_batch(batch_size: int) -> int:
    """Each process's share of the global ``batch_size``."""
    world = current().world
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} must be a multiple of the {world} training processes")
    return batch_size // world


def epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    """This process's share of a seeded shuffle of ``range(n)`` for ``epoch`` (a DistributedSampler:
    rank r takes positions r, r + world, ... of the shuffle, so batch k of every rank together hold
    exactly batch k of one process with ``world`` times the batch size, when n is a multiple of it)."""
    r = current()
    sampler = DistributedSampler(range(n), num_replicas=r.world, rank=r.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


class _Step(nn.Module):
    """The loss step as a module's forward, so DistributedDataParallel sees it and averages gradients."""

    def __init__(self, model: nn.Module, step: Callable):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, batch, epoch: int) -> torch.Tensor:
        return self.step(self.model, batch, epoch)


def parallel_step(model: nn.Module, step: Callable[[nn.Module, object, int], torch.Tensor], device: torch.device
                  ) -> Callable[[object, int], torch.Tensor]:
    """``step(model, batch, epoch)`` as ``(batch, epoch) -> loss``; in a process group through
    DistributedDataParallel, so that backward() leaves every rank the mean gradient of all ranks."""
    if current().world == 1:
        return lambda batch, epoch: step(model, batch, epoch)
    # find_unused_parameters: a head can go unused for a batch (a counter trained without per-frame labels)
    return DistributedDataParallel(_Step(model, step), device_ids=[device] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over all processes."""
    r = current()
    if r.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / r.world


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only, its result given to every rank; an error on rank 0 is raised
    on every rank (so no rank waits for the others forever)."""
    r = current()
    if r.world == 1:
        return compute()
    box: list = [None]
    error = None
    if r.main:
        try:
            box = [(compute(), None)]
        except Exception as e:  # noqa: BLE001 (any error: the other ranks must hear of it, then it is raised)
            error, box = e, [(None, f"{type(e).__name__} on rank 0: {e}")]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    value, message = box[0]
    if message is not None:
        raise RuntimeError(message)
    return value


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single one)."""
    if current().world > 1:
        dist.barrier()


def in_process_group(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn(..., device=...)`` inside ``process_group(device)``, given this process's device."""
    @functools.wraps(fn)
    def run(*args, device: torch.device = torch.device("cpu"), **kwargs) -> T:
        with process_group(device) as local:
            return fn(*args, device=local, **kwargs)

    return run
