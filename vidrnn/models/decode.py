"""Decoding captions: greedy and batched beam search over any ``Captioner``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..text import Vocab
from .captioner import Captioner

NEVER = (Vocab.pad_id, Vocab.unk_id)  # tokens no caption holds: no word, and "a word not in the vocabulary"


@dataclass
class Hypothesis:
    tokens: list[int]  # without <bos>/<eos>
    logprob: float  # summed log-probability, <eos> included when the caption ended by itself
    score: float  # logprob / length ** length_penalty (length counts <eos>)


def _word_logprobs(logits: torch.Tensor, step: int, *, eos: int, never: tuple[int, ...]) -> torch.Tensor:
    """Log-probabilities of the next word (N, V). A caption has a word: <eos> cannot come first (an
    undertrained model's likeliest caption is often the empty one), and the ``never`` tokens (<bos>,
    <pad>, <unk>: no word) never come (with a vocabulary's minimum count, <unk> stands for many rare words
    in training and becomes the likeliest word; "a <unk> <unk>" was written out)."""
    logp = F.log_softmax(logits.float(), -1)
    logp[:, list(never) + ([eos] if step == 0 else [])] = float("-inf")
    return logp


@torch.no_grad()
def greedy_decode(model: Captioner, feats: torch.Tensor, *, bos: int, eos: int, never: tuple[int, ...] = NEVER,
                  max_len: int = 20, length_penalty: float = 1.0) -> list[Hypothesis]:
    """The most likely word at each step (<eos> not first); features (B, T, D) -> one hypothesis per
    video, scored as beam search scores (``length_penalty`` changes the score, not the words)."""
    memory = model.encode(feats)
    state = model.init_state(memory)
    tokens = torch.full((feats.shape[0],), bos, dtype=torch.long, device=feats.device)
    words, logprob = [], torch.zeros(feats.shape[0], device=feats.device)
    ended = torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
    for step in range(max_len):
        logits, state = model.step(tokens, state, memory)
        best, tokens = _word_logprobs(logits, step, eos=eos, never=(bos, *never)).max(-1)  # (B,), (B,)
        logprob += best.masked_fill(ended, 0.0)
        words.append(tokens.masked_fill(ended, eos))
        ended |= tokens == eos
        if ended.all():
            break
    out = []
    for b, row in enumerate(torch.stack(words, 1).tolist()):  # (B, steps)
        ids = row[: row.index(eos)] if eos in row else row
        length = len(ids) + (eos in row)
        out.append(Hypothesis(ids, logprob[b].item(), logprob[b].item() / length ** length_penalty))
    return out


@torch.no_grad()
def beam_search(model: Captioner, feats: torch.Tensor, *, bos: int, eos: int, never: tuple[int, ...] = NEVER,
                beam: int = 5, max_len: int = 20, length_penalty: float = 1.0, n_best: int = 1
                ) -> list[list[Hypothesis]]:
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
    history: list[list[int]] = [[] for _ in range(B * k)]  # the words of each slot, on the host
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    open_slots: list[tuple[int, int, float]] = []  # (video, slot, score) of the slots still open

    def finish(b: int, words: list[int], logprob: float, ended: bool) -> None:
        finished[b].append(Hypothesis(words, logprob, logprob / (len(words) + ended) ** length_penalty))

    for step in range(max_len):
        logits, state = model.step(tokens, state, memory)
        logp = _word_logprobs(logits, step, eos=eos, never=(bos, *never))  # (B*k, V)
        V = logp.shape[-1]
        top, idx = (scores.view(-1, 1) + logp).view(B, k * V).topk(k, dim=1)  # (B, k)
        # the bookkeeping is Python's, on the host: one copy each way per step, not one per video
        top, idx = top.tolist(), idx.tolist()
        new_scores = [[float("-inf")] * k for _ in range(B)]
        select = [list(range(b * k, (b + 1) * k)) for b in range(B)]
        next_words = [[eos] * k for _ in range(B)]
        open_slots = []
        for b in range(B):
            kept, width = 0, k - len(finished[b])  # each finished caption narrows the beam
            for s, flat in zip(top[b][:width], idx[b][:width]):
                if s == float("-inf"):
                    break
                slot, word = b * k + flat // V, flat % V
                if word == eos:
                    finish(b, history[slot], s, True)
                else:
                    new_scores[b][kept], select[b][kept], next_words[b][kept] = s, slot, word
                    open_slots.append((b, kept, s))
                    kept += 1
        if not open_slots:
            break
        flat_select = [slot for row in select for slot in row]
        history = [history[slot] + [word] for slot, word in zip(flat_select, (w for row in next_words for w in row))]
        state = model.reorder_state(state, torch.tensor(flat_select, device=dev))
        tokens = torch.tensor(next_words, device=dev).view(-1)
        scores = torch.tensor(new_scores, device=dev)
    else:
        for b, slot, s in open_slots:
            finish(b, history[b * k + slot], s, False)
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
