"""Training under torchrun: 2 CPU processes (gloo) train the same counter as one process does.

Why the results can match: the single process trains with batches of 8, each rank with batches of 4.
Every epoch's order is one seeded shuffle (a DistributedSampler: seed + epoch); rank r takes positions
r, r+2, r+4, ... of it, so batch k of rank 0 and batch k of rank 1 together are batch k of the single
process (16 training videos: no partial batch). The loss is a mean over the batch and DDP averages the
two ranks' gradients, so each step sees the same gradient up to float rounding; dropout is off.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, run_pipeline

from vidrnn.synth import make_dataset


def torchrun(nproc: int, name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", f"pipelines.{name}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = make_dataset(root / "data", num_videos=22, width=64, height=48, num_frames=8, fps=8.0)
    assert data["splits"] == {"train": 16, "validate": 3, "test": 3}
    args = ["task=count", f"data.video_dir={data['videos_dir']}", f"data.annotations={data['counts']}",
            f"data.cache_dir={root / 'cache'}", "video.size=32", "video.num_frames=3", "encoder.layer=layer1",
            "video.workers=0", "model.hidden=16", "model.dropout=0", "trainer.max_epochs=3", "trainer.batch_size=8",
            "quiet=true"]
    single = run_pipeline("train", *args, f"hydra.run.dir={root / 'single'}", "device=cpu")
    assert single.returncode == 0, single.stderr
    ddp = torchrun(2, "train", *args, f"hydra.run.dir={root / 'ddp'}", "device=cpu")
    assert ddp.returncode == 0, ddp.stderr + ddp.stdout
    return root, ddp


def test_two_processes_train_the_same_model_as_one(runs):
    root, _ = runs
    one = torch.load(root / "single/checkpoints/best.pt", weights_only=True)["model"]
    two = torch.load(root / "ddp/checkpoints/best.pt", weights_only=True)["model"]
    assert one.keys() == two.keys()  # no "module." prefix from DistributedDataParallel
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    m1, m2 = (json.loads((root / run / "metrics.json").read_text()) for run in ("single", "ddp"))
    assert m2["epochs_run"] == m1["epochs_run"] == 3 and m2["best_epoch"] == m1["best_epoch"]
    for r1, r2 in zip(m1["history"], m2["history"]):
        assert r2["MAE"] == pytest.approx(r1["MAE"], rel=1e-5)
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)  # mean over both ranks' batches
    assert m2["test"]["MAE"] == pytest.approx(m1["test"]["MAE"], rel=1e-5)


def test_rank_zero_writes_one_complete_run(runs):
    root, ddp = runs
    run = root / "ddp"
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "metrics.json", "curves.png", ".hydra/config.yaml"):
        assert (run / name).is_file(), name
    assert not list(run.glob("**/.*.tmp"))
    assert "mean_predictor" in json.loads((run / "metrics.json").read_text())
    # both ranks end with the same result (their prints share one stdout, so lines can run together)
    finals = re.findall(r"train: best epoch \d+ of \d+: train_loss \d+\.\d{4}  MAE \d+\.\d{4}  RMSE \d+\.\d{4}",
                        ddp.stdout)
    assert len(finals) == 2 and finals[0] == finals[1], ddp.stdout
