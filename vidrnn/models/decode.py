"""Decoding captions: greedy and batched beam search over any ``Captioner``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .captioner import Captioner


@dataclass
class Hypothesis:
    tokens: list[int]  # without <bos>/<eos>
    logprob: float  # summed log-probability, <eos> included when the caption ended by itself
    score: float  # logprob / length ** length_penalty (length counts <eos>)


@torch.no_grad()
def greedy_decode(model: Captioner, feats: torch.Tensor, *, bos: int, eos: int, max_len: int = 20
                  ) -> list[Hypothesis]:
    """The most likely word at each step; features (B, T, D) -> one hypothesis per video."""
    memory = model.encode(feats)
    state = model.init_state(memory)
    tokens = torch.full((feats.shape[0],), bos, dtype=torch.long, device=feats.device)
    words, logprob = [], torch.zeros(feats.shape[0], device=feats.device)
    ended = torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
    for _ in range(max_len):
        logits, state = model.step(tokens, state, memory)
        best, tokens = F.log_softmax(logits.float(), -1).max(-1)  # (B,), (B,)
        logprob += best.masked_fill(ended, 0.0)
        words.append(tokens.masked_fill(ended, eos))
        ended |= tokens == eos
        if ended.all():
            break
    out = []
    for b, row in enumerate(torch.stack(words, 1).tolist()):  # (B, steps)
        ids = row[: row.index(eos)] if eos in row else row
        out.append(Hypothesis(ids, logprob[b].item(), logprob[b].item() / (len(ids) + (eos in row))))
    return out


@torch.no_grad()
def beam_search(model: Captioner, feats: torch.Tensor, *, bos: int, eos: int, beam: int = 5, max_len: int = 20,
                length_penalty: float = 1.0, n_best: int = 1) -> list[list[Hypothesis]]:
    """Beam search for all videos of the batch at once: features (B, T, D) -> the ``n_best`` (<= beam)
    hypotheses per video, best first by logprob / length ** length_penalty.

    Each video keeps ``beam`` slots; a slot whose best continuation is <eos> finishes and the beam
    narrows (so beam 1 is greedy decoding); slots still open at ``max_len`` finish there.
    """
    B, k, dev = feats.shape[0], beam, feats.device
    memory = model.encode(feats)
    rows = torch.arange(B, device=dev).repeat_interleave(k)  # (B*k,)
    memory = model.reorder_memory(memory, rows)
    state = model.init_state(memory)
    tokens = torch.full((B * k,), bos, dtype=torch.long, device=dev)
    scores = torch.full((B, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all slots start identical: open one
    history = torch.zeros(B * k, 0, dtype=torch.long, device=dev)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]

    def finish(b: int, words: list[int], logprob: float, ended: bool) -> None:
        finished[b].append(Hypothesis(words, logprob, logprob / (len(words) + ended) ** length_penalty))

    for _ in range(max_len):
        logits, state = model.step(tokens, state, memory)
        logp = F.log_softmax(logits.float(), -1)  # (B*k, V)
        V = logp.shape[-1]
        top, idx = (scores.view(-1, 1) + logp).view(B, k * V).topk(k, dim=1)  # (B, k)
        new_scores = torch.full_like(scores, float("-inf"))
        select = torch.arange(B * k, device=dev).view(B, k).clone()
        next_words = torch.full((B, k), eos, dtype=torch.long, device=dev)
        for b in range(B):
            kept, width = 0, k - len(finished[b])  # each finished caption narrows the beam
            for s, flat in zip(top[b, :width].tolist(), idx[b, :width].tolist()):
                if s == float("-inf"):
                    break
                slot, word = b * k + flat // V, flat % V
                if word == eos:
                    finish(b, history[slot].tolist(), s, True)
                else:
                    new_scores[b, kept], select[b, kept], next_words[b, kept] = s, slot, word
                    kept += 1
        if not torch.isfinite(new_scores).any():
            break
        flat_select = select.view(-1)
        state = model.reorder_state(state, flat_select)
        history = torch.cat([history.index_select(0, flat_select), next_words.view(-1, 1)], 1)
        tokens, scores = next_words.view(-1), new_scores
    else:
        for b, slot in torch.isfinite(scores).nonzero().tolist():
            finish(b, history[b * k + slot].tolist(), scores[b, slot].item(), False)
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
