"""Captioning as a training task: samples, the loss step, validation, and captions from features."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..device import resident
from ..distributed import epoch_order
from ..metrics import score_captions
from ..models.captioner import Captioner
from ..models.decode import beam_search, greedy_decode
from ..text import Vocab


@dataclass
class CaptionSamples:
    """Videos of one split: their features and reference captions."""

    ids: list[str]
    feats: torch.Tensor  # (S, N, D) features, or (S, N, S, S, 3) uint8 frames
    refs: dict[str, list[str]]


class CaptionTask:
    """Teacher-forced cross-entropy (label smoothing, scheduled sampling) over every (video, caption)
    pair each epoch; evaluation by greedy decoding (``beam`` > 1: beam search), scored with BLEU-4 and
    CIDEr-D on ``tokenize``'s tokens (``exact_tokens``: the COCO evaluation's jar where java runs, as
    ``evaluate`` scores).

    A batch encodes each of its videos once, whatever number of its captions it holds. Training on
    frames (the encoder trained end to end), a video's captions come in groups of ``GROUP`` into the
    same batch, so the CNN runs once per group rather than once per caption."""

    monitor, mode = "CIDEr-D", "max"
    GROUP = 4  # captions of one video per batch, training on frames

    def __init__(self, vocab: Vocab, train: CaptionSamples, val: CaptionSamples, *, batch_size: int = 32,
                 max_len: int = 20, label_smoothing: float = 0.1, scheduled_sampling: float = 0.0,
                 max_epochs: int = 30, device: torch.device = torch.device("cpu"), seed: int = 0, beam: int = 1,
                 exact_tokens: bool = False, every_metric: bool = False):
        self.vocab, self.train, self.val, self.beam, self.exact_tokens = vocab, train, val, beam, exact_tokens
        self.every_metric = every_metric
        self.tokens: dict = {}  # the last scores' tokenizer and why it was not the jar (``score_captions``)
        self.batch_size, self.max_len, self.device = batch_size, max_len, device
        self.label_smoothing, self.scheduled_sampling, self.max_epochs = label_smoothing, scheduled_sampling, max_epochs
        pairs = [(k, vocab.encode(c, max_len)) for k, vid in enumerate(train.ids) for c in train.refs[vid]]
        width = max(len(ids) for _, ids in pairs)
        self.pair_video = torch.tensor([k for k, _ in pairs])  # (P,)
        self.pair_caps = torch.tensor([ids + [vocab.pad_id] * (width - len(ids)) for _, ids in pairs])  # (P, L)
        group = self.GROUP if train.feats.dtype == torch.uint8 else 1
        per_video = torch.arange(len(pairs)).split(self.pair_video.bincount(minlength=len(train.ids)).tolist())
        self.groups = [g for pairs_of in per_video for g in pairs_of.split(group)]  # up to ``group`` pairs each
        self.groups_per_batch = max(1, batch_size // group)
        self.train_feats = resident(train.feats, device)
        self.seed = seed

    def batches(self, epoch: int):
        order = epoch_order(len(self.groups), epoch, self.seed)  # this process's share under torchrun
        for start in range(0, len(order), self.groups_per_batch):
            idx = torch.cat([self.groups[g] for g in order[start:start + self.groups_per_batch]])
            caps = self.pair_caps[idx]
            caps = caps[:, : int((caps != self.vocab.pad_id).sum(1).max())]  # trim padding
            videos, rows = self.pair_video[idx].unique(return_inverse=True)  # (U,), (B,)
            feats = self.train_feats[videos.to(self.train_feats.device)].to(self.device, non_blocking=True)
            yield feats, caps.to(self.device), rows.to(self.device)

    def sample_prob(self, epoch: int) -> float:
        """Scheduled sampling rises linearly to its maximum over the first half of training."""
        return self.scheduled_sampling * min(1.0, epoch / max(self.max_epochs / 2, 1))

    def step(self, model: Captioner, batch, epoch: int) -> torch.Tensor:
        feats, caps, rows = batch  # (U, N, D) of U videos, (B, L), (B,) the video of each caption
        logits = model(feats, caps, sample_prob=self.sample_prob(epoch), rows=rows)  # (B, L-1, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), caps[:, 1:].reshape(-1),
                               ignore_index=self.vocab.pad_id, label_smoothing=self.label_smoothing)

    def evaluate(self, model: Captioner) -> dict:
        if not self.val.ids:
            return {}
        hyps = describe(model, self.vocab, self.val.feats, ids=self.val.ids, beam=self.beam, max_len=self.max_len,
                        device=self.device)
        scored = score_captions(self.val.refs, {v: h[0][0] for v, h in hyps.items()}, meteor=False,
                                exact_tokens=self.exact_tokens)
        self.tokens = {k: scored[k] for k in ("tokenizer", "tokenizer_note")}
        scores = scored["corpus"]
        if self.every_metric:  # BLEU-1..4, ROUGE-L, CIDEr-D (METEOR, a Java process, is evaluate's)
            return {k: v for k, v in scores.items() if v is not None}
        return {"BLEU-4": scores["BLEU-4"], "CIDEr-D": scores["CIDEr-D"]}


def describe(model: Captioner, vocab: Vocab, feats: torch.Tensor, *, ids: list[str], beam: int = 1,
             max_len: int = 20, length_penalty: float = 1.0, n_best: int = 1, batch_size: int = 64,
             device: torch.device = torch.device("cpu")) -> dict[str, list[tuple[str, float]]]:
    """Captions for features (S, N, D): id -> up to ``n_best`` (caption, score) pairs, best first."""
    model.eval()
    out, words = {}, {"bos": vocab.bos_id, "eos": vocab.eos_id, "max_len": max_len}
    for start in range(0, len(ids), batch_size):
        x = feats[start:start + batch_size].to(device)
        if beam == 1 and n_best == 1:
            found = [[h] for h in greedy_decode(model, x, length_penalty=length_penalty, **words)]
        else:
            found = beam_search(model, x, beam=beam, length_penalty=length_penalty, n_best=n_best, **words)
        for vid, hyps in zip(ids[start:start + batch_size], found):
            out[vid] = [(vocab.decode(h.tokens), h.score) for h in hyps]
    return out
