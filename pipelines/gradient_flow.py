"""Why LSTMs: how much of the loss's gradient reaches each time step, for the RNN, LSTM and GRU cells.

``python -m pipelines.gradient_flow -m`` sweeps the cells with and without gradient clipping (see
conf/gradient_flow.yaml); each run dir gets metrics.json and gradient_flow.png, the sweep dir the summary
table and one gradient_flow.png with every run."""
from __future__ import annotations

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pipelines.common import EXIT_OK, hydra_app, run_app
from vidrnn.experiments.gradient_flow import CueTask, run_gradient_flow
from vidrnn.train.loop import TrainConfig


def gradient_flow(cfg: DictConfig) -> int:
    torch.set_num_threads(cfg.threads)
    t, out_dir = cfg.trainer, HydraConfig.get().runtime.output_dir
    trainer = TrainConfig(max_epochs=t.max_epochs, lr=t.lr, weight_decay=t.weight_decay,
                          clip_grad_norm=t.clip_grad_norm, scheduler="none", patience=0)
    result = run_gradient_flow(cfg.model.cell, CueTask(**cfg.task), out_dir=out_dir, trainer=trainer,
                               hidden=cfg.model.hidden, gate_bias=cfg.model.gate_bias, batch_size=t.batch_size,
                               batches_per_epoch=t.batches_per_epoch, probe_batches=cfg.probe_batches, seed=cfg.seed)
    test = result["test"]
    print(f"gradient_flow: {cfg.model.cell}: accuracy {test['accuracy']:.3f}; |dL/dh_1| / |dL/dh_T| "
          f"{test['grad_ratio_init']:.3g} at initialisation, {test['grad_ratio']:.3g} after training -> {out_dir}")
    return EXIT_OK


@hydra_app("gradient_flow")
def main(cfg: DictConfig) -> None:
    run_app(gradient_flow, cfg)


if __name__ == "__main__":
    main()
