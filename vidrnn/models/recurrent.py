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
    (random-weight CNN features span many orders of magnitude), then a linear projection.

    With ``cells`` > 1 the features hold that many spatial cells (the encoder's grid pooling, D = C * cells,
    channel-major): every cell is standardised with its channel's statistics over all cells and projected
    by the same layer, (B, T, D) -> (B, T, cells, H).

    With a trainable frame ``encoder`` attached (end-to-end training), frames (B, T, S, S, 3) uint8 go
    in and are encoded first; features computed elsewhere are still accepted.
    """

    def __init__(self, feat_dim: int, hidden: int, dropout: float = 0.0, encoder: nn.Module | None = None,
                 cells: int = 1):
        super().__init__()
        if cells < 1 or feat_dim % cells:
            raise ValueError(f"{feat_dim} features cannot be split into {cells} spatial cells")
        self.encoder, self.cells = encoder, cells
        self.register_buffer("mean", torch.zeros(feat_dim))
        self.register_buffer("std", torch.ones(feat_dim))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat_dim // cells, hidden), nn.ReLU())

    @torch.no_grad()
    def set_stats(self, inputs: torch.Tensor, batch: int = 64) -> None:
        """Set the standardisation from training inputs: features (S, T, D) or frames (S, T, S, S, 3), run
        through the encoder on the device this module is on."""
        device = self.mean.device
        feats = torch.cat([self.encode(inputs[i:i + batch].to(device)).flatten(0, 1)
                           for i in range(0, len(inputs), batch)])
        per_channel = feats.view(len(feats), -1, self.cells).transpose(1, 2).flatten(0, 1)  # (S * T * cells, C)
        mean, std = per_channel.mean(0), per_channel.std(0)
        self.mean.copy_(mean.repeat_interleave(self.cells))
        self.std.copy_(std.clamp_min(1e-6 * feats.std().clamp_min(1e-30)).repeat_interleave(self.cells))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, T, D) as they are, or frames (B, T, S, S, 3) through the attached encoder."""
        if x.dtype != torch.uint8:
            return x.float()
        if self.encoder is None:
            raise ValueError("frames given, but the model has no frame encoder: pass features")
        return self.encoder(x.flatten(0, 1)).float().view(*x.shape[:2], -1)  # (B, T, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.encode(x) - self.mean) / self.std  # (B, T, D)
        if self.cells == 1:
            return self.proj(z)  # (B, T, H)
        return self.proj(z.unflatten(-1, (-1, self.cells)).transpose(-1, -2))  # (B, T, cells, H)
