"""What the pipelines share: building library objects from config, and one-line errors."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vidrnn.models import FrameEncoder
from vidrnn.sweeps import clear_error, one_line, record_error
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
    (set VIDRNN_DEBUG=1 for the traceback). In a Hydra multirun it never exits (that would end the
    sweep): a failed job's error goes to its run dir's error.txt and is raised, so Hydra records the
    failure and runs the other jobs."""
    logging.getLogger("vidrnn").setLevel(logging.INFO)
    run_dir = HydraConfig.get().runtime.output_dir if HydraConfig.get().mode == RunMode.MULTIRUN else None
    if run_dir:
        clear_error(run_dir)
    try:
        OmegaConf.to_container(cfg, throw_on_missing=True)
        code = job(cfg)
    except (Exception, KeyboardInterrupt) as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        print("interrupted: what was finished is kept; run the same command again to go on" if interrupted
              else f"error: {one_line(e)}", file=sys.stderr)
        if run_dir:
            record_error(run_dir, e)
        if run_dir or os.environ.get("VIDRNN_DEBUG"):
            raise
        code = 130 if interrupted else EXIT_ERROR
    if run_dir is None:
        sys.exit(code)


def report(name: str, summary, output: str) -> int:
    """Print what a prediction pipeline did; the exit status says whether any video failed."""
    print(f"{name}: {len(summary.done)} videos done, {len(summary.failed)} failed -> {output}")
    for video, reason in summary.failed.items():
        print(f"  failed: {video}: {reason}")
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK
