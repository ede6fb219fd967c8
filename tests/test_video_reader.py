"""Decoding is frame-exact on every backend, including B-frames and an AVI whose index lies."""
import os
import re
import struct
from pathlib import Path
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import frame_id, indexed_frame, write_opencv, write_rotated

from vidrnn.files import list_videos
from vidrnn.predict import window_times
from vidrnn.video import (Chunk, Restart, Sampling, VideoError, VideoMeta, open_video, read_frames, read_sampled,
                          stream_video)

BACKENDS = ["opencv", "decord"]


def sequential_ids(path) -> list[int]:
    """Frame ids from a plain OpenCV read() loop: the reference every access path must match."""
    cap, ids = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return ids
        ids.append(frame_id(frame[:, :, ::-1]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["mp4v", "mjpg", "bframes", "lying_index"])
def test_read_frames_matches_sequential_decode(known_videos, backend, name):
    path, true_count = known_videos[name]
    reference = sequential_ids(path)
    assert reference == list(range(true_count))
    wanted = [0, 1, 3, 7, 8, 13, true_count - 1]
    with open_video(path, backend) as reader:
        got = list(read_frames(reader, wanted))
    assert [i for i, _ in got] == wanted
    assert [frame_id(f) for _, f in got] == [reference[i] for i in wanted]


@pytest.mark.parametrize("name", ["mp4v", "mjpg", "bframes", "lying_index"])
def test_opencv_decodes_the_same_frames_on_the_threads_it_is_given(known_videos, name):
    path, true_count = known_videos[name]
    with open_video(path, "opencv") as reader:
        default = [frame_id(f) for _, f in read_frames(reader, range(true_count))]
    with open_video(path, "opencv", threads=1) as reader:
        assert reader._cap.get(cv2.CAP_PROP_N_THREADS) == 1
        assert [frame_id(f) for _, f in read_frames(reader, range(true_count))] == default == list(range(true_count))


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_are_rgb_uint8_with_known_pixels(known_videos, backend):
    path, _ = known_videos["mjpg"]
    with open_video(path, backend) as reader:
        assert (reader.info.width, reader.info.height, reader.info.backend) == (64, 48, backend)
        assert reader.info.fps == pytest.approx(10.0)
        [(_, frame)] = list(read_frames(reader, [5]))
    assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
    expected = indexed_frame(5).astype(int)
    assert np.abs(frame.astype(int) - expected).mean() < 6  # RGB order, not BGR


def test_resize_on_retrieve(known_videos):
    with open_video(known_videos["mp4v"][0]) as reader:
        [(_, frame)] = list(read_frames(reader, [4], size=32))
    assert frame.shape == (32, 32, 3) and frame_id(frame) == 4


def test_auto_falls_back_to_decord_where_opencv_cannot_open_a_file(tmp_path, monkeypatch):
    """backend=auto tries OpenCV first; where it cannot open a video, decord reads it, frame-exact; where
    neither can, the error names both reasons."""
    pytest.importorskip("decord")
    from vidrnn.video import reader as reader_module

    path = write_opencv(tmp_path / "clip.mp4", 12, "mp4v")
    with open_video(path) as reader:
        assert reader.info.backend == "opencv"  # the first choice where it works
    tried = []

    def refuse(self):
        tried.append(self.path)
        raise VideoError("OpenCV cannot open it (not a video, or an unsupported codec)")

    monkeypatch.setattr(reader_module.OpenCVReader, "_open", refuse)
    with open_video(path, "auto") as reader:
        assert tried == [str(path)]
        assert reader.info.backend == reader.backend == "decord"
        assert (reader.info.width, reader.info.height, reader.info.header_frames) == (64, 48, 12)
        got = list(read_frames(reader, [0, 1, 5, 11]))
    assert [i for i, _ in got] == [0, 1, 5, 11]
    assert [frame_id(f) for _, f in got] == [0, 1, 5, 11]  # the frames written
    assert np.abs(got[2][1].astype(int) - indexed_frame(5).astype(int)).mean() < 6
    *chunks, meta = stream_video(str(path), Sampling(num_frames=4), size=16)  # what extract records
    assert (meta.backend, meta.frame_count) == ("decord", 12)
    indices = [int(i) for c in chunks for i in c.indices]
    assert len(indices) == 4 and indices == [int(i) for i in meta.frame_indices]
    assert [frame_id(f) for c in chunks for f in c.frames] == indices
    with pytest.raises(VideoError, match="OpenCV cannot open it"):
        open_video(path, "opencv")  # named, OpenCV alone: no fallback
    monkeypatch.setattr(reader_module.DecordReader, "_open",
                        lambda self: (_ for _ in ()).throw(VideoError("decord cannot open it (broken)")))
    with pytest.raises(VideoError, match=r"^OpenCV cannot open it \(not a video, or an unsupported codec\); "
                                         r"decord cannot open it \(broken\)$"):
        open_video(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_counts_frames_when_the_index_lies(known_videos, backend):
    path, true_count = known_videos["lying_index"]
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 60  # the header lies
    items = list(stream_video(str(path), Sampling(num_frames=5), size=32, backend=backend))
    meta = items[-1]
    assert isinstance(meta, VideoMeta) and meta.frame_count == true_count
    assert meta.access == "sequential" and meta.backend == backend
    after_restart = items[max((k + 1 for k, it in enumerate(items) if isinstance(it, Restart)), default=0):]
    chunks = [it for it in after_restart if isinstance(it, Chunk)]
    got = np.concatenate([c.indices for c in chunks])
    assert got.tolist() == meta.frame_indices == Sampling(num_frames=5).plan(true_count, 10.0).tolist()
    assert [frame_id(f) for c in chunks for f in c.frames] == got.tolist()


def test_a_header_count_a_little_high_is_not_read_twice_where_the_frames_were_read(tmp_path):
    """fps sampling of a file whose header claims 24 frames where it has 20: the true plan is the first one
    without its tail, whose frames were read, so the file is decoded once (a long file: minutes saved).
    (OpenCV reads the header's count; decord counts the index itself.)"""
    from conftest import make_index_lie

    backend = "opencv"
    path = make_index_lie(write_opencv(tmp_path / "high.avi", 20, "MJPG"), 24)
    sampling = Sampling(mode="fps", fps=5.0)  # every second frame of a 10 fps file
    assert sampling.plan(24, 10.0).tolist()[-1] == 22
    items = list(stream_video(str(path), sampling, size=32, backend=backend))
    assert not any(isinstance(it, Restart) for it in items)
    meta = items[-1]
    assert (meta.frame_count, meta.header_frames, meta.frame_count_source) == (20, 24, "counted")
    assert meta.frame_indices == list(range(0, 20, 2)) == sampling.plan(20, 10.0).tolist()
    frames, _ = read_sampled(str(path), sampling, size=32, backend=backend)
    assert [frame_id(f) for f in frames] == meta.frame_indices
    uniform = list(stream_video(str(path), Sampling(num_frames=5), size=32, backend=backend))
    assert [type(it) for it in uniform].count(Restart) == 1  # a plan spread over 24 frames: read again
    assert uniform[-1].frame_indices == Sampling(num_frames=5).plan(20, 10.0).tolist()


def test_stream_chunks_are_bounded(known_videos):
    path, n = known_videos["bframes"]
    items = list(stream_video(str(path), Sampling(mode="fps", fps=25), size=16, chunk=4))
    chunks = [it for it in items if isinstance(it, Chunk)]
    assert max(len(c.frames) for c in chunks) == 4
    assert sum(len(c.frames) for c in chunks) == n == items[-1].frame_count
    assert items[-1].frame_count_source == "header"
    assert items[-1].timestamps[:3] == [0.0, 0.04, 0.08]


@pytest.mark.parametrize("content,reason", [(b"", "empty file"), (b"\x00\x01junk" * 500, "cannot open"),
                                            (b"hello, not a video\n", "cannot open")])
def test_bad_files_raise_one_line_video_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=reason) as e:
        open_video(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("ext, name", [(".jpg", "JPEG"), (".png", "PNG"), (".bmp", "BMP"), (".tiff", "TIFF"),
                                       (".webp", "WebP")])
def test_a_still_image_named_like_a_video_is_refused(tmp_path, ext, name):
    """FFmpeg would read a renamed photo as a one-frame video; it is reported as what it is."""
    path = tmp_path / "holiday.mp4"
    path.write_bytes(cv2.imencode(ext, indexed_frame(3))[1].tobytes())
    with pytest.raises(VideoError, match=rf"^a still image \({name}\), not a video$"):
        open_video(path)


def test_an_animated_png_is_read_as_a_video(tmp_path):
    """An animated PNG (APNG: its animation chunk before the first image data) is a video to FFmpeg; it was
    refused as "a still image (PNG)"."""
    from PIL import Image

    frames = [Image.fromarray(indexed_frame(i)) for i in range(10)]
    path = tmp_path / "anim.apng"
    frames[0].save(path, format="PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with open_video(path) as reader:
        assert [frame_id(frame) for _, frame in read_frames(reader, range(10))] == list(range(10))


@pytest.mark.parametrize("head, reason", [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", r"^a still image \(HEIC\), not a video$"),  # a phone's photo
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", r"^a still image \(AVIF\), not a video$"),
    (b"RIFF\x00\x10\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00", r"^an animated WebP image \(FFmpeg cannot"),
])
def test_heif_photos_and_animated_webp_named_like_a_video_are_refused(tmp_path, head, reason):
    """FFmpeg reads a HEIC/AVIF photo as a one-frame video, and fails an animated WebP's frames: both are
    named for what they are."""
    path = tmp_path / "photo.mp4"
    path.write_bytes(head + bytes(2000))
    with pytest.raises(VideoError, match=reason):
        open_video(path)


def test_a_header_frame_count_beyond_the_file_size_is_not_planned_from(tmp_path, monkeypatch):
    """A corrupted Matroska duration makes OpenCV report 2.5e8 frames for a 50-frame file of a few kB:
    fps and window plans built from it took gigabytes. A count above the file's size in bytes is
    impossible, so the frames are counted first."""
    path = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (64, 48))
    for i in range(50):
        writer.write(cv2.cvtColor(indexed_frame(i % 30), cv2.COLOR_RGB2BGR))
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # the Segment's Duration element: a float64 in milliseconds
    data[at + 3:at + 11] = struct.pack(">d", 1e10)
    path.write_bytes(bytes(data))
    with open_video(path) as reader:
        assert reader.info.header_frames > path.stat().st_size
    plan = Sampling.plan

    def bounded_plan(self, total, fps):
        assert total <= 50, f"planned for {total} frames"
        return plan(self, total, fps)

    monkeypatch.setattr(Sampling, "plan", bounded_plan)
    for sampling in (Sampling("fps", fps=5), Sampling("window", num_frames=4, window_s=0.5, stride_s=0.5)):
        items = list(stream_video(str(path), sampling, size=16))
        meta = items[-1]
        assert (meta.frame_count, meta.frame_count_source) == (50, "counted")
        assert not any(isinstance(item, Restart) for item in items)


def test_a_motion_jpeg_stream_is_a_video(tmp_path):
    """An IP camera's .mjpeg is JPEG frames one after another: it starts like a photo but is read as video."""
    path = tmp_path / "camera.mjpeg"
    path.write_bytes(b"".join(cv2.imencode(".jpg", cv2.cvtColor(indexed_frame(i), cv2.COLOR_RGB2BGR))[1].tobytes()
                             for i in range(12)))
    with open_video(path) as reader:
        frames = [frame for _, frame in read_frames(reader, range(100))]
    assert len(frames) == 12
    assert [frame_id(f) for f in frames] == list(range(12))


@pytest.mark.parametrize("degrees,corner", [(90, "top right"), (180, "bottom right"), (270, "bottom left")])
def test_a_rotated_video_is_read_upright(tmp_path, degrees, corner):
    """A phone's portrait video is stored sideways with a display matrix: frames come out as players show
    them. decord turns 180 degrees right but garbles 90 and 270 (four-channel frames): a clear error."""
    path = write_rotated(tmp_path / f"rot{degrees}.mp4", degrees)
    quarter = degrees != 180

    def white_corner(frame):
        corners = {"top left": frame[:8, :8], "top right": frame[:8, -8:], "bottom left": frame[-8:, :8],
                   "bottom right": frame[-8:, -8:]}
        return max(corners, key=lambda k: corners[k].mean())

    for backend in ("auto", "opencv") + (() if quarter else ("decord",)):
        with open_video(path, backend) as reader:
            frames = [f for _, f in read_frames(reader, [0, 9])]
            assert (reader.info.width, reader.info.height) == ((48, 64) if quarter else (64, 48))
        assert [f.shape for f in frames] == [(64, 48, 3) if quarter else (48, 64, 3)] * 2
        assert [white_corner(f) for f in frames] == [corner] * 2
    if quarter:
        with pytest.raises(VideoError, match=r"^decord garbles its frames \(4 channels, not 3: a video "
                                             r"rotated by 90 or 270 degrees\?\)$"):
            open_video(path, "decord").__enter__()


@pytest.mark.parametrize("text, reason", [
    ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{video}\n#EXT-X-ENDLIST\n", "an HLS playlist"),
    ('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><BaseURL>{video}</BaseURL></MPD>\n',
     "a DASH manifest")])
def test_a_playlist_named_like_a_video_is_refused(tmp_path, known_videos, text, reason):
    """A playlist makes FFmpeg play the files or URLs it names (decord read the local video behind an HLS
    list, then failed with its own log line): it is refused as what it is, before any decoder opens it."""
    path = tmp_path / "clip.mp4"
    path.write_text(text.format(video=known_videos["mp4v"][0]))
    with pytest.raises(VideoError, match=rf"^{reason} \(a list of other files or URLs to play\), not a video$"):
        open_video(path)


def test_decord_errors_are_one_short_line(tmp_path, known_videos):
    """What decord says when it fails inside a file, without its log prefix, the path or its advice."""
    from vidrnn.video.reader import DecordReader
    path = tmp_path / "list.avi"
    path.write_text(f"#EXTM3U\n#EXTINF:10,\n{known_videos['mp4v'][0]}\n#EXT-X-ENDLIST\n")
    with pytest.raises(VideoError) as e:
        DecordReader(str(path))
    assert str(e.value).startswith("decord cannot open it (") and len(str(e.value)) < 160
    assert not re.search(r"\n|/github/|\.cc:\d|DECORD_|list\.avi", str(e.value)), str(e.value)


def test_a_thumbnail_stream_before_the_video_is_skipped(tmp_path):
    """OpenCV reads a file's first video stream; where that is a one-frame thumbnail (a preview track
    before the video in an MKV), the video is read instead, not its thumbnail as a one-frame clip."""
    av = pytest.importorskip("av")
    path = tmp_path / "with_thumbnail.mkv"
    with av.open(str(path), "w") as c:
        thumb = c.add_stream("mjpeg", rate=1)
        thumb.width, thumb.height, thumb.pix_fmt = 32, 24, "yuvj420p"
        video = c.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        c.mux(thumb.encode(av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24")))
        c.mux(thumb.encode())
        for i in range(12):
            c.mux(video.encode(av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")))
        c.mux(video.encode())
    with open_video(path) as reader:
        frames = list(read_frames(reader, range(20)))
        assert (reader.info.width, reader.info.height, reader.info.header_frames) == (64, 48, 12)
    assert [frame_id(f) for _, f in frames] == list(range(12))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        open_video(tmp_path / "nope.mp4")
    (tmp_path / "x.mp4").mkdir()
    with pytest.raises(VideoError, match="a folder, not a video file"):
        open_video(tmp_path / "x.mp4")
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    with pytest.raises(VideoError, match="looping symbolic link"):
        open_video(tmp_path / "loop.mp4")


def test_a_folder_that_cannot_be_read_is_listed_and_reported(tmp_path, monkeypatch):
    """A subfolder the user may not read was skipped without a word (exit 0, its videos missing): it is
    listed, and reading it fails with the reason. (As root permissions do not bind: scandir is made to fail.)"""
    for name in ("a.mp4", "cam2/day1.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path).endswith("cam2"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    assert list_videos(tmp_path) == ["a.mp4", "cam2"]
    with pytest.raises(VideoError, match=r"^a folder that cannot be read \(Permission denied\): videos in it"):
        open_video(tmp_path / "cam2")


def test_timestamps_come_from_the_decoder(tmp_path, known_videos):
    """Variable frame rate: sampled frames carry their own presentation times, not index / mean fps;
    B-frames (decoded out of order) still get increasing times."""
    av = pytest.importorskip("av")
    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.04, 0.5, 0.54, 1.5, 1.54, 1.58, 2.5]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        written = [float(f.time) for f in container.decode(video=0)]  # as the encoder stored them
    assert written == pytest.approx(times, abs=0.03)  # irregular: far from i / mean rate
    for backend in BACKENDS:
        meta = list(stream_video(str(path), Sampling(mode="fps", fps=100.0), size=16, backend=backend))[-1]
        assert meta.frame_indices == list(range(8))
        assert meta.timestamps == pytest.approx(written, abs=1e-3)
        # windows (captions per window, .srt times, count windows) are planned and timed by the frames'
        # times: 1 s windows hold the frames shown in that second, not 1 s x the mean rate of frames
        fps = meta.fps
        windows = Sampling(mode="window", num_frames=2, window_s=1.0, stride_s=1.0)
        items = list(stream_video(str(path), windows, size=16, backend=backend))
        meta = items[-1]
        # planned by index / fps first, then by time: read again only where the first read lacks frames
        assert [type(i) for i in items].count(Restart) <= 1
        assert meta.duration_s == pytest.approx(written[-1] + 1 / fps, abs=1e-3)  # not 8 / fps
        assert meta.frame_indices == [[1, 3], [4, 6], [6, 7]]  # from frames 0-3, 3-6 and 6-7: those shown
        end = meta.duration_s
        timed = [t for bounds in window_times(windows, meta) for t in bounds]
        assert timed == pytest.approx([0, 1, 1, 2, end - 1, end], abs=1e-3)
    meta = list(stream_video(str(known_videos["bframes"][0]), Sampling(mode="fps", fps=25.0), size=16))[-1]
    assert meta.timestamps == pytest.approx([i / 25 for i in range(29)], abs=1e-3)


def write_interlaced(path: Path, n: int, codec: str) -> Path:
    """``n`` indexed frames coded interlaced (field DCT and motion, top field first), as DVDs, broadcast TS
    and camcorders' .mts store video, written with PyAV."""
    av = pytest.importorskip("av")
    options = {"mpeg2video": {"flags": "+ilme+ildct", "top": "1", "b": "2000000"},
               "libx264": {"x264-params": "interlaced=1:tff=1", "flags": "+ilme+ildct", "crf": "12"}}[codec]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(indexed_frame(i, 64, 64), format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("name, codec", [("dvd.mpg", "mpeg2video"), ("camcorder.mp4", "libx264")])
@pytest.mark.parametrize("backend", ["auto", "opencv", "decord"])
def test_interlaced_video_is_read_frame_by_frame(tmp_path, name, codec, backend):
    """Interlaced video: OpenCV 4.13 and 4.14 (FFmpeg 8's swscale) cannot convert its frames and returned the
    same stale buffer for each, black or grey, with exit 0 (HOG counted nobody in an interlaced copy of
    vtest.avi, 7 people in the progressive one); pyproject.toml keeps OpenCV below 4.13."""
    if backend == "decord":
        pytest.importorskip("decord")
    path = write_interlaced(tmp_path / name, 12, codec)
    with open_video(path, backend) as reader:
        ids = [frame_id(frame) for _, frame in read_frames(reader, range(12))]
    assert ids == list(range(12))


@pytest.mark.parametrize("said, reason", [
    ("[14:29:08] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: [14:29:08] /github/workspace/src/video/"
     "ffmpeg/threaded_decoder.cc:218: Check failed: avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 "
     "(-1094995529 vs. 0) Thread worker: Error sending packet.", "Thread worker: Error sending packet"),
    ("[10:00:00] /src/video_reader.cc:151: Check failed: st_nb >= 0 (-1381258232 vs. 0) ERROR cannot find video "
     "stream with wanted index: -1", "cannot find video stream with wanted index: -1"),
    ("[10:00:00] /src/video_reader.cc:83: ERROR opening: /v/a.mp4, No such file", "opening: , No such file"),
])
def test_decord_s_messages_lose_their_log_prefixes(said, reason):
    """A damaged stretch read by decord said "decord failed at frame 26 ([13:30:55] /github/workspace/src/
    video/ffmpeg/threaded_decoder.cc:218: Check failed: avcodec_send_packet(dec_ctx_.get()," (cut there)."""
    from vidrnn.video.reader import DecordReader

    reader = DecordReader.__new__(DecordReader)  # (its _open needs a file)
    reader._source = "/v/a.mp4"
    assert reader._reason(RuntimeError(said)) == reason
