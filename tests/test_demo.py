"""The demo end to end at its smallest size: every promised file exists and parses."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import images_loaded
from conftest import run_pipeline

from vidrnn.checkpoint import load_checkpoint
from vidrnn.data import load_captions, load_count_labels
from vidrnn.features import load_features
from vidrnn.outputs import read_captions, read_csv_rows, read_timed_captions
from vidrnn.pictures import load_notes


def test_demo_writes_every_promised_file(tmp_path):
    out = tmp_path / "demo"
    res = run_pipeline("demo", f"output_dir={out}", "demo.size=tiny", "quiet=true")
    assert res.returncode == 0, res.stderr
    assert "held-out captions" in res.stdout and "BLEU-4" in res.stdout and "training mean" in res.stdout
    refs = load_captions(out / "data/captions.json")
    assert len(refs.captions) == 24 and len(load_count_labels(out / "data/counts.csv").clip) == 24
    scores = json.loads((out / "demo_metrics.json").read_text())
    features = Path(scores["features"])  # the training cache: extracted once, then used by both trainings
    assert features.parent == out / "cache" and f"{features}/" in res.stdout
    manifest = [json.loads(x) for x in (features / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 24 and load_features(features / manifest[0]["feature_file"])["features"].ndim == 2
    assert [p for p in (out / "cache").iterdir() if p.is_dir()] == [features]  # no second extraction
    for task in ("caption", "count"):
        assert load_checkpoint(out / f"{task}_run/checkpoints/best.pt", task=task)["task"] == task
        assert json.loads((out / f"{task}_run/metrics.json").read_text())["epochs_run"] == 3
        assert cv2.imread(str(out / f"{task}_run/curves.png")) is not None
    assert set(read_captions(out / "captions.json")) == set(refs.captions)
    assert len(read_timed_captions(out / "captions.srt")) == 4  # a 4 s clip, 1 s windows
    assert len(read_csv_rows(out / "counts.csv")) == 24
    frames = json.loads((out / "counts_metrics.json").read_text())["frames"]
    assert len(frames["per_video"]) == 24 and frames["scored"] == 24 * 8  # 8 frames a video (video=small)
    assert len(list((out / "counts_plots").glob("*.png"))) == 24
    assert f"BLEU-4 {scores['BLEU-4']:.3f}" in res.stdout and scores["test_videos"] == 4
    # pictures and the report, of the held-out videos
    held_out = sorted(v for v, split in refs.splits.items() if split == "test")
    notes = load_notes(out)
    assert set(notes) == set(refs.captions) and all("caption" in n and "count" in n for n in notes.values())
    # the per-frame MAE, from each video's count track (its sampled frames, counts rounded to 3 decimals)
    # against the labels the demo wrote
    labels = {(r["video_id"], int(r["frame"])): float(r["count"]) for r in read_csv_rows(out / "data/frame_counts.csv")}
    errors = [predicted - labels[vid, frame] for vid, n in notes.items() for frame, _, predicted, *_ in n["track"]]
    assert len(errors) == frames["scored"] and frames["MAE"] == pytest.approx(np.abs(errors).mean(), abs=1e-3)
    assert all(notes[v]["references"] == refs.captions[v] and "true_count" in notes[v] for v in held_out)
    assert len(notes[held_out[0]]["segments"]) == 4  # the clip with timed captions
    assert sorted(p.stem for p in (out / "sheets").iterdir()) == held_out
    assert sorted(p.stem for p in (out / "rendered").iterdir()) == held_out
    for vid in held_out:
        sheet = cv2.imread(str(out / "sheets" / f"{vid}.png"))
        assert sheet is not None and sheet.shape[1] == 996 and sheet.shape[0] > 500  # 3 x 2 tiles 320 wide, text
        video = cv2.VideoCapture(str(out / "rendered" / f"{vid}.mp4"))
        assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 360)
        assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 48 and video.read()[0]
        video.release()
    assert f"report (open it in a browser): {out / 'report.html'}" in res.stdout
    page = (out / "report.html").read_text(encoding="utf-8")  # what each metrics file covers
    assert "held-out videos" in page and "per-frame counts on all 24 videos" in page
    # a contact sheet and a count timeline per held-out video, and the two training curves
    assert images_loaded(out / "report.html") == (2 * len(held_out) + 2, [])
    # the same command again: nothing computed is computed again (the clips are rewritten only where they
    # would differ, so their features stay valid; the trained runs are kept), and the numbers are the same
    kept = [*(out / "data/videos").rglob("*.*"), *(out / f"{t}_run/{f}" for t in ("caption", "count")
                                                   for f in ("metrics.json", "checkpoints/best.pt"))]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    again = run_pipeline("demo", f"output_dir={out}", "demo.size=tiny", "quiet=true")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps
    assert len((features / "manifest.jsonl").read_text().splitlines()) == 24  # not extracted again
    assert json.loads((out / "demo_metrics.json").read_text()) | {"minutes": 0} == scores | {"minutes": 0}
