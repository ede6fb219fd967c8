"""Contact sheets and annotated videos: real video files in, PNG and mp4 files that OpenCV reads back with the
frames they show."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, pipeline_env

import vidrnn.pictures as pictures_module
from vidrnn.features.encode import CRASHED
from vidrnn.pictures import (
    GAP,
    MARGIN,
    RENDERED,
    SHEETS,
    Pictures,
    _check_written,
    _count_label,
    caption_at,
    count_track,
    draw_each,
    load_notes,
    track_at,
)
from vidrnn.synth import write_video
from vidrnn.video import Sampling, VideoMeta, read_sampled

FRAMES, FPS, TILE = 24, 8.0, 320  # the clips: 64x48 MJPG, frame i encodes i in its grey left half


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "videos" / "clip.avi")


def coded_frame(i: int) -> np.ndarray:
    """(48, 64, 3) RGB: the left half grey 20 + 9 i (brightness survives lossy codecs), the right half green."""
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = 20 + 9 * i
    frame[:, 32:, 1] = 128
    return frame


def frame_id(region: np.ndarray) -> int:
    """The ``i`` of ``coded_frame(i)`` from a part of a (scaled) frame: its left quarter's brightness."""
    return round((region[:, : region.shape[1] // 4].mean() - 20) / 9)


def write_clip(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, (coded_frame(i) for i in range(FRAMES)), FPS)
    return path


def counts_of(path, predicted):
    """A count track over the 6 uniformly sampled frames of ``path``, with every frame labelled i % 3."""
    _, meta = read_sampled(str(path), Sampling(num_frames=6), size=16)
    return count_track(np.asarray(predicted, np.float32)[None], meta, np.arange(FRAMES) % 3.0)


def test_contact_sheet_shows_the_sampled_frames_in_order(clip, tmp_path):
    refs = tmp_path / "refs.csv"
    refs.write_text("video_id,caption\nclip,a red square fades\nclip,the colour changes slowly\n")
    out = tmp_path / "out"
    pictures = Pictures(out, sheets=True, references=str(refs))
    pictures.add("clip", clip, caption="a square turns red", count=1.5, track=counts_of(clip, range(6)))
    assert pictures.failed == {}
    sheet = cv2.cvtColor(cv2.imread(str(out / SHEETS / "clip.png")), cv2.COLOR_BGR2RGB)
    tile_h = TILE * 48 // 64  # the frames' aspect ratio is kept
    grid_bottom = MARGIN + 2 * tile_h + GAP
    assert sheet.shape[1] == 2 * MARGIN + 3 * TILE + 2 * GAP and sheet.shape[0] > grid_bottom + 100
    expected = Sampling(num_frames=6).plan(FRAMES, FPS)  # [2 6 10 14 18 22]
    for k, index in enumerate(expected):
        top, left = MARGIN + k // 3 * (tile_h + GAP), MARGIN + k % 3 * (TILE + GAP)
        middle = sheet[top + tile_h // 3: top + 2 * tile_h // 3, left:left + TILE]  # between the labels
        assert frame_id(middle) == index
    panel = sheet[grid_bottom + MARGIN:]
    assert (panel.min(axis=2) < 100).mean() > 0.005  # text below the frames (captions, references, counts)
    notes = load_notes(out)["clip"]
    assert notes["references"] == ["a red square fades", "the colour changes slowly"]
    assert notes["caption"] == "a square turns red" and notes["count"] == 1.5


@pytest.mark.parametrize("size, fps, expected", [((8, 600), 0.01, (26, 1920)), ((600, 8), 8.0, (600, 16))])
def test_a_very_narrow_slow_video_is_rendered_within_bounds(tmp_path, size, fps, expected):
    """An 8x600 video grew to 480x36000, which the writer refused, and a frame every 100 s was a rate
    mp4v refuses; a 600x8 one failed drawing its texts. Now each side stays within 16..1920 pixels and the
    rate within 1..240 frames/s."""
    width, height = size
    write_video(tmp_path / "odd.avi", (np.full((height, width, 3), 40 * i, np.uint8) for i in range(4)), fps)
    out = tmp_path / "out"
    pictures = Pictures(out, sheets=True, render=True)
    pictures.add("odd", tmp_path / "odd.avi", caption="a long thin picture", track=[])
    assert pictures.failed == {}
    cap = cv2.VideoCapture(str(out / RENDERED / "odd.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == expected
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 4 and cap.get(cv2.CAP_PROP_FPS) >= 1
    cap.release()


def test_contact_sheet_of_a_count_run_shows_frames_it_counted(clip, tmp_path):
    """With a count track the tiles are frames the run counted, so each tile's count and true count are those
    of the frame shown (before: six evenly spaced frames, each with the numbers of the counted frame before
    it, up to seconds earlier)."""
    _, meta = read_sampled(str(clip), Sampling(num_frames=12), size=16)
    track = count_track(np.arange(12, dtype=np.float32)[None], meta, np.arange(FRAMES) % 3.0)
    out = tmp_path / "out"
    Pictures(out, sheets=True).add("clip", clip, track=track)
    sheet = cv2.cvtColor(cv2.imread(str(out / SHEETS / "clip.png")), cv2.COLOR_BGR2RGB)
    tile_h = TILE * 48 // 64
    shown = [track[k][0] for k in (0, 2, 4, 7, 9, 11)]  # six of the twelve, evenly spread
    for k, index in enumerate(shown):
        top, left = MARGIN + k // 3 * (tile_h + GAP), MARGIN + k % 3 * (TILE + GAP)
        assert frame_id(sheet[top + tile_h // 3: top + 2 * tile_h // 3, left:left + TILE]) == index


def test_rendered_video_has_every_frame_scaled_up_with_text_burned_in(clip, tmp_path):
    out = tmp_path / "out"
    pictures = Pictures(out, sheets=False, render=True)
    pictures.add("clip", clip, segments=[[0.0, 1.5, "first half"], [1.5, 3.0, "second half"]],
                 track=counts_of(clip, [0, 1, 2, 3, 4, 5]))
    assert pictures.failed == {} and not (out / SHEETS).exists()
    cap = cv2.VideoCapture(str(out / RENDERED / "clip.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 360)  # 64x48 x7.5
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(decoded) == FRAMES
    source = cv2.resize(coded_frame(0), (480, 360))
    for i, frame in enumerate(decoded):
        assert frame_id(frame[120:240]) == i  # the picture itself is untouched between the texts
        band = frame[340:, 240:, 1]  # the caption band, where the source is plain green 128
        assert band.mean() < 0.75 * source[340:, 240:, 1].mean() and band.max() > 200  # darkened, white text
        clock = frame[8:24, 420:470]  # the time, white on a darkened box over the green half
        assert np.median(clock[..., 1]) < 0.75 * 128 and (clock.min(axis=2) > 200).any()
        count = frame[4:30, 4:190]  # the live count, yellow (nowhere else in these grey and green frames)
        assert ((count[..., 0] > 200) & (count[..., 1] > 180) & (count[..., 2] < 150)).sum() > 50


def test_timed_captions_and_the_live_count_follow_the_video():
    notes = {"caption": "the whole clip", "segments": [[0.0, 2.0, "one"], [1.0, 3.0, "two"], [3.0, 4.0, "three"]]}
    assert [caption_at(notes, t) for t in (0.0, 0.9, 1.0, 2.5, 3.5, 9.0)] == ["one", "one", "two", "two", "three",
                                                                                "three"]
    assert caption_at({"caption": "the whole clip"}, 5.0) == "the whole clip"
    gaps = {"segments": [[0.0, 3.0, "one"], [7.0, 10.0, "two"]]}  # stride 7 s, window 3 s: nothing in between
    assert [caption_at(gaps, t) for t in (2.9, 3.0, 6.9, 7.0, 12.0)] == ["one", None, None, "two", "two"]
    track = [[2, 0.25, 1.0, None], [6, 0.75, 2.0, 2.0], [10, 1.25, 3.0, None]]
    assert [track_at(track, f)[2] for f in (0, 2, 5, 6, 9, 10, 99)] == [1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert track_at([], 3) is None


def test_count_track_is_in_frame_order_with_the_labelled_truth():
    meta = VideoMeta("opencv", "sequential", 64, 48, 8.0, 16, 16, "header",  # two overlapping windows of 3 frames
                     frame_indices=[[0, 4, 8], [4, 8, 12]], timestamps=[[0.0, 0.5, 1.0], [0.5, 1.0, 1.5]])
    truth = np.array([1.0] * 8 + [np.nan] * 8)
    rows = count_track(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), meta, truth)
    assert [r[0] for r in rows] == [0, 4, 8, 12]  # a frame both windows hold once, its two counts averaged
    assert [r[1] for r in rows] == [0.0, 0.5, 1.0, 1.5]
    assert [r[2] for r in rows] == [1.0, 3.0, 4.0, 6.0]
    assert [r[3] for r in rows] == [1.0, 1.0, None, None]
    sparse = np.full(16, np.nan)
    sparse[[0, 8]] = [2.0, 6.0]  # labels on every 8th frame: frame 4 lies between two
    rows = count_track(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), meta, sparse)
    assert [r[3:] for r in rows] == [[2.0, False], [4.0, True], [6.0, False], [None, False]]
    assert _count_label(rows[1]) == "people 3.0  (true \u22484)" and _count_label(rows[2]) == "people 4.0  (true 6)"


def test_a_video_that_cannot_be_drawn_is_recorded_not_raised(clip, tmp_path):
    bad = tmp_path / "videos" / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    pictures = Pictures(out, sheets=True, render=True)
    pictures.add_captions(str(tmp_path / "videos"), {"bad.mp4": "bad", "clip.avi": "clip"},
                          {"bad": {"caption": "x"}, "clip": {"caption": "y"}}, done=["bad", "clip"])
    assert set(pictures.failed) == {"bad"} and "cannot open" in pictures.failed["bad"]
    assert load_notes(out)["bad"]["picture_error"] == pictures.failed["bad"]
    assert (out / SHEETS / "clip.png").is_file() and (out / RENDERED / "clip.mp4").is_file()
    assert not (out / SHEETS / "bad.png").exists() and not list((out / RENDERED).glob(".*"))  # no partial file


def test_caption_and_count_runs_into_one_folder_merge(tmp_path):
    videos = tmp_path / "videos"
    a, b = write_clip(videos / "a.avi"), write_clip(videos / "sub" / "b.avi")
    ids, out = {"a.avi": "a", "sub/b.avi": "sub/b"}, tmp_path / "out"
    Pictures(out).add_captions(str(videos), ids, {"a": {"caption": "one", "score": -1.0}, "sub/b": {"caption": "two"}},
                               done=["a", "sub/b"])
    counts_csv = tmp_path / "counts.csv"
    counts_csv.write_text("video_id,count\na,1.25\nsub/b,2.5\n")
    _, meta = read_sampled(str(a), Sampling(num_frames=4), size=16)
    Pictures(out).add_counts(str(videos), ids, {v: (None, np.ones((1, 4), np.float32), meta) for v in ("a", "sub/b")},
                             ["a", "sub/b"], counts_csv)
    notes = load_notes(out)
    assert notes["a"]["caption"] == "one" and notes["a"]["count"] == 1.25 and len(notes["a"]["track"]) == 4
    assert notes["sub/b"]["caption"] == "two" and notes["sub/b"]["path"] == str(b.absolute())
    assert "score" not in notes["a"]
    sheets = {p.name: p.stat().st_mtime_ns for p in (out / SHEETS).iterdir()}
    assert set(sheets) == {"a.png", "sub__b.png"}
    Pictures(out).add_captions(str(videos), ids, {"a": {"caption": "one"}, "sub/b": {"caption": "two"}}, done=["a"])
    after = {p.name: p.stat().st_mtime_ns for p in (out / SHEETS).iterdir()}
    assert after["sub__b.png"] == sheets["sub__b.png"]  # done by an earlier run, pictured already: not redrawn


def test_a_rerun_with_the_same_results_adds_nothing_to_the_notes(clip, tmp_path):
    out, videos = tmp_path / "out", str(clip.parent)
    track = counts_of(clip, [0.5, 1.0, float("nan"), 2.0, 2.5, 3.0])
    for _ in range(3):  # a run and two reruns that find the same
        Pictures(out).add("clip", clip, caption="a square", count=1.5, track=track, fresh=False)
        Pictures(out).add_captions(videos, {"clip.avi": "clip"}, {"clip": {"caption": "a square"}}, done=[])
    lines = (out / "videos.jsonl").read_text().splitlines()
    assert len(lines) == 1
    Pictures(out).add_captions(videos, {"clip.avi": "clip"}, {"clip": {"caption": "a circle"}}, done=["clip"])
    assert len((out / "videos.jsonl").read_text().splitlines()) == 2
    notes = load_notes(out)["clip"]
    assert notes["caption"] == "a circle" and notes["count"] == 1.5 and len(notes["track"]) == 6


def test_pictures_drawn_in_processes_are_those_drawn_here(tmp_path):
    """Eight clips and a broken file, drawn in this process and in two others: the same PNG files, the
    same failure recorded."""
    videos = tmp_path / "videos"
    ids = {write_clip(videos / f"c{k}.avi").name: f"c{k}" for k in range(8)}
    (videos / "bad.mp4").write_bytes(b"not a video at all" * 100)
    ids["bad.mp4"] = "bad"
    found = {vid: {"caption": f"caption {vid}"} for vid in ids.values()}
    drawn = {}
    for workers in (1, 2):
        pictures = Pictures(tmp_path / f"out{workers}", sheets=True, workers=workers)
        pictures.add_captions(str(videos), ids, found, done=list(found))
        assert set(pictures.failed) == {"bad"} and "cannot open" in pictures.failed["bad"]
        drawn[workers] = {p.name: p.read_bytes() for p in (pictures.dir / SHEETS).iterdir()}
    assert len(drawn[1]) == 8 and drawn[1] == drawn[2]


def _write_or_die(path, die: bool) -> None:
    if die:
        os.abort()  # a native crash
    path.write_text("drawn")


def test_a_drawing_process_that_dies_costs_only_its_picture(tmp_path):
    jobs = [(tmp_path / f"{k}.txt", k == 5) for k in range(12)]
    found = draw_each(_write_or_die, jobs, workers=3)
    assert found == [None] * 5 + [CRASHED] + [None] * 6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.txt" for k in range(12) if k != 5)
    [reason] = draw_each(_write_or_die, [(tmp_path / "x" / "y.txt", False)])  # here, in this process
    assert reason.endswith(f"No such file or directory: '{tmp_path}/x/y.txt'")  # the reason, not raised


def _write_slowly(path, interrupt: bool) -> None:
    if interrupt:
        os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C in the process that waits for the pictures
    time.sleep(0.05)
    path.write_text("drawn")


def test_an_interrupt_stops_the_drawing_processes_too(tmp_path):
    """Drawing in processes, an interrupt stops the run at once, not after every picture still queued."""
    jobs = [(tmp_path / f"{k}.txt", k == 3) for k in range(40)]  # 1 s of drawing for two processes
    heard = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, not a background job
    try:
        with pytest.raises(KeyboardInterrupt):
            draw_each(_write_slowly, jobs, workers=2)
    finally:
        signal.signal(signal.SIGINT, heard)
    time.sleep(1.5)
    assert len(list(tmp_path.iterdir())) < 12


def test_drawing_processes_die_with_the_run(tmp_path):
    """A run killed while drawing (kill -9, or a scheduler's) left its drawing processes alive for ever,
    holding the lock they were started under: the rerun waited on it."""
    script = tmp_path / "run.py"
    script.write_text(f"""
import os, sys, time
from vidrnn.pictures import draw_each

def draw(folder, k):
    open(os.path.join(folder, str(os.getpid())), "w").close()
    time.sleep(60)

draw_each(draw, [({str(tmp_path / "pids")!r}, k) for k in range(8)], workers=2)
""")
    (tmp_path / "pids").mkdir()
    run = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=pipeline_env())
    try:
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "pids").iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(p.name) for p in (tmp_path / "pids").iterdir()]
        assert len(pids) == 2
    finally:
        run.kill()
        run.wait()
    time.sleep(1)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)]
    assert not alive, f"drawing processes {alive} outlived the run"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (FileNotFoundError, ProcessLookupError, IndexError):  # gone while it was read: dead
        return "zombie"


def test_pictures_of_new_results_replace_the_old_ones_or_are_missing(clip, tmp_path, monkeypatch):
    """A run stopped while drawing the pictures of new results (another checkpoint) left the old pictures,
    which the rerun kept (it draws only missing ones): they are removed before the new results are kept."""
    out = tmp_path / "out"
    Pictures(out, sheets=True).add("clip", clip, caption="an old caption")
    assert (out / SHEETS / "clip.png").exists()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pictures_module, "draw_each", stopped)
    with pytest.raises(KeyboardInterrupt):
        Pictures(out, sheets=True).add("clip", clip, caption="a new caption")
    assert not (out / SHEETS / "clip.png").exists() and load_notes(out)["clip"]["caption"] == "a new caption"
    monkeypatch.undo()
    Pictures(out, sheets=True).add("clip", clip, caption="a new caption", fresh=False)  # the rerun: drawn again
    assert (out / SHEETS / "clip.png").exists()


def test_a_rendered_copy_that_does_not_read_back_is_an_error(clip, tmp_path):
    """OpenCV's writer says nothing of a failed write (a full disk left a truncated mp4 in place, which a
    rerun kept): the copy is read back before it takes its name."""
    good = tmp_path / "good.mp4"
    write_video(good, (coded_frame(i) for i in range(FRAMES)), FPS)
    _check_written(good, FRAMES)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(OSError, match=rf"cut.mp4: the copy written does not read back \(0 of {FRAMES} frames; a full"):
        _check_written(cut, FRAMES)
