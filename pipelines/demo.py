"""The demo: synthetic videos -> features -> a captioner and a counter -> captions and counts of the
held-out videos, with scores next to trivial baselines."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from pipelines.common import EXIT_OK, encoder_spec, hydra_app, print_failed, run_app, sampling_from
from vidrnn.demo import run_demo
from vidrnn.device import decode_workers, resolve_device
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import ModelConfig


def demo(cfg: DictConfig) -> int:
    d, size = cfg.demo, cfg.demo.size
    captioner = OmegaConf.to_container(d.captioner)
    s = run_demo(cfg.output_dir, num_videos=d.videos[size],
                 trainer=TrainConfig(max_epochs=d.epochs[size], lr=d.lr, patience=0),
                 captioner=ModelConfig(captioner.pop("kind"), captioner),
                 counter=ModelConfig(None, OmegaConf.to_container(d.counter)), seed=cfg.seed,
                 encoder=encoder_spec(cfg.encoder), sampling=sampling_from(cfg.video), frame_size=cfg.video.size,
                 workers=decode_workers(cfg.video.workers), device=resolve_device(cfg.device), progress=not cfg.quiet,
                 title=f"vidrnn demo ({size})")
    out = s["out_dir"]
    print(f"""
demo ({cfg.demo.size}): {s['videos']} synthetic videos {s['splits']}, finished in {s['minutes']:.1f} min
  held-out captions ({s['test_videos']} videos, colour/shape pairs never seen in training):
      BLEU-4 {s['BLEU-4']:.3f}   CIDEr-D {s['CIDEr-D']:.3f}
  held-out people counts: MAE {s['count_MAE']:.3f}   (always guessing the training mean: {s['mean_predictor_MAE']:.3f})
  files:
      {out}/data/                 the videos, captions.json (MSR-VTT layout), counts.csv, frame_counts.csv
      {s['features']}/   one feature file per video + manifest.jsonl
      {out}/caption_run/, {out}/count_run/   checkpoints/best.pt, metrics.json, curves.png
      {out}/captions.json         a caption per video; {out}/captions.srt: timed captions of one video
      {out}/counts.csv            a count per video; counts_plots/: timelines; counts_metrics.json
      {out}/sheets/, {out}/rendered/   contact sheets and annotated videos of the held-out videos
  report (open it in a browser): {s['report']}""")
    print_failed(s["pictures_failed"], "pictures failed")
    return EXIT_OK


@hydra_app("demo")
def main(cfg: DictConfig) -> None:
    run_app(demo, cfg)


if __name__ == "__main__":
    main()
