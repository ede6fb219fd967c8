"""kill -9 in the middle of extract, caption and train, kill (SIGTERM) in the middle of count, then the same
command again.

The promise (README): nothing already computed is lost when a run is killed, and rerunning the command
goes on. Each pipeline runs as a user runs it (a subprocess) over a folder whose middle video is slow to
decode; it is killed with SIGKILL as soon as the first video's record is on disk (train: as soon as
``checkpoints/last.pt`` is), so the kill lands with some videos finished and others not. Then the same
command runs again and the tests check: it completes; every file it left parses (temporary files only
ever under hidden temporary names); each video was computed exactly once over both runs (one record line
each, and the rerun says how many were already done); training went on from the epoch in last.pt.

The four scenarios run two at a time (train then count, which uses the trained counter; extract; caption)
in one module fixture, each test looks at one promise.
"""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, pipeline_env, run_pipeline, write_opencv

from vidrnn.features import load_features
from vidrnn.outputs import read_timed_captions
from vidrnn.predict import records_dir
from vidrnn.synth import make_dataset, write_video
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

QUICK = ["video.size=32", "video.num_frames=3", "video.workers=0", "quiet=true"]
TINY_ENCODER = ["encoder.layer=layer1"]
PREDICT = ["batch_size=3", "sheets=false", "report=false"]  # batch of one video's frames: records appear at once
EPOCHS = 8
TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")  # atomic_write's temporary names


@dataclass
class Interrupted:
    """One scenario: the killed run's status and what was on disk right after the kill, then the rerun."""

    name: str
    out: Path  # the folder to check
    killed_status: int
    finished_at_kill: list[str]  # videos with a complete record line when the run was killed (train: epochs)
    rerun: subprocess.CompletedProcess
    log: Path  # the killed run's stdout and stderr
    snapshot: dict  # scenario-specific facts from right after the kill

    def context(self) -> str:
        return (f"\n--- {self.name}: killed run's output:\n{self.log.read_text()[-3000:]}"
                f"\n--- rerun exit {self.rerun.returncode}, stdout:\n{self.rerun.stdout[-3000:]}"
                f"\n--- stderr:\n{self.rerun.stderr[-3000:]}")


# ---------------------------------------------------------------------------------------------- helpers

def _kill_when(name: str, args: list[str], ready, log: Path, timeout: float = 300, sig=signal.SIGKILL) -> int:
    """Start the pipeline, send it ``sig`` as soon as ``ready()`` holds; returns its exit status (-9 for
    SIGKILL)."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"pipelines.{name}", *args], cwd=ROOT, env=pipeline_env(),
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"{name} ended ({proc.returncode}) before it could be killed:\n"
                                     f"{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: nothing finished within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode


def _lines(path: Path, torn: bytes = b"") -> tuple[list[dict], bytes]:
    """The parsed complete lines of a JSONL log, and its unfinished last line. ``torn``: the unfinished
    line a killed writer left, which the next writer ends (readers skip it); any other line must parse."""
    data = path.read_bytes() if path.exists() else b""
    *complete, tail = data.split(b"\n")
    return [json.loads(line) for line in complete if line.strip() and not (torn and line == torn)], tail


def _has_record(path: Path):
    return lambda: path.exists() and b"\n" in path.read_bytes()


def _check_parses(path: Path, torn: bytes = b"") -> None:
    """Read a result file the way its users do; fails on a half-written one."""
    suffix = path.suffix
    if suffix == ".npz":
        z = load_features(path)
        assert np.isfinite(z["features"]).all() and len(z["frame_indices"]) == len(z["features"])
    elif suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif suffix == ".jsonl":
        lines, _ = _lines(path, torn)
        assert all(isinstance(r, dict) for r in lines)
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows and all(len(r) == len(rows[0]) for r in rows)
    elif suffix in (".srt", ".vtt"):
        assert read_timed_captions(path)
    elif suffix == ".pt":
        assert isinstance(torch.load(path, map_location="cpu", weights_only=True), dict)
    elif suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")


def _check_folder(folder: Path, torn: bytes = b"") -> list[str]:
    """Every file under ``folder`` parses, and temporary files are only hidden ``.name.XXXX.tmp`` ones;
    returns the temporary files (a killed run can leave one behind; it is never a result)."""
    temps = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".tmp":
            assert TEMP_NAME.match(path.name), f"temporary file under a result's name: {path}"
            temps.append(path.name)
        else:
            try:
                _check_parses(path, torn)
            except Exception as e:
                raise AssertionError(f"{path} does not parse: {e!r}") from e
    return temps


# -------------------------------------------------------------------------------------------- scenarios

def _videos(root: Path) -> list[str]:
    """Three short clips, a slow one (noise, 1800 frames: decoding takes a while), then two more clips."""
    root.mkdir(parents=True)
    for name in ("a0.mp4", "a1.mp4", "a2.mp4", "z0.mp4", "z1.mp4"):
        write_opencv(root / name, 12, "mp4v")
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    write_video(root / "m_slow.avi", (np.roll(noise, i, 1) for i in range(1800)), 10.0, codec="MJPG")
    return sorted(p.name for p in root.iterdir())


def _predict_scenario(name: str, args: list[str], out: Path, manifest: Path, sig=signal.SIGKILL) -> Interrupted:
    log = out.parent / f"{name}_killed.log"
    status = _kill_when(name, args, _has_record(manifest), log, sig=sig)
    lines, torn = _lines(manifest)
    snapshot = {"temps": _check_folder(out), "mtimes": {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")},
                "torn": torn}
    finished = [r["video"] for r in lines]
    return Interrupted(name, out, status, finished, run_pipeline(name, *args), log, snapshot)


def _extract(videos: Path, out: Path) -> Interrupted:
    args = [f"input_dir={videos}", f"output_dir={out}", "batch_size=3", *QUICK, *TINY_ENCODER]
    return _predict_scenario("extract", args, out, out / "manifest.jsonl")


def _caption(videos: Path, ckpt: Path, out: Path) -> Interrupted:
    args = [f"input_dir={videos}", f"checkpoint={ckpt}", f"output={out}/captions.json", "decode.batch=1",
            f"hydra.run.dir={out}/logs", *QUICK, *PREDICT]
    return _predict_scenario("caption", args, out, records_dir(out / "captions.json") / "manifest.jsonl")


def _count(videos: Path, ckpt: Path, out: Path) -> Interrupted:
    args = [f"input_dir={videos}", f"checkpoint={ckpt}", f"output={out}/counts.csv", "window_s=1", "stride_s=1",
            "plots=false", f"hydra.run.dir={out}/logs", *QUICK, *PREDICT]
    return _predict_scenario("count", args, out, records_dir(out / "counts.csv") / "manifest.jsonl",
                             sig=signal.SIGTERM)  # as a user's kill or a scheduler's preemption


def _train(data: dict, run: Path, cache: Path) -> Interrupted:
    args = ["task=count", f"data.video_dir={data['videos_dir']}", f"data.annotations={data['counts']}",
            f"data.cache_dir={cache}", f"trainer.max_epochs={EPOCHS}", "trainer.patience=0", "model.hidden=16",
            f"hydra.run.dir={run}", *QUICK, *TINY_ENCODER]
    last = run / "checkpoints" / "last.pt"
    log = run.parent / "train_killed.log"
    status = _kill_when("train", args, last.exists, log)
    state = torch.load(last, map_location="cpu", weights_only=True)["state"]
    snapshot = {"temps": _check_folder(run), "epoch": state["epoch"], "history": state["history"]}
    return Interrupted("train", run, status, list(range(1, state["epoch"] + 1)), run_pipeline("train", *args), log,
                       snapshot)


def _caption_checkpoint(data: dict, root: Path) -> Path:
    encoder = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 2}
    train_model("caption", DataConfig(data["videos_dir"], data["captions"], cache_dir=str(root / "cache")),
                ExtractConfig(encoder=encoder, sampling=Sampling(num_frames=3), size=32, workers=0, progress=False),
                ModelConfig("s2vt", {"cell": "gru", "hidden": 16, "embed": 8}), TrainConfig(max_epochs=1),
                out_dir=str(root / "caption_run"))
    return root / "caption_run" / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Interrupted]:
    root = tmp_path_factory.mktemp("interrupts")
    videos = root / "videos"
    names = _videos(videos)
    data = make_dataset(root / "data", num_videos=8, width=48, height=32, num_frames=8, fps=8.0)

    def train_then_count() -> list[Interrupted]:
        trained = _train(data, root / "train_run", root / "cache")
        return [trained, _count(videos, root / "train_run" / "checkpoints" / "best.pt", root / "count")]

    def extract_and_caption() -> list[Interrupted]:
        return [_extract(videos, root / "extract"), _caption(videos, _caption_checkpoint(data, root), root / "caption")]

    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(train_then_count), pool.submit(extract_and_caption)]
        found = {r.name: r for job in jobs for r in job.result()}
    found["videos"] = names
    return found


@pytest.fixture(params=["extract", "caption", "count"])
def predicted(request, runs) -> tuple[Interrupted, list[str]]:
    return runs[request.param], runs["videos"]


# ------------------------------------------------------------------------------------------------ tests

def test_the_kill_landed_in_the_middle(runs):
    """Each run was killed by the signal, with some but not all of its work finished."""
    for name in ("extract", "caption", "count"):
        r = runs[name]
        if name == "count":  # SIGTERM: stopped as Ctrl-C stops a run, with its line, status 128 + 15
            assert r.killed_status == 143 and "interrupted: what was finished is kept" in r.log.read_text(), \
                r.context()
        else:
            assert r.killed_status == -signal.SIGKILL, r.context()
        assert 1 <= len(r.finished_at_kill) < len(runs["videos"]), (r.finished_at_kill, r.context())
    assert runs["train"].killed_status == -signal.SIGKILL
    assert 1 <= runs["train"].snapshot["epoch"] < EPOCHS, runs["train"].context()


def test_rerun_completes(runs):
    for name in ("extract", "caption", "count", "train"):
        r = runs[name]
        assert r.rerun.returncode == 0, r.context()
        assert "Traceback" not in r.rerun.stderr + r.rerun.stdout, r.context()


def test_nothing_is_half_written(runs):
    """After the kill and after the rerun, every file parses; leftover temporary files keep their hidden
    temporary names and the rerun's results never are one."""
    for name in ("extract", "caption", "count", "train"):
        _check_folder(runs[name].out, runs[name].snapshot.get("torn", b""))


def test_no_finished_video_is_computed_again(predicted):
    """Over both runs, each video has exactly one record line (a second line would be a second
    computation), the records finished before the kill are unchanged, and the rerun says it skipped them."""
    r, videos = predicted
    manifest = r.out / "manifest.jsonl" if r.name == "extract" else records_dir(
        r.out / ("captions.json" if r.name == "caption" else "counts.csv")) / "manifest.jsonl"
    lines, tail = _lines(manifest, r.snapshot["torn"])
    computed = [e["video"] for e in lines]
    assert sorted(computed) == videos, (computed, r.context())  # each exactly once
    assert computed[:len(r.finished_at_kill)] == r.finished_at_kill
    skipped, done = len(r.finished_at_kill), len(videos) - len(r.finished_at_kill)
    said = f"{done} extracted, {skipped} already done" if r.name == "extract" else \
        f"{done} video{'' if done == 1 else 's'} done, {skipped} already done"
    assert said in r.rerun.stdout, r.context()
    assert not tail, "the rerun left an unfinished line"
    for path, mtime in r.snapshot["mtimes"].items():  # extract: finished feature files were not rewritten
        assert path.stat().st_mtime_ns == mtime, path


def test_results_hold_every_video(predicted):
    r, videos = predicted
    stems = sorted(Path(v).stem for v in videos)
    if r.name == "extract":
        assert sorted(p.name for p in (r.out / "features").glob("*.npz")) == [v + ".npz" for v in videos]
    elif r.name == "caption":
        rows = json.loads((r.out / "captions.json").read_text())
        assert sorted(row["video_id"] for row in rows) == stems and all(row["caption"] for row in rows)
    else:
        with open(r.out / "counts.csv", newline="") as f:
            assert sorted(row["video_id"] for row in csv.DictReader(f)) == stems
        with open(r.out / "counts_windows.csv", newline="") as f:
            windows = list(csv.DictReader(f))
        assert {row["video_id"] for row in windows} == set(stems)
        assert sum(row["video_id"] == "m_slow" for row in windows) == 180  # 180 s in 1 s windows


def test_training_resumes_from_last_checkpoint(runs):
    """The rerun loads last.pt and trains the remaining epochs: the history goes on from the killed run's,
    unchanged, to the last epoch."""
    r = runs["train"]
    epoch = r.snapshot["epoch"]
    assert re.search(rf"resumed from \S*last\.pt after epoch {epoch}\b", r.rerun.stdout), r.context()
    metrics = json.loads((r.out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert metrics["history"][:epoch] == r.snapshot["history"]
    assert torch.load(r.out / "checkpoints" / "last.pt", weights_only=True)["state"]["epoch"] == EPOCHS
