"""Caption text: tokenisation and the vocabulary that maps tokens to ids."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
# Tokens the COCO evaluation drops after PTB tokenisation. It lowercases first, so the bracket names
# never match and brackets survive as "-lrb-" etc.; ``tokenize`` reproduces that.
PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                         ".", "?", "!", ",", ":", "-", "--", "...", ";"])
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_BRACKET_TEXT = {name: bracket for bracket, name in _BRACKETS.items()}
# Unicode quotes, dashes and ellipses as PTBTokenizer reads them (its ASCII forms, then dropped as punctuation)
_UNICODE_PUNCTUATION = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                      "\u2026": " ... ", "\u2013": " -- ", "\u2014": " -- "})


def tokenize(text: str) -> list[str]:
    """Lowercased Penn Treebank tokens of ``text`` without punctuation, as the COCO evaluation tokenises
    (its PTBTokenizer jar: ``metrics.coco_tokens``; these rules differ on some abbreviations, runs of
    punctuation, markup and symbols: "mr.", "!!!", "<b>", "r&d", ":)").

    "Don't stop." -> ["do", "n't", "stop"]. Remembered: a training run meets each caption several times
    (vocabulary, ids, every validation), and the Treebank rules take about 0.1 ms a caption.
    """
    return list(_tokens(text))


@lru_cache(maxsize=1 << 18)  # MSR-VTT has 200,000 captions
def _tokens(text: str) -> tuple[str, ...]:
    tokens = []
    text = "".join(c for c in text if c <= "\uffff")  # the jar drops characters past 16 bits (emoji) as untokenizable
    for token in _treebank().tokenize(text.lower().translate(_UNICODE_PUNCTUATION)):
        if len(token) > 1 and token.endswith(".") and token.count(".") == 1:
            token = token[:-1]  # a sentence-ending period inside the text ("man. a dog"); keeps "u.s."
        token = _BRACKETS.get(token, token)
        if token not in PUNCTUATION:
            tokens.append(token)
    return tuple(tokens)


def detokenize(tokens: Sequence[str]) -> str:
    """Text from ``tokenize``'s tokens, for people to read: ["the", "man", "'s", "-lrb-", "brown", "-rrb-", "ca",
    "n't"] -> "the man's (brown) can't"; ``tokenize`` gives the same tokens back from it."""
    return _treebank(detokenizer=True).detokenize([_BRACKET_TEXT.get(t, t) for t in tokens])


@lru_cache(maxsize=2)
def _treebank(detokenizer: bool = False):
    """nltk's Treebank tokenizer (or detokenizer), imported at first use (nltk takes about a second to import)."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer, TreebankWordTokenizer

    return TreebankWordDetokenizer() if detokenizer else TreebankWordTokenizer()


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
        """The text of ``ids`` up to the first <eos> (``detokenize``), <pad> and <bos> skipped."""
        words = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.tokens[i])
        return detokenize(words)

    def to_dict(self) -> dict[str, list[str]]:
        """Plain-data form (for ``torch.save`` and ``torch.load(weights_only=True)``)."""
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        """The vocabulary saved by ``to_dict``."""
        return cls(data["tokens"])
