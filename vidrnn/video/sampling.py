"""Which frames to take from a video: uniform, at a fixed rate, or in windows for long videos."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MODES = ("uniform", "fps", "window")


@dataclass(frozen=True)
class Sampling:
    """A sampling rule; ``plan`` turns it into frame indices once the frame count is known.

    mode: ``uniform`` (``num_frames`` spread over the whole video), ``fps`` (``fps`` frames per second,
    the first ``max_frames`` of them), or ``window`` (clips of ``num_frames`` spread over ``window_s``
    seconds, one clip every ``stride_s`` seconds; the last clip ends at the last frame).
    """

    mode: str = "uniform"
    num_frames: int = 16
    fps: float = 1.0
    max_frames: int | None = None
    window_s: float = 2.0
    stride_s: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"sampling mode must be one of {MODES}, not {self.mode!r}")
        if self.num_frames < 1 or self.fps <= 0 or self.window_s <= 0 or self.stride_s <= 0:
            raise ValueError("num_frames, fps, window_s and stride_s must be positive")

    def as_dict(self) -> dict:
        return asdict(self)

    def plan(self, total: int, video_fps: float) -> np.ndarray:
        """Frame indices for a video of ``total`` frames: (N,) for uniform/fps, (W, N) for window."""
        if total < 1:
            raise ValueError("the video has no frames")
        if self.mode == "uniform":
            return _spread(0, total, self.num_frames)
        if video_fps <= 0:
            raise ValueError(f"sampling mode {self.mode!r} needs the frame rate, which the file lacks")
        if self.mode == "fps":
            step = max(video_fps / self.fps, 1.0)
            idx = np.unique(np.floor(np.arange(0, total, step)).astype(np.int64))
            return idx[: self.max_frames] if self.max_frames else idx
        return np.stack([_spread(a, b - a, self.num_frames) for a, b in self.windows(total, video_fps)])  # (W, N)

    def windows(self, total: int, video_fps: float) -> list[tuple[int, int]]:
        """Window mode: the [start, end) frame range of each clip, for frames ``1 / video_fps`` apart: those
        shown in each of ``spans`` (as ``windows_in_time``: windows ``stride_s`` apart in time, not a rounded
        number of frames)."""
        return self.windows_in_time(np.arange(total + 1) / video_fps)

    def plan_in_time(self, edges: np.ndarray) -> np.ndarray:
        """fps and window sampling by the frames' own times, for a video whose frames are not index / fps
        apart (variable frame rate, or a header rate that is wrong): ``edges`` (total + 1,) are when each
        frame starts being shown and when the last one ends, in seconds."""
        starts = edges[:-1]
        if self.mode == "fps":
            idx = np.unique(_shown_at(starts, np.arange(0, max(float(edges[-1]), 1e-9), 1 / self.fps)))
            return idx[: self.max_frames] if self.max_frames else idx
        return np.stack([_spread(a, b - a, self.num_frames) for a, b in self.windows_in_time(edges)])  # (W, N)

    def spans(self, duration: float) -> list[tuple[float, float]]:
        """Window mode by time: (start_s, end_s) of each clip of ``window_s`` seconds, one every
        ``stride_s`` seconds, the last one ending with a video of ``duration`` seconds."""
        length = min(self.window_s, duration)
        begins = [float(t) for t in np.arange(0, duration - length + 1e-9, self.stride_s)]
        if begins[-1] < duration - length - 1e-9:
            begins.append(duration - length)
        return [(t, t + length) for t in begins]

    def windows_in_time(self, edges: np.ndarray) -> list[tuple[int, int]]:
        """Window mode by the frames' times: the [start, end) frame range shown in each of ``spans``."""
        starts = edges[:-1]
        ranges = []
        for begin, end in self.spans(float(edges[-1])):
            a = int(_shown_at(starts, begin))
            ranges.append((a, max(int(np.searchsorted(starts, end - 1e-9)), a + 1)))
        return ranges


def _shown_at(starts: np.ndarray, t) -> np.ndarray:
    """Index of the frame on screen at time(s) ``t``, given when each frame starts being shown."""
    return np.maximum(np.searchsorted(starts, np.asarray(t) + 1e-9, "right") - 1, 0)


def _spread(start: int, length: int, n: int) -> np.ndarray:
    """``n`` indices at the centres of ``n`` equal parts of ``[start, start + length)``."""
    return start + np.floor((np.arange(n) + 0.5) * length / n).astype(np.int64)
