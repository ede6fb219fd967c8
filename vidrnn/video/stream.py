"""Stream a video's sampled frames in bounded chunks, checking the container's frame count on the way."""
from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from .reader import ACCESS, VideoError, count_remaining, open_video, read_frames
from .sampling import Sampling

READS = 3  # at most: the planned read, one after a wrong header count, one more for a damaged file


@dataclass
class Chunk:
    """Consecutive sampled frames of one video, in frame order."""

    frames: np.ndarray  # (n, S, S, 3) uint8 RGB
    indices: np.ndarray  # (n,) frame indices


@dataclass
class Restart:
    """The frame count was wrong: drop what was streamed so far, a new plan follows."""

    reason: str


@dataclass
class VideoMeta:
    """What was read: the true frame count and the sampled indices (same shape as the features)."""

    backend: str
    access: str
    width: int
    height: int
    fps: float
    frame_count: int
    header_frames: int
    frame_count_source: str  # "header" (verified by decoding to the end) or "counted"
    frame_indices: list
    timestamps: list
    duration_s: float | None = None  # from the decoder's timestamps where usable, else frames / fps
    window_bounds: list | None = None  # window sampling: (start_s, end_s) of each window, timed the same way
    window_frames: list | None = None  # window sampling: the [start, end) frame range of each window
    damaged_frames: int = 0  # frames that failed to decode between frames that did: skipped, not counted

    def as_dict(self) -> dict:
        return asdict(self)


def stream_video(path: str, sampling: Sampling, *, size: int | None, backend: str = "auto",
                 chunk: int = 32, threads: int = 0) -> Iterator[Chunk | Restart | VideoMeta]:
    """Yield the sampled frames of ``path`` as ``Chunk``s, then its ``VideoMeta``.

    Frame indices are planned from the header's frame count and frame rate, and the stream is decoded to
    its end; if the true count gives another plan (the header lied, or decoding stopped early on a broken
    file), or fps or window sampling finds the frames far from index / fps apart (a variable frame rate:
    they are then sampled by their own times), and the new plan needs frames this read did not keep, a
    ``Restart`` is yielded and the video is streamed again with it. Memory holds at most one chunk,
    whatever the video's length. ``threads``: the decoder's (``open_video``).
    """
    reader = open_video(path, backend, threads)
    try:
        info = reader.info
        total, source = info.header_frames, "header"
        if total < 1 or total > os.path.getsize(path):  # unknown, or more frames than the file has bytes
            total, source = count_remaining(reader), "counted"
            reader.close()
            reader = open_video(path, info.backend, threads)
        if total < 1:
            raise VideoError("no frame could be decoded")
        fps = info.fps if info.fps > 0 else 0.0
        plan, counts = _plan(sampling, total, info.fps), [total]  # the frames each plan was made for
        for _ in range(READS):
            got = yield from _chunks(reader, plan, size, chunk)
            counted = count_remaining(reader)
            if counted < 1:
                raise VideoError("no frame could be decoded")
            edges = decoded_edges(reader, counted, fps)
            timed = sampling.mode != "uniform" and edges is not None and _irregular(edges, fps)
            new_plan = sampling.plan_in_time(edges) if timed else _plan(sampling, counted, fps)
            if np.isin(new_plan, np.unique(plan)[:got]).all():  # the frames it needs were read (a header count a
                plan = new_plan  # little high, fps sampling: the plan's tail is gone); any others are left unused
                break
            if counted == counts[-1]:
                reason = "the frames are not 1 / fps apart (variable frame rate): sampled again by their times"
            elif len(counts) == 1:
                reason = f"header said {total} frames, decoding gave {counted}"
            else:  # a damaged file can decode to another length each time
                reason = f"one read decoded {counts[-1]} frames, the next {counted}"
            counts.append(counted)
            if len(counts) > READS:
                raise VideoError(f"damaged or truncated: each read decodes another number of frames "
                                 f"({', '.join(map(str, counts[1:]))}), so the sampled frames cannot be read")
            yield Restart(reason)
            reader.close()
            reader = open_video(path, info.backend, threads)
            plan = new_plan
        if counted != info.header_frames:
            source = "counted"
        total, damaged = counted, reader.damaged
    finally:
        reader.close()
    stamps = edges[plan] if edges is not None else np.zeros(plan.shape)
    bounds = ranges = None
    if sampling.mode == "window" and timed:  # the spans the frames were picked for
        bounds = window_bounds(sampling, float(edges[-1]))
        ranges = sampling.windows_in_time(edges)
    elif sampling.mode == "window":  # plan() checked fps
        ranges = sampling.windows(total, fps)
        bounds = window_bounds(sampling, total / fps)
    duration = round(float(edges[-1]), 4) if edges is not None else None
    yield VideoMeta(info.backend, ACCESS, info.width, info.height, fps, total, info.header_frames, source,
                    plan.tolist(), stamps.round(4).tolist(), duration, bounds,
                    [list(r) for r in ranges] if ranges is not None else None, damaged)


def window_bounds(sampling: Sampling, duration: float) -> list[tuple[float, float]]:
    """(start_s, end_s) of each window of a video ``duration`` seconds long: the spans the windows were read
    for (``Sampling.windows``, ``windows_in_time``), not their frames' (at 0.01 fps a frame lasts 100 s)."""
    return [(round(a, 4), round(b, 4)) for a, b in sampling.spans(duration)]


def decoded_edges(reader, total: int, fps: float) -> np.ndarray | None:
    """``frame_edges`` of the ``total`` frames ``reader`` has just decoded."""
    times = reader.presentation_times()
    return frame_edges(times if times is not None and len(times) == total else None, total, fps)


def _irregular(edges: np.ndarray, fps: float) -> bool:
    """Whether some frame is shown more than one frame period away from index / fps (a variable frame
    rate, or a wrong header rate): time-based sampling then needs the frames' own times."""
    return fps > 0 and float(np.abs(edges[:-1] - np.arange(len(edges) - 1) / fps).max()) > 1 / fps


def frame_edges(times: list[float] | None, total: int, fps: float) -> np.ndarray | None:
    """When each of ``total`` frames starts being shown, and when the last one ends, (total + 1,) seconds
    from the first frame: the decoder's own timestamps where it has them (right for variable frame
    rates: index / fps is not), else index / fps; None with neither."""
    if times is not None:
        t = np.asarray(times, float) - times[0]
        step = 1.0 / fps if fps else float(np.median(np.diff(t))) if len(t) > 1 else 0.0  # one frame: no length
        return np.append(t, t[-1] + step)
    return np.arange(total + 1) / fps if fps else None


def read_sampled(path: str, sampling: Sampling, *, size: int | None, backend: str = "auto", threads: int = 0
                 ) -> tuple[np.ndarray, VideoMeta]:
    """All sampled frames of one video, laid out like its plan: (N, S, S, 3) or (W, N, S, S, 3) uint8."""
    frames, indices = [], []
    for item in stream_video(path, sampling, size=size, backend=backend, threads=threads):
        if isinstance(item, Restart):
            frames, indices = [], []
        elif isinstance(item, Chunk):
            frames.append(item.frames)
            indices.append(item.indices)
        else:
            return arrange(np.concatenate(indices), np.concatenate(frames), item.frame_indices), item
    raise VideoError("the stream ended without its metadata")


def arrange(unique: np.ndarray, values: np.ndarray, plan) -> np.ndarray:
    """Values of the sorted unique sampled frames (U, ...) laid out like ``plan`` (plan.shape + (...))."""
    return values[np.searchsorted(unique, np.asarray(plan))]


def _plan(sampling: Sampling, total: int, fps: float) -> np.ndarray:
    try:
        return sampling.plan(total, fps)
    except ValueError as e:
        raise VideoError(str(e)) from e


def _chunks(reader, plan: np.ndarray, size: int | None, chunk: int) -> Generator[Chunk, None, int]:
    """The planned frames in chunks; returns how many there were: the first ones of the plan's sorted unique
    frames (fewer where the stream ended first)."""
    wanted = np.unique(plan)
    frames, indices, count = [], [], 0
    for i, frame in read_frames(reader, wanted, size=size):
        frames.append(frame)
        indices.append(i)
        count += 1
        if len(frames) == chunk:
            yield Chunk(np.stack(frames), np.asarray(indices))
            frames, indices = [], []
    if frames:
        yield Chunk(np.stack(frames), np.asarray(indices))
    return count
