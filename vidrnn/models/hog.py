"""A no-training baseline: OpenCV's default HOG + linear-SVM people detector, counted per frame."""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


class HogError(RuntimeError):
    """OpenCV's HOG people detector is not available; the message says what to install."""


def _people_detector() -> cv2.HOGDescriptor:
    """OpenCV's HOG descriptor with its default people SVM."""
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


class HogPeopleCounter:
    """Count people in RGB uint8 frames with OpenCV's default 64x128 HOG people detector.

    Raw detections (no OpenCV grouping) above ``min_confidence`` are merged by non-maximum suppression
    at IoU ``nms_threshold``; each surviving box is one person. People smaller than ~100 px tall need
    ``upscale`` > 1. Frames are processed on the CPU, one at a time.

    Measured speed, frames/s with default settings (OpenCV 4.14, AMD EPYC; OpenCV threads scale it
    about linearly)::

                   1 thread            2 threads
        320x240    81 (upscale 2: 14)  157 (upscale 2: 28)
        640x480    15 (upscale 2: 3)    29 (upscale 2: 6)
    """

    def __init__(self, *, upscale: float = 1.0, win_stride: int = 8, padding: int = 8, scale: float = 1.05,
                 hit_threshold: float = 0.0, nms_threshold: float = 0.4, min_confidence: float = 0.0):
        if upscale <= 0 or win_stride < 1 or padding < 0 or scale <= 1:
            raise ValueError("need upscale > 0, win_stride >= 1, padding >= 0 and scale > 1")
        if not hasattr(cv2, "HOGDescriptor"):
            raise HogError(f"OpenCV {cv2.__version__} has no cv2.HOGDescriptor (removed in OpenCV 5): "
                           "install 'opencv-python-headless<5'")
        self.upscale, self.scale = float(upscale), float(scale)
        self.win_stride, self.padding = (win_stride, win_stride), (padding, padding)
        self.hit_threshold, self.nms_threshold = float(hit_threshold), float(nms_threshold)
        self.min_confidence = float(min_confidence)
        self._hog = _people_detector()

    def __getstate__(self) -> dict:  # OpenCV's detector does not pickle (decode workers started by spawn)
        return {k: v for k, v in vars(self).items() if k != "_hog"}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self._hog = _people_detector()

    def detect(self, frame_rgb: np.ndarray) -> np.ndarray:
        """People boxes (K, 4) int32 as x, y, w, h in ``frame_rgb``'s coordinates, clipped to the frame."""
        height, width = frame_rgb.shape[:2]
        image = np.ascontiguousarray(frame_rgb, dtype=np.uint8)
        if self.upscale != 1.0:
            size = (round(width * self.upscale), round(height * self.upscale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        win_w, win_h = self._hog.winSize  # OpenCV's detectMultiScale crashes (SIGSEGV, heap corruption) on
        if image.shape[0] < win_h or image.shape[1] < win_w:  # images smaller than its window: pad them
            image = cv2.copyMakeBorder(image, 0, max(win_h - image.shape[0], 0), 0,
                                       max(win_w - image.shape[1], 0), cv2.BORDER_CONSTANT)
        boxes, weights = self._hog.detectMultiScale(
            image, hitThreshold=self.hit_threshold, winStride=self.win_stride, padding=self.padding,
            scale=self.scale, groupThreshold=0)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.int32)
        keep = cv2.dnn.NMSBoxes(np.asarray(boxes).tolist(), np.ravel(weights).tolist(),
                                self.min_confidence, self.nms_threshold)
        x0, y0, w, h = (np.asarray(boxes, float)[np.ravel(keep).astype(int)] / self.upscale).T
        x0, x1 = np.clip(np.round([x0, x0 + w]), 0, width)
        y0, y1 = np.clip(np.round([y0, y0 + h]), 0, height)
        return np.stack([x0, y0, x1 - x0, y1 - y0], 1).astype(np.int32)

    def count(self, frame_rgb: np.ndarray) -> int:
        """Number of people detected in one frame."""
        return len(self.detect(frame_rgb))

    def count_frames(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame people counts, float32 of shape (n,)."""
        return np.asarray([self.count(frame) for frame in frames], np.float32)
