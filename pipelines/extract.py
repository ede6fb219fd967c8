"""Extract CNN frame features from every video in a folder: one file per video, resumable."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pipelines.common import EXIT_OK, EXIT_SOME_FAILED, encoder_from, run_app, sampling_from
from vidrnn.device import resolve_device
from vidrnn.features import extract_folder
from vidrnn.files import shard_from_env


def extract(cfg: DictConfig) -> int:
    device = resolve_device(cfg.device)
    encoder, spec = encoder_from(cfg.encoder)
    summary = extract_folder(
        cfg.input_dir, cfg.output_dir, encoder=encoder, encoder_spec=spec, sampling=sampling_from(cfg.video),
        size=cfg.video.size, backend=cfg.video.backend, batch_size=cfg.batch_size, workers=cfg.video.workers,
        dtype=cfg.dtype, device=device, shard=shard_from_env(cfg.shard.index, cfg.shard.count),
        extensions=list(cfg.extensions), progress=not cfg.quiet)
    print(f"extract: {len(summary.done)} extracted, {summary.skipped} already done, "
          f"{len(summary.failed)} failed -> {cfg.output_dir}")
    for video, reason in summary.failed.items():
        print(f"  failed: {video}: {reason}")
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


@hydra.main(version_base="1.3", config_path="../conf", config_name="extract")
def main(cfg: DictConfig) -> None:
    run_app(extract, cfg)


if __name__ == "__main__":
    main()
