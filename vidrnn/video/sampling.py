"""Which frames to take from a video: uniform, at a fixed rate, or in windows for long videos."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MODES = ("uniform", "fps", "window")


@dataclass(frozen=True)
class Sampling:
    """A sampling rule; ``plan`` turns it into frame indices once the frame count is known.

    mode: ``uniform`` (``num_frames`` spread over the whole video), ``fps`` (``fps`` frames per second,
    at most ``max_frames``), or ``window`` (clips of ``num_frames`` spread over ``window_s`` seconds, one
    clip every ``stride_s`` seconds; the last clip ends at the last frame).
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
        """Window mode: the [start, end) frame range of each clip."""
        length = min(max(round(self.window_s * video_fps), 1), total)
        stride = max(round(self.stride_s * video_fps), 1)
        starts = list(range(0, total - length + 1, stride))
        if starts[-1] != total - length:
            starts.append(total - length)
        return [(a, a + length) for a in starts]


def _spread(start: int, length: int, n: int) -> np.ndarray:
    """``n`` indices at the centres of ``n`` equal parts of ``[start, start + length)``."""
    return start + np.floor((np.arange(n) + 0.5) * length / n).astype(np.int64)
