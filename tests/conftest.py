"""Fixtures: small real video files whose frames are known, written with OpenCV and PyAV."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

STEP = 8  # frame i has red level STEP * i in its left half
ROOT = Path(__file__).resolve().parents[1]


def pipeline_env() -> dict[str, str]:
    """The environment a pipeline runs in here: this checkout importable, tracebacks off as for users."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VIDRNN_DEBUG", None)
    return env


def run_pipeline(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m pipelines.<name> args...`` from the repository root, as a user would."""
    return subprocess.run([sys.executable, "-m", f"pipelines.{name}", *args], cwd=ROOT, env=pipeline_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_job(name: str, *overrides: str) -> subprocess.CompletedProcess:
    """``vidrnn <name> overrides...``'s job run in this process, on the config the app composes (Hydra's
    runtime config set as the app's start sets it): its exit status and what it printed, as ``run_pipeline``
    gives them, without an interpreter's start (seconds a run). An error is raised, not printed: for tests
    of what a job writes; the command line's own handling (errors, statuses) is ``run_pipeline``'s."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    job = getattr(importlib.import_module(f"pipelines.{name}"), name)  # (its import registers the config schemas)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = job(cfg)
    return subprocess.CompletedProcess([name, *overrides], code, printed.getvalue(), "")


def indexed_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """RGB frame that encodes its index: red = STEP*i on the left half, green 128, blue 255 - STEP*i."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2, 0] = STEP * i
    frame[:, :, 1] = 128
    frame[:, :, 2] = 255 - STEP * i
    return frame


def frame_id(frame: np.ndarray) -> int:
    """The index encoded by ``indexed_frame`` in a decoded RGB frame (of any size)."""
    return int(round(frame[:, : frame.shape[1] // 4, 0].mean() / STEP))


def write_opencv(path: Path, n: int, fourcc: str, fps: float = 10.0) -> Path:
    """Write ``n`` indexed frames with OpenCV (mp4v for .mp4, MJPG for .avi)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(cv2.cvtColor(indexed_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_rotated(path: Path, degrees: int) -> Path:
    """A 64x48 mp4v video (10 frames, the top-left 16x16 corner white) whose track header asks players to
    turn it by ``degrees`` clockwise (the 'tkhd' display matrix, as phones record portrait video)."""
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:16, :16] = 255
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(10):
        writer.write(frame)
    writer.release()
    one, minus, w = 0x10000, 0x100000000 - 0x10000, 0x40000000  # 16.16 fixed point; w in 2.30
    matrix = {90: (0, one, 0, minus, 0, 0, 0, 0, w), 180: (minus, 0, 0, 0, minus, 0, 0, 0, w),
              270: (0, minus, 0, one, 0, 0, 0, 0, w)}[degrees]
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd") + 4  # version (1 byte), flags (3), then times, track id, duration, ...
    at = box + 4 + (32 if data[box] == 1 else 20) + 8 + 8  # ... reserved, layer, group, volume: the matrix
    data[at:at + 36] = struct.pack(">9I", *matrix)
    path.write_bytes(bytes(data))
    return path


def write_bframes(path: Path, n: int, fps: int = 25) -> Path:
    """H.264 with B-frames (decode order differs from presentation order), written with PyAV."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"bf": "3", "g": "12", "crf": "12", "preset": "fast"}
        for i in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(indexed_frame(i), format="rgb24")))
        container.mux(stream.encode())
    return path


def make_index_lie(path: Path, claimed: int) -> Path:
    """Patch an AVI's header and stream frame counts (avih.dwTotalFrames, strh.dwLength) to ``claimed``."""
    data = bytearray(path.read_bytes())
    avih = data.index(b"avih")
    struct.pack_into("<I", data, avih + 8 + 16, claimed)
    strh = data.index(b"strh")
    struct.pack_into("<I", data, strh + 8 + 32, claimed)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def known_videos(tmp_path) -> dict[str, tuple[Path, int]]:
    """name -> (path, true frame count): mp4v, MJPG avi, H.264 with B-frames, and an avi whose index lies."""
    return {
        "mp4v": (write_opencv(tmp_path / "a.mp4", 25, "mp4v"), 25),
        "mjpg": (write_opencv(tmp_path / "b.avi", 23, "MJPG"), 23),
        "bframes": (write_bframes(tmp_path / "c.mp4", 29), 29),
        "lying_index": (make_index_lie(write_opencv(tmp_path / "d.avi", 20, "MJPG"), 60), 20),
    }


@pytest.fixture
def one_thread():
    """torch on one thread for the test: many steps of a tiny model are slower on two threads that wait on
    each other (5 s against 24 s on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
