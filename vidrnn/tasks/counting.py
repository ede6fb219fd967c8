"""Counting people as a training task: samples with clip and per-frame targets, the loss step,
validation MAE/RMSE, and counts from features."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..device import resident
from ..distributed import epoch_order
from ..metrics import count_errors
from ..models.counter import RecurrentCounter


@dataclass
class CountSamples:
    """Clips of one split: features, a count per clip and per sampled frame (NaN where unlabelled)."""

    ids: list[str]  # one per sample: the video id, with "@<window>" for windows of long videos
    feats: torch.Tensor  # (S, N, D) features, or (S, N, S, S, 3) uint8 frames
    clip: torch.Tensor  # (S,)
    frames: torch.Tensor  # (S, N)
    indices: torch.Tensor  # (S, N) sampled frame numbers
    videos: list[str]  # one per sample: its video's id (an id may hold "@" itself)

    def subset(self, keep: torch.Tensor) -> CountSamples:
        """The samples where the boolean mask ``keep`` (S,) is true."""
        rows = keep.nonzero().flatten().tolist()
        return CountSamples([self.ids[i] for i in rows], self.feats[keep], self.clip[keep], self.frames[keep],
                            self.indices[keep], [self.videos[i] for i in rows])

    def truth(self) -> tuple[dict[str, float], str]:
        """Per-sample true counts and what they count: "clip" where every sample has a clip count,
        else the mean over its labelled frames ("frames")."""
        if not torch.isnan(self.clip).any():
            return dict(zip(self.ids, self.clip.tolist())), "clip"
        return dict(zip(self.ids, torch.nanmean(self.frames, 1).tolist())), "frames"


def build_samples(ids: list[str], feats: list[np.ndarray], indices: list[np.ndarray], clip: list[float | None],
                  frames: list[np.ndarray | None]) -> CountSamples:
    """Samples from videos: inputs (N, ...) or windows (W, N, ...) with their frame indices (N,) or
    (W, N); a clip count (None: unknown) and per-frame counts indexed by frame number (None: unknown).
    Inputs are features (..., D) or frames (..., S, S, 3)."""
    out_ids, out_feats, out_clip, out_frames, out_idx, out_videos = [], [], [], [], [], []
    for vid, f, idx, c, fr in zip(ids, feats, indices, clip, frames):
        windows = f[None] if idx.ndim == 1 else f  # (W, N, ...)
        idx = idx[None] if idx.ndim == 1 else idx  # (W, N)
        for w in range(len(windows)):
            per_frame = np.full(idx.shape[1], np.nan, np.float32)
            if fr is not None:
                inside = idx[w] < len(fr)
                per_frame[inside] = fr[idx[w][inside]]
            out_ids.append(vid if len(windows) == 1 else f"{vid}@{w}")
            out_feats.append(windows[w])
            out_clip.append(np.nan if c is None or len(windows) > 1 else c)
            out_frames.append(per_frame)
            out_idx.append(idx[w])
            out_videos.append(vid)
    if not out_ids:  # an empty split
        return CountSamples([], torch.zeros(0), torch.zeros(0), torch.zeros(0, 0), torch.zeros(0, 0, dtype=torch.long),
                            [])
    return CountSamples(out_ids, torch.from_numpy(np.stack(out_feats)), torch.tensor(out_clip, dtype=torch.float32),
                        torch.from_numpy(np.stack(out_frames)), torch.from_numpy(np.stack(out_idx)), out_videos)


def split_in_time(samples: CountSamples, fraction: float, val_fraction: float) -> dict[str, CountSamples]:
    """Windows of each video that end before ``fraction`` of it are labelled, windows that start after it
    test; windows across the boundary are left out. Of each video's labelled windows the last
    ``val_fraction`` (at least one; none for 0) validate and those that end before the first of them
    train, so no frame is in both."""
    if not 0 < fraction < 1:
        raise ValueError(f"data.time_split must be between 0 and 1, not {fraction}")
    video = samples.videos
    first, last = samples.indices.min(1).values, samples.indices.max(1).values  # (S,)
    length = {v: 0 for v in video}
    for v, end in zip(video, last.tolist()):
        length[v] = max(length[v], end + 1)
    cut = torch.tensor([fraction * length[v] for v in video])
    labelled = last < cut
    train, val = torch.zeros_like(labelled), torch.zeros_like(labelled)
    for v in length:
        rows = sorted((i for i in range(len(video)) if video[i] == v and labelled[i]), key=lambda i: first[i])
        n_val = max(1, round(val_fraction * len(rows))) if len(rows) > 1 and val_fraction > 0 else 0
        kept, val_rows = rows[:len(rows) - n_val], rows[len(rows) - n_val:]
        val_start = first[val_rows[0]] if val_rows else length[v]
        val[val_rows] = True
        train[[i for i in kept if last[i] < val_start]] = True
    return {"train": samples.subset(train), "val": samples.subset(val), "test": samples.subset(first >= cut)}


class CountTask:
    """Loss on the clip and per-frame counts that are known; validation MAE/RMSE of the clip count
    (or of the mean per-frame count where clips have no count of their own)."""

    monitor, mode = "MAE", "min"

    def __init__(self, train: CountSamples, val: CountSamples, *, batch_size: int = 32,
                 device: torch.device = torch.device("cpu"), seed: int = 0):
        self.train, self.val, self.batch_size, self.device = train, val, batch_size, device
        self.feats = resident(train.feats, device)  # (S, N, D), or frames (S, N, H, W, 3)
        self.clip, self.frames = train.clip.to(device), train.frames.to(device)
        self.seed = seed

    def batches(self, epoch: int):
        order = epoch_order(len(self.train.ids), epoch, self.seed).to(self.device)  # this process's share
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            feats = self.feats[idx.to(self.feats.device)].to(self.device, non_blocking=True)
            yield feats, self.clip[idx], self.frames[idx]

    def step(self, model: RecurrentCounter, batch, epoch: int) -> torch.Tensor:
        feats, clip, frames = batch  # (B, N, D), (B,), (B, N)
        return model.loss(feats, clip, frames)

    def evaluate(self, model: RecurrentCounter) -> dict:
        if not self.val.ids:
            return {}
        truth, kind = self.val.truth()
        pred = predict_counts(model, self.val.feats, device=self.device)
        labelled = ~torch.isnan(self.val.frames).numpy()  # (S, N): the frames the truth averages
        values = {vid: float(p[0]) if kind == "clip" else float(p[1][m].mean()) if m.any() else np.nan
                  for vid, p, m in zip(self.val.ids, pred, labelled)}
        scored = [v for v, t in truth.items() if np.isfinite(t)]  # (a window without a labelled frame: none)
        if not scored:
            return {}
        errors = count_errors({v: truth[v] for v in scored}, {v: values[v] for v in scored})
        return {"MAE": errors["MAE"], "RMSE": errors["RMSE"]}


@torch.no_grad()
def predict_counts(model: RecurrentCounter, feats: torch.Tensor, *, batch_size: int = 256,
                   device: torch.device = torch.device("cpu")) -> list[tuple[float, np.ndarray]]:
    """(clip count, per-frame counts (N,)) for each sample of features (S, N, D)."""
    model.eval()
    out = []
    for start in range(0, len(feats), batch_size):
        clip, frames = model(feats[start:start + batch_size].to(device))
        out += [(c, f) for c, f in zip(clip.cpu().tolist(), frames.cpu().numpy())]
    return out
