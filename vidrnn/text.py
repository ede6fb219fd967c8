"""Caption text: tokenisation and the vocabulary that maps tokens to ids."""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

from nltk.tokenize import TreebankWordTokenizer

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PTB_BRACKETS = {"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"}
_PUNCTUATION = set(string.punctuation)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # Treebank splits off only the text's final period
_TREEBANK = TreebankWordTokenizer()


def _is_word(token: str) -> bool:
    """Whether a token is more than punctuation or a PTB bracket."""
    return token not in PTB_BRACKETS and not set(token) <= _PUNCTUATION


def tokenize(text: str) -> list[str]:
    """Lower-case Treebank word tokens of ``text``, punctuation dropped."""
    return [token for sentence in _SENTENCE_END.split(text.lower().strip())
            for token in _TREEBANK.tokenize(sentence) if _is_word(token)]


class Vocab:
    """Token <-> id map with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2 and ``<unk>`` = 3."""

    pad_id, bos_id, eos_id, unk_id = range(len(SPECIALS))

    def __init__(self, tokens: Sequence[str]):
        """A vocabulary of ``tokens`` in id order, the four special tokens first."""
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {', '.join(SPECIALS)}; got {list(tokens[:len(SPECIALS)])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary lists each token once")
        self.tokens = list(tokens)
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocab:
        """The tokens seen at least ``min_count`` times in ``captions``, most frequent first (ties alphabetical)."""
        counts = Counter(token for caption in captions for token in tokenize(caption))
        words = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls([*SPECIALS, *words])


    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """<bos>, the token ids of ``text`` (<unk> for unknown ones), <eos>: at most ``max_len`` ids, <eos> kept."""
        ids = [self.bos_id, *(self.ids.get(t, self.unk_id) for t in tokenize(text))]
        if max_len is not None:
            if max_len < 2:
                raise ValueError(f"max_len must leave room for <bos> and <eos>; got {max_len}")
            ids = ids[: max_len - 1]
        return ids + [self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` up to the first <eos>, <pad> and <bos> skipped."""
        words = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.tokens[i])
        return " ".join(words)

    def to_dict(self) -> dict[str, list[str]]:
        """Plain-data form (for ``torch.save`` and ``torch.load(weights_only=True)``)."""
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        """The vocabulary saved by ``to_dict``."""
        return cls(data["tokens"])
