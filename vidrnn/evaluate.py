"""Scoring prediction files against annotation files: captions and people counts."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np

from .data import AnnotationError, apply_splits, load_captions, load_count_labels, normalize_split
from .data.annotations import read_text
from .files import VIDEO_EXTENSIONS, some_of
from .metrics import count_errors, score_captions
from .outputs import PredictionError, read_captions, read_counts

CAPTION_LAYOUT = ('a JSON list of {"video_id" or "image_id", "caption"}, a JSON object of id -> caption, or a CSV '
                  'with columns video_id,caption')


class NoMatch(ValueError):
    """No prediction names an annotated video."""


def annotated_ids(keys, known, paths: dict | None = None) -> dict[str, str | None]:
    """The annotated video (one of ``known``) each of ``keys`` names, or None. A key may be a path whose last
    part is the id (with or without an extension), the video's file (``paths``: id -> file path hint, or an
    id that is a file name such as clip.mp4; a caption run names videos by their files) by its path with or
    without the extension, or by its name alone where that names one video, or the number of an id that is
    a word and that number (7010 for MSR-VTT's video7010)."""
    known = list(known)
    by_number: dict[int, list[str]] = {}
    for vid in known:
        match = re.fullmatch(r"[^\W\d]+_?(\d+)", vid)
        if match:
            by_number.setdefault(int(match.group(1)), []).append(vid)
    by_file: dict[str, list[str]] = {}
    hints = [(vid, vid) for vid in known if PurePosixPath(vid).suffix.lower() in VIDEO_EXTENSIONS]  # "clip.mp4"
    for vid, hint in [*(paths or {}).items(), *hints]:
        hint = PurePosixPath(hint.replace("\\", "/"))
        for name in {hint.as_posix(), hint.with_suffix("").as_posix(), hint.stem}:
            by_file.setdefault(name, []).append(vid)
    known_set = set(known)

    def annotated(key: str) -> str | None:
        last = PurePosixPath(key.replace("\\", "/"))
        for candidate in (key, last.name, last.stem):  # ... or the path of its file: TrainValVideo/video0.mp4
            if candidate in known_set:
                return candidate
        for name in (last.as_posix(), last.stem):  # a file named by its path, or by its name alone
            if name in by_file:
                named = list(dict.fromkeys(by_file[name]))
                return named[0] if len(named) == 1 else None
        named = by_number.get(int(key), []) if key.isdigit() else []
        return named[0] if len(named) == 1 else None

    return {str(key): annotated(str(key)) for key in keys}


def _align(source: str, predicted: dict, truth_ids, what: str, known, paths: dict | None = None
           ) -> tuple[dict, list[str]]:
    """Predictions (of the file ``source``) keyed by the annotation's ids (``truth_ids``), and the prediction
    ids that name none of the annotated videos (``known``, every split), matched as ``annotated_ids`` does;
    two ids that name one video are an error."""
    wanted, names = set(truth_ids), annotated_ids(predicted, known, paths)
    aligned, unknown, named = {}, [], {}
    for key, value in predicted.items():
        vid = names[str(key)]
        if vid is None:
            unknown.append(str(key))
        elif vid in named:
            raise ValueError(f"{source}: predictions {named[vid]!r} and {key!r} both name video {vid!r}; one "
                             "prediction per video is scored")
        else:
            named[vid] = key
            if vid in wanted:
                aligned[vid] = value
    if not aligned:
        where = " of this split" if named else ""
        raise NoMatch(f"{source}: no {what} prediction names an annotated video{where} "
                      f"(predictions: {some_of(predicted)}; annotations: {some_of(truth_ids or known)})")
    return aligned, unknown


def _require_split(source: str, split: str | None, selected, splits: dict) -> None:
    """A ``split`` that selects no video is an error naming the splits there are."""
    if split and not selected:
        there = sorted({s for s in splits.values() if s})
        raise ValueError(f"{source}: no video is in split {split!r} (" + (f"its splits: {', '.join(there)})" if there
                         else "it gives no splits: splits=FILE gives them, a video_id,split CSV)"))


def _predictions(path: str, read, what: str, layout: str) -> dict:
    """``read(path, text)``; a wrong entry is one line naming it (``PredictionError``), a file that is not
    such a prediction file one line naming it and the layout."""
    try:
        text = read_text(path)
    except AnnotationError:
        raise ValueError(f"{path}: not UTF-8 text, so not a {what} prediction file ({layout})") from None
    if not text.strip():
        raise ValueError(f"{path}: no predictions")
    try:
        return read(path, text)
    except PredictionError:
        raise
    except (KeyError, TypeError, ValueError) as e:  # missing columns or keys, another layout
        raise ValueError(f"{path}: not a {what} prediction file ({layout})") from e


def evaluate_captions(predictions: str, annotations: str, *, split: str | None = None, splits: str | None = None,
                      meteor: bool = True) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D of a caption file (.json/.csv) against references, per video
    and for the corpus; ``split`` restricts to one split of the annotations (or of the ``splits`` file)."""
    every = load_captions(annotations)
    if splits:
        apply_splits(splits, every.splits, every.captions, every.paths)
    refs = every.subset(split) if split else every
    _require_split(annotations, split, refs.captions, every.splits)
    found = _predictions(predictions, read_captions, "caption", CAPTION_LAYOUT)
    hyps, unknown = _align(predictions, found, refs.captions, "caption", every.captions, every.paths)
    scores = score_captions({v: refs.scored(v) for v in hyps}, hyps, meteor=meteor)
    return {**scores, "videos": len(hyps), "missing": sorted(set(refs.captions) - set(hyps)), "unknown": unknown}


def evaluate_counts(predictions: str, labels: str, *, split: str | None = None, splits: str | None = None) -> dict:
    """MAE and RMSE of a ``video_id,count`` file against clip counts (or the mean of per-frame counts);
    ``split`` restricts to one split of the labels (or of the ``splits`` file)."""
    found = _predictions(predictions, read_counts, "count", "a CSV with columns video_id,count")
    truth = load_count_labels(labels).for_videos(list(found))  # a gt.txt and one video's count: that video's
    if splits:
        apply_splits(splits, truth.splits, set(truth.clip) | set(truth.frames))
    every = dict(truth.clip) or {v: float(np.nanmean(f)) for v, f in truth.frames.items()}  # labelled frames
    values = {v: c for v, c in every.items() if truth.splits.get(v) == normalize_split(split)} if split else every
    _require_split(labels, split, values, truth.splits)
    pred, unknown = _align(predictions, found, values, "count", every)
    return {**count_errors({v: values[v] for v in pred}, pred), "videos": len(pred),
            "missing": sorted(set(values) - set(pred)), "unknown": unknown}
