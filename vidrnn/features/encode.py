"""Videos -> per-video CNN features: decoding in DataLoader workers overlaps the CNN, and frames are
batched across videos; or per-frame values of a function run in those workers (the HOG counter). A
worker that crashes costs only the video it was reading."""
from __future__ import annotations

import logging
import signal
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from ..device import decoder_threads, loader_context, process_context
from ..models.encoder import FrameEncoder
from ..video import Chunk, Restart, Sampling, VideoMeta, arrange, failure_reason, stream_video
from .spool import FeatureSpool, SpooledFeatures

log = logging.getLogger("vidrnn.video")


@dataclass
class Encoded:
    """One video's features, shaped like its frame indices plus a feature axis."""

    key: str
    features: SpooledFeatures  # (N, D) for uniform/fps sampling, (W, N, D) for windows; float32
    meta: VideoMeta


@dataclass
class Failed:
    key: str
    reason: str  # one line


class _VideoStreams(IterableDataset):
    """Yields ("chunk", key, frames, indices), ("restart", key), ("meta", key, meta) and
    ("error", key, reason) messages; each worker takes every n-th video and notes the position of the one
    it is reading in ``reading`` (shared memory, one slot per worker), so a crash can be traced to a file.
    With ``process``, a chunk carries ``process(frames)`` (one value per frame) instead of the frames."""

    def __init__(self, videos: list[tuple[str, str]], sampling: Sampling, size: int | None, backend: str,
                 chunk: int, reading, process: Callable[[np.ndarray], np.ndarray] | None = None):
        self.videos, self.sampling, self.size, self.backend, self.chunk = videos, sampling, size, backend, chunk
        self.reading, self.process = reading, process

    def __iter__(self):
        info = get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)
        threads = 0 if info is None else decoder_threads(info.num_workers, len(self.videos))
        for position in range(first, len(self.videos), step):
            key, path = self.videos[position]
            self.reading[first] = position
            try:
                for item in stream_video(path, self.sampling, size=self.size, backend=self.backend,
                                         chunk=self.chunk, threads=threads):
                    if isinstance(item, Chunk):
                        out = item.frames if self.process is None else self.process(item.frames)
                        yield "chunk", key, torch.from_numpy(out), torch.from_numpy(item.indices)
                    elif isinstance(item, Restart):
                        yield "restart", key
                    else:
                        yield "meta", key, item
            except Exception as e:  # a decoder failing in an unforeseen way must not end the batch
                yield "error", key, failure_reason(e)


def _init_worker(_):
    torch.set_num_threads(1)
    # a SIGTERM to the whole process group (a scheduler's, timeout's) is the main process's to act on: it
    # stops the workers; one that died of it first would be reported as a crash
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_WORKER_ERRORS = (RuntimeError, ConnectionError, EOFError)


def _worker_died(error: Exception) -> bool:
    """Whether ``error`` is the DataLoader's news of a dead worker ("DataLoader worker (pid 12) is killed
    by signal: ...", "... exited unexpectedly"), raised from its SIGCHLD handler or its queue wait, or a
    broken connection to one: a worker that dies before the main process has fetched the shared memory of
    a chunk it sent (torch passes its file descriptor over a socket of the worker's) breaks that fetch."""
    if isinstance(error, (ConnectionError, EOFError)):
        return True
    return isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker (pid")


@dataclass
class _Pending:
    gen: int = 0  # bumped on restart: frames of older generations are dropped
    sent: int = 0
    indices: list = field(default_factory=list)
    feats: FeatureSpool = field(default_factory=FeatureSpool)
    meta: VideoMeta | None = None


# torch names neither the signal nor the exit status of a worker that died
CRASHED = "its decoding process died (a native crash in OpenCV/FFmpeg, or killed for lack of memory)"


def encode_videos(videos: list[tuple[str, str]], encoder: FrameEncoder, sampling: Sampling, *,
                  size: int = 224, backend: str = "auto", batch_size: int = 32, workers: int = 2,
                  device: torch.device = torch.device("cpu"), amp: bool = True,
                  on_frames: Callable[[int], None] | None = None) -> Iterator[Encoded | Failed]:
    """Encode ``videos`` (``(key, path)`` pairs); yields one ``Encoded`` or ``Failed`` per video,
    in the order they finish. A video's features are spooled (to a temporary file beyond a few MiB) as
    they are computed, so memory does not grow with a video's length.

    A decode worker that dies (a native crash in the decoder) does not end the batch: the videos the
    workers were reading are tried again one at a time, one that kills its worker again is ``Failed``,
    and the rest go on. (With ``workers=0`` decoding runs in this process, which such a crash ends.)
    ``on_frames(n)`` is called as each batch of ``n`` frames is encoded (``VideoBar.add_frames``)."""
    encode = partial(_encode, encoder=encoder, sampling=sampling, size=size, backend=backend,
                     batch_size=batch_size, device=device, amp=amp, on_frames=on_frames)
    yield from _crash_isolated(encode, videos, workers)


@dataclass
class Mapped:
    """One video's per-frame values, shaped like its frame indices: (N,) or (W, N) for windows."""

    key: str
    values: np.ndarray
    meta: VideoMeta


def map_frames(videos: list[tuple[str, str]], fn: Callable[[np.ndarray], np.ndarray] | None, sampling: Sampling,
               *, size: int | None = None, backend: str = "auto", workers: int = 2,
               on_frames: Callable[[int], None] | None = None) -> Iterator[Mapped | Failed]:
    """``fn`` (frames (n, H, W, 3) uint8, at full size or resized to ``size`` squared -> one value per frame)
    over the sampled frames of ``videos``, run in the decode workers; without ``fn`` the values are the frames
    themselves. One ``Mapped`` or ``Failed`` per video, as they finish. A worker that dies, and
    ``on_frames``, are as in ``encode_videos``."""
    yield from _crash_isolated(partial(_map, fn=fn, sampling=sampling, size=size, backend=backend,
                                       on_frames=on_frames), videos, workers)


class VideoBar:
    """A progress bar over videos that also shows the sampled frames done so far, so that a long video
    is seen to move (one 60-minute file stood at 0/1 for minutes)."""

    def __init__(self, total: int, enabled: bool = True):
        self.bar = tqdm(total=total, unit="video", disable=not enabled or not total, dynamic_ncols=True)
        self.frames = 0

    def add_frames(self, n: int) -> None:
        self.frames += n
        if not self.bar.disable:
            self.bar.set_postfix_str(f"{self.frames} frames", refresh=False)
            self.bar.update(0)  # redrawn at most every bar.mininterval seconds

    def update(self, videos: int = 1) -> None:
        self.bar.update(videos)

    def close(self) -> None:
        self.bar.close()


TRUSTED_HEADER = 10  # a header claiming more than 10x the frames decoded is a wrong field, not a cut file


def warn_lost_frames(key: str, meta: VideoMeta) -> None:
    """A warning naming a video whose decoding skipped frames that failed (a damaged stretch), or that
    decoded to fewer frames than its header says (a file cut short: a copy or a recording that stopped)."""
    if meta.damaged_frames:
        n = meta.damaged_frames
        log.warning("%s: %d frame%s failed to decode (a damaged stretch) and %s skipped; %d frames read", key, n,
                    "s" if n > 1 else "", "were" if n > 1 else "was", meta.frame_count)
    if meta.fps <= 0 or not meta.duration_s or meta.header_frames > TRUSTED_HEADER * meta.frame_count:
        return
    claimed = meta.header_frames / meta.fps  # by time: a variable-rate file's header count is its duration x fps
    if claimed - meta.duration_s > max(1.0, 0.02 * claimed):
        log.warning("%s: its header says %d frames (%.1f s), decoding ended at %.1f s (%d frames): cut short "
                    "(truncated)?", key, meta.header_frames, claimed, meta.duration_s, meta.frame_count)


def _crash_isolated(run: Callable, videos: list[tuple[str, str]], workers: int) -> Iterator:
    """``run(videos, reading, workers=...)``'s results; where a decode worker dies, the videos the workers
    were reading are run again one at a time, one that kills its worker again is ``Failed``, and the rest
    go on."""
    todo = list(videos)
    while todo:
        reading = process_context().Array("q", [-1] * max(workers, 1), lock=False)
        finished = set()
        try:
            for result in run(todo, reading, workers=workers):
                finished.add(result.key)
                yield result
            return
        except _WORKER_ERRORS as e:
            suspects = [todo[i] for i in dict.fromkeys(reading) if i >= 0 and todo[i][0] not in finished]
            if not _worker_died(e) or not suspects:
                raise
        for video in suspects:  # alone, in a fresh worker: a crash now is this file's
            try:
                yield from run([video], process_context().Array("q", [-1], lock=False), workers=1)
            except _WORKER_ERRORS as e:
                if not _worker_died(e):
                    raise
                yield Failed(video[0], CRASHED)
        todo = [v for v in todo if v[0] not in finished and v not in suspects]


def _map(videos: list[tuple[str, str]], reading, *, fn, sampling: Sampling, size: int | None, backend: str,
         workers: int, on_frames: Callable[[int], None] | None) -> Iterator[Mapped | Failed]:
    """One pass of ``map_frames`` over ``videos``; a decode worker that dies raises RuntimeError."""
    loader = DataLoader(_VideoStreams(videos, sampling, size, backend, chunk=4, reading=reading, process=fn),
                        batch_size=None, num_workers=workers, worker_init_fn=_init_worker,
                        prefetch_factor=4 if workers else None, persistent_workers=False, **loader_context(workers))
    state: dict[str, tuple[list, list]] = {}  # key -> (indices, values) of its chunks so far
    for msg in loader:
        kind, key = msg[0], msg[1]
        if kind == "chunk":
            indices, values = state.setdefault(key, ([], []))
            indices.append(msg[3].numpy())
            values.append(msg[2].numpy())
            if on_frames:
                on_frames(len(msg[3]))
        elif kind == "restart":
            state.pop(key, None)
        elif kind == "meta":
            warn_lost_frames(key, msg[2])
            indices, values = state.pop(key)
            yield Mapped(key, arrange(np.concatenate(indices), np.concatenate(values), msg[2].frame_indices), msg[2])
        else:
            state.pop(key, None)
            yield Failed(key, msg[2])


def _encode(videos: list[tuple[str, str]], reading, *, encoder: FrameEncoder, sampling: Sampling, size: int,
            backend: str, batch_size: int, workers: int, device: torch.device, amp: bool,
            on_frames: Callable[[int], None] | None) -> Iterator[Encoded | Failed]:
    """One pass of ``encode_videos`` over ``videos``; a decode worker that dies raises RuntimeError."""
    cuda = device.type == "cuda"
    loader = DataLoader(_VideoStreams(videos, sampling, size, backend, chunk=batch_size, reading=reading),
                        batch_size=None, num_workers=workers, worker_init_fn=_init_worker,
                        prefetch_factor=4 if workers else None, persistent_workers=False, **loader_context(workers))
    encoder = encoder.for_inference().to(device)
    if not cuda:
        encoder = encoder.to(memory_format=torch.channels_last)
    state: dict[str, _Pending] = {}
    queue: deque = deque()  # (key, gen, frames) waiting for the CNN
    queued = 0
    # On CUDA a batch is gathered into pinned memory (two buffers, taking turns) and its features come back
    # while the next batch is gathered: one batch is in flight, and the host does not wait on the GPU.
    staging = [torch.empty((batch_size, size, size, 3), dtype=torch.uint8, pin_memory=True)
               for _ in range(2)] if cuda else []
    in_flight: deque = deque()  # (owners, features (B, D) on their way to the host, CUDA event or None)
    launched = 0

    def run_batch(n: int) -> None:
        nonlocal queued, launched
        pieces, owners = [], []
        while n > 0 and queue:
            key, gen, frames = queue.popleft()
            if len(frames) > n:
                queue.appendleft((key, gen, frames[n:]))
                frames = frames[:n]
            pieces.append(frames)
            owners.append((key, gen, len(frames)))
            n -= len(frames)
            queued -= len(frames)
        rows = sum(m for _, _, m in owners)
        if cuda:  # the buffer's last batch has landed (below), so its copy to the GPU is done
            x, start = staging[launched % 2][:rows], 0
            for piece in pieces:  # a one-thread copy: torch.cat took 14 ms a batch beside 12 busy decode workers
                np.copyto(x[start:start + len(piece)].numpy(), piece.numpy())
                start += len(piece)
            x = x.to(device, non_blocking=True)
        else:
            x = torch.cat(pieces)  # (B, S, S, 3) uint8
        launched += 1
        with torch.inference_mode(), torch.autocast(device.type, enabled=cuda and amp):
            feats = encoder(x).float().to("cpu", non_blocking=cuda)  # (B, D)
        done = torch.cuda.Event() if cuda else None
        if done:
            done.record()
        in_flight.append((owners, feats, done))
        if on_frames:
            on_frames(rows)
        while len(in_flight) > (1 if cuda else 0):  # one batch stays in flight on CUDA
            land()

    def land() -> None:
        """The oldest batch's features into the spools of their videos."""
        owners, feats, done = in_flight.popleft()
        if done:
            done.synchronize()
        feats, start = feats.numpy(), 0
        for key, gen, m in owners:
            st = state.get(key)
            if st is not None and st.gen == gen:
                st.feats.append(feats[start:start + m])  # a video's frames come in order: its spool too
            start += m

    def finished() -> Iterator[Encoded]:
        for key in [k for k, st in state.items() if st.meta and st.feats.rows == st.sent]:
            st = state.pop(key)
            yield Encoded(key, SpooledFeatures(st.feats, np.concatenate(st.indices), st.meta.frame_indices), st.meta)

    for msg in loader:
        kind, key = msg[0], msg[1]
        st = state[key] if key in state else state.setdefault(key, _Pending())
        if kind == "chunk":
            frames, indices = msg[2], msg[3]
            st.sent += len(frames)
            st.indices.append(indices.numpy())
            queue.append((key, st.gen, frames))
            queued += len(frames)
            while queued >= batch_size:
                run_batch(batch_size)
        elif kind == "restart":
            st.feats.close()
            state[key] = _Pending(gen=st.gen + 1)
        elif kind == "meta":
            warn_lost_frames(key, msg[2])
            st.meta = msg[2]
        else:
            state.pop(key).feats.close()
            yield Failed(key, msg[2])
        yield from finished()
    while queued:
        run_batch(batch_size)
    while in_flight:
        land()
    yield from finished()
