"""The fixed-camera scenario on a real recording: label the first part of a long video, count the rest.

    python bench/real_counting.py [--video vtest.avi] [--labels bench/data/vtest_counts.csv] [overrides ...]

The default recording is OpenCV's `vtest.avi` (pedestrians, 768x576, 795 frames at 10 fps), from
Debian's `opencv-doc` package (fetched with `apt-get download` when --video is not given). Its labels,
people visible every 20th frame, were counted by hand from the frames (about +-1 in crowded frames);
between labelled frames the count is interpolated. The counter trains on windows of the first half
(`data.time_split=0.5`) and is scored on windows of the second half, next to the mean predictor and
OpenCV's HOG detector. The counter is `pipelines.train experiment=count_camera` (conf/experiment/); extra
arguments are Hydra overrides for it (e.g. `model.count.per_cell=false encoder.layer=layer1`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vidrnn.predict import count_folder  # noqa: E402


def fetch_vtest(folder: Path) -> Path:
    """vtest.avi from Debian's opencv-doc package."""
    subprocess.run(["apt-get", "download", "-qq", "opencv-doc"], cwd=folder, check=True)
    deb = next(folder.glob("opencv-doc*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(folder / "x")], check=True)
    return next((folder / "x").rglob("vtest.avi"))


def dense_labels(labels: Path, frames: int, out: Path, video_id: str) -> np.ndarray:
    rows = list(csv.DictReader(open(labels)))
    known = np.array([int(r["frame"]) for r in rows]), np.array([float(r["count"]) for r in rows])
    dense = np.interp(np.arange(frames), *known)
    with open(out, "w") as f:
        f.write("video_id,frame,count\n" + "".join(f"{video_id},{i},{c:.3f}\n" for i, c in enumerate(dense)))
    return dense


def test_window_errors(windows_csv: Path, dense: np.ndarray, fps: float, split: float) -> dict:
    """MAE/RMSE of window counts against the mean true count, over windows after the split."""
    errors = []
    for r in csv.DictReader(open(windows_csv)):
        a, b = float(r["start_s"]) * fps, float(r["end_s"]) * fps
        if a >= split * len(dense):
            errors.append(float(r["count"]) - dense[int(round(a)):int(round(b))].mean())
    e = np.array(errors)
    return {"MAE": float(np.abs(e).mean()), "RMSE": float(np.sqrt((e ** 2).mean())), "windows": len(e)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video")
    ap.add_argument("--labels", default=str(ROOT / "bench/data/vtest_counts.csv"))
    ap.add_argument("--split", type=float, default=0.5)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = Path(args.video) if args.video else fetch_vtest(tmp)
        (tmp / "videos").mkdir()
        (tmp / "videos" / video.name).symlink_to(video.resolve())
        import cv2

        cap = cv2.VideoCapture(str(video))
        fps, frames = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        dense = dense_labels(Path(args.labels), frames, tmp / "dense.csv", video.stem)
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "pipelines.train", "task=count", f"data.video_dir={tmp}/videos",
               f"data.annotations={tmp}/dense.csv", f"data.time_split={args.split}", f"hydra.run.dir={tmp}/run",
               f"data.cache_dir={tmp}/cache", "quiet=true", "experiment=count_camera", *args.overrides]
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        minutes = (time.perf_counter() - start) / 60
        metrics = json.loads((tmp / "run/metrics.json").read_text())
        count_folder(str(tmp / "videos"), str(tmp / "hog.csv"), counter="hog", hog={"upscale": 1.0},
                     window_s=2.0, stride_s=0.5, plots=False, progress=False, num_frames=4)
        hog = test_window_errors(tmp / "hog_windows.csv", dense, fps, args.split)
    print(f"# {video.name}: {frames} frames at {fps:g} fps; train on the first {args.split:.0%} (windows of 2 s "
          f"every 0.5 s), test on the rest ({hog['windows']} windows); people per window, hand labels")
    print(f"{'counter':<22}{'test MAE':>10}{'test RMSE':>11}")
    print(f"{'vidrnn (recurrent)':<22}{metrics['test']['MAE']:>10.3f}{metrics['test']['RMSE']:>11.3f}"
          f"   trained in {minutes:.1f} CPU min")
    mean = metrics["mean_predictor"]["test"]
    print(f"{'mean predictor':<22}{mean['MAE']:>10.3f}{mean['RMSE']:>11.3f}")
    print(f"{'HOG detector':<22}{hog['MAE']:>10.3f}{hog['RMSE']:>11.3f}")


if __name__ == "__main__":
    main()
