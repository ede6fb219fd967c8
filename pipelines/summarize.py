"""Rebuild a sweep dir's summary (summary.csv, summary.md, summary.png) and print its table."""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from pipelines.common import EXIT_OK, hydra_app, run_app
from vidrnn.sweeps import markdown, summarize_sweep


def summarize(cfg: DictConfig) -> int:
    if not Path(cfg.sweep_dir).is_dir():
        raise FileNotFoundError(f"no sweep dir {cfg.sweep_dir}")
    print(markdown(summarize_sweep(cfg.sweep_dir)), end="")
    print(f"summarize: written to {cfg.sweep_dir}/summary.csv, summary.md, summary.png")
    return EXIT_OK


@hydra_app("summarize")
def _main(cfg: DictConfig) -> None:
    run_app(summarize, cfg)


def main() -> None:
    """``summarize DIR`` means ``summarize sweep_dir=DIR``."""
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = "sweep_dir='{}'".format(sys.argv[1].replace("\\", "\\\\").replace("'", "\\'"))
    _main()


if __name__ == "__main__":
    main()
