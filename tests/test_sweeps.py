"""Sweeps: the summary of a sweep dir, skipping finished runs, recording failed ones, launcher configs."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import pipeline_env, run_pipeline

from vidrnn.sweeps import check_settings, clear_error, finished_result, record_error, summarize_sweep
from vidrnn.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def ctrl_c_heard() -> None:
    """In a child: SIGINT as in a terminal (a job started in the background of a script inherits it ignored,
    and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fake_run(sweep: Path, num: int, overrides: list[str], metrics: dict | None = None, error: str | None = None):
    run = sweep / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra/config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 3}}))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (run / "error.txt").write_text(error + "\n")
    return run


def metrics(epochs_run: int, mae: float, test: dict | None = None) -> dict:
    best = {"epoch": 1, "train_loss": 0.5, "MAE": mae, "RMSE": mae + 1, "lr": 0.001, "seconds": 0.1}
    return {"monitor": "MAE", "mode": "min", "best_epoch": 1, "best": best, "epochs_run": epochs_run,
            "stopped_early": False, **({"test": test} if test else {})}


def test_summary_of_a_sweep_dir_lists_done_failed_and_running_runs(tmp_path):
    fake_run(tmp_path, 0, ["task=count", "model.cell=gru"], metrics(3, 1.5, {"MAE": 1.25, "RMSE": 2.0}))
    fake_run(tmp_path, 1, ["task=count", "model.cell=lstm"], metrics(3, 0.5), error="CUDA out of memory")  # an
    # earlier run's metrics left in the dir of a run that failed: not shown as this run's
    fake_run(tmp_path, 10, ["task=count", "model.cell=rnn"], metrics(2, 2.5))  # sorted after 1, not before
    fake_run(tmp_path, 11, ["task=count", "model.cell=gru"], metrics(2, 2.5), error="interrupted")  # goes on when
    rows = summarize_sweep(tmp_path)  # the sweep is run again
    assert [(r["run"], r["model.cell"], r["status"]) for r in rows] == [
        ("0", "gru", "done"), ("1", "lstm", "failed"), ("10", "rnn", "running"), ("11", "gru", "interrupted")]
    assert rows[0]["best.MAE"] == 1.5 and rows[0]["test.MAE"] == 1.25 and "best.lr" not in rows[0]
    assert rows[1]["error"] == "CUDA out of memory"

    with open(tmp_path / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["done", "failed", "running", "interrupted"]
    assert table[0]["task"] == "count" and table[0]["test.RMSE"] == "2.0" and table[1]["best.MAE"] == ""
    md = (tmp_path / "summary.md").read_text().splitlines()
    assert md[0] == "Overrides shared by all runs: `task=count`"
    assert md[2].startswith("| run | model.cell | status |") and len(md) == 8
    assert "| 1 | lstm | failed |" in md[5] and md[5].endswith("| CUDA out of memory |")
    assert (tmp_path / "summary.png").read_bytes().startswith(PNG)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_finished_result(tmp_path):
    assert finished_result(tmp_path, 3) is None
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(2, 1.0)))
    assert finished_result(tmp_path, 3) is None and finished_result(tmp_path, 2)["best"]["MAE"] == 1.0
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics(2, 1.0), "stopped_early": True}))
    assert finished_result(tmp_path, 3) is not None
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics(9, 1.0), "complete": False}))  # interrupted
    assert finished_result(tmp_path, 3) is None
    # stopped early at epoch 5, 4 epochs after its best: finished for a patience of 4, not of 6 or 0 (never stop)
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics(5, 1.0), "stopped_early": True}))
    assert finished_result(tmp_path, 10, patience=4) is not None
    assert finished_result(tmp_path, 10, patience=6) is None and finished_result(tmp_path, 10, patience=0) is None


def test_a_diverged_validation_value_is_never_the_best(tmp_path):
    """A NaN at the first epoch was kept as the best (nothing compares better than NaN): best.pt stayed at
    epoch 1 and early stopping ended the run."""
    from vidrnn.train.loop import TrainConfig, fit
    model = torch.nn.Linear(1, 1)
    values = iter([float("nan"), 0.5, 0.4, float("nan"), 0.3])

    def step(model, batch, epoch):
        return model(torch.ones(1, 1)).sum() * 0

    result = fit(model, lambda epoch: [None], step, lambda model: {"MAE": next(values)},
                 cfg=TrainConfig(max_epochs=5, patience=2, monitor="MAE", mode="min"), out_dir=tmp_path,
                 device=torch.device("cpu"))
    assert result["best_epoch"] == 5 and result["epochs_run"] == 5 and not result["stopped_early"]


def test_a_failed_run_keeps_its_error_until_it_is_tried_again(tmp_path):
    record_error(tmp_path, ValueError("bad value\nmore detail"))
    assert (tmp_path / "error.txt").read_text() == "bad value\n"
    clear_error(tmp_path)
    assert not (tmp_path / "error.txt").exists()


def test_summary_of_an_empty_dir_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        summarize_sweep(tmp_path)


def test_multirun_writes_a_summary_and_a_rerun_skips_finished_runs(tmp_path):
    data = make_dataset(tmp_path / "data", num_videos=12, width=64, height=48, num_frames=8, fps=8.0)
    sweep = tmp_path / "sweep"
    args = ["-m", "task=count", f"data.video_dir={data['videos_dir']}", f"data.annotations={data['counts']}",
            "video.size=32", "video.num_frames=3", "encoder.layer=layer1", "trainer.max_epochs=2",
            "model.hidden=8,16", "model.cell=gru,rnn", "video.workers=0", "quiet=true", f"hydra.sweep.dir={sweep}",
            f"data.cache_dir={tmp_path / 'cache'}"]
    res = run_pipeline("train", *args)
    assert res.returncode == 0, res.stderr
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model.hidden"], r["model.cell"], r["status"], r["epochs"]) for r in rows] == [
        ("8", "gru", "done", "2"), ("8", "rnn", "done", "2"), ("16", "gru", "done", "2"), ("16", "rnn", "done", "2")]
    for r in rows:  # each run's own scores: its best epoch's validation MAE, its test scores
        saved = json.loads((sweep / r["run"] / "metrics.json").read_text())
        assert saved["epochs_run"] == 2 and float(r["best.MAE"]) == min(h["MAE"] for h in saved["history"])
        assert float(r["best.MAE"]) == saved["history"][saved["best_epoch"] - 1]["MAE"]
        assert (float(r["test.MAE"]), float(r["test.RMSE"])) == (saved["test"]["MAE"], saved["test"]["RMSE"])
        assert 0 < saved["test"]["MAE"] <= saved["test"]["RMSE"]
    assert "| 16 | rnn | done |" in res.stdout  # the table is printed at the end
    assert res.stdout.count("of the mean predictor (the mean training count)") >= 4  # the baseline to beat

    mtimes = [(sweep / str(i) / "metrics.json").stat().st_mtime_ns for i in range(4)]
    res = run_pipeline("train", *args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("already finished") == 4
    assert [(sweep / str(i) / "metrics.json").stat().st_mtime_ns for i in range(4)] == mtimes

    for name in ("summary.csv", "summary.md", "summary.png"):
        (sweep / name).unlink()
    res = run_pipeline("summarize", str(sweep))  # positional form of sweep_dir=...
    assert res.returncode == 0, res.stderr
    assert (sweep / "summary.md").read_text() in res.stdout and (sweep / "summary.png").read_bytes().startswith(PNG)
    assert len((sweep / "summary.csv").read_text().splitlines()) == 5

    # a smaller sweep into the same dir: its two runs are runs 0 and 1 as before, and the table holds them alone
    smaller = [a for a in args if not a.startswith("model.")] + ["model.hidden=8", "model.cell=gru,rnn"]
    res = run_pipeline("train", *smaller)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("already finished") == 2
    with open(sweep / "summary.csv", newline="") as f:
        assert [(r["run"], r["model.cell"]) for r in csv.DictReader(f)] == [("0", "gru"), ("1", "rnn")]
    # the same runs in another order: run 0 would be rnn, but its dir holds the gru model, so it is not skipped
    swapped = smaller[:-1] + ["model.cell=rnn,gru"]
    res = run_pipeline("train", *swapped)
    assert res.returncode == 2 and "already finished" not in res.stdout, res.stdout + res.stderr
    assert f"error: {sweep}/0 holds a run with other settings (model.cell 'gru' there, 'rnn' now)" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: failed runs of the sweep: 0, 1 (")
    assert torch.load(sweep / "0" / "checkpoints" / "best.pt", weights_only=True)["model_config"]["cell"] == "gru"


def test_a_run_dir_reruns_only_with_its_own_settings(tmp_path):
    """Skipping or resuming a run dir with other settings would keep the old model: an error naming them,
    unless trainer.resume=false; a dir where nothing was trained yet takes any settings."""
    settings = {"task": "count", "model": {"hidden": 256, "cell": "gru"}, "trainer": {"max_epochs": 3, "lr": 0.001}}
    check_settings(tmp_path, settings)
    check_settings(tmp_path, {**settings, "model": {"hidden": 32, "cell": "gru"}})  # nothing trained there yet
    check_settings(tmp_path, settings)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(3, 1.0)))
    check_settings(tmp_path, {**settings, "trainer": {"max_epochs": 9, "lr": 0.001}})  # train longer: resume
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} holds a run with other settings (model.hidden 256 "
                                                   "there, 32 now): give this run another hydra.run.dir")):
        check_settings(tmp_path, {**settings, "model": {"hidden": 32, "cell": "gru"}})
    check_settings(tmp_path, {**settings, "model": {"hidden": 32, "cell": "gru"}}, resume=False)
    check_settings(tmp_path, {**settings, "model": {"hidden": 32, "cell": "gru"}})  # recorded by the fresh run


def test_a_run_dir_compares_its_data_paths_as_paths(tmp_path, monkeypatch):
    """``data/``, ``./data`` and the absolute path name one folder: a rerun spelling it another way resumes
    the run instead of being told to train afresh."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    check_settings(run, {"data": {"video_dir": "data", "annotations": "a.csv"}}, paths=("data.video_dir",))
    (run / "metrics.json").write_text(json.dumps(metrics(3, 1.0)))
    for spelt in ("data/", "./data", str(tmp_path / "data")):
        check_settings(run, {"data": {"video_dir": spelt, "annotations": "a.csv"}}, paths=("data.video_dir",))
    with pytest.raises(ValueError, match="data.video_dir .* there, .*other.* now"):
        check_settings(run, {"data": {"video_dir": "other", "annotations": "a.csv"}}, paths=("data.video_dir",))


@pytest.mark.parametrize("launcher, target", [
    ("submitit_slurm", "SlurmLauncher"), ("slurm", "SlurmLauncher"), ("joblib", "JoblibLauncher")])
def test_launcher_configs_compose(launcher, target):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher" if "slurm" in launcher
                        else "hydra_plugins.hydra_joblib_launcher")
    from hydra import compose, initialize_config_dir

    import vidrnn.schemas  # noqa: F401  (registers the config schemas the app configs name)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.callbacks.summarize._target_ == "vidrnn.sweeps.SummarizeCallback"
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1


def test_a_failed_run_is_one_line_and_the_sweep_goes_on_to_status_2(tmp_path):
    data = make_dataset(tmp_path / "data", num_videos=12, width=64, height=48, num_frames=8, fps=8.0)
    sweep, missing = tmp_path / "sweep", tmp_path / "no_videos"
    res = run_pipeline("train", "-m", "task=count", f"data.video_dir={missing},{data['videos_dir']}",
                       f"data.annotations={data['counts']}", "video.size=32", "video.num_frames=3",
                       "encoder.layer=layer1", "trainer.max_epochs=1", "video.workers=0", "quiet=true",
                       f"hydra.sweep.dir={sweep}", f"data.cache_dir={tmp_path / 'cache'}")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"error: {missing}: input folder does not exist" in res.stderr.splitlines()
    with open(sweep / "summary.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["failed", "done"]
    assert "| failed |" in res.stdout and "| done |" in res.stdout  # the table is printed at the end
    assert res.stderr.strip().splitlines()[-1].startswith("error: failed runs of the sweep: 0 (")


def test_ctrl_c_ends_a_sweep_with_one_line_and_status_130(tmp_path):
    """Ctrl-C in the middle of a sweep's first run stops the sweep: the usual line, no traceback."""
    data = make_dataset(tmp_path / "data", num_videos=12, width=64, height=48, num_frames=8, fps=8.0)
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "pipelines.train", "-m", "task=count", f"data.video_dir={data['videos_dir']}",
           f"data.annotations={data['counts']}", "video.size=32", "video.num_frames=3", "encoder.layer=layer1",
           "trainer.max_epochs=100000", "model.cell=gru,rnn", "video.workers=0", "quiet=true",
           f"hydra.sweep.dir={sweep}", f"data.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=pipeline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ctrl_c_heard)
    deadline = time.monotonic() + 300
    while not (sweep / "0" / "checkpoints" / "last.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep's first run wrote no checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted: what was finished is kept; run the same command again to go on"
    assert not (sweep / "1").exists()  # the sweep stopped
    with open(sweep / "summary.csv", newline="") as f:  # written as the sweep stopped, with the run's status
        assert [(r["run"], r["status"]) for r in csv.DictReader(f)] == [("0", "interrupted")]


def test_ctrl_c_in_hydra_s_own_code_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that lands in Hydra's code (between a sweep's jobs, or while it composes the config) ends
    the app with the usual line, not Hydra's and yaml's traceback."""
    from pipelines.common import INTERRUPTED, hydra_app

    def stopped(cfg):
        raise KeyboardInterrupt  # as if in Hydra's launcher: no run_app around it

    monkeypatch.setattr(sys, "argv", ["summarize", f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as ended:
        hydra_app("summarize")(stopped)()
    assert ended.value.code == 130 and capsys.readouterr().err.strip().splitlines()[-1] == INTERRUPTED


def test_the_table_shows_an_optuna_trial_s_values_rounded(tmp_path):
    """Optuna samples values such as 0.004817508474772369: the table and plot labels show 4 digits, the CSV
    keeps them whole."""
    fake_run(tmp_path, 0, ["trainer.lr=0.004817508474772369", "model.cell=gru"], metrics(3, 1.5))
    fake_run(tmp_path, 1, ["trainer.lr=0.0001", "model.cell=lstm"], metrics(3, 2.5))
    rows = summarize_sweep(tmp_path)
    assert rows[0]["trainer.lr"] == "0.004817508474772369"
    assert "| 0 | 0.004818 | gru | done |" in (tmp_path / "summary.md").read_text()


def test_training_afresh_removes_the_old_run_before_it_keeps_the_new_settings(tmp_path):
    """trainer.resume=false stopped before its first epoch left the old run's metrics and checkpoints under
    the new settings, and the next rerun called the old model finished with them."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("metrics.json", "checkpoints/last.pt", "checkpoints/best.pt", "curves.png"):
        (run / name).write_text("{}")
    check_settings(run, {"model": {"hidden": 256}})
    with pytest.raises(ValueError, match="holds a run with other settings"):
        check_settings(run, {"model": {"hidden": 64}})
    check_settings(run, {"model": {"hidden": 64}}, resume=False)
    assert sorted(p.name for p in run.rglob("*") if p.is_file()) == ["settings.json"]


def test_an_error_an_interrupt_caused_stops_the_run_as_an_interrupt(monkeypatch):
    """Ctrl-C while a module was imported mid-run (matplotlib, for the first curves) came out as "ImportError:
    initialization failed": a failed run, and the sweep went on. Any error after a SIGINT or SIGTERM is now
    the interrupt (status 130 or 143), which ends the sweep."""
    from pipelines import common

    monkeypatch.setattr(common, "_SIGNALLED", [])
    assert common._interrupted(ImportError("initialization failed")) is None
    with pytest.raises(KeyboardInterrupt):
        common._stop(signal.SIGINT, None)
    assert common._interrupted(ImportError("initialization failed")) == 130
    with pytest.raises(common.Terminated):
        common._stop(signal.SIGTERM, None)
    assert common._interrupted(ImportError("initialization failed")) == 143


def _frame_means(frames):
    return frames.mean((1, 2, 3))


def _save_zero(path: str) -> None:
    import numpy as np

    np.save(path, np.zeros(1))


def _decode_and_draw(video: str, out: str) -> tuple[list, list]:
    """In a joblib worker: a video's frame means through the decode workers, and pictures drawn in drawing
    processes."""
    from vidrnn.features.encode import map_frames
    from vidrnn.pictures import draw_each
    from vidrnn.video import Sampling

    means = [m.values.tolist() for m in map_frames([("a", video)], _frame_means, Sampling(num_frames=3), workers=1)]
    return means, draw_each(_save_zero, [(f"{out}/{k}.npy",) for k in range(16)], workers=2)


def test_decode_and_drawing_processes_start_inside_a_joblib_worker(tmp_path):
    """`train -m hydra/launcher=joblib` runs each job in a joblib (loky) worker, whose default way to start a
    process ("loky") could not hand the decode workers their shared array: every run failed with "cannot
    pickle 'mmap.mmap' object" until the features were cached. They now start as Python starts them."""
    joblib = pytest.importorskip("joblib")
    from conftest import write_opencv

    video = write_opencv(tmp_path / "a.avi", 8, "MJPG")
    [(means, drawn)] = joblib.Parallel(n_jobs=2, backend="loky")([joblib.delayed(_decode_and_draw)(str(video),
                                                                                                 str(tmp_path))])
    assert len(means) == 1 and len(means[0]) == 3 and all(v > 0 for v in means[0])
    assert drawn == [None] * 16 and len(list(tmp_path.glob("*.npy"))) == 16


def test_an_interrupt_that_a_finalizer_swallowed_is_raised_again(monkeypatch):
    """Ctrl-C whose handler ran inside a ``__del__`` ("Exception ignored in: <function Group.__del__>"): the
    sweep trained on for minutes. The apps' unraisable hook raises it again in the main thread."""
    from pipelines import common

    class Finalized:
        def __del__(self):
            raise KeyboardInterrupt  # as _stop raises it when the signal lands here

    monkeypatch.setattr(common, "_SIGNALLED", [signal.SIGINT])
    monkeypatch.setattr(common, "_HANDLED", [])
    monkeypatch.setattr(sys, "unraisablehook", common._unraisable)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            Finalized()  # dropped at once: its __del__ raises, Python ignores it, the hook hears of it
            for _ in range(500):  # the interrupt arrives at one of these steps
                time.sleep(0.002)
    finally:
        signal.signal(signal.SIGINT, previous)


def _cache_features(videos: str, cache: str) -> int:
    """In a joblib worker: every video's features through the training cache, as a sweep's run reads them."""
    from vidrnn.features.cache import cached_features
    from vidrnn.models import FrameEncoder
    from vidrnn.video import Sampling

    spec = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 1}
    files = sorted(p.name for p in Path(videos).iterdir())
    feats, _ = cached_features(videos, files, cache_root=cache, encoder_spec=spec, sampling=Sampling(num_frames=2),
                               size=32, encoder=FrameEncoder(**spec), workers=0, progress=False)
    return len(feats)


def test_runs_of_a_parallel_sweep_extract_a_cache_s_features_once(tmp_path):
    """Two runs at once (hydra/launcher=joblib n_jobs=2) on features not cached yet: one extracts, the other
    waits and reads them (both extracted every video: 80 manifest lines for 40 videos)."""
    joblib = pytest.importorskip("joblib")
    from conftest import write_opencv

    (tmp_path / "v").mkdir()
    for k in range(6):
        write_opencv(tmp_path / "v" / f"c{k}.avi", 6, "MJPG")
    found = joblib.Parallel(n_jobs=2, backend="loky")(
        [joblib.delayed(_cache_features)(str(tmp_path / "v"), str(tmp_path / "cache")) for _ in range(2)])
    assert found == [6, 6]
    [manifest] = (tmp_path / "cache").glob("*/manifest.jsonl")
    assert len(manifest.read_text().splitlines()) == 6
