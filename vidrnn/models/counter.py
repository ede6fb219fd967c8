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

    With ``loss="poisson"`` the heads predict log-rates (``forward`` returns rates); otherwise a softplus
    keeps counts non-negative.

    ``cells`` > 1 counts per spatial cell of grid-pooled features (D = C * cells) and adds the cells up:
    one recurrent network and one pair of heads, shared by all cells, run over each cell's features in
    time, so a person counts the same wherever they are, and counts add up over space as people do.
    Suited to people in view per frame (a fixed camera); a clip's count of distinct people is not a sum
    over cells (someone who walks across several would count in each).
    """

    def __init__(self, feat_dim: int, *, cell: str = "lstm", hidden: int = 256, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.3, loss: str = "huber",
                 cells: int = 1, encoder: nn.Module | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        self.config = dict(feat_dim=feat_dim, cell=cell, hidden=hidden, layers=layers,
                           bidirectional=bidirectional, dropout=dropout, loss=loss, cells=cells)
        self.features = FeatureInput(feat_dim, hidden, dropout, encoder, cells)
        self.rnn = make_rnn(cell, hidden, hidden, layers, dropout=dropout, bidirectional=bidirectional)
        out = hidden * (2 if bidirectional else 1)
        self.frame_head, self.clip_head = nn.Linear(out, 1), nn.Linear(out, 1)
        self.loss_name, self.cells = loss, cells

    def per_cell(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unconstrained outputs per spatial cell: clip (B, K), frames (B, T, K); K = cells."""
        x = self.features(feats)  # (B, T, H), or (B, T, K, H) with cells
        if self.cells == 1:
            x = x.unsqueeze(2)  # (B, T, 1, H)
        b, t, k, h = x.shape
        y, _ = self.rnn(x.transpose(1, 2).reshape(b * k, t, h))  # (B * K, T, H * dirs)
        clip = self.clip_head(y.mean(1)).view(b, k)  # (B, K)
        frames = self.frame_head(y).view(b, k, t).transpose(1, 2)  # (B, T, K)
        return clip, frames

    def loss_inputs(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the loss compares with the targets, clip (B,) and frames (B, T): log-rates (poisson; with
        cells, the log of the summed rates) or counts."""
        clip, frames = self.per_cell(feats)
        if self.loss_name == "poisson":
            return clip.logsumexp(-1), frames.logsumexp(-1)
        return F.softplus(clip).sum(-1), F.softplus(frames).sum(-1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts, never negative: clip (B,), frames (B, T)."""
        clip, frames = self.loss_inputs(feats)
        return (clip.exp(), frames.exp()) if self.loss_name == "poisson" else (clip, frames)

    def loss(self, feats: torch.Tensor, clip_target: torch.Tensor | None = None,
             frame_target: torch.Tensor | None = None) -> torch.Tensor:
        """The configured loss on whichever targets are given; NaN frame targets are ignored."""
        clip, frames = self.loss_inputs(feats)
        total = clip.sum() * 0  # a batch without a label: zero gradients, not a loss without a graph
        for out, target in ((clip, clip_target), (frames, frame_target)):
            if target is None:
                continue
            mask = ~torch.isnan(target)
            if mask.any():
                total = total + self._loss(out[mask], target[mask])
        return total

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "poisson":
            return F.poisson_nll_loss(out, target, log_input=True)
        return F.mse_loss(out, target) if self.loss_name == "mse" else F.smooth_l1_loss(out, target)
