"""The demo end to end at its smallest size: every promised file exists and parses."""
import json

import cv2
from conftest import run_pipeline

from vidrnn.checkpoint import load_checkpoint
from vidrnn.data import load_captions, load_count_labels
from vidrnn.features import load_features
from vidrnn.outputs import read_captions, read_csv_rows, read_timed_captions



def test_demo_writes_every_promised_file(tmp_path):
    out = tmp_path / "demo"
    res = run_pipeline("demo", f"output_dir={out}", "demo.size=tiny", "quiet=true")
    assert res.returncode == 0, res.stderr
    assert "held-out captions" in res.stdout and "BLEU-4" in res.stdout and "training mean" in res.stdout
    refs = load_captions(out / "data/captions.json")
    assert len(refs.captions) == 24 and len(load_count_labels(out / "data/counts.csv").clip) == 24
    manifest = [json.loads(x) for x in (out / "features/manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 24 and load_features(out / "features" / manifest[0]["feature_file"])["features"].ndim == 2
    for task in ("caption", "count"):
        assert load_checkpoint(out / f"{task}_run/checkpoints/best.pt", task=task)["task"] == task
        assert json.loads((out / f"{task}_run/metrics.json").read_text())["epochs_run"] == 3
        assert cv2.imread(str(out / f"{task}_run/curves.png")) is not None
    assert set(read_captions(out / "captions.json")) == set(refs.captions)
    assert len(read_timed_captions(out / "captions.srt")) == 4  # a 4 s clip, 1 s windows
    assert len(read_csv_rows(out / "counts.csv")) == 24
    assert json.loads((out / "counts_metrics.json").read_text())["frames"]["MAE"] >= 0
    assert len(list((out / "counts_plots").glob("*.png"))) == 24
