"""The demo: generate synthetic videos with ground truth, then extract their features."""
from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipelines.common import EXIT_OK, EXIT_SOME_FAILED, encoder_from, run_app, sampling_from
from vidrnn.device import resolve_device
from vidrnn.features import extract_folder
from vidrnn.synth import make_dataset


def demo(cfg: DictConfig) -> int:
    start = time.perf_counter()
    out = Path(cfg.output_dir)
    data = make_dataset(out / "data", num_videos=cfg.num_videos, seed=cfg.seed)
    print(f"demo: wrote {data['num_videos']} synthetic videos ({data['num_frames']} frames) and ground "
          f"truth to {out / 'data'}  splits={data['splits']}")
    encoder, spec = encoder_from(cfg.encoder)
    summary = extract_folder(data["videos_dir"], str(out / "features"), encoder=encoder, encoder_spec=spec,
                             sampling=sampling_from(cfg.video), size=cfg.video.size,
                             backend=cfg.video.backend, batch_size=cfg.batch_size,
                             workers=cfg.video.workers, device=resolve_device(cfg.device),
                             progress=not cfg.quiet)
    print(f"demo: extracted {len(summary.done)} videos ({summary.skipped} already done, "
          f"{len(summary.failed)} failed) with {spec['name']} -> {out / 'features'}")
    print(f"demo: finished in {time.perf_counter() - start:.1f}s; manifest: {out / 'features/manifest.jsonl'}")
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    run_app(demo, cfg)


if __name__ == "__main__":
    main()
