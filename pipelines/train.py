"""Train a captioner or a people counter on a folder of videos and an annotation file."""
from __future__ import annotations

from dataclasses import fields

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipelines.common import EXIT_OK, encoder_spec, hydra_app, print_score_notes, run_app, sampling_from
from vidrnn.device import decode_workers, resolve_device
from vidrnn.files import n_videos, some_of
from vidrnn.schemas import DataSchema
from vidrnn.sweeps import check_settings, finished_result
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model


def train(cfg: DictConfig) -> int:
    out_dir = HydraConfig.get().runtime.output_dir
    t = cfg.trainer
    trainer = TrainConfig(max_epochs=t.max_epochs, lr=t.lr, weight_decay=t.weight_decay,
                          clip_grad_norm=t.clip_grad_norm, scheduler=t.scheduler, patience=t.patience, amp=t.amp)
    data = DataConfig(**OmegaConf.to_container(cfg.data))
    extract = ExtractConfig(encoder=encoder_spec(cfg.encoder), sampling=sampling_from(cfg.video), size=cfg.video.size,
                            backend=cfg.video.backend, workers=decode_workers(cfg.video.workers),
                            progress=not cfg.quiet, trainable=cfg.encoder.trainable)
    model = OmegaConf.to_container(cfg.model[cfg.task])
    model.update({k: cfg.model[k] for k in ("cell", "hidden", "layers", "dropout")})
    data_paths = tuple(f"data.{f.name}" for f in fields(DataSchema) if f.metadata.get("path"))
    check_settings(out_dir, OmegaConf.to_container(cfg, resolve=True), t.resume, paths=data_paths)
    result = finished_result(out_dir, t.max_epochs, t.patience) if t.resume else None
    if result is not None:
        print(f"train: {out_dir} already finished, not trained again")
    else:
        result = train_model(cfg.task, data, extract, ModelConfig(model.pop("kind", None), model), trainer,
                             out_dir=out_dir, batch_size=t.batch_size, label_smoothing=t.label_smoothing,
                             scheduled_sampling=t.scheduled_sampling, device=resolve_device(cfg.device),
                             seed=cfg.seed, resume=t.resume, test_beam=t.test_beam, need_validation=_search(cfg))
    best = result["best"] or {}
    print(f"train: best epoch {result['best_epoch']} of {result['epochs_run']}: "
          + "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k not in ("epoch", "lr", "seconds")))
    if "test" in result:
        decoding = f" (beam {result['test_beam']})" if "test_beam" in result else ""
        print(f"train: test{decoding} " + "  ".join(f"{k} {v:.4f}" for k, v in result["test"].items()))
        print_score_notes("train", result)
    for split, errors in result.get("mean_predictor", {}).items():  # counting: the baseline to beat
        print(f"train: {split} MAE {errors['MAE']:.4f}  RMSE {errors['RMSE']:.4f} of the mean predictor "
              "(the mean training count)")
    if result.get("unreadable"):
        print(f"train: {n_videos(len(result['unreadable']))} skipped, unreadable: {some_of(result['unreadable'])} "
              "(metrics.json says why)")
    print(f"train: run written to {out_dir} (checkpoints/best.pt, metrics.json, curves.png)")
    return EXIT_OK


def _search(cfg: DictConfig) -> str | None:
    """What a search's trial needs validation scores for (an Optuna sweep's objective), or None."""
    sweeper = OmegaConf.select(HydraConfig.get(), "sweeper._target_", default="") or ""
    if HydraConfig.get().mode == RunMode.MULTIRUN and "optuna" in sweeper.lower():
        return f"the Optuna search optimises the best validation {'CIDEr-D' if cfg.task == 'caption' else 'MAE'}"
    return None


@hydra_app("train")
def main(cfg: DictConfig) -> float:
    """Returns (in a multirun: run_app exits otherwise) the run's best validation value of the monitored
    metric, CIDEr-D or MAE: what the Optuna sweeper of conf/hparams_search/ optimises."""
    run_app(train, cfg)
    metrics = finished_result(HydraConfig.get().runtime.output_dir, cfg.trainer.max_epochs, cfg.trainer.patience)
    if metrics is None:  # the run failed (a multirun goes on): Optuna records None as a failed trial
        return None
    return (metrics["best"] or {}).get(metrics["monitor"])  # None without validation data


if __name__ == "__main__":
    main()
