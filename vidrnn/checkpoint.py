"""Loading checkpoints safely (plain data only) and rebuilding their models."""
from __future__ import annotations

import os
import pickle

import torch
from torch import nn

from .models.captioner import build_captioner
from .models.counter import RecurrentCounter
from .models.encoder import FrameEncoder, saved_by_torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


def checkpoint_file(path: str | os.PathLike) -> str:
    """``path``, or for a train run's folder (or its ``checkpoints`` folder) the ``best.pt`` in it."""
    if not os.path.isdir(path):
        return str(path)
    for best in (os.path.join(path, "checkpoints", "best.pt"), os.path.join(path, "best.pt")):
        if os.path.isfile(best):
            return best
    raise CheckpointError(f"{path}: a folder, not a checkpoint file (a training run writes "
                          f"<run dir>/checkpoints/best.pt)")


def load_checkpoint(path: str | os.PathLike, *, task: str | None = None) -> dict:
    """The checkpoint at ``path`` (``checkpoint_file``), loaded with ``weights_only=True`` (a file carrying
    pickled objects other than tensors and plain data is refused); ``task`` checks it was trained for that task."""
    path = checkpoint_file(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not saved_by_torch(path):
        raise CheckpointError(f"{path}: not a checkpoint file (use checkpoints/best.pt of a train run)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data "
                              f"(not loading code from a file)") from e
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:120]})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "task" not in ckpt:
        raise CheckpointError(f"{path}: not a vidrnn model checkpoint (use checkpoints/best.pt of a train run)")
    if task is not None and ckpt["task"] != task:
        raise CheckpointError(f"{path}: a {ckpt['task']} checkpoint, but this pipeline needs a {task} checkpoint")
    return ckpt


def build_model(ckpt: dict) -> nn.Module:
    """The checkpoint's model with its weights (its fine-tuned frame encoder too, if it was trained end
    to end), in eval mode."""
    cfg = dict(ckpt["model_config"])
    if ckpt.get("encoder_trained"):  # its weights are in the checkpoint: the ones it started from are not read
        cfg["encoder"] = FrameEncoder(**ckpt["encoder"], trainable=True, load_weights=False)
    if ckpt["task"] == "caption":
        model = build_captioner(ckpt["model_kind"], cfg.pop("feat_dim"), cfg.pop("vocab_size"), **cfg)
    else:
        model = RecurrentCounter(cfg.pop("feat_dim"), **cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit its model ({str(e).splitlines()[0][:120]})") from e
    return model.eval()
