"""Errors of people counts: one count per clip, or one count per frame."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def _values(value) -> np.ndarray:
    """A count (scalar) or per-frame counts as a flat float array."""
    return np.asarray(value, dtype=float).reshape(-1)


def _errors(diff: np.ndarray) -> dict:
    """MAE and RMSE of prediction - truth differences."""
    return {"MAE": float(np.mean(np.abs(diff))), "RMSE": float(np.sqrt(np.mean(diff ** 2)))}


def count_errors(truth: Mapping[str, object], pred: Mapping[str, object]) -> dict:
    """MAE and RMSE of predicted counts, overall and per video.

    Values are one count per video (errors over all clips) or per-frame arrays (errors over all
    frames; predicted and true lengths must match). Returns ``{"MAE", "RMSE", "scored": how many values
    (clips or frames) the errors are over, "per_video": {id: {"MAE", "RMSE"}}}``.
    """
    if not truth:
        raise ValueError("no videos to score")
    if truth.keys() != pred.keys():
        raise ValueError(f"videos without a prediction: {sorted(truth.keys() - pred.keys())}; "
                         f"predictions without truth: {sorted(pred.keys() - truth.keys())}")
    per_video, diffs = {}, []
    for vid in truth:
        true, predicted = _values(truth[vid]), _values(pred[vid])
        if true.size == 0 or true.shape != predicted.shape:
            raise ValueError(f"video {vid!r}: {true.size} true values but {predicted.size} predicted")
        diffs.append(predicted - true)
        per_video[vid] = _errors(diffs[-1])
    every = np.concatenate(diffs)
    return {**_errors(every), "scored": int(every.size), "per_video": per_video}


def mean_predictor_errors(train_values: Mapping[str, object] | Iterable, truth: Mapping[str, object]) -> dict:
    """Errors of the baseline that always predicts the mean training count (over all training values).

    ``train_values`` is a mapping or iterable of counts / per-frame arrays. Returns ``count_errors``'
    layout plus ``"mean"``, the constant prediction.
    """
    values = train_values.values() if isinstance(train_values, Mapping) else train_values
    known = np.concatenate([_values(v) for v in values])
    mean = float(np.mean(known[np.isfinite(known)]))  # unlabelled values (NaN) are neither trained on nor scored
    truth = {vid: counts for vid, counts in truth.items() if np.isfinite(_values(counts)).all()}
    constant = {vid: np.full(_values(counts).shape, mean) for vid, counts in truth.items()}
    return {**count_errors(truth, constant), "mean": mean}
