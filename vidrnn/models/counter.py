"""Recurrent people counter over frame features: a count per clip and a count per frame."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .recurrent import FeatureInput, make_rnn

LOSSES = ("mse", "huber", "poisson")


class RecurrentCounter(nn.Module):
    """Frame features (B, T, D) -> (clip counts (B,), per-frame counts (B, T)), never negative (frames
    (B, T, S, S, 3) uint8 with a trainable ``encoder`` attached).

    With ``loss="poisson"`` the heads predict log-rates (``forward`` returns rates, ``log_rates`` the
    raw outputs); otherwise a softplus keeps counts non-negative.
    """

    def __init__(self, feat_dim: int, *, cell: str = "lstm", hidden: int = 256, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.1, loss: str = "huber",
                 encoder: nn.Module | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        self.config = dict(feat_dim=feat_dim, cell=cell, hidden=hidden, layers=layers,
                           bidirectional=bidirectional, dropout=dropout, loss=loss)
        self.features = FeatureInput(feat_dim, hidden, dropout, encoder)
        self.rnn = make_rnn(cell, hidden, hidden, layers, dropout=dropout, bidirectional=bidirectional)
        out = hidden * (2 if bidirectional else 1)
        self.frame_head, self.clip_head = nn.Linear(out, 1), nn.Linear(out, 1)
        self.loss_name = loss

    def raw(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconstrained outputs: clip (B,), frames (B, T)."""
        y, _ = self.rnn(self.features(feats))  # (B, T, H * dirs)
        return self.clip_head(y.mean(1)).squeeze(-1), self.frame_head(y).squeeze(-1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clip, frames = self.raw(feats)
        positive = torch.exp if self.loss_name == "poisson" else F.softplus
        return positive(clip), positive(frames)

    def loss(self, feats: torch.Tensor, clip_target: torch.Tensor | None = None,
             frame_target: torch.Tensor | None = None) -> torch.Tensor:
        """The configured loss on whichever targets are given; NaN frame targets are ignored."""
        clip, frames = self.raw(feats)
        total = clip.new_zeros(())
        for out, target in ((clip, clip_target), (frames, frame_target)):
            if target is None:
                continue
            mask = ~torch.isnan(target)
            if mask.any():
                total = total + self._loss(out[mask], target[mask])
        return total

    def _loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "poisson":
            return F.poisson_nll_loss(raw, target, log_input=True)
        pred = F.softplus(raw)
        return F.mse_loss(pred, target) if self.loss_name == "mse" else F.smooth_l1_loss(pred, target)
