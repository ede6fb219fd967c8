"""Scoring prediction files against annotation files: captions and people counts."""
from __future__ import annotations

import csv
from pathlib import PurePosixPath

from .data import load_captions, load_count_labels
from .metrics import count_errors, score_captions
from .outputs import read_captions


def _align(predicted: dict, truth_ids, what: str) -> dict:
    """Predictions keyed by the annotation's ids (a prediction id may be a path whose stem is the id)."""
    by_stem = {PurePosixPath(k).name: v for k, v in predicted.items()}
    aligned = {vid: predicted.get(vid, by_stem.get(vid)) for vid in truth_ids}
    aligned = {vid: v for vid, v in aligned.items() if v is not None}
    if not aligned:
        raise ValueError(f"no {what} prediction names an annotated video")
    return aligned


def _predictions(path: str, read, what: str, layout: str) -> dict:
    """``read(path)``; a file that is not such a prediction file is one line naming it and the layout."""
    try:
        return read(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, so not a {what} prediction file ({layout})") from None
    except (KeyError, TypeError, ValueError) as e:  # missing columns or keys, a value that is no number
        raise ValueError(f"{path}: not a {what} prediction file ({layout})") from e


def _read_counts(path: str) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f)
        if not {"video_id", "count"} <= set(rows.fieldnames or ()):
            raise KeyError("video_id,count")
        return {r["video_id"]: float(r["count"]) for r in rows}


def evaluate_captions(predictions: str, annotations: str, *, split: str | None = None, meteor: bool = True) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D of a caption file (.json/.csv) against references, per video
    and for the corpus; ``split`` restricts to one split of the annotations."""
    refs = load_captions(annotations)
    if split:
        refs = refs.subset(split)
    hyps = _align(_predictions(predictions, read_captions, "caption", 'a JSON list of {"video_id" or "image_id", '
                               '"caption"}, a JSON object of id -> caption, or a CSV with columns video_id,caption'),
                  refs.captions, "caption")
    scores = score_captions({v: refs.captions[v] for v in hyps}, hyps, meteor=meteor)
    return {**scores, "videos": len(hyps), "missing": sorted(set(refs.captions) - set(hyps))}


def evaluate_counts(predictions: str, labels: str, *, split: str | None = None) -> dict:
    """MAE and RMSE of a ``video_id,count`` file against clip counts (or the mean of per-frame counts)."""
    truth = load_count_labels(labels)
    values = dict(truth.clip) or {v: float(f[~(f != f)].mean()) for v, f in truth.frames.items()}
    if split:
        values = {v: c for v, c in values.items() if truth.splits.get(v) == split}
    pred = _align(_predictions(predictions, _read_counts, "count", "a CSV with columns video_id,count"), values,
                  "count")
    return {**count_errors({v: values[v] for v in pred}, pred), "videos": len(pred),
            "missing": sorted(set(values) - set(pred))}
