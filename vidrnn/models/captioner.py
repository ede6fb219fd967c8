"""Recurrent video captioners: S2VT and a soft-attention decoder (SA-LSTM), over frame features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .recurrent import FeatureInput, make_rnn


class Captioner(nn.Module):
    """Base: subclasses define ``encode``, ``init_state`` and ``advance`` (and an ``out`` layer); training
    (teacher forcing, scheduled sampling) and decoding (greedy, beam search, through ``step``) only use
    those."""

    reads_cells = False  # whether it can read grid cells one by one (cells > 1)

    def __init__(self, feat_dim: int, vocab_size: int, *, cell: str = "lstm", hidden: int = 256,
                 layers: int = 1, embed: int = 128, dropout: float = 0.3, cells: int = 1,
                 encoder: nn.Module | None = None):
        super().__init__()
        if cells > 1 and not self.reads_cells:
            raise ValueError("model.caption.per_cell needs model.caption.kind=attention "
                             f"({type(self).__name__} reads whole frames)")
        self.config = dict(feat_dim=feat_dim, vocab_size=vocab_size, cell=cell, hidden=hidden, layers=layers,
                           embed=embed, dropout=dropout, cells=cells)
        self.cell, self.hidden, self.layers = cell, hidden, layers
        self.features = FeatureInput(feat_dim, hidden, dropout, encoder, cells)
        self.embed = nn.Embedding(vocab_size, embed)
        self.drop = nn.Dropout(dropout)

    def encode(self, feats: torch.Tensor):
        """Frame features (B, T, D), or frames (B, T, S, S, 3) with an encoder attached -> memory
        (whatever ``step`` needs, batch first)."""
        raise NotImplementedError

    def init_state(self, memory):
        raise NotImplementedError

    def advance(self, words: torch.Tensor, state, memory) -> tuple[torch.Tensor, object]:
        """Embedded previous words (B, E) -> what the output layer reads (B, F), and the new state."""
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state, memory) -> tuple[torch.Tensor, object]:
        """Previous tokens (B,) -> next-word logits (B, V) and the new state."""
        out, state = self.advance(self.drop(self.embed(tokens)), state, memory)
        return self.out(self.drop(out)), state

    def reorder_state(self, state, index: torch.Tensor):
        """Select batch rows ``index`` of a recurrent state (layers, B, H) or (h, c)."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def reorder_memory(self, memory: dict, index: torch.Tensor) -> dict:
        """Select batch rows ``index`` of the memory (a dict of batch-first tensors)."""
        return {k: v.index_select(0, index) for k, v in memory.items()}

    def forward(self, feats: torch.Tensor, captions: torch.Tensor, sample_prob: float = 0.0,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: features (B, T, D), captions (B, L) starting with <bos> -> logits (B, L-1, V).
        With ``sample_prob`` > 0 each step feeds the model's own previous word with that probability
        (scheduled sampling). ``rows`` (B,): the video of each caption among features (U, T, D) of U
        videos, each encoded once."""
        memory = self.encode(feats)
        if rows is not None:
            memory = self.reorder_memory(memory, rows)
        state = self.init_state(memory)
        words = self.drop(self.embed(captions[:, :-1]))  # (B, L-1, E): every input word at once
        outputs = []
        for t in range(words.shape[1]):
            w = words[:, t]  # (B, E)
            if sample_prob > 0 and t > 0:
                own = self.out(outputs[-1].detach()).argmax(-1)  # (B,) the model's previous word
                pick = torch.rand(len(w), 1, device=w.device) < sample_prob
                w = torch.where(pick, self.drop(self.embed(own)), w)
            out, state = self.advance(w, state, memory)
            outputs.append(out)
        return self.out(self.drop(torch.stack(outputs, 1)))  # (B, L-1, V): one output layer call for all words


class S2VT(Captioner):
    """Sequence to sequence, video to text (Venugopalan et al., 2015): one stacked recurrent net reads
    the frames (word input empty), then emits the words (frame input empty)."""

    def __init__(self, feat_dim: int, vocab_size: int, **kw):
        super().__init__(feat_dim, vocab_size, **kw)
        embed = self.config["embed"]
        self.rnn = make_rnn(self.cell, self.hidden + embed, self.hidden, self.layers, dropout=self.config["dropout"])
        self.out = nn.Linear(self.hidden, vocab_size)

    def encode(self, feats):
        x = self.features(feats)  # (B, T, H)
        pad = x.new_zeros(*x.shape[:2], self.config["embed"])
        _, state = self.rnn(torch.cat([x, pad], -1))
        return {"state": state}

    def init_state(self, memory):
        return memory["state"]

    def advance(self, words, state, memory):
        x = torch.cat([words.new_zeros(len(words), self.hidden), words], -1).unsqueeze(1)  # (B, 1, H + E)
        y, state = self.rnn(x, state)
        return y[:, 0], state  # (B, H)

    def reorder_memory(self, memory, index):
        return {"state": self.reorder_state(memory["state"], index)}


class AttentionCaptioner(Captioner):
    """Soft attention over the frames at every word (SA-LSTM, Yao et al., 2015): a recurrent encoder
    reads the frames in order (so attention sees when, not only what), and the decoder reads the
    previous word and an attention-weighted context of the encoded frames.

    With ``cells`` > 1 (grid-pooled features, D = C * cells) every cell is projected by the same layer,
    tagged with a learned embedding of where it is, and read in time by the same encoder; attention then
    picks (cell, frame) pairs, as Show, Attend and Tell attends to image regions: what is in a cell is
    recognised the same way wherever it is."""

    reads_cells = True

    def __init__(self, feat_dim: int, vocab_size: int, **kw):
        super().__init__(feat_dim, vocab_size, **kw)
        h, e = self.hidden, self.config["embed"]
        self.encoder = make_rnn(self.cell, h, h, self.layers, dropout=self.config["dropout"])
        self.att_frames, self.att_state, self.att_score = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, 1)
        self.init_h = nn.Linear(h, h * self.layers)
        cells = self.config["cells"]
        self.cell_embed = nn.Parameter(torch.zeros(cells, h)) if cells > 1 else None  # where each cell is
        self.rnn = make_rnn(self.cell, e + h, h, self.layers, dropout=self.config["dropout"])
        self.out = nn.Linear(2 * h, vocab_size)

    def encode(self, feats):
        x = self.features(feats)  # (B, T, H), or (B, T, K, H) with cells
        if x.dim() == 4:  # every cell read in time by the same encoder; attention over all (cell, frame) pairs
            b, t, k, h = x.shape
            x = (x + self.cell_embed).transpose(1, 2).reshape(b * k, t, h)  # (B * K, T, H)
        frames, _ = self.encoder(x)  # (B, T, H) or (B * K, T, H)
        frames = frames.reshape(len(feats), -1, self.hidden)  # (B, K * T, H)
        return {"frames": frames, "keys": self.att_frames(frames)}

    def init_state(self, memory):
        h0 = torch.tanh(self.init_h(memory["frames"].mean(1)))  # (B, layers * H)
        h0 = h0.view(-1, self.layers, self.hidden).transpose(0, 1).contiguous()  # (layers, B, H)
        return (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0

    def _attend(self, query, memory):
        scores = self.att_score(torch.tanh(memory["keys"] + self.att_state(query).unsqueeze(1)))  # (B, T, 1)
        return (F.softmax(scores, 1) * memory["frames"]).sum(1)  # (B, H)

    def advance(self, words, state, memory):
        top = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H)
        context = self._attend(top, memory)
        y, state = self.rnn(torch.cat([words, context], -1).unsqueeze(1), state)  # input (B, 1, E + H)
        return torch.cat([y[:, 0], context], -1), state  # (B, 2H)


CAPTIONERS = {"s2vt": S2VT, "attention": AttentionCaptioner}


def captioner_class(kind: str) -> type[Captioner]:
    if kind not in CAPTIONERS:
        raise ValueError(f"model.kind must be one of {sorted(CAPTIONERS)} for captioning, not {kind!r}")
    return CAPTIONERS[kind]


def build_captioner(kind: str, feat_dim: int, vocab_size: int, **kw) -> Captioner:
    return captioner_class(kind)(feat_dim, vocab_size, **kw)
