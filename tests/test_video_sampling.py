"""Frame indices for each sampling mode."""
import numpy as np
import pytest

from vidrnn.video import Sampling


def test_uniform_spreads_over_the_whole_video():
    idx = Sampling(num_frames=4).plan(100, 25.0)
    assert idx.tolist() == [12, 37, 62, 87]
    assert Sampling(num_frames=16).plan(300, 30.0).max() < 300


def test_uniform_repeats_frames_of_a_short_video():
    idx = Sampling(num_frames=8).plan(3, 25.0)
    assert len(idx) == 8 and set(idx.tolist()) == {0, 1, 2} and np.all(np.diff(idx) >= 0)


def test_fps_takes_frames_at_the_given_rate():
    idx = Sampling(mode="fps", fps=2.0).plan(100, 10.0)
    assert idx.tolist() == list(range(0, 100, 5))
    assert Sampling(mode="fps", fps=2.0, max_frames=3).plan(100, 10.0).tolist() == [0, 5, 10]
    assert Sampling(mode="fps", fps=50.0).plan(10, 10.0).tolist() == list(range(10))  # never above the source


def test_window_clips_cover_the_video():
    idx = Sampling(mode="window", num_frames=4, window_s=2.0, stride_s=1.0).plan(105, 10.0)
    assert idx.shape == (10, 4)  # starts 0, 10, ..., 80 and a last one ending at frame 104
    assert idx[0].tolist() == [2, 7, 12, 17]
    assert idx[-1].tolist() == [87, 92, 97, 102]
    assert idx.min() >= 0 and idx.max() < 105 and np.all(np.diff(idx[:, 0]) > 0)


def test_window_on_a_video_shorter_than_one_window():
    idx = Sampling(mode="window", num_frames=4, window_s=10.0).plan(8, 10.0)
    assert idx.tolist() == [[1, 3, 5, 7]]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="sampling mode"):
        Sampling(mode="random")
    with pytest.raises(ValueError, match="positive"):
        Sampling(num_frames=0)
    with pytest.raises(ValueError, match="frame rate"):
        Sampling(mode="fps").plan(10, 0.0)
    with pytest.raises(ValueError, match="no frames"):
        Sampling().plan(0, 25.0)


def test_frame_edges_from_timestamps_or_the_frame_rate():
    """Edges come from the decoder's timestamps (VFR), else index / fps; one frame without a rate has no
    length, not NaN."""
    from vidrnn.video.stream import frame_edges

    np.testing.assert_allclose(frame_edges([1.0, 1.1, 1.5, 1.9], 4, 0.0), [0.0, 0.1, 0.5, 0.9, 1.3])  # median step
    np.testing.assert_allclose(frame_edges([2.0, 2.5], 2, 10.0), [0.0, 0.5, 0.6])
    np.testing.assert_allclose(frame_edges(None, 3, 10.0), [0.0, 0.1, 0.2, 0.3])
    assert frame_edges(None, 3, 0.0) is None
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(frame_edges([3.0], 1, 0.0), [0.0, 0.0])


def test_sampling_by_the_frames_times():
    """A variable-frame-rate video (10 frames 0.1 s apart, then 10 frames 1 s apart: 11 s): fps and window
    sampling follow the frames' times, not their indices."""
    edges = np.array([0.1 * i for i in range(10)] + [1.0 + i for i in range(11)])  # (21,): 20 frames, 11 s
    np.testing.assert_array_equal(Sampling(mode="fps", fps=1.0).plan_in_time(edges), [0, *range(10, 20)])
    np.testing.assert_array_equal(Sampling(mode="fps", fps=1.0, max_frames=3).plan_in_time(edges), [0, 10, 11])
    windows = Sampling(mode="window", num_frames=2, window_s=2.0, stride_s=4.0)
    assert windows.windows_in_time(edges) == [(0, 11), (13, 15), (17, 19), (18, 20)]  # [0, 2), [4, 6), ... [9, 11)
    np.testing.assert_array_equal(windows.plan_in_time(edges), [[2, 8], [13, 14], [17, 18], [18, 19]])
    # a window shorter than the gap between two frames holds the frame on screen; the last one ends at 11 s
    assert Sampling(mode="window", num_frames=1, window_s=0.5, stride_s=5.0).windows_in_time(edges) == \
        [(0, 5), (14, 15), (19, 20), (19, 20)]


def test_regular_frame_times_keep_the_index_plan(tmp_path):
    """A constant-rate file is sampled by index / fps in one pass: no second decode."""
    from conftest import write_opencv

    from vidrnn.video import Restart, stream_video

    path = write_opencv(tmp_path / "cfr.avi", 30, "MJPG")
    for sampling in (Sampling(mode="window", num_frames=3, window_s=1.0, stride_s=0.5), Sampling(mode="fps", fps=3.0)):
        items = list(stream_video(str(path), sampling, size=16))
        assert not any(isinstance(i, Restart) for i in items)
        assert np.array_equal(items[-1].frame_indices, sampling.plan(30, items[-1].fps))


def test_windows_are_stride_s_apart_in_time_not_a_rounded_number_of_frames():
    """10 frames a second, 2 s windows every 0.75 s (vtest.avi's 795 frames): a stride rounded to 8 frames put
    window k 0.05 k s late (4.9 s by the end) and gave 98 windows where the time rule gives 105, as it does
    for a variable-rate file."""
    sampling = Sampling("window", num_frames=2, window_s=2.0, stride_s=0.75)
    ranges = sampling.windows(795, 10.0)
    assert len(ranges) == 105 and ranges[-1] == (775, 795)
    assert [a for a, _ in ranges[:5]] == [0, 7, 15, 22, 30]  # the frames on screen at 0, 0.75, 1.5, 2.25, 3 s
    assert ranges == sampling.windows_in_time(np.arange(796) / 10.0)


def test_windows_of_a_slow_constant_rate_video_are_timed_by_their_spans(tmp_path):
    """A frame every 2 s (a time-lapse), 1 s windows every second: each window lasts its second, as the
    spans it was read for. Timed by its frames' edges, half the windows lasted 0 s and half 2 s (their .srt
    cues were 00:00:02,000 --> 00:00:02,000)."""
    from conftest import write_opencv

    from vidrnn.video import read_sampled

    path = write_opencv(tmp_path / "timelapse.avi", 6, "MJPG", fps=0.5)
    _, meta = read_sampled(str(path), Sampling(mode="window", num_frames=2, window_s=1.0, stride_s=1.0), size=16)
    assert meta.fps == 0.5 and meta.frame_count == 6
    assert meta.window_bounds == [(float(k), float(k + 1)) for k in range(12)]
    assert [tuple(r) for r in meta.window_frames][:4] == [(0, 1), (0, 1), (1, 2), (1, 2)]
