"""The training loop both tasks share: AdamW, a scheduler, clipping, AMP on CUDA, validation every
epoch, best and last checkpoints, early stopping, resuming, metrics.json and PNG curves; under torchrun
DistributedDataParallel, with rank 0 validating and writing files."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..distributed import current, from_main, mean_over_ranks, parallel_step
from ..features.store import atomic_write
from ..outputs import write_json

log = logging.getLogger("vidrnn.train")


@dataclass
class TrainConfig:
    max_epochs: int = 40
    lr: float = 2e-3
    weight_decay: float = 1e-4
    clip_grad_norm: float | None = 5.0
    scheduler: str = "cosine"  # cosine | plateau | none
    patience: int = 10  # epochs without a better monitored value before stopping (0: never stop early)
    monitor: str = "loss"  # validation metric that picks the best checkpoint
    mode: str = "min"  # min | max
    amp: bool = True  # bfloat16 autocast on CUDA


def fit(model: nn.Module, batches: Callable[[int], Iterable], step: Callable[[nn.Module, object, int], torch.Tensor],
        evaluate: Callable[[nn.Module], dict], *, cfg: TrainConfig, out_dir: str | Path, device: torch.device,
        checkpoint_extra: dict | None = None, resume: bool = True, complete: bool = True) -> dict:
    """Train ``model`` for ``cfg.max_epochs`` epochs.

    batches(epoch) yields the epoch's batches; step(model, batch, epoch) returns the loss; evaluate(model)
    returns validation metrics (must include ``cfg.monitor``). Writes ``checkpoints/last.pt`` (everything
    needed to resume) and ``checkpoints/best.pt`` (model weights plus ``checkpoint_extra``), after every
    epoch ``metrics.json``, and ``curves.png`` after the first and the last epoch and in between as often
    as drawing it stays within 5% of the time (on small data it cost more than the training). Returns
    the metrics.json content; ``complete=False`` leaves it marked unfinished (the caller scores the test
    split next and marks it then: a run stopped in between scores it when rerun).

    In a process group (torchrun) every rank trains on its own batches with gradients averaged over
    ranks (DistributedDataParallel); rank 0 validates, shares the metrics and alone writes files.
    """
    if cfg.mode not in ("min", "max"):
        raise ValueError(f"trainer mode must be min or max, not {cfg.mode!r}")
    out, main = Path(out_dir), current().main
    if main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _scheduler(optimizer, cfg)
    state = {"epoch": 0, "history": [], "best": None, "best_epoch": None, "stale": 0}
    last = out / "checkpoints" / "last.pt"
    if resume and last.exists():
        ckpt = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
            _respan(scheduler, optimizer, cfg, state["epoch"])
        if "rng" in ckpt:  # dropout and sampling go on as in a run that was never stopped
            _set_rng(ckpt["rng"])
        log.info("resumed from %s after epoch %d", last, state["epoch"])
    amp = cfg.amp and device.type == "cuda"
    train_step = parallel_step(model, step, device)
    better = (lambda a, b: a < b) if cfg.mode == "min" else (lambda a, b: a > b)
    plot_after = 0.0  # a curves.png costs ~0.3 s: redrawn only while that stays within 5% of the time
    while state["epoch"] < cfg.max_epochs and not (cfg.patience and state["stale"] >= cfg.patience):
        epoch = state["epoch"] + 1
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in batches(epoch):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = train_step(batch, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
            optimizer.step()
            total, count = total + loss.item(), count + 1
        model.eval()
        with torch.no_grad():
            metrics = from_main(lambda: evaluate(model))
        value = metrics.get(cfg.monitor)  # None without validation data: every epoch replaces the best
        if scheduler is not None and not (cfg.scheduler == "plateau" and value is None):
            scheduler.step(value) if cfg.scheduler == "plateau" else scheduler.step()
        row = {"epoch": epoch, "train_loss": mean_over_ranks(total / max(count, 1)), **metrics,
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - start, 2)}
        state["history"].append(row)
        state["epoch"] = epoch
        improved = value is None or state["best"] is None or not math.isfinite(state["best"]) or (
            math.isfinite(value) and better(value, state["best"]))  # a NaN (diverged) is never the best
        if improved:
            state["best"], state["best_epoch"], state["stale"] = value, epoch, 0
        else:
            state["stale"] += 1
        if not main:
            continue
        if improved:
            _save(out / "checkpoints" / "best.pt", {**(checkpoint_extra or {}), "model": model.state_dict(),
                                                    "epoch": epoch, "metrics": metrics})
        _save(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None, "state": state,
                     "rng": _rng()})
        log.info("epoch %d: train_loss %.4f  %s  (%.1fs)", epoch, row["train_loss"],
                 "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)), row["seconds"])
        plot, drawn = time.perf_counter() >= plot_after, time.perf_counter()
        write_metrics(out, state, cfg, plot=plot, complete=False)
        if plot:
            plot_after = time.perf_counter() + 19 * (time.perf_counter() - drawn)
    return write_metrics(out, state, cfg, complete=complete) if main else summarize(state, cfg)


def _respan(scheduler, optimizer, cfg: TrainConfig, epoch: int) -> None:
    """A cosine schedule resumed with another ``max_epochs`` (train longer, or stop sooner) spans the new
    length from ``epoch`` on: past its old end the cosine would climb back up."""
    if cfg.scheduler != "cosine" or scheduler.T_max == max(cfg.max_epochs, 1):
        return
    log.info("trainer.max_epochs %d -> %d: the cosine schedule now ends at epoch %d", scheduler.T_max,
             cfg.max_epochs, cfg.max_epochs)
    scheduler.T_max = max(cfg.max_epochs, 1)
    share = (1 + math.cos(math.pi * min(epoch, scheduler.T_max) / scheduler.T_max)) / 2
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * share


def _rng() -> dict:
    """The random generators' states (dropout, scheduled sampling): plain tensors."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng(rng: dict) -> None:
    torch.set_rng_state(rng["cpu"].cpu())
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([r.cpu() for r in rng["cuda"]])


def _scheduler(optimizer, cfg: TrainConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.max_epochs, 1),
                                                          eta_min=cfg.lr * 0.02)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=cfg.mode, factor=0.5, patience=2)
    if cfg.scheduler == "none":
        return None
    raise ValueError(f"trainer scheduler must be cosine, plateau or none, not {cfg.scheduler!r}")


def _save(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def summarize(state: dict, cfg: TrainConfig) -> dict:
    """metrics.json's content: per-epoch history, best epoch and its metrics."""
    history = state["history"]
    best = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
    return {"monitor": cfg.monitor, "mode": cfg.mode, "best_epoch": state["best_epoch"], "best": best,
            "final": history[-1] if history else None, "epochs_run": state["epoch"],
            "stopped_early": bool(cfg.patience and state["stale"] >= cfg.patience), "history": history}


def write_metrics(out: Path, state: dict, cfg: TrainConfig, *, plot: bool = True, complete: bool = True) -> dict:
    """metrics.json (``summarize``; ``complete`` false while training goes on) and, with ``plot``, curves.png."""
    summary = {**summarize(state, cfg), "complete": complete}
    write_json(out / "metrics.json", summary)
    if plot:
        plot_curves(summary["history"], out / "curves.png")
    return summary


def plot_curves(history: list[dict], path: Path) -> None:
    """One panel per logged number (loss, each validation metric) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("epoch", "lr", "seconds") and isinstance(history[0][k], (int, float))] \
        if history else []
    if not keys:
        return
    cols = min(len(keys), 3)
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(4.2 * cols, 3.2 * math.ceil(len(keys) / cols)),
                             squeeze=False)
    epochs = [r["epoch"] for r in history]
    for ax, key in zip(axes.flat, keys):
        ax.plot(epochs, [r[key] for r in history], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
