"""Why LSTMs: the gradient-flow experiment measures ‖∂L/∂h_t‖ correctly and writes its run and sweep files."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_pipeline

from vidrnn.experiments.gradient_flow import (
    CueTask,
    LastStateClassifier,
    gradient_norms,
    run_gradient_flow,
)
from vidrnn.train.loop import TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"
TINY = CueTask(length=12, classes=2, dim=4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unrolled_steps_are_the_cell_and_the_last_gradient_is_the_heads(cell):
    torch.manual_seed(0)
    model = LastStateClassifier(cell, TINY.dim, 8, TINY.classes)
    x, y = TINY.sample(16, torch.Generator().manual_seed(0))
    assert (x[:, 1:, :2] == 0).all() and (x[:, 0, :2].argmax(1) == y).all()  # the cue is only at the start
    logits, hidden = model.unrolled(x)
    torch.testing.assert_close(logits, model(x))  # one step at a time computes what the fused cell does
    assert len(hidden) == 12
    norms = gradient_norms(model, [(x, y)])
    # at the last step the loss sees h_T only through the linear head: dL/dh_T = W^T (softmax - onehot)
    direct = (F.softmax(logits, 1) - F.one_hot(y, 2).float()).detach() @ model.head.weight.detach()  # (B, H)
    assert norms[-1] == pytest.approx(float(direct.norm(dim=1).mean()), rel=1e-5)


def test_one_run_writes_metrics_and_plot_and_is_not_redone(tmp_path):
    trainer = TrainConfig(max_epochs=2, lr=1e-2, clip_grad_norm=1.0, scheduler="none", patience=0)
    kw = {"out_dir": tmp_path, "trainer": trainer, "hidden": 8, "gate_bias": 2.0, "batch_size": 16,
          "batches_per_epoch": 3, "probe_batches": 2, "val_size": 32}
    result = run_gradient_flow("rnn", TINY, **kw)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epochs_run"] == 2 and saved["experiment"]["cell"] == "rnn"
    assert saved["experiment"]["gate_bias"] is None  # the plain RNN has no gate to set
    for when in ("init", "trained"):
        norms = np.array(saved["gradient_norms"][when])
        assert norms.shape == (12,) and np.isfinite(norms).all() and (norms > 0).all()
    init = np.array(saved["gradient_norms"]["init"])
    assert init[0] < init[-1] * 1e-2  # a plain RNN at initialisation: the gradient vanishes going back in time
    assert saved["test"]["grad_ratio_init"] == pytest.approx(init[0] / init[-1])
    # the trained (last epoch's) model scored on the probe batches: 2 batches of 16 from the held-out seed
    held_out = torch.Generator().manual_seed(1)
    x, y = (torch.cat(parts) for parts in zip(*[TINY.sample(16, held_out) for _ in range(2)]))
    model = LastStateClassifier("rnn", TINY.dim, 8, TINY.classes)
    model.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["model"])
    with torch.no_grad():
        logits = model(x)
    assert saved["test"]["accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert saved["test"]["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert (tmp_path / "gradient_flow.png").read_bytes().startswith(PNG)
    assert (tmp_path / "checkpoints" / "best.pt").is_file()

    mtime = (tmp_path / "metrics.json").stat().st_mtime_ns
    assert run_gradient_flow("rnn", TINY, **kw) == result
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other settings"):
        run_gradient_flow("gru", TINY, **kw)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gate_bias_opens_the_keep_gate_so_the_gradient_reaches_early_steps(cell):
    batch = [TINY.sample(16, torch.Generator().manual_seed(0))]
    ratios = []
    for bias in (None, 2.0):
        torch.manual_seed(0)
        model = LastStateClassifier(cell, TINY.dim, 8, TINY.classes, gate_bias=bias)
        norms = gradient_norms(model, batch)
        ratios.append(norms[0] / norms[-1])
    assert (model.rnn.bias_ih_l0[8:16] + model.rnn.bias_hh_l0[8:16] == 2.0).all()
    assert ratios[1] > 10 * ratios[0]  # the forget (LSTM) or update (GRU) gate: the state is kept, not halved
    with pytest.raises(ValueError, match="no gate"):
        LastStateClassifier("rnn", TINY.dim, 8, TINY.classes, gate_bias=2.0)


def test_sweep_writes_a_table_and_one_plot_of_every_run(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_pipeline("gradient_flow", "-m", "model.cell=rnn,gru", "trainer.clip_grad_norm=null", "task.length=10",
                       "model.hidden=8", "trainer.max_epochs=1", "trainer.batches_per_epoch=2", "trainer.batch_size=16",
                       "probe_batches=1", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model.cell"], r["status"]) for r in rows] == [("rnn", "done"), ("gru", "done")]
    assert all(float(r["test.grad_ratio_init"]) > 0 for r in rows)
    for run in ("0", "1"):
        assert (sweep / run / "gradient_flow.png").read_bytes().startswith(PNG)
    assert (sweep / "gradient_flow.png").read_bytes().startswith(PNG)
