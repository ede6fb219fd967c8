"""One video reader interface over OpenCV and decord, frame-exact by sequential decoding.

Random access (decord's ``get_batch``, seeking) can return the wrong frame on files with B-frames or a
lying index, and container frame counts lie. So every backend here decodes sequentially: frame ``i`` is
the ``i``-th frame a plain decode yields. Frames that are not wanted are only grabbed (decoded, not
converted), which is what makes sparse sampling cheap.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

BACKENDS = ("auto", "opencv", "decord")
ACCESS = "sequential"  # the only access path: recorded in manifests


class VideoError(Exception):
    """A video that cannot be read; the message is one line naming the reason."""


def failure_reason(error: Exception) -> str:
    """One line for a video that failed: a VideoError's reason, or the type and first line of an
    unforeseen error (a decoder failing in a new way must not end a batch)."""
    if isinstance(error, VideoError):
        return str(error)
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {first}"[:300]


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (``header_frames`` may lie; 0 when unknown)."""

    path: str
    backend: str
    width: int
    height: int
    fps: float
    header_frames: int


DAMAGED_MAX = 250  # failed grabs in a row that are damaged frames, not the end: x264's longest default GOP


class VideoReader:
    """Sequential reader: ``grab()`` advances one frame, ``retrieve()`` returns it as RGB uint8."""

    backend = ""

    def __init__(self, path: str, source: str | None = None, threads: int = 0):
        self.path = path
        self._source = source or path  # what the decoder is given: the path, or a link to it
        self._threads = threads  # decoding threads; 0: the library's choice
        self.frames_seen = 0  # frames decoded so far by read_frames/count_remaining
        self.ended = False  # the stream has ended (``next_frame``)
        self.damaged = 0  # frames that failed to decode between frames that did, skipped (``next_frame``)
        self.pts: list[float] = []  # the decoder's timestamp (s) of every grabbed frame, in decode order
        self.info = self._open()

    def _open(self) -> VideoInfo:
        raise NotImplementedError

    def grab(self) -> bool:
        """Decode the next frame; False at the end of the stream."""
        raise NotImplementedError

    def retrieve(self, size: int | None = None) -> np.ndarray:
        """The last grabbed frame, (H, W, 3) RGB uint8, resized to (size, size) when given."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def presentation_times(self) -> list[float] | None:
        """Timestamps (s) of the frames grabbed so far in presentation order (the sorted decode-order
        timestamps: B-frames come out of order), or None where the container gives no usable ones."""
        times = sorted(self.pts)
        if len(times) < 2 or not all(b > a for a, b in zip(times, times[1:])):
            return None
        return times

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _resize(frame: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or frame.shape[:2] == (size, size):
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


class OpenCVReader(VideoReader):
    backend = "opencv"

    def _open(self) -> VideoInfo:
        params = [cv2.CAP_PROP_N_THREADS, self._threads] if self._threads else []  # 0: one per CPU
        # FFmpeg alone: CAP_ANY also lets OpenCV's image and MJPEG-AVI readers try a file, and they print
        # their complaints to stderr
        self._cap = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            raise VideoError("OpenCV cannot open it (not a video, or an unsupported codec)")
        get = self._cap.get
        width, height = int(get(cv2.CAP_PROP_FRAME_WIDTH)), int(get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width <= 0 or height <= 0:
            raise VideoError("no video stream")
        return VideoInfo(self.path, self.backend, width, height, float(get(cv2.CAP_PROP_FPS) or 0.0),
                         max(int(get(cv2.CAP_PROP_FRAME_COUNT)), 0))

    def grab(self) -> bool:
        if not self._cap.grab():
            return False
        self.pts.append(self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return True

    def retrieve(self, size: int | None = None) -> np.ndarray:
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise VideoError("a frame could not be converted")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(_resize(frame, size), cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


class DecordReader(VideoReader):
    """decord through ``next()`` only: its ``skip_frames``/``get_batch`` are not frame-exact."""

    backend = "decord"

    def _open(self) -> VideoInfo:
        try:
            import decord
        except ImportError as e:
            raise VideoError("decord is not installed") from e
        decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's av_log inside decord
        try:
            with _stderr_silenced():  # dmlc's LOG(ERROR) lines ("[hh:mm:ss] video_reader.cc:83: ERROR opening")
                self._vr = decord.VideoReader(self._source, num_threads=1)
                height, width, channels = self._vr[0].shape if len(self._vr) else (0, 0, 3)
        except Exception as e:  # decord raises DECORDError and RuntimeError alike
            if "cannot find video stream" in str(e):
                raise VideoError("no video stream") from e
            raise VideoError(f"decord cannot open it ({self._reason(e)})") from e
        if width <= 0:
            raise VideoError("no frames")
        if channels != 3:  # decord 0.6 turns a 90/270-degree display matrix into mangled RGBA-sized frames
            raise VideoError(f"decord garbles its frames ({channels} channels, not 3: a video rotated by 90 "
                             "or 270 degrees?)")
        self._vr.seek(0)
        self._frame = None
        return VideoInfo(self.path, self.backend, int(width), int(height),
                         float(self._vr.get_avg_fps() or 0.0), len(self._vr))

    def grab(self) -> bool:
        try:
            self._frame = self._vr.next()
        except StopIteration:
            return False
        except Exception as e:  # DECORDError: a frame that cannot be decoded
            raise VideoError(f"decord failed at frame {len(self.pts)} ({self._reason(e)})") from e
        self.pts.append(float(self._vr.get_frame_timestamp(len(self.pts))[0]))
        return True

    def retrieve(self, size: int | None = None) -> np.ndarray:
        return _resize(self._frame.asnumpy(), size)

    def close(self) -> None:
        self._vr = None

    def _reason(self, error: Exception) -> str:
        """decord's message, one short line: no dmlc log prefix, file name or advice on its settings."""
        text = str(error).replace(f"[{self._source}]", "").replace(self._source, "")  # a path may hold a newline
        text = _DMLC_PREFIX.sub("", text.splitlines()[0] if text.strip() else type(error).__name__)
        text, _, advice = text.partition("`DECORD_")  # "... corrupted framesand `DECORD_REWIND_RETRY_MAX=16`..."
        return (text.strip().removesuffix("and") if advice else text).strip(" .:")[:120]


# "[hh:mm:ss] file.cc:292: " (nested where a decoding thread's error is passed on), then "Check failed:
# <condition> (a vs. b) " or "ERROR "
_DMLC_PREFIX = re.compile(r"^(?:\[\d\d:\d\d:\d\d\] \S+:\d+: )+(?:Check failed: (?:.*? \(-?\d+ vs\. -?\d+\) |.*?\) ))?"
                          r"(?:ERROR )?")


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for the duration (native libraries write to it directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _decoder_path(path: str):
    """A name the decoders can take for ``path``: the path itself, or, for a file name that is not valid
    UTF-8 (OpenCV crashes on it, decord refuses it), a symbolic link with a plain name, removed once the
    decoder has opened the file."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="vidrnn-") as tmp:
            link = os.path.join(tmp, "video" + os.path.splitext(path)[1].encode("ascii", "replace").decode())
            os.symlink(os.path.abspath(path), link)
            yield link
        return
    yield path


# Major brands of an ISO file (ftyp) that holds still images: HEIC (phones' photos), AVIF, HEIF. Image
# sequences (msf1, hevc, avis) are left to the decoders.
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
                b"avif": "AVIF"}
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
                (b"MM\x00*", "TIFF"))


def _jpeg_follows_jpeg(path: str, limit: int = 64 << 20) -> bool:
    """Whether an image's end marker is followed by another image's start within the first ``limit`` bytes
    (a photo holds one image; a motion-JPEG stream one per frame)."""
    marker, tail = b"\xff\xd9\xff\xd8", b""
    with open(path, "rb") as f:
        while f.tell() < limit:
            block = f.read(1 << 20)
            if not block:
                return False
            if marker in tail + block:
                return True
            tail = block[-3:]
    return False


def _not_a_video(path: str) -> str | None:
    """Why a file the decoders would open is no video: a still image (JPEG, PNG, BMP, TIFF, WebP, HEIC,
    AVIF), which FFmpeg reads as a one-frame video, or a streaming playlist (HLS, DASH), which makes it
    read the files or URLs named inside. None for anything else (an animated GIF or PNG is left to the
    decoders)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and head[20] & 2:  # the extended format's animation flag
        return "an animated WebP image (FFmpeg cannot decode its frames), not a video"
    image = "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else \
        _HEIF_BRANDS.get(head[8:12]) if head[4:8] == b"ftyp" else \
        next((name for magic, name in _IMAGE_MAGIC if head.startswith(magic)), None)
    if image == "JPEG" and _jpeg_follows_jpeg(path):
        image = None  # a motion-JPEG stream (an IP camera's .mjpeg): JPEG frames one after another
    if image == "PNG" and b"acTL" in head.split(b"IDAT")[0]:
        image = None  # an animated PNG: its animation chunk comes before the first image data
    if image:
        return f"a still image ({image}), not a video"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")  # a byte-order mark, blank lines
    if text.startswith(b"#EXTM3U"):
        return "an HLS playlist (a list of other files or URLs to play), not a video"
    if text.startswith(b"<") and b"<MPD" in head:
        return "a DASH manifest (a list of other files or URLs to play), not a video"
    return None


_READERS = {"opencv": OpenCVReader, "decord": DecordReader}
AUTO_ORDER = ("opencv", "decord")  # OpenCV's grab() decodes without colour conversion: ~2x decord's next()


def open_video(path: str | os.PathLike, backend: str = "auto", threads: int = 0) -> VideoReader:
    """Open ``path`` with ``backend``; ``auto`` tries each backend in ``AUTO_ORDER`` until one opens.
    ``threads``: OpenCV's decoding threads (0: one per CPU; decord's readers always use one)."""
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise ValueError(f"video backend must be one of {BACKENDS}, not {backend!r}")
    if not os.path.isfile(path):
        if os.path.isdir(path):
            try:
                with os.scandir(path):
                    pass
            except OSError as e:
                raise VideoError(f"a folder that cannot be read ({e.strerror or e}): videos in it are missed") from e
            raise VideoError("a folder, not a video file")
        if os.path.exists(path):  # a device, pipe or socket (or a link to one): reading may never end
            raise VideoError("not a regular file" + (f" (a link to {os.path.realpath(path)})"
                                                     if os.path.islink(path) else ""))
        raise VideoError("broken or looping symbolic link" if os.path.islink(path) else "no such file")
    if not os.access(path, os.R_OK):
        raise VideoError("permission denied")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    not_a_video = _not_a_video(path)
    if not_a_video:
        raise VideoError(not_a_video)
    reasons, opened = [], []
    with _decoder_path(path) as source:
        for name in AUTO_ORDER if backend == "auto" else (backend,):
            try:
                opened.append(_READERS[name](path, source, threads))
            except VideoError as e:
                reasons.append(str(e))
                continue
            if opened[0].info.header_frames != 1 or len(opened) == 2:
                break  # else OpenCV's one frame may be a thumbnail stream before the video (it reads the first
                # video stream), which decord, reading the stream FFmpeg deems best, finds
    if opened:
        reader = max(opened, key=lambda r: r.info.header_frames > 1)  # the first, unless only the second is a video
        for other in opened:
            if other is not reader:
                other.close()
        return reader
    if "no video stream" in reasons:
        raise VideoError("no video stream")
    raise VideoError("; ".join(dict.fromkeys(reasons)))


def read_frames(reader: VideoReader, indices: Iterable[int], *, size: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, frame)`` for the sorted unique ``indices`` that exist, decoding sequentially.

    Afterwards ``reader.frames_seen`` holds how many frames were decoded before the last wanted one
    was reached, or the true frame count when the stream ended first.
    """
    wanted = sorted(set(int(i) for i in indices))
    i = 0
    reader.frames_seen = 0
    for target in wanted:
        while i <= target:
            if not next_frame(reader):
                return
            i += 1
            reader.frames_seen = i
        yield target, reader.retrieve(size)


def count_remaining(reader: VideoReader) -> int:
    """Grab to the end of the stream; returns the total number of frames decoded by ``read_frames``."""
    while next_frame(reader):
        reader.frames_seen += 1
    return reader.frames_seen


def next_frame(reader: VideoReader) -> bool:
    """``grab()`` the next frame that decodes; False at the end of the stream. FFmpeg fails the frames of
    a damaged stretch (a cut or corrupted packet) and goes on with the frames after it: up to
    ``DAMAGED_MAX`` failures in a row are skipped and counted in ``reader.damaged``, so frame ``i`` is the
    ``i``-th frame that decodes, on every read."""
    if reader.ended:
        return False
    for failed in range(DAMAGED_MAX + 1):
        if reader.grab():
            reader.damaged += failed
            return True
    reader.ended = True
    return False
