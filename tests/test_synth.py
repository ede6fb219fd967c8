"""Tests for vidrnn.synth: determinism, ground truth, captions and written datasets."""

import csv
import json
import re
from collections import Counter

import cv2
import numpy as np
import pytest

from vidrnn.synth import (
    ALL_COMBOS,
    COLOURS,
    DIRECTIONS,
    NUMBER_WORDS,
    make_dataset,
    render_clip,
    sample_spec,
    write_video,
)

SMALL = dict(width=64, height=48, num_frames=12)


def _frames(spec):
    return np.stack(list(render_clip(spec)))


def _decode(path):
    """All frames of a video file as RGB arrays, via cv2.VideoCapture."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        ok, frame = cap.read()
    cap.release()
    return frames


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_render_is_lazy_and_well_formed():
    spec = sample_spec(3, **SMALL)
    frames = render_clip(spec)
    assert iter(frames) is frames  # a generator, not a prebuilt array
    first = next(frames)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert 1 + sum(1 for _ in frames) == spec.num_frames


def test_same_seed_same_frames_different_seed_different():
    assert sample_spec(11, **SMALL) == sample_spec(11, **SMALL)
    np.testing.assert_array_equal(_frames(sample_spec(11, **SMALL)), _frames(sample_spec(11, **SMALL)))
    assert not np.array_equal(_frames(sample_spec(11, **SMALL)), _frames(sample_spec(12, **SMALL)))


def test_frame_counts_consistent_with_clip_count():
    specs = [sample_spec(s, num_frames=24) for s in range(60)]
    for spec in specs:
        counts = spec.frame_counts()
        assert len(counts) == spec.num_frames and all(type(c) is int for c in counts)
        assert all(0 <= c <= 4 for c in counts)
        assert max(counts) <= spec.count == len(spec.people) <= 4
    assert {spec.count for spec in specs} == set(range(5))
    assert any(len(set(spec.frame_counts())) > 1 for spec in specs)  # people enter / leave


def test_captions_state_content():
    for seed in range(30):
        spec = sample_spec(seed)
        captions = spec.captions()
        colour, shape, direction = spec.shape.colour, spec.shape.kind, spec.shape.direction
        noun = "person" if spec.count == 1 else "people"
        verb = "is" if spec.count == 1 else "are"
        assert captions[0] == f"a {colour} {shape} moves {direction} and there {verb} {NUMBER_WORDS[spec.count]} {noun}"
        assert 3 <= len(set(captions)) == len(captions) <= 5
        for caption in captions:
            assert caption == caption.lower()
            assert f"{colour} {shape}" in caption and direction in caption.split()
            assert NUMBER_WORDS[spec.count] in caption.split() or (spec.count == 0 and "nobody" in caption)


def test_combos_restrict_colour_and_shape():
    allowed = [("green", "square"), ("red", "circle")]
    assert {sample_spec(s, combos=allowed).combo for s in range(20)} == set(allowed)
    with pytest.raises(ValueError, match=re.escape("combos must be a non-empty subset of (('red', 'circle'), ")
                       + r".*got \[\('purple', 'circle'\)\]$"):
        sample_spec(0, combos=[("purple", "circle")])


def test_shape_moves_in_stated_direction_and_colour_survives_mp4(tmp_path):
    for seed in range(8):
        spec = sample_spec(seed, max_people=0)
        path = tmp_path / f"clip{seed}.mp4"
        assert write_video(path, render_clip(spec), spec.fps) == spec.num_frames
        decoded = _decode(path)
        assert len(decoded) == spec.num_frames and decoded[0].shape == (spec.height, spec.width, 3)
        (x0, y0), (x1, y1) = spec.shape.centre(0), spec.shape.centre(spec.num_frames - 1)
        ux, uy = DIRECTIONS[spec.shape.direction]
        assert (x1 - x0) * ux + (y1 - y0) * uy > 0.4 * spec.height  # clear progress along the direction
        assert (x1 - x0) * uy - (y1 - y0) * ux == 0  # and none across it
        for t in (0, spec.num_frames - 1):
            cx, cy = (round(v) for v in spec.shape.centre(t))
            pixel = decoded[t][cy, cx].astype(int)
            nearest = min(COLOURS, key=lambda name: np.abs(pixel - COLOURS[name]).sum())
            assert nearest == spec.shape.colour
            assert np.abs(pixel - COLOURS[spec.shape.colour]).max() < 60


def test_write_video_errors(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=re.escape("no default codec for '.mkv'; pass codec=")):
        write_video(tmp_path / "x.mkv", [frame], 10.0)
    with pytest.raises(ValueError, match="^write_video needs at least one frame$"):
        write_video(tmp_path / "x.mp4", [], 10.0)
    with pytest.raises(OSError, match=re.escape(f"cv2.VideoWriter cannot open {tmp_path / 'missing' / 'x.mp4'} "
                                                "with codec 'mp4v' at 64x48")):
        write_video(tmp_path / "missing" / "x.mp4", [frame], 10.0)
    with pytest.raises(ValueError, match=re.escape("frame 1: expected uint8 (48, 64, 3), got uint8 (24, 64, 3)")):
        write_video(tmp_path / "y.avi", [frame, frame[:24]], 10.0)


def test_make_dataset(tmp_path):
    heldout = [c for c in ALL_COMBOS if c[0] in ("red", "blue")]  # 6 of 12: 8 clips hit both sides
    kwargs = dict(num_videos=8, seed=5, heldout_combos=heldout, **SMALL)
    summary = make_dataset(tmp_path / "a", **kwargs)
    assert summary["num_videos"] == 8 and summary["num_frames"] == 8 * 12
    assert sum(summary["splits"].values()) == 8 and summary["splits"]["test"] >= 2

    meta = json.loads((tmp_path / "a" / "captions.json").read_text())
    videos = {v["video_id"]: v for v in meta["videos"]}
    assert len(videos) == 8 and all(vid.startswith("vid") for vid in videos)
    suffixes = Counter(v["path"].rsplit(".", 1)[1] for v in videos.values())
    assert suffixes == {"mp4": 6, "avi": 2}
    assert len({v["path"].split("/")[0] for v in videos.values()}) == 2  # spread over subfolders
    for vid, record in videos.items():
        path = tmp_path / "a" / "videos" / record["path"]
        assert path.stem == vid
        decoded = _decode(path)
        assert len(decoded) == 12 and decoded[0].shape == (48, 64, 3)

    sentences = meta["sentences"]
    assert len({s["sen_id"] for s in sentences}) == len(sentences)
    assert {s["video_id"] for s in sentences} == set(videos)
    splits = {vid: v["split"] for vid, v in videos.items()}
    for s in sentences:
        combo = next(c for c in ALL_COMBOS if f"{c[0]} {c[1]}" in s["caption"])
        assert (combo in heldout) == (splits[s["video_id"]] == "test")

    counts = _read_csv(tmp_path / "a" / "counts.csv")
    assert [r["video_id"] for r in counts] == list(videos) and all(r["split"] == splits[r["video_id"]] for r in counts)
    frame_rows = _read_csv(tmp_path / "a" / "frame_counts.csv")
    assert list(frame_rows[0]) == ["video_id", "frame", "count"] and len(frame_rows) == 8 * 12
    per_video = Counter()
    for r in frame_rows:
        per_video[r["video_id"]] = max(per_video[r["video_id"]], int(r["count"]))
    assert all(per_video[r["video_id"]] <= int(r["count"]) for r in counts)

    make_dataset(tmp_path / "b", **kwargs)
    for name in ("captions.json", "counts.csv", "frame_counts.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_make_dataset_again_with_fewer_clips_leaves_only_its_own(tmp_path):
    """A smaller dataset into the same folder (the demo at another size) removes the clips of the larger one
    it does not write (they would be read as more videos, with repeating stems); other files stay."""
    kw = {"width": 32, "height": 24, "num_frames": 4}
    make_dataset(tmp_path, num_videos=12, **kw)
    (tmp_path / "videos" / "notes.txt").write_text("mine")
    data = make_dataset(tmp_path, num_videos=4, **kw)
    videos = sorted(p.relative_to(tmp_path / "videos").as_posix() for p in (tmp_path / "videos").rglob("vid*"))
    assert len(videos) == 4 and len({v.split("/")[-1].split(".")[0] for v in videos}) == 4, videos
    assert data["num_videos"] == 4 and (tmp_path / "videos" / "notes.txt").read_text() == "mine"
