"""Pieces the recurrent models share: the cell choice and the normalised input projection."""
from __future__ import annotations

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def make_rnn(cell: str, input_size: int, hidden: int, layers: int, *, dropout: float = 0.0,
             bidirectional: bool = False) -> nn.RNNBase:
    """A batch-first ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (tanh)."""
    if cell not in CELLS:
        raise ValueError(f"model.cell must be one of {sorted(CELLS)}, not {cell!r}")
    return CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)


class FeatureInput(nn.Module):
    """Frame features (B, T, D) -> (B, T, H): standardised per dimension with training-set statistics
    (random-weight CNN features span many orders of magnitude), then a linear projection."""

    def __init__(self, feat_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(feat_dim))
        self.register_buffer("std", torch.ones(feat_dim))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat_dim, hidden), nn.ReLU())

    @torch.no_grad()
    def set_stats(self, features: torch.Tensor) -> None:
        """Set the standardisation from training features (N, D)."""
        features = features.float()
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-6 * features.std().clamp_min(1e-30)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj((feats.float() - self.mean) / self.std)
