"""Tests for vidrnn.models.hog: OpenCV's HOG people detector as a counting baseline."""
import re

import cv2
import numpy as np
import pytest

from vidrnn.models.hog import HogError, HogPeopleCounter

WIDTH, HEIGHT = 320, 240
DARK = (30, 30, 30)


def scene(centres=(160,), tall=160):
    """Light 320x240 frame with a dark human-proportioned silhouette ``tall`` px high at each x centre."""
    frame = np.full((HEIGHT, WIDTH, 3), 220, np.uint8)
    top, h = (HEIGHT - tall) // 2, tall

    def y(f):
        return top + round(f * h)

    for x in centres:
        def at(dx, f):
            return x + round(dx * h), y(f)

        cv2.circle(frame, at(0, 0.065), round(0.065 * h), DARK, cv2.FILLED, cv2.LINE_AA)
        torso = np.array([at(-0.13, 0.15), at(0.13, 0.15), at(0.1, 0.52), at(-0.1, 0.52)], np.int32)
        cv2.fillPoly(frame, [torso], DARK, cv2.LINE_AA)
        for side in (-1, 1):
            cv2.line(frame, at(side * 0.11, 0.17), at(side * 0.15, 0.5), DARK, round(0.05 * h), cv2.LINE_AA)
            cv2.line(frame, at(side * 0.05, 0.5), at(side * 0.08, 0.96), DARK, round(0.08 * h), cv2.LINE_AA)
    return frame


@pytest.fixture(scope="module")
def counter():
    return HogPeopleCounter()


def assert_in_frame(boxes, frame):
    assert boxes.dtype == np.int32 and boxes.ndim == 2 and boxes.shape[1] == 4
    x, y, w, h = boxes.T
    assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
    assert (x + w <= frame.shape[1]).all() and (y + h <= frame.shape[0]).all()


def test_uniform_frame_has_nobody(counter):
    blank = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    assert counter.detect(blank).shape == (0, 4)
    assert counter.count(blank) == 0


def test_finds_a_silhouette_inside_the_frame(counter):
    frame = scene()
    boxes = counter.detect(frame)
    assert len(boxes) == 1
    assert_in_frame(boxes, frame)
    x, y, w, h = boxes[0]
    assert x < 160 < x + w and y < HEIGHT // 2 < y + h  # the box covers the figure


def test_boxes_are_clipped_to_the_frame():
    frame = scene(tall=180)  # the detector window pokes out above the frame
    boxes = HogPeopleCounter(upscale=1.5).detect(frame)
    assert len(boxes) == 1
    assert_in_frame(boxes, frame)


def test_counts_two_people_and_frames(counter):
    frames = [scene((80, 240), tall=140), scene(), np.zeros((HEIGHT, WIDTH, 3), np.uint8)]
    counts = counter.count_frames(iter(frames))
    assert counts.dtype == np.float32 and counts.tolist() == [2.0, 1.0, 0.0]
    assert isinstance(counter.count(frames[0]), int)


def test_upscale_finds_a_small_person():
    small = scene(tall=60)  # under half the detector's 128 px window
    assert HogPeopleCounter().count(small) == 0
    boxes = HogPeopleCounter(upscale=2).detect(small)
    assert len(boxes) == 1
    assert_in_frame(boxes, small)
    x, y, w, h = boxes[0]
    assert x < 160 < x + w and h < 128  # reported in the original frame's coordinates


def test_opencv5_without_hog_gives_a_clear_error(monkeypatch):
    monkeypatch.delattr(cv2, "HOGDescriptor")
    with pytest.raises(HogError, match=r"install 'opencv-python-headless<5'") as info:
        HogPeopleCounter()
    assert "\n" not in str(info.value)


def test_rejects_bad_settings():
    said = re.escape("need upscale > 0, win_stride >= 1, padding >= 0 and scale > 1")
    for bad in ({"upscale": 0}, {"scale": 1.0}, {"win_stride": 0}, {"padding": -1}):
        with pytest.raises(ValueError, match=f"^{said}$"):
            HogPeopleCounter(**bad)
    HogPeopleCounter(upscale=0.5, scale=1.01, win_stride=1, padding=0)  # each just inside its range
