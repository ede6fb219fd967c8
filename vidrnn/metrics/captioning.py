"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) that reproduce pycocoevalcap's numbers.

BLEU, ROUGE-L and CIDEr-D are computed here from their definitions, following the conventions of the
COCO caption evaluation code so that scores are comparable with published ones. METEOR needs the
METEOR 1.5 jar (run through pycocoevalcap, which needs ``java``); without it nltk's re-implementation is
used when WordNet is installed, and the result always says which backend produced the number.

The scorers take tokenised captions: words joined by single spaces, as ``coco_tokens`` gives them.
``refs`` maps a video id to its reference captions, ``hyps`` maps a video id to one hypothesis.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple, Optional

import numpy as np

from .java import java_problem
from .tokens import coco_tokens

METEOR_JAR = "meteor-1.5-jar"
METEOR_NLTK = "nltk"
CAPTION_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


def _videos(refs: dict, hyps: dict) -> list:
    """The video ids to score (those with a hypothesis), checking each has references."""
    if not hyps:
        raise ValueError("no hypotheses to score")
    missing = [vid for vid in hyps if not refs.get(vid)]
    if missing:
        raise ValueError(f"no reference captions for hypothesis video(s): {missing}")
    return list(hyps)


def _ngram_counts(words: list[str], n: int) -> Counter:
    """Counts of all 1..n-grams (as tuples) of ``words``."""
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


# --------------------------------------------------------------------------------------------- BLEU
_TINY, _SMALL = 1e-15, 1e-9  # pycocoevalcap's smoothing: 0 matches give ~0, 0 guesses do not divide by 0


def _bleu_from_counts(matched, guessed, hyp_len: float, ref_len: float) -> list[float]:
    """BLEU-1..n from clipped n-gram matches, n-gram guesses and the hypothesis/reference lengths."""
    precision_product = np.cumprod((np.asarray(matched, float) + _TINY) / (np.asarray(guessed, float) + _SMALL))
    scores = precision_product ** (1.0 / np.arange(1, len(matched) + 1))
    ratio = (hyp_len + _TINY) / (ref_len + _SMALL)
    if ratio < 1:
        scores = scores * math.exp(1 - 1 / ratio)  # brevity penalty
    return [float(s) for s in scores]


def bleu(refs: dict[str, list[str]], hyps: dict[str, str], n: int = 4):
    """Corpus BLEU-1..n (n-gram counts and lengths summed over videos) and the per-video BLEU-1..n.

    Each hypothesis is compared with the reference whose length is closest to it (the shorter on ties).
    Returns ``(corpus: list[n], per_video: list[list[n]])`` in the order of ``hyps``.
    """
    matched_total, guessed_total = np.zeros(n), np.zeros(n)
    hyp_len_total = ref_len_total = 0
    per_video = []
    for vid in _videos(refs, hyps):
        words = hyps[vid].split()
        ref_words = [ref.split() for ref in refs[vid]]
        max_ref_counts = Counter()
        for ref in ref_words:
            max_ref_counts |= _ngram_counts(ref, n)  # union keeps each n-gram's largest count
        matched = np.zeros(n)
        for gram, count in _ngram_counts(words, n).items():
            matched[len(gram) - 1] += min(count, max_ref_counts[gram])
        guessed = [max(0, len(words) - k) for k in range(n)]
        ref_len = min((abs(len(ref) - len(words)), len(ref)) for ref in ref_words)[1]
        per_video.append(_bleu_from_counts(matched, guessed, len(words), ref_len))
        matched_total += matched
        guessed_total += guessed
        hyp_len_total += len(words)
        ref_len_total += ref_len
    return _bleu_from_counts(matched_total, guessed_total, hyp_len_total, ref_len_total), per_video


# ------------------------------------------------------------------------------------------ ROUGE-L
def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(refs: dict[str, list[str]], hyps: dict[str, str], beta: float = 1.2):
    """ROUGE-L F-measure per video and its mean over videos: ``(corpus, per_video list)``.

    Precision and recall are the best LCS ratios over the references (taken independently).
    """
    per_video = []
    for vid in _videos(refs, hyps):
        words = hyps[vid].split(" ")  # on spaces alone, as pycocoevalcap's ROUGE-L (its BLEU and CIDEr-D split
        precision = recall = 0.0  # on any white space, a no-break space too)
        for ref in refs[vid]:
            ref_words = ref.split(" ")
            lcs = _lcs_length(ref_words, words)
            precision = max(precision, lcs / max(len(words), 1))
            recall = max(recall, lcs / max(len(ref_words), 1))
        f = 0.0
        if precision and recall:
            f = (1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision)
        per_video.append(f)
    return float(np.mean(per_video)), per_video


# ------------------------------------------------------------------------------------------ CIDEr-D
def cider_d(refs: dict[str, list[str]], hyps: dict[str, str], n: int = 4, sigma: float = 6.0):
    """CIDEr-D per video and its mean over videos: ``(corpus, per_video list)``.

    TF-IDF weights of 1..n-grams use document frequencies over the reference sets of the scored videos
    (unseen n-grams count as df 1); hypothesis weights are clipped by the reference weights; each
    n-gram order's cosine similarity is damped by exp(-(length difference)^2 / (2 sigma^2)); the score
    is the mean over orders and references, times 10.
    """
    videos = _videos(refs, hyps)
    ref_counts = {vid: [_ngram_counts(ref.split(), n) for ref in refs[vid]] for vid in videos}
    doc_freq = Counter(gram for vid in videos for gram in set().union(*ref_counts[vid]))
    log_docs = math.log(len(videos))

    def tfidf(counts: Counter):
        """N-gram -> tf-idf weight, and the vector norm of each n-gram order."""
        weights = {gram: tf * (log_docs - math.log(max(1.0, doc_freq[gram]))) for gram, tf in counts.items()}
        norms = np.zeros(n)
        for gram, w in weights.items():
            norms[len(gram) - 1] += w * w
        return weights, np.sqrt(norms)

    per_video = []
    for vid in videos:
        words = hyps[vid].split()
        hyp_weights, hyp_norms = tfidf(_ngram_counts(words, n))
        similarity = np.zeros(n)
        for ref, counts in zip(refs[vid], ref_counts[vid]):
            ref_weights, ref_norms = tfidf(counts)
            dots = np.zeros(n)
            for gram, w in hyp_weights.items():
                dots[len(gram) - 1] += min(w, ref_weights.get(gram, 0.0)) * ref_weights.get(gram, 0.0)
            norm_products = hyp_norms * ref_norms
            cosine = np.divide(dots, norm_products, out=dots, where=norm_products != 0)
            similarity += cosine * math.exp(-((len(words) - len(ref.split())) ** 2) / (2 * sigma ** 2))
        per_video.append(float(10.0 * similarity.mean() / len(refs[vid])))
    return float(np.mean(per_video)), per_video


# ------------------------------------------------------------------------------------------- METEOR
class MeteorResult(NamedTuple):
    """METEOR scores and the backend that produced them; ``corpus`` is None when no backend ran."""
    corpus: Optional[float]
    per_video: Optional[list[float]]
    backend: Optional[str]  # METEOR_JAR, METEOR_NLTK or None
    note: Optional[str]  # why the jar was not used, or why there is no METEOR


class _Unavailable(Exception):
    """A METEOR backend cannot run here (the message says why)."""


def _meteor_jar(refs: dict, hyps: dict, videos: list) -> tuple[float, list[float]]:
    """METEOR 1.5 through pycocoevalcap, which runs the jar with ``java``."""
    problem = java_problem(heap="2G")  # the wrapper's own setting
    if problem:
        raise _Unavailable(problem)
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError as error:
        raise _Unavailable(f"pycocoevalcap is not importable ({error})") from None
    scorer = Meteor()
    try:
        corpus, per_video = scorer.compute_score({v: refs[v] for v in videos}, {v: [hyps[v]] for v in videos})
    except (OSError, ValueError) as error:  # the jar died or printed no score
        if scorer.lock.locked():  # the wrapper keeps its lock on an error, and its __del__ would wait for it
            scorer.lock.release()
        raise _Unavailable(f"the METEOR 1.5 jar failed ({error!r})") from None
    return float(corpus), [float(s) for s in per_video]


def _meteor_nltk(refs: dict, hyps: dict, videos: list) -> tuple[float, list[float]]:
    """nltk's METEOR (WordNet synonyms, no paraphrase table), averaged over videos."""
    from nltk.corpus import wordnet
    from nltk.translate.meteor_score import meteor_score
    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise _Unavailable("nltk's WordNet data is not installed") from None
    per_video = [float(meteor_score([r.split() for r in refs[v]], hyps[v].split(), wordnet=wordnet))
                 for v in videos]
    return float(np.mean(per_video)), per_video


def meteor(refs: dict[str, list[str]], hyps: dict[str, str]) -> MeteorResult:
    """METEOR from the 1.5 jar when java and pycocoevalcap are available, else nltk's, else none.

    Only the jar's numbers are comparable with published METEOR scores; ``note`` says when another
    backend (or none) was used and why.
    """
    videos = _videos(refs, hyps)
    try:
        return MeteorResult(*_meteor_jar(refs, hyps, videos), METEOR_JAR, None)
    except _Unavailable as error:
        jar_reason = f"METEOR 1.5 jar unavailable: {error}"
    try:
        corpus, per_video = _meteor_nltk(refs, hyps, videos)
    except _Unavailable as error:
        return MeteorResult(None, None, None, f"{jar_reason}; nltk fallback unavailable: {error}")
    return MeteorResult(corpus, per_video, METEOR_NLTK,
                        f"{jar_reason}; METEOR from nltk, not comparable with METEOR 1.5 scores")


_meteor = meteor  # score_captions' keyword argument ``meteor`` shadows the function


# ---------------------------------------------------------------------------------------- all metrics
def score_captions(references: dict[str, list[str]], hypotheses: dict[str, str], *, meteor: bool = True,
                   exact_tokens: bool = True) -> dict:
    """Score raw-text hypotheses against raw-text references with all caption metrics.

    Both sides are tokenised as the COCO evaluation does (``coco_tokens``: its PTBTokenizer jar where
    ``exact_tokens`` and java allow, else ``tokenize``); only videos with a hypothesis are scored. Returns
    ``{"corpus": {metric: value}, "per_video": {video_id: {metric: value}}, "meteor_backend": ...,
    "meteor_note": ..., "tokenizer": ..., "tokenizer_note": ...}`` with the metrics of ``CAPTION_METRICS``;
    METEOR values are None when no backend ran (``meteor_note`` says why).
    """
    videos = _videos(references, hypotheses)
    tokens = coco_tokens([c for vid in videos for c in (hypotheses[vid], *references[vid])], jar=exact_tokens)
    found = iter(tokens.captions)
    hyps, refs = {}, {}
    for vid in videos:
        hyps[vid] = next(found)
        refs[vid] = [next(found) for _ in references[vid]]

    bleu_corpus, bleu_videos = bleu(refs, hyps)
    meteor_result = _meteor(refs, hyps) if meteor else MeteorResult(None, None, None, "METEOR not requested")
    scores = {f"BLEU-{k + 1}": (bleu_corpus[k], [s[k] for s in bleu_videos]) for k in range(4)}
    scores["METEOR"] = (meteor_result.corpus, meteor_result.per_video or [None] * len(videos))
    scores["ROUGE-L"] = rouge_l(refs, hyps)
    scores["CIDEr-D"] = cider_d(refs, hyps)
    return {
        "corpus": {name: corpus for name, (corpus, _) in scores.items()},
        "per_video": {vid: {name: per_video[i] for name, (_, per_video) in scores.items()}
                      for i, vid in enumerate(videos)},
        "meteor_backend": meteor_result.backend,
        "meteor_note": meteor_result.note,
        "tokenizer": tokens.backend,
        "tokenizer_note": tokens.note,
    }
