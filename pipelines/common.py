"""What the pipelines share: building library objects from config, and one-line errors."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from vidrnn.models import FrameEncoder
from vidrnn.video import Sampling

EXIT_OK, EXIT_ERROR, EXIT_SOME_FAILED = 0, 1, 2


def sampling_from(video: DictConfig) -> Sampling:
    return Sampling(mode=video.sampling, num_frames=video.num_frames, fps=video.fps,
                    max_frames=video.max_frames, window_s=video.window_s, stride_s=video.stride_s)


def encoder_spec(encoder: DictConfig) -> dict:
    """The plain dict that describes the frame encoder (for manifests and checkpoints)."""
    return {k: encoder[k] for k in ("name", "weights", "layer", "pooling", "grid")}


def encoder_from(encoder: DictConfig) -> tuple[FrameEncoder, dict]:
    """The frozen frame encoder and its spec."""
    spec = encoder_spec(encoder)
    return FrameEncoder(**spec), spec


def run_app(job: Callable[[DictConfig], int], cfg: DictConfig) -> None:
    """Run ``job(cfg)`` and exit with its status; any error becomes one line on stderr and status 1
    (set VIDRNN_DEBUG=1 for the traceback)."""
    logging.getLogger("vidrnn").setLevel(logging.INFO)
    try:
        OmegaConf.to_container(cfg, throw_on_missing=True)
        code = job(cfg)
    except KeyboardInterrupt:
        print("interrupted: finished videos are kept; run the same command again to go on", file=sys.stderr)
        code = 130
    except Exception as e:
        if os.environ.get("VIDRNN_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        code = EXIT_ERROR
    sys.exit(code)


def report(name: str, summary, output: str) -> int:
    """Print what a prediction pipeline did; the exit status says whether any video failed."""
    print(f"{name}: {len(summary.done)} videos done, {len(summary.failed)} failed -> {output}")
    for video, reason in summary.failed.items():
        print(f"  failed: {video}: {reason}")
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK
