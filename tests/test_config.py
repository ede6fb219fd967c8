"""Config layout: groups, experiments and searches compose; schemas stop bad keys, types and values early."""
from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_pipeline
from hydra import compose, initialize
from omegaconf import DictConfig, OmegaConf

from vidrnn.schemas import SCHEMAS, unknown_key, validate
from vidrnn.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (ROOT / "conf/hparams_search").glob("*.yaml"))
LAUNCHERS = {"joblib": "hydra_plugins.hydra_joblib_launcher", "slurm": "hydra_plugins.hydra_submitit_launcher"}


def compose_app(app: str, *overrides: str, hydra: bool = False) -> DictConfig:
    with initialize(config_path="../conf", version_base="1.3"):
        return compose(app, overrides=list(overrides), return_hydra_config=hydra)


def leaves(node: DictConfig, prefix: str = ""):
    """(dotted key, value) of every leaf of a config."""
    for key, value in node.items_ex(resolve=False):
        if isinstance(value, DictConfig):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_train_defaults_are_the_measured_ones():
    cfg = compose_app("train")
    assert OmegaConf.get_type(cfg).__name__ == "TrainSchema"
    expected = {"task": "caption", "device": "auto", "encoder.name": "resnet18", "encoder.weights": None,
                "encoder.layer": "layer3", "encoder.pooling": "grid", "encoder.grid": 2, "video.num_frames": 8,
                "video.size": 112, "video.sampling": "uniform", "model.cell": "lstm", "model.hidden": 256,
                "model.layers": 1, "model.dropout": 0.3, "model.caption.kind": "attention", "model.caption.embed": 128,
                "model.count.loss": "huber", "trainer.max_epochs": 40, "trainer.batch_size": 32, "trainer.lr": 2e-3,
                "trainer.clip_grad_norm": 5.0, "trainer.scheduler": "cosine", "trainer.patience": 10,
                "data.cache_dir": ".vidrnn_cache", "data.val_fraction": 0.15}
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected
    assert OmegaConf.is_missing(cfg.data, "video_dir") and OmegaConf.is_missing(cfg.data, "annotations")
    run_dir = compose_app("train", "task=count", hydra=True).hydra.run.dir
    assert run_dir.startswith("outputs/count/")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_its_settings_win(name):
    own = OmegaConf.load(ROOT / f"conf/experiment/{name}.yaml")
    cfg = compose_app("train", f"experiment={name}", hydra=True)
    for key, value in leaves(own):
        if key != "defaults" and not key.startswith("hydra."):
            assert OmegaConf.select(cfg, key) == value, key
    for entry in own.get("defaults", []):  # "override /group: option"
        for group, option in entry.items():
            assert cfg.hydra.runtime.choices[group.split()[-1].lstrip("/")] == option
    assert cfg.task in ("caption", "count") and cfg.hydra.runtime.choices.experiment == name
    validate(compose_app("train", f"experiment={name}", "data.video_dir=v", "data.annotations=a"))  # in range


@pytest.mark.parametrize("app", sorted(SCHEMAS))
def test_every_key_of_every_app_passes_the_command_line_check(app):
    """The check that refuses a misspelt key before Hydra starts knows every key the app's config has
    (nested ones, and those a schema marks Optional), and refuses a near miss of each."""
    keys = [key for key, _ in leaves(compose_app(app))]
    assert keys and all(unknown_key(app, key) is None for key in keys)
    assert all(unknown_key(app, key + "x").startswith(f"vidrnn {app} has no key {key}x ") for key in keys)


def test_experiments_exist_for_both_tasks():
    tasks = {compose_app("train", f"experiment={name}").task for name in EXPERIMENTS}
    assert tasks == {"caption", "count"}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_with_the_launchers(experiment, launcher):
    pytest.importorskip(LAUNCHERS[launcher])
    cfg = compose_app("train", f"experiment={experiment}", f"hydra/launcher={launcher}", hydra=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher" if launcher == "joblib" else "SlurmLauncher")
    assert cfg.hydra.callbacks.summarize._target_ == "vidrnn.sweeps.SummarizeCallback"


@pytest.mark.parametrize("search, task, direction", [("caption_optuna", "caption", "maximize"),
                                                     ("count_optuna", "count", "minimize")])
def test_optuna_searches_compose(search, task, direction):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    assert search in SEARCHES
    cfg = compose_app("train", f"experiment={task}_synthetic", f"hparams_search={search}", "hydra/launcher=joblib",
                      hydra=True)
    assert cfg.task == task and cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == direction and cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    for key in cfg.hydra.sweeper.params:  # every searched key is a key of the train config
        assert OmegaConf.select(cfg, key, default="absent") != "absent", key


@pytest.mark.parametrize("app", sorted(SCHEMAS))
def test_every_app_config_matches_its_schema(app):
    cfg = compose_app(app)
    assert OmegaConf.get_type(cfg) is SCHEMAS[app]


@pytest.mark.parametrize("overrides, message", [
    ([], "data.video_dir is not set: add data.video_dir=..."),
    (["data.video_dir=v", "data.annotations=a", "+model.hiden=3"],
     "there is no key model.hiden (did you mean model.hidden?); --help lists them all"),
    (["data.video_dir=v", "data.annotations=a", "trainer.scheduler=step"],
     "trainer.scheduler must be one of cosine | plateau | none, not 'step'"),
    (["data.video_dir=v", "data.annotations=a", "device=gpu"],
     "device must be one of auto | cpu | cuda | cuda:N | mps, not 'gpu'"),
    (["data.video_dir=v", "data.annotations=a", "trainer.lr=0"], "trainer.lr must be > 0, not 0.0"),
    (["data.video_dir=v", "data.annotations=a", "model.dropout=1"], "model.dropout must be in [0, 1), not 1.0"),
    (["data.video_dir=v", "data.annotations=a", "video.num_frames=0"], "video.num_frames must be >= 1, not 0"),
    (["data.video_dir=v", "data.annotations=a", "data.time_split=1"], "data.time_split must be in (0, 1), not 1.0"),
    (["data.video_dir=v", "data.annotations=a", "video.workers=-1"], "video.workers must be one of auto | N, not '-1'"),
    (["data.video_dir=v", "data.annotations=a", "video.workers=many"],
     "video.workers must be one of auto | N, not 'many'"),
])
def test_validate_names_the_bad_key(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate(compose_app("train", *overrides))
    validate(compose_app("train", "data.video_dir=v", "data.annotations=a", "device=cuda:1", "task=count",
                         "trainer.clip_grad_norm=null", "data.time_split=0.5", "model.dropout=0"))


def test_decode_workers_auto_is_one_per_usable_cpu(monkeypatch):
    """``video.workers=auto`` (the default) takes one decode process per CPU this process may use, at most
    16; a number is taken as given."""
    from vidrnn import device

    assert compose_app("extract", "input_dir=i", "output_dir=o").video.workers == "auto"
    for cpus, expected in [(1, 1), (2, 2), (12, 12), (64, 16)]:
        monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert device.decode_workers("auto") == expected
    assert device.decode_workers(compose_app("extract", "input_dir=i", "output_dir=o", "video.workers=0")
                                 .video.workers) == 0
    assert device.decode_workers(3) == 3


def test_training_data_stays_in_host_memory_where_it_would_crowd_the_gpu(monkeypatch):
    """The frames of a set trained end to end go to the GPU only where they take at most half its free
    memory; otherwise each batch goes over on its own."""
    import torch

    from vidrnn.device import resident

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 10**6))  # 1000 bytes free
    moves = []

    def to(self, *args, **kwargs):  # no GPU here: record where the tensor was sent, hand back a marker
        moves.append(torch.device(args[0] if args else kwargs["device"]))
        return "moved"

    monkeypatch.setattr(torch.Tensor, "to", to)
    frames = torch.zeros(501, dtype=torch.uint8)  # more than half of 1000 bytes: stays in host memory
    assert resident(frames, torch.device("cuda")) is frames
    assert moves == []
    fits = torch.zeros(500, dtype=torch.uint8)  # exactly half: goes to the GPU
    assert resident(fits, torch.device("cuda")) == "moved"
    assert moves == [torch.device("cuda")]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4000, 10**6))
    assert resident(frames, torch.device("cuda")) == "moved"  # the same frames fit once more is free
    assert moves == [torch.device("cuda")] * 2
    assert resident(frames, torch.device("cpu")) == "moved"  # no GPU memory to weigh for the CPU
    assert moves[-1] == torch.device("cpu")


@pytest.mark.parametrize("app, overrides, message", [
    ("caption", ["decode.beam=0"], "decode.beam must be >= 1, not 0"),
    ("caption", ["window.stride_s=-2"], "window.stride_s must be > 0, not -2.0"),
    ("count", ["window_s=0"], "window_s must be > 0, not 0.0"),
    ("extract", ["batch_size=0"], "batch_size must be >= 1, not 0"),
])
def test_numbers_out_of_range_are_named(app, overrides, message):
    required = {"caption": ["checkpoint=c"], "count": [], "extract": ["output_dir=o"]}[app]
    with pytest.raises(ValueError, match=re.escape(message)):
        validate(compose_app(app, "input_dir=i", *required, *overrides))
    validate(compose_app(app, "input_dir=i", *required))  # the shipped defaults are in range


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("config")
    return root, make_dataset(root / "data", num_videos=12, width=64, height=48, num_frames=8, fps=8.0)


def tiny_args(data: dict, cache: Path) -> list[str]:
    return [f"data.video_dir={data['videos_dir']}", f"data.annotations={data['counts']}",
            f"data.frame_annotations={data['frame_counts']}", f"data.cache_dir={cache}", "video.size=32",
            "video.num_frames=3", "encoder.layer=layer1", "trainer.max_epochs=2", "video.workers=0", "quiet=true"]


@pytest.mark.parametrize("bad, says", [
    ("trainer.max_epochs=abc", ["error: trainer.max_epochs must be a whole number, not 'abc'"]),
    ("trainer.lr=fast", ["error: trainer.lr must be a number, not 'fast'"]),
    ("trainer.amp=maybe", ["error: trainer.amp must be true or false, not 'maybe'"]),
    ("video=smal", ["error: video has no 'smal': choose one of default, small"]),
    ("model.hidden=1.5", ["error: model.hidden must be a whole number, not '1.5'"]),
    ("model.hiden=3", ["error: vidrnn train has no key model.hiden (did you mean model.hidden?); --help lists them"]),
    ("+model.hiden=3", ["error: vidrnn train has no key model.hiden (did you mean model.hidden?); --help lists them"]),
    ("evaluate.x=3", ["error: vidrnn train has no key evaluate.x (its keys here: task, device, seed, quiet, "]),
    ("model.cell=grux", ["error: model.cell must be one of lstm | gru | rnn, not 'grux'"]),
    ("model.hidden=8,16", ["error: model.hidden=8,16 lists several values: add -m to run a job for each"]),
    ("trainer.max_epochs={a:1}", ["error: trainer.max_epochs takes one value, not a mapping"]),
    ("--trainer.max_epochs=3", ["error: --trainer.max_epochs=3: write trainer.max_epochs=3"]),
    ("trainer.max_epochs", ["error: cannot read 'trainer.max_epochs': write key=value"]),
    ("data.cache_dir=", ["error: data.cache_dir is empty: give a file or folder"]),  # (an unset shell variable)
])
def test_a_bad_key_type_or_value_stops_the_app_before_any_work(tiny, tmp_path, bad, says):
    data = tiny[1]
    args = ["experiment=count_synthetic", *tiny_args(data, tmp_path / "cache"), f"hydra.run.dir={tmp_path / 'run'}",
            bad]
    res = run_pipeline("train", *args)
    assert res.returncode == 1 and res.stdout == ""
    assert all(s in res.stderr for s in says) and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= (1 if says[0].startswith("error:") else 8)  # Hydra's: <= 8
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_the_command_line_is_read_before_hydra_reads_it(monkeypatch):
    """Values Hydra's grammar refuses unquoted (``~``, letters beyond ASCII) are quoted for it, each of a simple
    sweep's values alone (Hydra's own folders get ``~`` expanded); its options go last (its argparse takes no
    key=value after one), each with its value; every value of a sweep's list is checked as a single value is;
    a wrong one is one line naming the key."""
    from pipelines.common import _command_line
    monkeypatch.setenv("HOME", "/home/me")
    assert _command_line("count", ["input_dir=~/v", "-m", "output=été/c.csv", "window_s=1,2", "labels=null"]) == [
        "input_dir='~/v'", "output='été/c.csv'", "window_s=1,2", "labels=null", "-m"]
    assert _command_line("caption", ["--multirun", "input_dir=vidéos/a,vidéos/b", "hydra.run.dir=~/logs"]) == [
        "input_dir='vidéos/a','vidéos/b'", "hydra.run.dir=/home/me/logs", "--multirun"]
    assert _command_line("train", ["--cfg", "job", "video.max_frames=8,null", "-m", "seed=1", "--info"]) == [
        "video.max_frames=8,null", "seed=1", "--cfg", "job", "-m", "--info"]
    kept = [("train", ["--config-dir", "/c=d", "-cn", "x"]), ("train", ["-sc", "install=bash"]),
            ("train", ["--multi", "seed=1,2"]), ("train", ["model.caption={kind:s2vt}"]),
            ("extract", ["shard={index:0,count:2}"]), ("train", ["-m", "seed=${oc.env:SEED},1", "quiet=true,y"]),
            ("extract", ["-m", "extensions=[.mp4],[.avi]"]), ("train", ["hydra.mode=MULTIRUN", "seed=1,2"])]
    for app, args in kept:  # as Hydra reads them
        assert sorted(_command_line(app, args)) == sorted(args)
    for app, args, says in [
        ("train", ["-m", "trainer.lr=0.01,abc"], "trainer.lr must be a number, not 'abc'"),
        ("train", ["-m", "model.hidden=8,null"], "model.hidden cannot be null: give a value"),
        ("count", ["output=null"], "output cannot be null: give a value"),
        ("count", ["window_s=[1,2]"], "window_s takes one value, not a list"),
        ("extract", ["extensions=.mp4"], "extensions takes a list: extensions=[.mp4]"),
        ("extract", ["extensions=.mp4,.avi"], "add -m to run a job for each (a sweep), or write them as one list: "
                                              "extensions=[.mp4,.avi]"),
        ("train", ["++seed=1,2"], "++seed=1,2 lists several values: add -m to run a job for each (a sweep)"),
        ("count", ["input_dir=it's"], "cannot read \"input_dir=it's\""),
        ("count", ["input_dir=choice(/é,/ü)", "-m"], "cannot read 'input_dir=choice(/é,/ü)'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            _command_line(app, args)


@pytest.mark.parametrize("task, bad, says", [
    ("caption", ["model.caption.kind=s2vt", "model.caption.per_cell=true"],
     "error: model.caption.per_cell needs model.caption.kind=attention, not 's2vt'"),
    ("count", ["model.count.per_cell=true", "encoder.pooling=avg"],
     "error: model.count.per_cell needs encoder.pooling=grid (cells to read), not 'avg'"),
])
def test_per_cell_settings_that_cannot_work_stop_before_any_video_is_read(tiny, tmp_path, task, bad, says):
    data = tiny[1]
    args = [*tiny_args(data, tmp_path / "cache"), f"hydra.run.dir={tmp_path / 'run'}", f"task={task}", *bad]
    if task == "caption":
        args = [a.replace(data["counts"], data["captions"]) for a in args if "frame_annotations" not in a]
    res = run_pipeline("train", *args)
    assert res.returncode == 1 and says in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "cache").exists()  # nothing extracted


@pytest.mark.slow
def test_optuna_search_runs_trials_and_writes_the_summary(tiny):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    root, data = tiny
    sweep = root / "optuna"
    args = ["-m", "hparams_search=count_optuna", "experiment=count_synthetic", *tiny_args(data, root / "cache"),
            "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"]
    res = run_pipeline("train", *args)
    assert res.returncode == 0, res.stderr
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["status"], r["epochs"]) for r in rows] == [("0", "done", "2"), ("1", "done", "2")]
    assert all(r["model.cell"] in ("lstm", "gru", "rnn") and float(r["trainer.lr"]) > 0 for r in rows)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == min(float(r["best.MAE"]) for r in rows)  # the returned metric, minimised
    assert set(best.best_params) == {"model.cell", "model.hidden", "model.dropout", "model.count.loss", "trainer.lr"}

    res = run_pipeline("train", *args)  # the seeded sampler asks for the same trials: both are skipped
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("already finished") == 2


@pytest.mark.slow
def test_optuna_search_goes_on_past_a_failed_trial(tiny):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    root, data = tiny
    sweep = root / "optuna_failing"
    res = run_pipeline("train", "-m", "hparams_search=count_optuna", "experiment=count_synthetic",
                       *tiny_args(data, root / "cache"), "hydra.sweeper.n_trials=3", "model.cell=choice(gru,bogus)",
                       f"hydra.sweep.dir={sweep}")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr  # 2: some runs failed
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model.cell"], r["status"]) for r in rows] == [("bogus", "failed"), ("gru", "done"), ("gru", "done")]
    assert "model.cell must be one of lstm | gru | rnn, not 'bogus'" in rows[0]["error"]
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: failed runs of the sweep: 0 (each run dir under {sweep} has its error in error.txt)")
    best = OmegaConf.load(sweep / "optimization_results.yaml")  # from the trials that finished
    assert best.best_params["model.cell"] == "gru"
    assert best.best_value == min(float(r["best.MAE"]) for r in rows[1:])


@pytest.mark.parametrize("case", ["negative", "no validation"])
def test_an_optuna_search_whose_every_trial_fails_ends_in_one_line(tiny, tmp_path, case):
    """Optuna ends a search without a finished trial in "No trials are completed yet" (a traceback): the
    sweep ends as any sweep with failed runs does, after its last trial. Without validation videos a trial
    has no objective: each says so (each trained, and Optuna took their None for a failure)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    data = tiny[1]
    sweep, labels = tmp_path / "sweep", tmp_path / "labels.csv"
    if case == "negative":
        labels.write_text("video_id,count\nvid0000,-1\n")  # read by every trial, refused by every trial
        says = f"{labels}:2: count -1 is negative"
    else:
        labels.write_text(Path(data["counts"]).read_text().replace(",validate\n", ",train\n"))
        says = ("the Optuna search optimises the best validation MAE, and no video is for validation: give a "
                "validation split in the annotations or data.splits, or hold out training videos with "
                "data.val_fraction > 0")
    args = [a for a in tiny_args(data, tmp_path / "cache") if not a.startswith("data.annotations=")]
    res = run_pipeline("train", "-m", "hparams_search=count_optuna", "task=count", *args, "data.val_fraction=0",
                       f"data.annotations={labels}", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "No trials" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: failed runs of the sweep: 0, 1 (each run dir under {sweep} has its error in error.txt)")
    assert (sweep / "1" / "error.txt").read_text() == f"{says}\n"


@pytest.mark.parametrize("bad, says", [
    ("data.video_dir={nowhere}", "data.video_dir={nowhere}: no such folder"),
    ("encoder.grid=0", "encoder.grid must be >= 1, not 0"),  # the same error from every run
])
def test_a_sweep_over_missing_data_or_bad_shared_settings_stops_before_any_run(tiny, tmp_path, bad, says):
    data = tiny[1]
    sweep = tmp_path / "sweep"
    bad, says = (text.format(nowhere=tmp_path / "nowhere") for text in (bad, says))
    args = [a for a in tiny_args(data, tmp_path / "cache") if a.split("=")[0] != bad.split("=")[0]]
    res = run_pipeline("train", "-m", "task=count", *args, bad, "model.hidden=8,16", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: {says}"
    assert not list(sweep.glob("*/.hydra"))  # no run started


@pytest.mark.parametrize("name, text, says", [
    ("other.csv", "video_id,caption\nclip_a,a cat sits\nclip_b,a dog runs\n",
     "none of the 2 annotated videos ('clip_a', 'clip_b') has a file under {videos}: a video_id names a file by "
     "its stem or its relative path without extension"),
    ("empty.json", '{"videos": [], "sentences": []}', "{annotations}: no annotated videos"),
])
def test_annotations_that_name_no_video_file_are_one_line(tiny, tmp_path, name, text, says):
    data = tiny[1]
    annotations = tmp_path / name
    annotations.write_text(text)
    res = run_pipeline("train", "task=caption", f"data.video_dir={data['videos_dir']}",
                       f"data.annotations={annotations}", f"data.cache_dir={tmp_path / 'cache'}",
                       f"hydra.run.dir={tmp_path / 'run'}", "quiet=true")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == "error: " + says.format(videos=data["videos_dir"],
                                                                          annotations=annotations)
    assert not (tmp_path / "cache").exists()


def test_help_says_what_each_pipeline_does_and_how_to_call_it():
    """`vidrnn --help` lists every pipeline with a line on what it does; `vidrnn NAME --help` starts with
    that line and a usage example, then the keys (the config groups only where they are for that app)."""
    import subprocess
    import sys

    from conftest import pipeline_env

    from vidrnn.cli import available

    def vidrnn(*args):
        cmd = [sys.executable, "-c", "import sys; from vidrnn.cli import main; sys.argv[0] = 'vidrnn'; main()", *args]
        return subprocess.run(cmd, cwd=ROOT, env=pipeline_env(), capture_output=True, text=True, timeout=120)

    apps = [("caption", "usage: vidrnn caption input_dir=VIDEOS checkpoint=", "\ninput_dir: ???\n", False),
            ("train", "usage: vidrnn train task=caption data.video_dir=VIDEOS", "\n  video_dir: ???\n", True),
            ("gradient_flow", "usage: vidrnn gradient_flow -m", "\n  gate_bias: 2.0\n", False)]
    with ThreadPoolExecutor(2) as pool:  # two at a time: each is an interpreter's start
        listing, version, *helps = pool.map(lambda args: vidrnn(*args), [("--help",), ("--version",)]
                                            + [(a[0], "--help") for a in apps])
    assert listing.returncode == 0, listing.stderr
    assert (version.returncode, version.stdout) == (0, "vidrnn 0.1.0\n"), version.stderr
    described = dict(re.findall(r"^  (\w+) +(\S.*)$", listing.stdout, re.M))
    assert sorted(described) == available() and all(len(text) > 20 for text in described.values())
    for (name, example, key, groups), res in zip(apps, helps):
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0] == f"vidrnn {name}: {described[name]}" and lines[1].startswith(example)
        assert key in res.stdout and ("== Configuration groups ==" in res.stdout) == groups


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`vidrnn ... | head -1`: once the reader has gone, the command stops with the shell tools' status 141
    and no traceback; a job says on stderr that it stopped and that what it finished is kept, and its
    results are there (evaluate writes metrics.json before it prints the scores)."""
    import os
    import subprocess
    import sys

    from conftest import pipeline_env

    (tmp_path / "pred.csv").write_text("video_id,count\na,1\nb,3\n")
    (tmp_path / "truth.csv").write_text("video_id,count\na,2\nb,3\n")
    commands = [["--help"], ["evaluate", "task=count", f"predictions={tmp_path / 'pred.csv'}",
                             f"annotations={tmp_path / 'truth.csv'}", f"output={tmp_path / 'metrics.json'}",
                             f"hydra.run.dir={tmp_path / 'logs'}"]]
    for args in commands:
        read, write = os.pipe()
        os.close(read)  # the reader has gone before the first line
        cmd = [sys.executable, "-c", "import sys; from vidrnn.cli import main; sys.argv[0] = 'vidrnn'; main()", *args]
        res = subprocess.run(cmd, cwd=ROOT, env=pipeline_env(), stdout=write, stderr=subprocess.PIPE, text=True,
                             timeout=120)
        os.close(write)
        assert res.returncode == 141 and "Traceback" not in res.stderr and "Error" not in res.stderr, res.stderr
        if args[0] == "evaluate":
            assert res.stderr.strip().splitlines()[-1].startswith("stopped: the pipe it printed to was closed")
            assert json.loads((tmp_path / "metrics.json").read_text())["MAE"] == 0.5
        else:
            assert res.stderr == ""


def test_an_installed_wheel_has_the_configs(tmp_path):
    """`pip install vidrnn` (not -e): the wheel holds conf/ as pipelines/conf, so every command finds its
    config from any folder (the wheel held none: every command, `vidrnn` alone too, ended in a traceback)."""
    import os
    import shutil
    import subprocess
    import sys

    pytest.importorskip("setuptools")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "vidrnn", "pipelines", "conf"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")}
                                            if copy is shutil.copytree else {}))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    [wheel] = (tmp_path / "wheel").glob("vidrnn-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    shipped = sorted(p.relative_to(site / "pipelines/conf") for p in (site / "pipelines/conf").rglob("*.yaml"))
    assert shipped == sorted(p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-m", "vidrnn", "evaluate", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("vidrnn evaluate: ") and "Traceback" not in res.stderr


def test_ctrl_c_while_a_pipeline_is_imported_is_one_line(monkeypatch, capsys):
    """Ctrl-C in the seconds that torch and the rest are imported, before an app handles interrupts: one line
    and status 130 (it was a 40 to 114 line traceback)."""
    import importlib
    import sys

    from vidrnn import cli

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["vidrnn", "evaluate", "--help"])
    monkeypatch.setattr(importlib, "import_module", interrupted)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130 and capsys.readouterr().err == "interrupted\n"
