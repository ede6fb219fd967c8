"""Counting: the recurrent counter, training a tiny model, the count pipeline and its files, HOG."""
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from conftest import run_job, run_pipeline, write_opencv

from vidrnn.models.counter import RecurrentCounter
from vidrnn.outputs import read_csv_rows
from vidrnn.synth import make_dataset
from vidrnn.tasks.counting import CountTask, build_samples
from vidrnn.train.loop import TrainConfig
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

ENCODER = {"name": "resnet18", "weights": None, "layer": "layer2", "pooling": "grid", "grid": 4}


@pytest.mark.parametrize("loss", ["mse", "huber", "poisson"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cells", [1, 4])
def test_counts_are_never_negative_and_unlabelled_frames_are_ignored(loss, bidirectional, cells):
    torch.manual_seed(0)
    model = RecurrentCounter(12, cell="gru", hidden=8, bidirectional=bidirectional, loss=loss, cells=cells)
    model.clip_head.bias.data.fill_(-50.0)
    model.frame_head.bias.data.fill_(-50.0)
    clip, frames = model(torch.randn(4, 6, 12))
    assert clip.shape == (4,) and frames.shape == (4, 6) and (clip >= 0).all() and (frames >= 0).all()
    frame_target = torch.full((4, 6), float("nan"))
    frame_target[:, 0] = 1.0
    loss_value = model.loss(torch.randn(4, 6, 12), torch.ones(4), frame_target)
    assert torch.isfinite(loss_value) and loss_value > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("count")
    data = make_dataset(root / "data", num_videos=48, seed=5, width=96, height=72, num_frames=16, fps=8.0,
                        max_people=3)
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=96, workers=0, progress=False)
    model = ModelConfig(None, {"cell": "gru", "hidden": 64, "dropout": 0.1, "loss": "huber"})
    result = train_model("count", DataConfig(data["videos_dir"], data["counts"], frame_annotations=data["frame_counts"],
                                             cache_dir=str(root / "cache")),
                         extract, model, TrainConfig(max_epochs=25, lr=3e-3, patience=0), out_dir=str(root / "run"),
                         batch_size=16)
    return root, data, result


def _frame_labels(path, keep=lambda frame: True) -> dict[str, dict[int, float]]:
    """video id -> {frame: count} of a video_id,frame,count file, for the frames ``keep`` accepts."""
    labels = {}
    for r in read_csv_rows(path):
        if keep(int(r["frame"])):
            labels.setdefault(r["video_id"], {})[int(r["frame"])] = float(r["count"])
    return labels


def _window_errors(windows_csv, labels: dict[str, dict[int, float]], fps: float = 8.0) -> list[float]:
    """Each window's count in a ``*_windows.csv`` minus the mean of the labelled frames inside it."""
    errors = []
    for r in read_csv_rows(windows_csv):
        start, end = round(float(r["start_s"]) * fps), round(float(r["end_s"]) * fps)
        truth = [c for f, c in labels[r["video_id"]].items() if start <= f < end]
        errors.append(float(r["count"]) - np.mean(truth))
    return errors


def test_validation_averages_the_prediction_over_the_labelled_frames_alone():
    """Without clip counts the truth is a video's mean over its labelled frames; the prediction it is scored
    against must be the mean over those frames too, not over every sampled frame."""
    feats = np.array([[1.0], [1.0], [5.0], [5.0]], np.float32)  # (N, D): a frame's count is its feature
    labels = np.full(31, np.nan, np.float32)
    labels[[0, 10]] = 1  # frames 20 and 30 (5 people each) have no label
    samples = build_samples(["v"], [feats], [np.array([0, 10, 20, 30])], [None], [labels])

    class Exact(torch.nn.Module):
        def forward(self, x):  # (B, N, D) -> clip counts (B,), frame counts (B, N)
            return x[..., 0].mean(1), x[..., 0]

    assert CountTask(samples, samples).evaluate(Exact()) == {"MAE": 0.0, "RMSE": 0.0}


def test_tiny_counter_learns_better_than_the_mean(trained):
    root, _, result = trained
    assert result["best"]["MAE"] < 0.7 * result["mean_predictor"]["val"]["MAE"]
    saved = json.loads((root / "run/metrics.json").read_text())
    assert saved["mean_predictor"]["val"]["MAE"] == result["mean_predictor"]["val"]["MAE"]
    assert (root / "run/curves.png").exists() and (root / "run/checkpoints/best.pt").exists()
    assert set(result["history"][0]) == {"epoch", "train_loss", "MAE", "RMSE", "lr", "seconds"}  # what curves.png plots


def test_count_pipeline_files_parse_back(trained, tmp_path):
    from vidrnn.predict import records_dir
    root, data, _ = trained
    out = tmp_path / "counts.csv"
    res = run_job("count", f"input_dir={data['videos_dir']}", f"checkpoint={root}/run/checkpoints/best.pt",
                  f"output={out}", f"labels={data['frame_counts']}", "window_s=1.0", "stride_s=0.5",
                  "quiet=true", "video.workers=0", "sheets=false", "report=false")  # pictures: test_pictures
    assert res.returncode == 0, res.stderr
    rows = read_csv_rows(out)
    assert len(rows) == 48 and all(float(r["count"]) >= 0 for r in rows)
    windows = read_csv_rows(tmp_path / "counts_windows.csv")
    first = [w for w in windows if w["video_id"] == rows[0]["video_id"]]
    assert len(first) == 3 and float(first[0]["start_s"]) == 0.0 and float(first[-1]["end_s"]) == pytest.approx(2.0)
    metrics = json.loads((tmp_path / "counts_metrics.json").read_text())
    per_video = metrics["frames"]["per_video"]
    # 16 frames at 8 fps, windows [0, 8), [4, 12), [8, 16) of 6 frames (the checkpoint's): frames 0 2 3 4 6 7,
    # 4 6 7 8 10 11 and 8 10 11 12 14 15, each scored once: 12 a video
    assert len(per_video) == 48 and metrics["frames"]["scored"] == 48 * 12
    assert metrics["frames"]["MAE"] == pytest.approx(np.mean([v["MAE"] for v in per_video.values()]), abs=1e-6)
    errors = _window_errors(tmp_path / "counts_windows.csv", _frame_labels(data["frame_counts"]))
    assert len(errors) == metrics["windows"]["scored"] == 48 * 3
    assert metrics["windows"]["MAE"] == pytest.approx(np.abs(errors).mean(), abs=1e-4)  # (4 decimals in the CSV)
    # a video's count: the mean over its sampled frames, each once (frames 4-11 are in two windows)
    records = [json.loads(line) for line in (records_dir(str(out)) / "manifest.jsonl").read_text().splitlines()]
    by_video = {}
    for r in records:
        frames, indices = np.asarray(r["result"]["frames"]), np.asarray(r["result"]["meta"]["frame_indices"])
        unique, inverse = np.unique(indices.reshape(-1), return_inverse=True)
        by_video[Path(r["video"]).stem] = np.mean(np.bincount(inverse, frames.reshape(-1)) / np.bincount(inverse))
    assert len(unique) == 12 and {r["video_id"]: float(r["count"]) for r in rows} == pytest.approx(by_video, abs=2e-4)
    plot = cv2.imread(str(tmp_path / "counts_plots" / f"{rows[0]['video_id']}.png"))
    assert plot is not None and plot.shape[0] > 100 and plot.shape[1] > 300
    res = run_job("evaluate", "task=count", f"predictions={out}", f"annotations={data['counts']}",
                  f"output={tmp_path}/m.json")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "m.json").read_text())["videos"] == 48


def test_hog_baseline_runs_through_the_pipeline(trained, tmp_path, caplog):
    _, data, _ = trained
    res = run_job("count", f"input_dir={data['videos_dir']}/part0", "counter=hog", f"output={tmp_path}/h.csv",
                  f"labels={data['counts']}", "video.num_frames=3", "plots=false", "quiet=true", "video.workers=0")
    assert res.returncode == 0, res.stderr
    rows = read_csv_rows(tmp_path / "h.csv")
    assert len(rows) == 24 and all(float(r["count"]).is_integer() and float(r["count"]) >= 0 for r in rows)
    assert "clip MAE" in res.stdout and "warning" not in res.stdout
    other = tmp_path / "other.csv"
    other.write_text("video_id,count\nsomeone_else,3\n")
    res = run_job("count", f"input_dir={data['videos_dir']}/part0", "counter=hog", f"output={tmp_path}/h.csv",
                  f"labels={other}", "video.num_frames=3", "plots=false", "quiet=true", "video.workers=0")  # a rerun
    assert res.returncode == 0, res.stderr
    said = res.stdout + caplog.text
    assert f"{other} labels none of these videos" in said and "MAE" not in said.replace("no MAE", "")
    res = run_job("count", f"input_dir={data['videos_dir']}/part0", "counter=hog", f"output={tmp_path}/w.csv",
                  f"labels={data['counts']}", "video.num_frames=2", "window_s=1", "plots=false", "quiet=true",
                  "video.workers=0")  # clip counts against the windows' mean: said, not silently
    assert "clip MAE" in res.stdout and "clip counts (the people in a whole clip) scored against each video's " \
                                       "mean count over its windows" in caplog.text


def test_count_checkpoint_refused_by_caption_pipeline(trained, tmp_path):
    root, data, _ = trained
    res = run_pipeline("caption", f"input_dir={data['videos_dir']}", f"checkpoint={root}/run/checkpoints/best.pt",
                       f"output={tmp_path}/c.json")
    assert res.returncode == 1 and "a count checkpoint, but this pipeline needs a caption" in res.stderr


def test_end_to_end_encoder_is_saved_and_used_for_inference(tmp_path):
    """encoder.trainable: the fine-tuned encoder lands in the checkpoint and the count pipeline uses it."""
    from vidrnn.checkpoint import build_model, load_checkpoint
    from vidrnn.predict import count_folder
    from vidrnn.video import read_sampled

    data = make_dataset(tmp_path / "data", num_videos=10, seed=9, width=64, height=48, num_frames=8, fps=8.0)
    start = tmp_path / "start.pth"  # the weights it starts from: in the checkpoint afterwards, not needed again
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), start)
    enc = {"name": "resnet18", "weights": str(start), "layer": "layer1", "pooling": "avg", "grid": 2}
    extract = ExtractConfig(encoder=enc, sampling=Sampling(num_frames=3), size=32, workers=0, progress=False,
                            trainable=True)
    train_model("count", DataConfig(data["videos_dir"], data["counts"], cache_dir=str(tmp_path / "cache")), extract,
                ModelConfig(None, {"hidden": 16}), TrainConfig(max_epochs=2, lr=1e-2, patience=0),
                out_dir=str(tmp_path / "run"))
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/best.pt", task="count")
    assert ckpt["encoder_trained"] and any(k.startswith("features.encoder.") for k in ckpt["model"])
    fresh = RecurrentCounter(64, hidden=16, encoder=None)
    assert not any(k.startswith("features.encoder.") for k in fresh.state_dict())
    start.unlink()
    model = build_model(ckpt)
    count_folder(data["videos_dir"], str(tmp_path / "c.csv"), checkpoint=str(tmp_path / "run/checkpoints/best.pt"),
                 workers=0, plots=False, progress=False)
    got = {r["video_id"]: float(r["count"]) for r in read_csv_rows(tmp_path / "c.csv")}
    frames, _ = read_sampled(f"{data['videos_dir']}/part0/vid0000.mp4", Sampling(num_frames=3), size=32)
    with torch.no_grad():
        expected = model(torch.from_numpy(frames)[None])[0].item()
    assert got["vid0000"] == pytest.approx(expected, abs=1e-3)


def test_time_split_trains_on_the_start_and_tests_on_the_rest():
    from vidrnn.tasks.counting import build_samples, split_in_time

    idx = np.stack([np.arange(s, s + 10, 2) for s in range(0, 91, 5)])  # 19 windows over 100 frames, (W, 5)
    samples = build_samples(["cam"], [np.zeros((len(idx), 5, 3), np.float32)], [idx], [None],
                            [np.arange(100, dtype=np.float32) / 10])
    parts = split_in_time(samples, 0.5, 0.2)
    last = {s: p.indices.max().item() for s, p in parts.items()}
    first = {s: p.indices.min().item() for s, p in parts.items()}
    assert last["train"] < first["val"] and last["val"] < 50 <= first["test"]
    assert len(parts["val"].ids) == 2  # 20% of the 9 windows that end before frame 50
    assert first["val"] == 35 and last["train"] == 33  # training windows end before the first val frame
    assert len(parts["train"].ids) + len(parts["val"].ids) + len(parts["test"].ids) < len(samples.ids)  # straddlers
    assert parts["test"].frames[0].tolist() == pytest.approx((parts["test"].indices[0].float() / 10).tolist())
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_in_time(samples, 1.5, 0.2)
    parts = split_in_time(samples, 0.5, 0.0)  # no validation: every labelled window trains
    assert not parts["val"].ids and len(parts["train"].ids) == 9
    # two recordings whose ids hold "@" (as a window's sample id does): each is split on its own timeline
    two = build_samples(["cam@morning", "cam@evening"], [np.zeros((len(idx), 5, 3), np.float32)] * 2, [idx] * 2,
                        [None] * 2, [np.arange(100, dtype=np.float32) / 10] * 2)
    parts = split_in_time(two, 0.5, 0.2)
    assert [len([v for v in parts[s].videos if v == "cam@morning"]) for s in ("train", "val", "test")] == [6, 2, 9]
    assert parts["test"].videos.count("cam@evening") == 9


def _cell_features(people: torch.Tensor, channels: int = 6) -> torch.Tensor:
    """Grid-pooled features (S, T, C * K) of frames where ``people`` (S, T, K) marks the occupied cells:
    an occupied cell holds a "person" pattern, an empty one a "background" pattern, both with noise."""
    person, background = torch.linspace(-1, 1, channels), torch.linspace(1, -1, channels) * 0.5
    cells = torch.where(people[..., None].bool(), person, background)  # (S, T, K, C)
    cells = cells + 0.1 * torch.randn(cells.shape)
    return cells.transpose(-1, -2).flatten(2)  # channel-major, as grid pooling flattens (C, g, g)


def test_per_cell_counter_counts_crowds_larger_than_any_it_was_trained_on(one_thread):
    """Counted per grid cell and added up, a person counts the same in every cell: trained on frames with
    0-2 people, the per-cell counter counts 3-5 people; one count from the whole frame cannot."""
    torch.manual_seed(0)
    k = 9

    def frames(n: int, low: int, high: int) -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.randint(low, high + 1, (n, 4))  # (S, T)
        people = (torch.rand(n, 4, k).argsort(-1) < counts[..., None]).float()  # (S, T, K): `count` cells taken
        return _cell_features(people), counts.float()

    (train_x, train_y), (test_x, test_y) = frames(256, 0, 2), frames(64, 3, 5)
    errors = {}
    for cells in (1, k):
        model = RecurrentCounter(train_x.shape[-1], cell="gru", hidden=16, dropout=0.0, cells=cells)
        model.features.set_stats(train_x)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(500):
            opt.zero_grad()
            model.loss(train_x, None, train_y).backward()
            opt.step()
        with torch.no_grad():
            errors[cells] = (model(test_x)[1] - test_y).abs().mean().item()
    assert errors[k] < 0.3 and errors[1] > 1.0, errors


def test_cells_can_be_listed_in_any_order():
    torch.manual_seed(0)
    model = RecurrentCounter(4 * 5, hidden=8, cells=5).eval()
    x = torch.randn(3, 6, 4, 5)  # (S, T, C, K)
    with torch.no_grad():
        counts = model(x.flatten(2))
        shuffled = model(x[..., torch.randperm(5)].flatten(2))
    for a, b in zip(counts, shuffled):
        assert torch.allclose(a, b, atol=1e-5)


def test_fixed_camera_setting_trains_on_every_labelled_window_and_counts_per_cell(trained, tmp_path):
    """data.val_fraction=0 with a time split: no validation, the last epoch is kept; a per-cell counter's
    checkpoint counts windows of new videos."""
    from vidrnn.predict import count_folder

    root, data, _ = trained
    sampling = Sampling(mode="window", num_frames=4, window_s=1.0, stride_s=0.5)
    extract = ExtractConfig(encoder=ENCODER, sampling=sampling, size=96, workers=0, progress=False)
    result = train_model("count", DataConfig(data["videos_dir"], data["frame_counts"], time_split=0.5, val_fraction=0.0,
                                             cache_dir=str(root / "cache")),
                         extract, ModelConfig(None, {"hidden": 16, "per_cell": True}),
                         TrainConfig(max_epochs=3, lr=3e-3, patience=2), out_dir=str(tmp_path / "run"))
    assert result["best_epoch"] == result["epochs_run"] == 3 and set(result["best"]) >= {"epoch", "train_loss"}
    assert "MAE" not in result["best"] and set(result["test"]) == {"MAE", "RMSE"}
    model = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=True)["model_config"]
    assert model["cells"] == ENCODER["grid"] ** 2
    count_folder(data["videos_dir"], str(tmp_path / "c.csv"), checkpoint=str(tmp_path / "run/checkpoints/best.pt"),
                 window_s=1.0, stride_s=0.5, workers=0, plots=False, progress=False)
    rows = read_csv_rows(tmp_path / "c_windows.csv")
    assert len({r["video_id"] for r in rows}) == 48 and all(float(r["count"]) >= 0 for r in rows)
    # the test split: each video's windows that start after its first half, here [8, 16) alone (frames 9, 11,
    # 13, 15 sampled), its true count the mean over those frames: the same counter counts them here
    labels = _frame_labels(data["frame_counts"])
    last = [r for r in rows if float(r["start_s"]) == 1.0]
    assert len(last) == 48
    errors = [float(r["count"]) - np.mean([labels[r["video_id"]][f] for f in (9, 11, 13, 15)]) for r in last]
    assert result["test"]["MAE"] == pytest.approx(np.abs(errors).mean(), abs=1e-4)  # (4 decimals in the CSV)


def test_sparse_frame_labels_train_a_fixed_camera_counter(trained, tmp_path):
    """Hand labels on a few frames (2 and 10 of 16): the frames between two labels train with interpolated
    counts (no sampled frame 1, 3, 5, 7 of the training windows is labelled itself); labels that reach no
    training window are one clear error."""
    root, data, _ = trained
    every = read_csv_rows(data["frame_counts"])

    def labels(name, frames):
        path = tmp_path / name
        path.write_text("video_id,frame,count\n" + "".join(f"{r['video_id']},{r['frame']},{r['count']}\n"
                                                            for r in every if int(r["frame"]) in frames))
        return DataConfig(data["videos_dir"], str(path), time_split=0.5, val_fraction=0.0,
                          cache_dir=str(root / "cache"))

    sampling = Sampling(mode="window", num_frames=4, window_s=1.0, stride_s=0.5)  # training window: frames 0-7
    extract = ExtractConfig(encoder=ENCODER, sampling=sampling, size=96, workers=0, progress=False)
    model, trainer = ModelConfig(None, {"hidden": 16}), TrainConfig(max_epochs=2, patience=0)
    result = train_model("count", labels("sparse.csv", {2, 10}), extract, model, trainer, out_dir=str(tmp_path / "a"))
    assert result["epochs_run"] == 2 and 0 < result["final"]["train_loss"] < float("inf")
    with pytest.raises(ValueError, match="none of the 48 training clips has a count"):
        train_model("count", labels("last.csv", {15}), extract, model, trainer, out_dir=str(tmp_path / "b"))
    clip_counts = replace(labels("sparse.csv", {2, 10}), annotations=data["counts"])
    with pytest.raises(ValueError, match=re.escape("needs video.sampling=window and per-frame counts (video_id,frame,"
                                                   f"count or a MOT gt.txt), not clip counts ({data['counts']})")):
        train_model("count", clip_counts, extract, model, trainer, out_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="needs video.sampling=window .*, not video.sampling=uniform$"):
        train_model("count", labels("sparse.csv", {2, 10}), replace(extract, sampling=Sampling(num_frames=4)), model,
                    trainer, out_dir=str(tmp_path / "d"))


def test_one_recording_given_as_a_file_trains_on_its_mot_labels(trained, tmp_path):
    """data.video_dir may name the one video file (the fixed-camera case): its MOT gt.txt labels it, the
    start trains and the rest tests, as for a folder holding only that video."""
    root, data, _ = trained
    video = sorted(Path(data["videos_dir"], "part0").glob("*.mp4"))[0]
    gt = _mot_gt(data, video, tmp_path / "gt.txt")
    sampling = Sampling(mode="window", num_frames=4, window_s=1.0, stride_s=0.5)
    extract = ExtractConfig(encoder=ENCODER, sampling=sampling, size=96, workers=0, progress=False)
    model, trainer = ModelConfig(None, {"hidden": 16}), TrainConfig(max_epochs=2, patience=0)
    result = train_model("count", DataConfig(str(video), str(gt), time_split=0.5, val_fraction=0.0,
                                             cache_dir=str(root / "cache")),
                         extract, model, trainer, out_dir=str(tmp_path / "run"))
    assert result["epochs_run"] == 2 and set(result["test"]) == {"MAE", "RMSE"}
    assert json.loads((tmp_path / "run/metrics.json").read_text())["test"] == result["test"]
    # the test split: the window [8, 16) (frames 9, 11, 13, 15 sampled), counted here by the same counter
    from vidrnn.predict import count_folder

    count_folder(str(video), str(tmp_path / "c.csv"), checkpoint=str(tmp_path / "run/checkpoints/best.pt"),
                 window_s=1.0, stride_s=0.5, workers=0, plots=False, progress=False)
    [last] = [r for r in read_csv_rows(tmp_path / "c_windows.csv") if float(r["start_s"]) == 1.0]
    truth = np.mean([_frame_labels(data["frame_counts"])[video.stem][f] for f in (9, 11, 13, 15)])
    assert result["test"]["MAE"] == pytest.approx(abs(float(last["count"]) - truth), abs=1e-4)
    assert result["test"]["RMSE"] == pytest.approx(result["test"]["MAE"], rel=1e-6)  # one window


def test_a_batch_without_labels_trains_nothing():
    counter = RecurrentCounter(12, cell="gru", hidden=8)
    loss = counter.loss(torch.randn(2, 5, 12), torch.full((2,), float("nan")), torch.full((2, 5), float("nan")))
    loss.backward()
    assert loss.item() == 0 and all(p.grad is None or not p.grad.any() for p in counter.parameters())


def test_sparse_frame_labels_score_each_window(trained, tmp_path, caplog):
    """Hand labels on every n-th frame: each window's count is scored against the mean of the labelled
    frames inside it; where no sampled frame is labelled and there are no windows, a warning says so."""
    _, data, _ = trained
    every = read_csv_rows(data["frame_counts"])
    sparse = tmp_path / "every5th.csv"
    sparse.write_text("video_id,frame,count\n" + "".join(f"{r['video_id']},{r['frame']},{r['count']}\n"
                                                         for r in every if int(r["frame"]) % 5 == 2))
    args = [f"input_dir={data['videos_dir']}/part0", "counter=hog", f"labels={sparse}", "video.num_frames=2",
            "plots=false", "sheets=false", "report=false", "quiet=true", "video.workers=0"]
    res = run_job("count", f"output={tmp_path}/w.csv", "window_s=1.0", "stride_s=0.5", *args)
    assert res.returncode == 0, res.stderr
    # 16 frames at 8 fps: windows of frames [0, 8), [4, 12), [8, 16), each with a labelled frame
    errors = _window_errors(tmp_path / "w_windows.csv", _frame_labels(sparse))
    metrics = json.loads((tmp_path / "w_metrics.json").read_text())
    assert len(errors) == 24 * 3 and metrics["windows"]["MAE"] == pytest.approx(np.abs(errors).mean(), abs=1e-5)
    assert metrics["windows"]["scored"] == 72 and f"MAE {metrics['windows']['MAE']:.4f}" in res.stdout
    assert "(over 72 windows)" in res.stdout  # how many values an MAE is over: one frame can read as perfect
    other = tmp_path / "every5th_from_0.csv"
    other.write_text("video_id,frame,count\n" + "".join(f"{r['video_id']},{r['frame']},{r['count']}\n"
                                                        for r in every if int(r["frame"]) % 5 == 0))
    res = run_job("count", f"output={tmp_path}/u.csv", *args, f"labels={other}")  # frames 4, 12 sampled
    said = res.stdout + caplog.text
    assert res.returncode == 0 and "MAE" not in said.replace("no MAE", "")
    assert f"{other} labels 24 of these videos but none of the frames sampled from them: no MAE" in said


def _mot_gt(data: dict, video: Path, path: Path) -> Path:
    """``video``'s per-frame counts as a MOT17 gt.txt: frame (1-based), id, box, conf 1, class 1
    (pedestrian), visibility 1."""
    rows = [r for r in read_csv_rows(data["frame_counts"]) if r["video_id"] == video.stem]
    path.write_text("".join(f"{int(r['frame']) + 1},{k + 1},0,0,9,9,1,1,1\n" for r in rows
                            for k in range(int(r["count"]))))
    return path


def test_a_mot_gt_file_beside_one_recording_labels_it(trained, tmp_path, caplog):
    """The README's ``count input_dir=cam1 ... labels=gt.txt``: a MOT file named gt.txt labels the folder's
    only video (its own name names no video), or the one video file given as input_dir."""
    _, data, _ = trained
    video = sorted(Path(data["videos_dir"], "part0").glob("*.mp4"))[0]
    (tmp_path / "cam1").mkdir()
    (tmp_path / "cam1" / video.name).symlink_to(video)
    gt = _mot_gt(data, video, tmp_path / "gt.txt")
    res = run_job("count", f"input_dir={tmp_path / 'cam1'}", "counter=hog", f"output={tmp_path}/c.csv",
                  f"labels={gt}", "video.num_frames=4", "plots=false", "sheets=false", "report=false",
                  "quiet=true", "video.workers=0")
    assert res.returncode == 0 and "frames MAE" in res.stdout
    assert "none of these videos" not in res.stdout + caplog.text
    assert list(json.loads((tmp_path / "c_metrics.json").read_text())["frames"]["per_video"]) == [video.stem]
    res = run_job("count", f"input_dir={video}", "counter=hog", f"output={tmp_path}/one/c.csv", f"labels={gt}",
                  "video.num_frames=4", "plots=false", "report=false", "quiet=true",
                  "video.workers=0")  # the video file itself
    assert res.returncode == 0 and "count: 1 video done" in res.stdout
    assert (tmp_path / "one/c.csv").read_text() == (tmp_path / "c.csv").read_text()
    assert (tmp_path / "one/c_metrics.json").read_text() == (tmp_path / "c_metrics.json").read_text()
    assert (tmp_path / f"one/sheets/{video.stem}.png").stat().st_size > 0
    # nobody in view after frame 8 of 16 (no rows there): those frames count 0 and are scored, not unlabelled
    gt.write_text("".join(f"{frame},{k},0,0,9,9,1,1,1\n" for frame in range(1, 9) for k in (1, 2)))
    res = run_job("count", f"input_dir={video}", "counter=hog", f"output={tmp_path}/tail/c.csv", f"labels={gt}",
                  "video.num_frames=4", "plots=false", "sheets=false", "report=false", "quiet=true", "video.workers=0")
    scored = json.loads((tmp_path / "tail/c_metrics.json").read_text())["frames"]
    assert res.returncode == 0 and scored["scored"] == 4, scored  # frames 2, 6, 10, 14 (0-based)


def _hog_count(videos, output, **kw):
    from vidrnn.predict import count_folder
    return count_folder(str(videos), str(output), counter="hog", num_frames=3, workers=0, progress=False, **kw)


def test_a_rerun_with_other_options_leaves_no_files_of_the_earlier_run(tmp_path):
    """Windows, metrics and timeline plots that a rerun's options do not ask for are removed, not left from the
    earlier run (nor shown in the report)."""
    from vidrnn.report import write_report
    data = make_dataset(tmp_path / "data", num_videos=2, width=64, height=48, num_frames=8, fps=4.0, subdirs=False)
    out = tmp_path / "out"
    companions = [out / "counts_windows.csv", out / "counts_metrics.json"]
    _, metrics = _hog_count(data["videos_dir"], out / "counts.csv", labels=data["frame_counts"], window_s=1.0)
    assert metrics and all(p.exists() for p in companions) and len(list(out.glob("counts_plots/*.png"))) == 2
    _, metrics = _hog_count(data["videos_dir"], out / "counts.csv", plots=False)
    assert metrics is None and not any(p.exists() for p in companions) and not list(out.glob("counts_plots/*"))
    assert "MAE" not in write_report(out).read_text()


def test_labels_name_videos_as_training_annotations_do(tmp_path, caplog):
    """count labels= matches ids to files as train does (stem, relative path, file name); labelled ids with no
    file are named in a warning."""
    data = make_dataset(tmp_path / "data", num_videos=4, width=64, height=48, num_frames=8, fps=4.0)
    files = sorted(p.relative_to(data["videos_dir"]).as_posix() for p in Path(data["videos_dir"]).rglob("vid*"))
    counts = {r["video_id"]: r["count"] for r in read_csv_rows(data["counts"])}
    named = [files[0].rsplit(".", 1)[0], Path(files[1]).name, Path(files[2]).stem, "vid9999"]  # path, name, stem
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,count\n" + "".join(f"{n},{counts.get(Path(n).stem.split('.')[0], 1)}\n"
                                                    for n in named))
    caplog.set_level("WARNING", logger="vidrnn")
    _, metrics = _hog_count(data["videos_dir"], tmp_path / "c.csv", labels=str(labels))
    assert sorted(metrics["clip"]["per_video"]) == sorted(Path(f).stem for f in files[:3])
    assert f"{labels} labels 1 video with no file under {data['videos_dir']}: 'vid9999'" in caplog.messages


def test_a_video_replaced_under_its_name_is_counted_again(tmp_path):
    """A video file with another size or modification time than when it was counted is counted again;
    records of older versions, without that fingerprint, are taken as they are."""
    from vidrnn.predict import records_dir
    data = make_dataset(tmp_path / "data", num_videos=3, width=64, height=48, num_frames=8, fps=4.0, subdirs=False)
    videos, out = Path(data["videos_dir"]), tmp_path / "counts.csv"
    _hog_count(videos, out)
    replaced = next(videos.glob("vid0001.*"))
    write_opencv(replaced, 20, "MJPG" if replaced.suffix == ".avi" else "mp4v")
    summary, _ = _hog_count(videos, out)
    assert summary.done == ["vid0001"] and summary.skipped == 2
    manifest = records_dir(str(out)) / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["result"]["meta"]["frame_count"] for r in records if r["video"] == replaced.name] == [8, 20]
    old = [{k: v for k, v in r.items() if k != "source"} for r in records]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert _hog_count(videos, out)[0].skipped == 3


def test_a_frame_encoder_weights_file_replaced_under_its_name_is_counted_again(trained, tmp_path, monkeypatch):
    """A checkpoint's frame encoder built from a local weights file gives other features once that file is
    replaced: the file's contents are part of what a rerun compares."""
    from vidrnn.checkpoint import load_checkpoint
    from vidrnn.predict import count_folder
    root, data, _ = trained
    monkeypatch.setenv("HOME", str(tmp_path))
    ckpt = load_checkpoint(root / "run/checkpoints/best.pt", task="count")
    ckpt["encoder"]["weights"] = "~/w.pt"
    torch.save(ckpt, tmp_path / "best.pt")
    videos = tmp_path / "videos"
    videos.mkdir()
    for path in sorted(Path(data["videos_dir"]).rglob("vid000[01].*")):
        (videos / path.name).symlink_to(path)

    def count_with(seed: int):
        torch.manual_seed(seed)
        torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "w.pt")
        return count_folder(str(videos), str(tmp_path / "counts.csv"), checkpoint=str(tmp_path / "best.pt"),
                            plots=False, workers=0, progress=False)[0]

    assert len(count_with(0).done) == 2
    assert count_with(0).skipped == 2  # written again with the same contents: kept
    assert len(count_with(1).done) == 2  # other weights under the same name: counted again


def test_a_count_output_inside_its_input_folder_is_not_read_back(tmp_path):
    """The folders a run writes (records, plots, contact sheets, annotated videos) are no input, even inside
    the input folder: a rerun finds the same videos, all done."""
    from vidrnn.pictures import Pictures
    data = make_dataset(tmp_path / "data", num_videos=2, width=64, height=48, num_frames=8, fps=4.0, subdirs=False)
    videos = Path(data["videos_dir"])
    for _ in range(2):
        summary, _ = _hog_count(videos, videos / "counts.csv", pictures=Pictures(videos, render=True))
    assert (videos / "rendered/vid0000.mp4").is_file()
    assert summary.done == [] and summary.skipped == 2
    assert [r["video_id"] for r in read_csv_rows(videos / "counts.csv")] == ["vid0000", "vid0001"]


@pytest.mark.parametrize("name", ["counts.json", "counts", "counts.txt"])
def test_a_count_output_that_is_no_csv_stops_before_any_video(tmp_path, name):
    """The counts are a CSV table: another name stops the run at once, not after every video was counted
    (the folder is never read: it does not even exist)."""
    from vidrnn.predict import count_folder
    suffix = Path(name).suffix or "no extension"
    with pytest.raises(ValueError, match=rf"count output must end in \.csv \(not {suffix}\)$"):
        count_folder(str(tmp_path / "no such folder"), str(tmp_path / name), counter="hog")
    assert list(tmp_path.iterdir()) == []


def test_a_count_output_that_is_a_folder_stops_before_any_video(tmp_path):
    """Before, every video was counted and then writing counts.csv failed with a bare "[Errno 21] Is a
    directory"."""
    from vidrnn.predict import count_folder
    (tmp_path / "counts.csv").mkdir()
    with pytest.raises(ValueError, match=r"counts\.csv: a folder; the count output is a file \(such as .*counts\.csv/"
                                         r"counts\.csv\)$"):
        count_folder(str(tmp_path / "no such folder"), str(tmp_path / "counts.csv"), counter="hog")


def test_frames_for_end_to_end_training_that_cannot_fit_in_memory_are_an_error(tmp_path):
    data = make_dataset(tmp_path / "data", num_videos=4, width=64, height=48, num_frames=8, fps=8.0)
    res = run_pipeline("train", "task=count", f"data.video_dir={data['videos_dir']}",
                       f"data.annotations={data['counts']}", "encoder.trainable=true", "video.num_frames=10000000",
                       "video.size=112", f"hydra.run.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(
        "error: training the encoder end to end keeps the sampled frames in memory: 4 videos x 10000000 frames x "
        "112x112 x 3 bytes = 1401.9 GiB, twice that at the start: more than the ")


def test_counting_without_a_checkpoint_points_to_the_detector(tmp_path):
    from vidrnn.predict import count_folder

    with pytest.raises(ValueError, match=r"needs checkpoint=.*, or use counter=hog \(OpenCV's people detector"):
        count_folder(str(tmp_path), str(tmp_path / "c.csv"))


def test_a_frame_that_overlapping_windows_share_is_scored_and_drawn_once():
    """With window_s > stride_s a sampled frame lies in two windows: per frame it counts once, its two
    predictions averaged (the frames MAE used to score it twice)."""
    from types import SimpleNamespace

    from vidrnn.pictures import per_frame

    meta = SimpleNamespace(frame_indices=[[0, 2, 4], [2, 4, 6]], timestamps=[[0.0, 0.2, 0.4], [0.2, 0.4, 0.6]])
    (idx, times), counts = per_frame(meta, np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    assert idx.tolist() == [0, 2, 4, 6] and times.tolist() == [0.0, 0.2, 0.4, 0.6]
    assert counts.tolist() == [1.0, 3.0, 4.0, 6.0]


def test_video_keys_a_count_run_does_not_read_are_named(tmp_path):
    """The HOG counter reads video.num_frames full-size frames (a checkpoint brings its own sampling): other
    video.* keys on the command line get a warning rather than silence."""
    data = make_dataset(tmp_path / "data", num_videos=2, width=64, height=48, num_frames=8, fps=4.0, subdirs=False)
    res = run_pipeline("count", f"input_dir={data['videos_dir']}", "counter=hog", f"output={tmp_path}/c.csv",
                       "video.num_frames=3", "video.size=64", "video.sampling=fps", "quiet=true", "sheets=false",
                       "report=false", "plots=false", f"checkpoint={tmp_path}/run")
    assert res.returncode == 0, res.stderr
    assert ("count: warning: video.size, video.sampling not used: the HOG detector reads video.num_frames full-size "
            "frames per clip or window") in res.stdout.splitlines()
    assert (f"count: warning: checkpoint={tmp_path}/run not used: counter=hog needs no trained model"
            in res.stdout.splitlines())


def test_videos_whose_paths_differ_only_in_their_extension_get_an_id_each(tmp_path):
    """``clip.avi`` beside ``clip.mp4``: each is counted under its file name (before, both had the id
    ``clip`` and one row of counts.csv was lost, with exit status 0); a lone stem stays the id."""
    from vidrnn.predict import video_ids
    videos = tmp_path / "v"
    (videos / "sub").mkdir(parents=True)
    write_opencv(videos / "clip.avi", 8, "MJPG")
    write_opencv(videos / "clip.mp4", 8, "mp4v")
    write_opencv(videos / "sub/clip.mp4", 8, "mp4v")
    write_opencv(videos / "other.mp4", 8, "mp4v")
    assert video_ids(["clip.avi", "clip.mp4", "sub/clip.mp4", "other.mp4"]) == {
        "clip.avi": "clip.avi", "clip.mp4": "clip.mp4", "sub/clip.mp4": "sub/clip", "other.mp4": "other"}
    _hog_count(videos, tmp_path / "counts.csv")
    assert sorted(r["video_id"] for r in read_csv_rows(tmp_path / "counts.csv")) == [
        "clip.avi", "clip.mp4", "other", "sub/clip"]


def test_timeline_truth_is_drawn_on_the_frames_own_clock():
    """Labelled frames sit on the clock the sampled frames were timed by (a variable frame rate: not frame /
    fps), interpolated between them, up to the video's end; and a rerun without labels redraws the plots that
    showed them (see test_a_rerun_drops_the_truth_from_the_timelines)."""
    from types import SimpleNamespace

    from vidrnn.predict import frame_times
    meta = SimpleNamespace(frame_count=10, duration_s=5.0, fps=10.0)
    got = frame_times(meta, np.array([2, 6]), np.array([0.2, 4.0]), np.array([0, 2, 4, 6, 9]))
    assert got == pytest.approx([0.0, 0.2, 2.1, 4.0, 4.75])


def test_a_rerun_drops_the_truth_from_the_timelines(tmp_path):
    data = make_dataset(tmp_path / "data", num_videos=2, width=64, height=48, num_frames=8, fps=4.0, subdirs=False)
    out = tmp_path / "counts.csv"
    _hog_count(data["videos_dir"], out, labels=data["frame_counts"])
    plot = tmp_path / "counts_plots/vid0000.png"
    before = plot.stat().st_mtime_ns
    time.sleep(0.01)
    summary, _ = _hog_count(data["videos_dir"], out)
    assert summary.skipped == 2 and plot.stat().st_mtime_ns > before  # redrawn without the labels' line
    again = plot.stat().st_mtime_ns
    _hog_count(data["videos_dir"], out)
    assert plot.stat().st_mtime_ns == again  # and then left alone


def test_frame_labels_past_a_video_s_end_are_named_in_a_warning(tmp_path, caplog):
    """Labels numbered at another frame rate, or of a longer video, reach past the video's last frame."""
    videos = tmp_path / "v"
    videos.mkdir()
    write_opencv(videos / "cam.avi", 8, "MJPG")
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,frame,count\ncam,0,1\ncam,4,2\ncam,40,3\n")
    with caplog.at_level("WARNING", logger="vidrnn.predict"):
        _hog_count(videos, tmp_path / "counts.csv", labels=str(labels))
    assert f"{labels} labels cam up to frame 40, past its 8 frames" in caplog.text


def test_a_run_stopped_before_its_test_scores_scores_them_when_rerun(trained, tmp_path, monkeypatch):
    """metrics.json said "complete" before the test split was scored: a run stopped in between was
    "already finished" for every rerun, without test scores for good."""
    import vidrnn.train.run as run_module
    from vidrnn.sweeps import finished_result

    root, data, _ = trained
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=96, workers=0, progress=False)

    def train():
        return train_model("count", DataConfig(data["videos_dir"], data["counts"], cache_dir=str(root / "cache")),
                           extract, ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=2),
                           out_dir=str(tmp_path / "run"))

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "load_checkpoint", stopped)  # the test split's scoring loads best.pt
    with pytest.raises(KeyboardInterrupt):
        train()
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and not metrics["complete"] and finished_result(tmp_path / "run", 2) is None
    monkeypatch.undo()
    result = train()  # the rerun: nothing left to train, the test split scored
    assert len(result["history"]) == 2 and set(result["test"]) == {"MAE", "RMSE"}
    assert finished_result(tmp_path / "run", 2)["test"] == result["test"]
    # scored as the count app counts the test split's videos with the saved best.pt
    from vidrnn.predict import count_folder

    labels = {r["video_id"]: float(r["count"]) for r in read_csv_rows(data["counts"]) if r["split"] == "test"}
    (tmp_path / "test_videos").mkdir()
    for video in Path(data["videos_dir"]).rglob("vid*.*"):  # .mp4 and .avi
        if video.stem in labels:
            (tmp_path / "test_videos" / video.name).symlink_to(video)
    count_folder(str(tmp_path / "test_videos"), str(tmp_path / "c.csv"),
                 checkpoint=str(tmp_path / "run/checkpoints/best.pt"), workers=0, plots=False, progress=False)
    counted = {r["video_id"]: float(r["count"]) for r in read_csv_rows(tmp_path / "c.csv")}
    assert len(labels) == 8 and counted.keys() == labels.keys()
    assert result["test"]["MAE"] == pytest.approx(np.mean([abs(counted[v] - labels[v]) for v in labels]), abs=1e-4)


def test_a_test_split_without_labels_is_named_not_a_crash(trained, tmp_path, caplog):
    """Labels on the first half of each recording only (the README's "label the start" workflow, with the
    test half unlabelled): training ended in "error: no videos to score" after its last epoch."""
    root, data, _ = trained
    first_half = tmp_path / "first_half.csv"
    first_half.write_text("video_id,frame,count\n" + "".join(
        f"{r['video_id']},{r['frame']},{r['count']}\n" for r in read_csv_rows(data["frame_counts"])
        if int(r["frame"]) < 6))
    sampling = Sampling(mode="window", num_frames=4, window_s=1.0, stride_s=0.5)
    extract = ExtractConfig(encoder=ENCODER, sampling=sampling, size=96, workers=0, progress=False)
    caplog.set_level("WARNING", logger="vidrnn.train")
    result = train_model("count", DataConfig(data["videos_dir"], str(first_half), time_split=0.5, val_fraction=0.0,
                                             cache_dir=str(root / "cache")),
                         extract, ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=1), out_dir=str(tmp_path))
    assert "test" not in result and "the test split has no labelled window: not scored" in caplog.text
    assert json.loads((tmp_path / "metrics.json").read_text())["complete"]
