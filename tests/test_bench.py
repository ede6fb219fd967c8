"""The benchmarks `make bench` runs still fit the library (the extraction one subclasses its decode worker)."""
import sys

from conftest import ROOT, write_opencv

from vidrnn.video import Sampling


def test_extraction_benchmark_decodes_with_the_library_workers(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import extract as bench_extract
    finally:
        sys.path.remove(str(ROOT / "bench"))
    video = write_opencv(tmp_path / "a.avi", 12, "MJPG")
    rate, frames, grown = bench_extract.decode_only([("a", str(video))], Sampling(num_frames=4), 32, 1, "auto")
    # a worker decoding 12 frames of 64x48 grows (FFmpeg's buffers), by MiB not hundreds (nor kB read as MiB)
    assert frames == 4 and 0 < rate < float("inf") and 0 < grown < 200
    # what it reports is the worker's peak memory less what it had on starting (in-process: workers=0)
    monkeypatch.setattr(bench_extract, "rss_mib", lambda: 100.0)
    monkeypatch.setattr(bench_extract, "peak_rss_mib", lambda: 107.5)
    monkeypatch.setattr(bench_extract, "reset_peak", lambda: None)
    rate, frames, grown = bench_extract.decode_only([("a", str(video))] * 2, Sampling(num_frames=4), 32, 0, "auto")
    assert (frames, grown) == (8, 7.5)
