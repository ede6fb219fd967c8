"""Why LSTMs: a task whose answer is shown only in the first steps of a long sequence, and the gradient of
the loss that reaches each time step, ‖∂L/∂h_t‖, for the plain RNN, the LSTM and the GRU (the project's
own cells, ``make_rnn``), at initialisation and after training with the project's training loop."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from torch import nn

from ..features.store import atomic_write
from ..models.recurrent import make_rnn
from ..outputs import write_json
from ..sweeps import METRICS, finished_result
from ..train.loop import TrainConfig, fit

PLOT = "gradient_flow.png"
CELL_COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}
GATED = ("lstm", "gru")


@dataclass
class CueTask:
    """Sequences (B, T, D) whose class shows only in the first ``cue_steps`` steps, as a one-hot in the
    first ``classes`` dimensions (zero after the cue); the other dimensions are Gaussian noise at every
    step. The answer must be carried from the start to the end."""

    length: int = 60
    classes: int = 4
    dim: int = 8
    cue_steps: int = 1
    noise: float = 1.0

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` sequences (n, T, D) and their classes (n,)."""
        if not 0 < self.cue_steps < self.length or self.classes > self.dim:
            raise ValueError(f"cue_steps must be in 1..{self.length - 1} and classes at most dim ({self.dim})")
        y = torch.randint(self.classes, (n,), generator=generator)
        x = torch.randn(n, self.length, self.dim, generator=generator) * self.noise  # (n, T, D)
        x[:, :, : self.classes] = 0
        x[:, : self.cue_steps, : self.classes] = F.one_hot(y, self.classes)[:, None].float()
        return x, y


class LastStateClassifier(nn.Module):
    """A recurrent cell over (B, T, D) and a linear classifier on its last hidden state. ``gate_bias``
    starts the bias of a gated cell's keep gate there (the LSTM's forget gate, the GRU's update gate)
    instead of PyTorch's (about 0: σ ≈ 0.5, so only half of the state is kept each step)."""

    def __init__(self, cell: str, dim: int, hidden: int, classes: int, gate_bias: float | None = None):
        super().__init__()
        self.rnn, self.head = make_rnn(cell, dim, hidden, 1), nn.Linear(hidden, classes)
        if gate_bias is not None:
            if cell not in GATED:
                raise ValueError(f"gate_bias is for the gated cells (lstm, gru): the plain {cell} has no gate")
            with torch.no_grad():  # rows H..2H: nn.LSTM's forget gate (of i, f, g, o), nn.GRU's update gate (r, z, n)
                self.rnn.bias_ih_l0[hidden: 2 * hidden] = gate_bias
                self.rnn.bias_hh_l0[hidden: 2 * hidden] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)  # (B, T, H)
        return self.head(y[:, -1])  # (B, C)

    def unrolled(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same logits (B, C), computed one step at a time so that each hidden state h_t (1, B, H)
        is a tensor of its own that gradients can be taken for."""
        state, hidden = None, []
        for t in range(x.shape[1]):
            _, state = self.rnn(x[:, t: t + 1], state)
            hidden.append(state[0] if isinstance(state, tuple) else state)  # an LSTM's state is (h, c)
        return self.head(hidden[-1][-1]), hidden


def gradient_norms(model: LastStateClassifier, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """‖∂L/∂h_t‖ for t = 1..T (T,): the norm of each sequence's own loss gradient at its hidden state
    h_t, averaged over the sequences of ``batches`` (in float64: in float32 they underflow to 0)."""
    model = copy.deepcopy(model).double()
    total = 0.0
    count = 0
    for x, y in batches:
        logits, hidden = model.unrolled(x.double())
        loss = F.cross_entropy(logits, y, reduction="sum")  # summed: each sequence's gradient is its own
        grads = torch.autograd.grad(loss, hidden)
        total = total + torch.stack([g[-1].norm(dim=-1).sum() for g in grads]).detach()  # (T,)
        count += len(y)
    return (total / count).numpy()


@torch.no_grad()
def _scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    logits = model(x)
    return {"accuracy": float((logits.argmax(1) == y).float().mean()), "loss": float(F.cross_entropy(logits, y))}


def run_gradient_flow(cell: str, task: CueTask, *, out_dir: str | os.PathLike, trainer: TrainConfig, hidden: int = 32,
                      gate_bias: float | None = None, batch_size: int = 64, batches_per_epoch: int = 100,
                      probe_batches: int = 4, val_size: int = 512, seed: int = 0) -> dict:
    """Train ``cell`` on ``task`` (``batches_per_epoch`` fresh batches an epoch, validation accuracy picks
    the best epoch) and measure ‖∂L/∂h_t‖ on ``probe_batches`` held-out batches at initialisation and
    after training. ``gate_bias`` (LastStateClassifier) is for the gated cells: the plain RNN has none.

    Writes the training run into ``out_dir`` (checkpoints, curves; resumed when interrupted) and
    ``metrics.json``: the training summary, ``test`` (the trained model's accuracy and loss on the probe
    batches, and ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation, ``grad_ratio_init``, and after training,
    ``grad_ratio``), ``gradient_norms`` (both curves) and ``experiment`` (the settings); and
    ``gradient_flow.png``. Returns metrics.json; a run that finished with the same settings is not redone.
    """
    out = Path(out_dir)
    trainer.monitor, trainer.mode = "accuracy", "max"
    gate_bias = gate_bias if cell in GATED else None
    experiment = {"cell": cell, "hidden": hidden, "gate_bias": gate_bias, "batch_size": batch_size,
                  "batches_per_epoch": batches_per_epoch, "probe_batches": probe_batches, "val_size": val_size,
                  "seed": seed, "task": asdict(task), "trainer": asdict(trainer)}
    done = _finished(out, experiment)
    if done is not None:
        return done
    torch.manual_seed(seed)
    model = LastStateClassifier(cell, task.dim, hidden, task.classes, gate_bias)
    held_out = torch.Generator().manual_seed(seed + 1)
    probe = [task.sample(batch_size, held_out) for _ in range(probe_batches)]
    val_x, val_y = task.sample(val_size, held_out)
    at_init = gradient_norms(model, probe)

    def batches(epoch: int):
        fresh = torch.Generator().manual_seed(1_000_003 * (seed + 2) + epoch)  # the same data when resumed
        return (task.sample(batch_size, fresh) for _ in range(batches_per_epoch))

    def step(model: LastStateClassifier, batch, epoch: int) -> torch.Tensor:
        x, y = batch  # (B, T, D), (B,)
        return F.cross_entropy(model(x), y)

    result = fit(model, batches, step, lambda m: _scores(m, val_x, val_y), cfg=trainer, out_dir=out,
                 device=torch.device("cpu"))
    trained = gradient_norms(model, probe)
    result["test"] = {**_scores(model, torch.cat([x for x, _ in probe]), torch.cat([y for _, y in probe])),
                      "grad_ratio_init": float(at_init[0] / at_init[-1]), "grad_ratio": float(trained[0] / trained[-1])}
    result["gradient_norms"] = {"init": at_init.tolist(), "trained": trained.tolist()}
    result["experiment"] = experiment
    write_json(out / METRICS, result)
    plot_gradient_norms({_label(experiment): {"at initialisation": at_init, "after training": trained}}, out / PLOT)
    return result


def _finished(out: Path, experiment: dict) -> dict | None:
    """The run's metrics.json when it finished with these settings; an error when it holds other settings."""
    result = finished_result(out, experiment["trainer"]["max_epochs"])
    if result is None or "gradient_norms" not in result:
        return None
    if result.get("experiment") != json.loads(json.dumps(experiment)):
        raise ValueError(f"{out} holds a finished run with other settings: choose another run dir")
    return result


def _label(experiment: dict) -> str:
    clip, bias = experiment["trainer"]["clip_grad_norm"], experiment["gate_bias"]
    return ", ".join([experiment["cell"], f"clip {clip:g}" if clip else "no clipping"]
                     + ([f"gate bias {bias:g}"] if bias is not None else []))


def plot_gradient_norms(panels: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """One panel per key of ``panels``: each of its curves ‖∂L/∂h_t‖ (T,) against t, on a log scale, as a
    fraction of ‖∂L/∂h_T‖ (how much of the gradient at the loss reaches step t; a trained model's loss,
    and so its whole curve, can be near 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False, sharey=True)
    for ax, (title, curves) in zip(axes.flat, panels.items()):
        for label, norms in curves.items():
            ax.semilogy(np.arange(1, len(norms) + 1), np.where(norms > 0, norms / norms[-1], np.nan), label=label,
                        color=CELL_COLOURS.get(label.split(",")[0]),
                        ls="--" if "clip " in label else "-")
        ax.set(title=title, xlabel="time step t (the loss is at the last step)", ylabel="‖∂L/∂h_t‖ / ‖∂L/∂h_T‖")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def plot_sweep(sweep_dir: str | os.PathLike) -> Path | None:
    """``gradient_flow.png`` in a sweep dir: every finished run's curves, at initialisation and after
    training; None when no run has finished yet."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(sweep_dir).glob(f"*/{METRICS}"))]
    runs = [r for r in runs if "gradient_norms" in r]
    if not runs:
        return None
    path = Path(sweep_dir, PLOT)
    plot_gradient_norms({when: {_label(r["experiment"]): np.asarray(r["gradient_norms"][key]) for r in runs}
                         for when, key in (("at initialisation", "init"), ("after training", "trained"))}, path)
    return path


class SweepPlotCallback(Callback):
    """Redraws the sweep dir's gradient_flow.png after every job of a multirun."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            plot_sweep(config.hydra.sweep.dir)
