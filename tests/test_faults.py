"""Bad configuration and environment: each is one line on stderr (``error: ...``, no traceback), exit
status 1, and nothing already written is lost or corrupted.

Faults: a missing or empty input folder, an output path under a regular file (we run as root, so
permissions do not stop writes), a read-only file system and a really full disk (small tmpfs mounts, where
this machine lets us mount), a disk-full write simulated with a file size limit (RLIMIT_FSIZE, SIGXFSZ
ignored: writes fail with EFBIG), an unknown backbone, and device=cuda without a GPU.

Every pipeline run is a subprocess, as a user runs it; the independent ones run two at a time in one
module fixture, and each test checks one fault.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, pipeline_env, run_pipeline
from omegaconf import OmegaConf

from pipelines.common import MIN_FREE_BYTES, RunDirCheck
from vidrnn.checkpoint import CheckpointError, load_checkpoint
from vidrnn.features import load_features
from vidrnn.files import list_videos, require_videos
from vidrnn.outputs import read_csv_rows
from vidrnn.predict import records_dir
from vidrnn.schemas import (CaptionSchema, CountSchema, DemoSchema, EvaluateSchema, ExtractSchema, SummarizeSchema,
                            TrainSchema, validate)
from vidrnn.synth import make_dataset
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

QUICK = ["video.size=32", "video.num_frames=3", "video.workers=0", "quiet=true"]
COUNT = ["plots=false", "sheets=false", "report=false", *QUICK]
# Runs a pipeline module under a file size limit: writes past it fail with EFBIG (SIGXFSZ ignored).
LIMITED = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); sys.argv = sys.argv[2:]; "
           "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def run_limited(fsize: int, name: str, *args: str) -> subprocess.CompletedProcess:
    """``run_pipeline`` under a file size limit of ``fsize`` bytes."""
    return subprocess.run([sys.executable, "-c", LIMITED, str(fsize), f"pipelines.{name}", *args], cwd=ROOT,
                          env=pipeline_env(), capture_output=True, text=True, timeout=600, check=False)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 1, stderr exactly one ``error: ...`` line holding every needle, no traceback anywhere."""
    context = f"\n--- exit {res.returncode}\n--- stdout:\n{res.stdout[-2000:]}\n--- stderr:\n{res.stderr[-3000:]}"
    assert res.returncode == 1, context
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), context
    assert "Traceback" not in res.stdout + res.stderr, context
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def manifest_videos(path: Path) -> list[str]:
    """Videos of the complete lines of a manifest (a write cut off by the fault may leave a torn last line,
    which every reader skips); every complete line must parse."""
    *complete, _ = path.read_bytes().split(b"\n")
    return [json.loads(line)["video"] for line in complete if line.strip()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """Six tiny clips and a count checkpoint trained on them."""
    root = tmp_path_factory.mktemp("faults")
    data = make_dataset(root / "data", num_videos=6, width=48, height=32, num_frames=8, fps=8.0)
    encoder = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 2}
    train_model("count", DataConfig(data["videos_dir"], data["counts"], cache_dir=str(root / "cache")),
                ExtractConfig(encoder=encoder, sampling=Sampling(num_frames=3), size=32, workers=0, progress=False),
                ModelConfig(None, {"hidden": 16}), TrainConfig(max_epochs=1), out_dir=str(root / "run"))
    (root / "empty").mkdir()
    (root / "file.txt").write_text("a regular file\n")
    return {"root": root, "videos": data["videos_dir"], "ckpt": str(root / "run" / "checkpoints" / "best.pt")}


def _disk_full(s: dict) -> dict:
    """count completes once; the same command with windows (so every video is computed again) runs under
    a file size limit that its records reach after a video or two; then once more without the limit."""
    out, root = s["root"] / "disk_full", s["root"]
    args = [f"input_dir={s['videos']}", f"checkpoint={s['ckpt']}", f"output={out}/counts.csv",
            f"hydra.run.dir={out}/logs", *COUNT]
    first = run_pipeline("count", *args)
    manifest = records_dir(out / "counts.csv") / "manifest.jsonl"
    before = {"counts": (out / "counts.csv").read_bytes(), "manifest": manifest.read_bytes()}
    windowed = [*args, "window_s=0.5", "stride_s=0.5"]
    full = run_limited(len(before["manifest"]) * 3 // 2, "count", *windowed)
    after = {"counts": (out / "counts.csv").read_bytes(), "videos": manifest_videos(manifest),
             "manifest": manifest.read_bytes()}
    return {"first": first, "full": full, "before": before, "after": after, "again": run_pipeline("count", *windowed),
            "root": root, "out": out}


@pytest.fixture(scope="module")
def faults(setup) -> dict:
    s = setup
    root, videos, ckpt = s["root"], s["videos"], s["ckpt"]
    count = [f"checkpoint={ckpt}", f"hydra.run.dir={root}/logs", *COUNT]
    labels = shutil.copy(Path(videos).parent / "counts.csv", root / "labels.csv")
    (root / "vidéos").mkdir()
    (root / "vidéos" / "été 1.avi").symlink_to(next(Path(videos).rglob("*.avi")))
    cases = {
        "output_is_labels": lambda: run_pipeline("count", f"input_dir={videos}", "counter=hog", f"labels={labels}",
                                                 f"output={labels}", f"hydra.run.dir={root}/logs", *COUNT),
        "metrics_into_input": lambda: run_pipeline("evaluate", "task=count", f"predictions={labels}",
                                                   f"annotations={labels}", f"output={labels}",
                                                   f"hydra.run.dir={root}/logs"),
        "not_ascii": lambda: run_pipeline("count", f"input_dir={root}/vidéos", "counter=hog",
                                          f"output={root}/été/ü.csv", f"hydra.run.dir={root}/logs", *COUNT),
        "missing_input": lambda: run_pipeline("count", f"input_dir={root}/missing", f"output={root}/c1.csv", *count),
        "empty_input": lambda: run_pipeline("extract", f"input_dir={root}/empty", f"output_dir={root}/e1", *QUICK),
        "output_under_file": lambda: run_pipeline("count", f"input_dir={videos}", f"output={root}/file.txt/c.csv",
                                                  *count),
        "output_dir_under_file": lambda: run_pipeline("extract", f"input_dir={videos}", f"output_dir={root}/file.txt/e",
                                             *QUICK),
        "output_dir_is_file": lambda: run_pipeline("extract", f"input_dir={videos}", f"output_dir={root}/file.txt",
                                                   f"hydra.run.dir={root}/logs_x", *QUICK),
        "unknown_backbone": lambda: run_pipeline("train", "task=count", f"data.video_dir={videos}",
                                        f"data.annotations={Path(videos).parent / 'counts.csv'}",
                                        "encoder.name=nosuchnet", f"hydra.run.dir={root}/t", *QUICK),
        "no_cuda": lambda: run_pipeline("count", f"input_dir={videos}", f"output={root}/c2.csv", "device=cuda", *count),
        "disk_full": lambda: _disk_full(s),
    }
    with ThreadPoolExecutor(2) as pool:
        jobs = {name: pool.submit(case) for name, case in cases.items()}
        return {name: job.result() for name, job in jobs.items()}


# --------------------------------------------------------------------------------- input and output paths

def test_missing_input_dir(faults, setup):
    assert_one_line_error(faults["missing_input"], f"{setup['root']}/missing: input folder does not exist")


def test_empty_input_dir(faults, setup):
    assert_one_line_error(faults["empty_input"], f"{setup['root']}/empty: no video files (.mp4")
    assert not (setup["root"] / "e1" / "manifest.jsonl").exists()


def test_a_folder_of_frames_says_how_to_make_a_video(tmp_path):
    """MOT-Challenge and other recordings come as image files: the error says so, and how to make a video."""
    frames = tmp_path / "MOT17-09" / "img1"
    frames.mkdir(parents=True)
    for i in range(1, 4):
        cv2.imwrite(str(frames / f"{i:06d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"{tmp_path}: no video files (.mp4, .avi, .mov, .mkv, .webm, .m4v, .mpg, .mpeg, .wmv, .flv, .3gp, .ts, "
            ".mts, .m2ts, .vob, .ogv, .asf, .mxf, .mjpeg, .mjpg); "
            "it holds 3 images, e.g. MOT17-09/img1/000001.jpg: a sequence of frames is read as a video once made "
            "into one, e.g. ffmpeg -framerate 25 -i img1/%06d.jpg seq.mp4")):
        require_videos(tmp_path)


def test_hidden_folders_and_macos_resource_files_are_not_searched(tmp_path):
    """macOS's ``._name.mp4`` beside each video (on USB disks and shares) and hidden folders (.git, .Trash,
    caches) hold no videos; a hidden folder given as the input is searched, and a folder or broken link
    named like a video is still listed (so that it is reported)."""
    root = tmp_path / ".videos"
    for name in ("a.mp4", "._a.mp4", "sub/b.mov", "sub/._b.mov", ".git/c.mp4", ".Trash/d.mp4", ".vidrnn_cache/e.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0")
    (root / "folder.mp4").mkdir()
    (root / "gone.mp4").symlink_to(root / "missing.mp4")
    assert list_videos(root) == ["a.mp4", "folder.mp4", "gone.mp4", "sub/b.mov"]


def test_a_linked_folder_is_searched_once(tmp_path):
    """A link to a folder of videos (a disk linked in) is searched as the folder would be; a link back up
    the tree, or a second link to a searched folder, is not searched again (each video is listed once)."""
    (tmp_path / "disk" / "day1").mkdir(parents=True)
    (tmp_path / "disk" / "day1" / "a.mp4").write_bytes(b"\0")
    root = tmp_path / "videos"
    root.mkdir()
    (root / "b.mp4").write_bytes(b"\0")
    (root / "cam").symlink_to(tmp_path / "disk")
    (root / "cam_again").symlink_to(tmp_path / "disk")
    (root / "up").symlink_to(root)
    assert list_videos(root) == ["b.mp4", "cam/day1/a.mp4"]


HOME_PATHS = {TrainSchema: ["data.video_dir", "data.annotations", "data.frame_annotations", "data.splits",
                            "data.cache_dir", "data.features_dir", "encoder.weights"],
              CaptionSchema: ["input_dir", "checkpoint", "output", "references"],
              CountSchema: ["input_dir", "checkpoint", "output", "labels"],
              EvaluateSchema: ["predictions", "annotations", "splits", "output"],
              ExtractSchema: ["input_dir", "output_dir"], SummarizeSchema: ["sweep_dir"], DemoSchema: ["output_dir"]}


@pytest.mark.parametrize("schema", HOME_PATHS, ids=lambda schema: schema.__name__)
def test_paths_may_start_with_the_home_folder(monkeypatch, tmp_path, schema):
    """``~`` in a path key of any app is the user's home folder (``validate``, as each app starts, expands it)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = OmegaConf.structured(schema)
    for key in HOME_PATHS[schema]:
        OmegaConf.update(cfg, key, f"~/{key}")
    validate(cfg, unset_ok=True)
    assert {key: OmegaConf.select(cfg, key) for key in HOME_PATHS[schema]} == {
        key: f"{tmp_path}/{key}" for key in HOME_PATHS[schema]}


def test_a_run_dir_is_a_checkpoint_and_paths_may_start_with_home(setup):
    """checkpoint= a train run's folder (or its checkpoints folder) uses its checkpoints/best.pt; another
    folder is one line saying where a run writes it. Command-line paths may start with ``~``, as a shell that
    expands no ``~`` after ``=`` (sh, dash, cron) passes them, bare or in Hydra's quotes (bare, it was Hydra's
    "LexerNoViableAltException" in four lines)."""
    root = setup["root"]
    assert load_checkpoint(root / "run" / "checkpoints", task="count")["task"] == "count"
    with pytest.raises(CheckpointError, match=re.escape(f"{root}/empty: a folder, not a checkpoint file (a training "
                                                        "run writes <run dir>/checkpoints/best.pt)")):
        load_checkpoint(root / "empty")
    videos = Path(setup["videos"]).relative_to(root)
    res = subprocess.run([sys.executable, "-m", "pipelines.count", f"input_dir=~/{videos}", "checkpoint=~/run",
                          "output='~/home/counts.csv'", f"hydra.run.dir={root}/logs_home", *COUNT], cwd=ROOT,
                         env={**pipeline_env(), "HOME": str(root)}, capture_output=True, text=True, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert len((root / "home" / "counts.csv").read_text().splitlines()) == 7


def test_output_under_a_regular_file(faults, setup):
    """The output's folder cannot be made: named, before any video is read."""
    file = setup["root"] / "file.txt"
    assert_one_line_error(faults["output_under_file"], f"{file}/c_records: not a folder (part of the path is a file)")
    assert_one_line_error(faults["output_dir_under_file"], f"{file}/e/logs/", "not a folder")
    assert_one_line_error(faults["output_dir_is_file"], f"{file}: exists and is not a folder")
    assert file.read_text() == "a regular file\n"


def test_an_output_that_is_an_input_file_is_refused_and_the_file_kept(faults, setup):
    """An output named as one of the run's input files (``output=`` pasted from ``labels=``) would destroy it."""
    labels = setup["root"] / "labels.csv"
    assert_one_line_error(faults["output_is_labels"], f"{labels}: the output is the labels file too")
    assert_one_line_error(faults["metrics_into_input"], f"{labels}: metrics output must end in .json (not .csv)")
    assert labels.read_bytes() == (Path(setup["videos"]).parent / "counts.csv").read_bytes()


def test_paths_beyond_ascii_need_no_quotes(faults, setup):
    """Hydra's grammar refuses letters beyond ASCII unquoted; the apps quote such a value for it."""
    res = faults["not_ascii"]
    assert res.returncode == 0, res.stderr
    assert [r["video_id"] for r in read_csv_rows(setup["root"] / "été" / "ü.csv")] == ["été 1"]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of the given size (bytes) at a new folder; skips where this machine does not allow it."""
    mounted = []

    def mount(size: int, name: str = "mnt") -> Path:
        point = tmp_path / name
        point.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True,
                             text=True, check=False)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def test_read_only_output(tmpfs, setup):
    """A read-only file system: one line naming the folder; the file already there is untouched."""
    ro = tmpfs(1 << 20)
    (ro / "counts.csv").write_text("video_id,count\nold,1.0\n")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    res = run_pipeline("count", f"input_dir={setup['videos']}", f"checkpoint={setup['ckpt']}",
                       f"output={ro}/counts.csv", f"hydra.run.dir={setup['root']}/logs", *COUNT)
    assert_one_line_error(res, f"{ro}/counts_records: read-only file system")
    assert (ro / "counts.csv").read_text() == "video_id,count\nold,1.0\n"


# ------------------------------------------------------------------------------------------- disk full

def test_disk_full_is_one_line_and_loses_nothing(faults):
    """A write past the file size limit (EFBIG, as on a full disk): one line naming the file, the counts
    file from the earlier complete run is byte for byte the same, the records written before the fault
    stay, and the same command, once there is room, does only the videos that were not finished."""
    f = faults["disk_full"]
    assert f["first"].returncode == 0, f["first"].stderr
    assert_one_line_error(f["full"], "counts_records/manifest.jsonl: file too large",
                          "what was finished is kept: make room and run the same command again")
    assert f["after"]["counts"] == f["before"]["counts"]
    assert f["after"]["manifest"].startswith(f["before"]["manifest"])  # earlier records untouched
    recorded = len(f["after"]["videos"]) - 6  # windowed videos recorded before the limit was hit
    assert 1 <= recorded < 6, f["after"]["videos"]
    again = f["again"]
    assert again.returncode == 0, again.stderr
    done = 6 - recorded
    assert f"count: {done} video{'' if done == 1 else 's'} done, {recorded} already done, 0 failed" in again.stdout
    assert (f["out"] / "counts_windows.csv").read_text().count("\n") > 6


def test_full_disk_is_one_line_and_loses_nothing(tmpfs, setup):
    """A really full disk (ENOSPC on a small tmpfs) while features are written: one line, every feature
    file in the manifest loads; after making room the same command does only the rest. A disk that is
    already full stops a pipeline before Hydra writes anything."""
    mnt = tmpfs(4 << 20)
    filler = mnt / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(mnt).free - MIN_FREE_BYTES - (64 << 10)))
    args = [f"input_dir={setup['videos']}", f"output_dir={mnt}/feats", "video.num_frames=32", "encoder.layer=layer1",
            "encoder.pooling=grid", "encoder.grid=8", "dtype=float32", "video.size=32", "video.workers=0",
            "quiet=true"]  # features of 512 KiB a video
    res = run_pipeline("extract", *args)
    assert_one_line_error(res, f"{mnt}/feats/", "no space left on the device; what was finished is kept")
    done = manifest_videos(mnt / "feats" / "manifest.jsonl")
    assert 1 <= len(done) < 6, done
    for video in done:
        assert load_features(mnt / "feats" / "features" / f"{video}.npz")["features"].shape[0] == 32

    with pytest.raises(SystemExit) as stop:  # under MIN_FREE_BYTES left: refused before Hydra writes
        RunDirCheck().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(mnt / "logs")}}}))
    assert stop.value.code == 1

    filler.unlink()
    again = run_pipeline("extract", *args)
    assert again.returncode == 0, again.stderr
    assert f"{6 - len(done)} extracted, {len(done)} already done, 0 failed" in again.stdout


# ------------------------------------------------------------------------------------ configuration

def test_unknown_backbone(faults):
    assert_one_line_error(faults["unknown_backbone"], "unknown encoder 'nosuchnet'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(faults):
    assert_one_line_error(faults["no_cuda"], "device=cuda was asked for, but no CUDA GPU is available")


def test_a_gpu_that_is_not_there_is_named_as_asked_for(monkeypatch):
    """The device as the user wrote it, and what the machine has (torch's own words name neither the key
    nor the GPUs there are)."""
    from vidrnn.device import resolve_device
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=re.escape("device=mps was asked for, but this machine has no Apple GPU")):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=re.escape("device=cuda:1 was asked for, but this machine has 1 CUDA GPU "
                                                      "(cuda:0)")):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(RuntimeError, match=re.escape("has 4 CUDA GPUs (cuda:0 to cuda:3)")):
        resolve_device("cuda:4")
    assert resolve_device("cuda:3") == torch.device("cuda:3")


def test_a_full_disk_that_names_no_file_names_the_temporary_folder(monkeypatch):
    """A full TMPDIR (where long videos' features are spooled) raised `[Errno 28] No space left on device`
    naming no file, nor TMPDIR, nor what to do."""
    import errno
    import tempfile

    from pipelines.common import error_line

    monkeypatch.setattr(tempfile, "tempdir", "/scratch/tmp")
    assert error_line(OSError(errno.ENOSPC, "No space left on device")) == (
        "the output or the temporary folder /scratch/tmp (TMPDIR): no space left on the device; what was finished "
        "is kept: make room and run the same command again")
    assert error_line(OSError(errno.EACCES, "Permission denied")) == "[Errno 13] Permission denied"
