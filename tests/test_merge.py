"""Shards that merge: caption and count split a folder over two processes (a SLURM array's variables)
that share one output, and the files they leave are the files one process writes."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_pipeline

from vidrnn.pictures import NOTES, load_notes
from vidrnn.predict import records_dir
from vidrnn.synth import make_dataset
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder of 7 clips and a one-epoch captioner and counter (what they say does not matter here)."""
    root = tmp_path_factory.mktemp("merge")
    data = make_dataset(root / "data", num_videos=7, width=64, height=48, num_frames=16, fps=8.0)
    encoder = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 1}
    extract = ExtractConfig(encoder=encoder, sampling=Sampling(num_frames=3), size=32, workers=0, progress=False)
    cache = str(root / "cache")
    for task, labels, model in (("caption", data["captions"], ModelConfig("s2vt", {"cell": "gru", "hidden": 16})),
                                ("count", data["counts"], ModelConfig(None, {"cell": "gru", "hidden": 16}))):
        train_model(task, DataConfig(data["videos_dir"], labels, cache_dir=cache), extract, model,
                    TrainConfig(max_epochs=1, patience=0), out_dir=str(root / task), batch_size=4)
    return root, data


def shards(name: str, count: int, *args: str) -> None:
    """``count`` processes of pipeline ``name`` at once, each told its shard by SLURM array variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "VIDRNN_DEBUG")}
    procs = [subprocess.Popen([sys.executable, "-m", f"pipelines.{name}", *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "PYTHONPATH": str(ROOT), "SLURM_ARRAY_TASK_COUNT": str(count),
                                   "SLURM_ARRAY_TASK_ID": str(i)})
             for i in range(count)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "shard" not in err  # every shard had videos


def files(output: Path) -> dict[str, object]:
    """Relative path -> content of every file in ``output``'s folder but its records and videos.jsonl (one
    line per video and run: its lines differ with the runs, compared folded): JSON and CSV files parsed
    (numbers as floats), others as bytes."""
    skip = records_dir(str(output))
    return {str(p.relative_to(output.parent)): parsed(p) for p in sorted(output.parent.rglob("*"))
            if p.is_file() and skip not in p.parents and p.name != NOTES}


def parsed(path: Path) -> object:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".csv":
        return [[_number(cell) for cell in row] for row in csv.reader(path.read_text().splitlines())]
    return path.read_bytes()


def _number(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell


def same(a: object, b: object) -> bool:
    """Equal, in the same order, but for the last float digits: a process that batches other videos
    together computes the CNN and the beam search with other kernels (CSV files round to 4 decimals)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-5, abs_tol=2e-4)
    return a == b


def records(output: Path) -> list[dict]:
    """The per-video records of a prediction output, in video order."""
    lines = (records_dir(str(output)) / "manifest.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda e: e["video"])


def notes(folder: Path) -> dict:
    """What the pictures' videos.jsonl says of each video, in video order."""
    return {vid: dict(sorted(note.items())) for vid, note in sorted(load_notes(folder).items())}


@pytest.mark.parametrize("name, output, options", [
    ("caption", "captions.json", ["decode.n_best=2", "decode.beam=2"]),
    ("count", "counts.csv", ["window_s=1", "stride_s=1", "plots=true"]),  # with labels: metrics too
])
def test_two_shards_write_the_files_one_process_writes(trained, tmp_path, name, output, options):
    root, data = trained
    common = [f"input_dir={data['videos_dir']}", f"checkpoint={root / name / 'checkpoints/best.pt'}", "quiet=true",
              "video.workers=0", "sheets=false", "report=false", *options]
    if name == "count":
        common.append(f"labels={data['frame_counts']}")
    one, two = tmp_path / "one", tmp_path / "two"
    res = run_pipeline(name, *common, f"output={one / output}", f"hydra.run.dir={tmp_path / 'log1'}")
    assert res.returncode == 0, res.stderr
    shards(name, 2, *common, f"output={two / output}", f"hydra.run.dir={tmp_path / 'log2'}")

    single, merged = files(one / output), files(two / output)
    assert output in single and (len(single) == 1 if name == "caption" else len(single) == 10)
    assert merged.keys() == single.keys()
    assert [p for p in single if not same(merged[p], single[p])] == []
    assert same(records(two / output), records(one / output))
    assert same(notes(two), notes(one))
