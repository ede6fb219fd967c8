"""Count people in every video of a folder: a trained recurrent counter or the HOG detector baseline."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipelines.common import folder_options, hydra_app, report, run_app, warn_unread_video_keys
from vidrnn.pictures import Pictures
from vidrnn.predict import count_folder
from vidrnn.report import write_report


def count(cfg: DictConfig) -> int:
    if cfg.counter == "hog":
        warn_unread_video_keys("count", ("video.backend", "video.workers", "video.num_frames"),
                               "the HOG detector reads video.num_frames full-size frames per clip or window")
        if cfg.checkpoint:
            print(f"count: warning: checkpoint={cfg.checkpoint} not used: counter=hog needs no trained model")
    else:
        warn_unread_video_keys("count")
    options = folder_options(cfg)
    pictures = Pictures(Path(cfg.output).parent, sheets=cfg.sheets, render=cfg.render, backend=cfg.video.backend,
                        workers=options["workers"], progress=not cfg.quiet)  # count_folder hands it the labels
    summary, metrics = count_folder(
        cfg.input_dir, cfg.output, checkpoint=cfg.checkpoint, counter=cfg.counter, hog=OmegaConf.to_container(cfg.hog),
        num_frames=cfg.video.num_frames, window_s=cfg.window_s, stride_s=cfg.stride_s, labels=cfg.labels,
        plots=cfg.plots, pictures=pictures, **options)
    for level, errors in (metrics or {}).items():
        unit = {"clip": "clip", "frames": "labelled frame", "windows": "window"}[level]
        print(f"count: {level} MAE {errors['MAE']:.4f}  RMSE {errors['RMSE']:.4f}  "
              f"(over {errors['scored']} {unit}{'s' if errors['scored'] != 1 else ''})")
    if cfg.report:
        page = write_report(pictures.dir, title=f"people counts of {cfg.input_dir}", videos=summary.videos)
        print(f"count: report {page}")
    return report("count", summary, summary.output)


@hydra_app("count")
def main(cfg: DictConfig) -> None:
    run_app(count, cfg)


if __name__ == "__main__":
    main()
