"""The benchmarks `make bench` runs still fit the library (the extraction one subclasses its decode worker)."""
import sys

from conftest import ROOT, write_opencv

from vidrnn.video import Sampling


def test_extraction_benchmark_decodes_with_the_library_workers(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import extract as bench_extract
    finally:
        sys.path.remove(str(ROOT / "bench"))
    video = write_opencv(tmp_path / "a.avi", 12, "MJPG")
    rate, frames, grown = bench_extract.decode_only([("a", str(video))], Sampling(num_frames=4), 32, 1, "auto")
    assert frames == 4 and rate > 0 and grown >= 0
