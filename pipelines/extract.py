"""Extract CNN frame features from every video in a folder: one file per video, resumable."""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.common import (EXIT_OK, EXIT_SOME_FAILED, encoder_from, folder_options, hydra_app, print_failed, run_app,
                              sampling_from)
from vidrnn.features import extract_folder


def extract(cfg: DictConfig) -> int:
    options = folder_options(cfg)  # (the device first: device=cuda without one fails before the encoder is built)
    encoder, spec = encoder_from(cfg.encoder)
    if spec["weights"] is None:
        print(f"extract: note: encoder.weights=null: {spec['name']} with random weights (encoder.weights=DEFAULT "
              "for its ImageNet weights, or a state_dict file)")
    summary = extract_folder(cfg.input_dir, cfg.output_dir, encoder=encoder, encoder_spec=spec,
                             sampling=sampling_from(cfg.video), size=cfg.video.size, dtype=cfg.dtype,
                             replace=cfg.replace, **options)
    print(f"extract: {len(summary.done)} extracted, {summary.skipped} already done, "
          f"{len(summary.failed)} failed -> {cfg.output_dir}")
    print_failed(summary.failed)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


@hydra_app("extract")
def main(cfg: DictConfig) -> None:
    run_app(extract, cfg)


if __name__ == "__main__":
    main()
