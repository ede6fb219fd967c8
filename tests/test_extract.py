"""The extract job end to end: per-video files, manifest, failures, reruns, shards, the CLI."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
import torchvision
from conftest import make_index_lie, pipeline_env, run_pipeline, write_opencv

from vidrnn import device as device_module
from vidrnn.features import encode as encode_module
from vidrnn.features import extract_folder, load_features, storage_dtype
from vidrnn.features.cache import extract_settings
from vidrnn.models import FrameEncoder
from vidrnn.video import Chunk, Sampling, VideoError, open_video, read_frames, read_sampled, stream_video

SPEC = {"name": "resnet18", "weights": None, "layer": None, "pooling": "avg", "grid": 2}
GOOD = ["a/clip.mp4", "b/clip.mp4", "b/deep/lying.avi", "c.avi"]
BAD = ["a/folder.mp4", "corrupt.mp4"]


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return FrameEncoder(**{k: v for k, v in SPEC.items()})


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "videos"
    for sub in ("a", "b/deep"):
        (root / sub).mkdir(parents=True)
    write_opencv(root / "a/clip.mp4", 12, "mp4v")
    write_opencv(root / "b/clip.mp4", 20, "mp4v", fps=5.0)
    make_index_lie(write_opencv(root / "b/deep/lying.avi", 10, "MJPG"), 40)
    write_opencv(root / "c.avi", 15, "MJPG")
    (root / "corrupt.mp4").write_bytes(os.urandom(4000))
    (root / "a/folder.mp4").mkdir()
    (root / "notes.txt").write_text("not a video, and not listed")
    return root


def run(folder, out, encoder, **kw):
    args = dict(encoder=encoder, encoder_spec=SPEC, sampling=Sampling(num_frames=4), size=64, workers=0,
                batch_size=8, progress=False)
    return extract_folder(str(folder), str(out), **{**args, **kw})


def manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_extract_folder_end_to_end(folder, tmp_path, encoder):
    out = tmp_path / "out"
    summary = run(folder, out, encoder, workers=2)
    assert sorted(summary.done) == GOOD and sorted(summary.failed) == BAD
    assert "cannot open" in summary.failed["corrupt.mp4"] and "a folder" in summary.failed["a/folder.mp4"]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["video"] for f in failures) == BAD
    entries = {e["video"]: e for e in manifest(out)}
    assert sorted(entries) == GOOD
    for video in GOOD:
        data = load_features(out / "features" / (video + ".npz"))
        assert data["features"].shape == (4, 512) == tuple(entries[video]["feature_shape"])
        assert str(data["features"].dtype) == entries[video]["dtype"]
        assert data["frame_indices"].tolist() == entries[video]["frame_indices"]
    a, b = (load_features(out / "features" / f"{s}/clip.mp4.npz")["features"] for s in "ab")
    assert not np.allclose(a, b)  # same name, different folders: two files
    lying = entries["b/deep/lying.avi"]
    assert (lying["frame_count"], lying["header_frames"], lying["frame_count_source"]) == (10, 40, "counted")
    assert lying["frame_indices"] == [1, 3, 6, 8] and lying["access"] == "sequential"
    assert all(e["damaged_frames"] == 0 for e in entries.values())  # frames skipped in a damaged stretch
    assert entries["b/clip.mp4"]["timestamps"] == [0.4, 1.4, 2.4, 3.4]
    assert entries["a/clip.mp4"]["settings"]["encoder"]["name"] == "resnet18"
    assert not list(out.rglob("*.tmp"))


def test_features_equal_the_encoder_on_the_sampled_frames(folder, tmp_path, encoder):
    out = tmp_path / "out"
    run(folder, out, encoder, dtype="float32")
    with open_video(folder / "c.avi") as reader:
        frames = torch.from_numpy(np.stack([f for _, f in read_frames(reader, [1, 5, 9, 13], size=64)]))
    with torch.inference_mode():
        expected = encoder(frames).numpy()
    got = load_features(out / "features/c.avi.npz")["features"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_one_video_file_is_extracted_as_in_its_folder(folder, tmp_path, encoder):
    """input_dir may name one video (any extension): its features are those of the folder run; a file
    that is no video fails with its reason, as in a folder."""
    run(folder, tmp_path / "all", encoder)
    summary = run(folder / "b/deep/lying.avi", tmp_path / "one", encoder)
    assert summary.done == ["lying.avi"] and not summary.failed
    one, all_ = (load_features(tmp_path / d / "features" / f)["features"]
                 for d, f in (("one", "lying.avi.npz"), ("all", "b/deep/lying.avi.npz")))
    np.testing.assert_array_equal(one, all_)
    summary = run(folder / "notes.txt", tmp_path / "notes", encoder)
    assert not summary.done and "cannot open" in summary.failed["notes.txt"]


def test_rerun_recomputes_nothing_and_retries_failures(folder, tmp_path, encoder):
    out = tmp_path / "out"
    run(folder, out, encoder)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "features").rglob("*.npz")}
    (folder / "corrupt.mp4").unlink()
    write_opencv(folder / "corrupt.mp4", 8, "mp4v")  # the user fixed it
    again = run(folder, out, encoder)
    assert again.done == ["corrupt.mp4"] and again.skipped == 4 and list(again.failed) == ["a/folder.mp4"]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert sorted(e["video"] for e in manifest(out)) == sorted(GOOD + ["corrupt.mp4"])
    assert [json.loads(x)["video"] for x in (out / "failures.jsonl").read_text().splitlines()] == ["a/folder.mp4"]
    third = run(folder, out, encoder)
    assert third.done == [] and third.skipped == 5
    changed = run(folder, out, encoder, sampling=Sampling(num_frames=2), replace=True)  # other settings: recomputed
    assert len(changed.done) == 5


def test_features_overwritten_by_other_settings_are_extracted_again(folder, tmp_path, encoder):
    """A video's latest manifest line tells what its feature file holds: a rerun with the settings of an
    earlier line extracts it again (with replace, as any run with other settings than a file's), and train
    takes the settings that most feature files have."""
    out, overwritten = tmp_path / "out", GOOD[:3]
    run(folder, out, encoder)
    run(folder, out, encoder, sampling=Sampling(num_frames=2), videos=overwritten, replace=True)
    assert extract_settings(out)["sampling"]["num_frames"] == 2  # 3 files of 2 frames, 1 of 4
    again = run(folder, out, encoder, replace=True)
    assert sorted(again.done) == overwritten and again.skipped == 1
    assert all(load_features(out / "features" / f"{v}.npz")["features"].shape[0] == 4 for v in GOOD)
    assert extract_settings(out)["sampling"]["num_frames"] == 4
    run(folder, out, encoder, sampling=Sampling(num_frames=2), videos=GOOD[:2], replace=True)  # 2 of each: the latest
    assert extract_settings(out)["sampling"]["num_frames"] == 2


def test_a_video_replaced_under_its_name_is_extracted_again(folder, tmp_path, encoder):
    """A video file with another size or modification time than when it was extracted is extracted again;
    manifest lines of older versions, without that fingerprint, are taken as they are."""
    out = tmp_path / "out"
    run(folder, out, encoder)
    shutil.copy(folder / "a/clip.mp4", folder / "b/clip.mp4")
    again = run(folder, out, encoder)
    assert again.done == ["b/clip.mp4"] and again.skipped == 3
    a, b = (load_features(out / "features" / f"{s}/clip.mp4.npz")["features"] for s in "ab")
    np.testing.assert_array_equal(a, b)
    old = [{k: v for k, v in e.items() if k != "source"} for e in manifest(out)]
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in old))
    assert run(folder, out, encoder).skipped == 4


def test_two_shards_cover_every_video_once(folder, tmp_path, encoder):
    out = tmp_path / "out"
    first, second = run(folder, out, encoder, shard=(0, 2)), run(folder, out, encoder, shard=(1, 2))
    assert not set(first.done) & set(second.done)
    assert sorted(first.done + second.done + list(first.failed) + list(second.failed)) == sorted(GOOD + BAD)
    assert sorted(e["video"] for e in manifest(out)) == GOOD


def test_window_and_fps_sampling_shapes(folder, tmp_path, encoder):
    out = tmp_path / "out"
    run(folder, out, encoder, sampling=Sampling(mode="window", num_frames=3, window_s=1.0, stride_s=0.5))
    windows = load_features(out / "features/c.avi.npz")  # 15 frames at 10 fps
    assert windows["features"].shape == (2, 3, 512)  # windows start at frames 0 and 5
    assert windows["frame_indices"].tolist() == [[1, 5, 8], [6, 10, 13]]
    out2 = tmp_path / "out2"
    run(folder, out2, encoder, sampling=Sampling(mode="fps", fps=5.0))
    fps = load_features(out2 / "features/c.avi.npz")
    assert fps["frame_indices"].tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert fps["features"].shape == (8, 512)


def test_float16_storage_falls_back_where_values_do_not_fit():
    assert storage_dtype(np.array([0.5, 3.0]), "float16") == np.float16
    assert storage_dtype(np.array([1e-9, 2e-9]), "float16") == np.float32  # would underflow
    assert storage_dtype(np.array([1e6]), "float16") == np.float32  # would overflow
    assert storage_dtype(np.array([1.0]), "float32") == np.float32


def test_cli_exit_status_and_one_line_errors(folder, tmp_path):
    out = tmp_path / "out"
    common = [f"input_dir={folder}", f"output_dir={out}", "video.size=64", "video.num_frames=4",
              "video.workers=1", "quiet=true"]
    res = run_pipeline("extract", *common)
    assert res.returncode == 2, res.stderr
    assert "4 extracted, 0 already done, 2 failed" in res.stdout and "failed: corrupt.mp4" in res.stdout
    assert ("extract: note: encoder.weights=null: resnet18 with random weights (encoder.weights=DEFAULT for its "
            "ImageNet weights, or a state_dict file)") in res.stdout.splitlines()
    assert "Traceback" not in res.stderr + res.stdout
    (folder / "corrupt.mp4").unlink()
    (folder / "a/folder.mp4").rmdir()
    res = run_pipeline("extract", *common)
    assert res.returncode == 0 and "0 extracted, 4 already done, 0 failed" in res.stdout
    bad = [(f"input_dir={tmp_path}/missing", "input folder does not exist"),
           ("encoder.name=nonet", "unknown encoder 'nonet'"),
           ("video.sampling=random", "video.sampling must be one of")]
    with ThreadPoolExecutor(2) as pool:  # two at a time: each is an interpreter's start
        runs = list(pool.map(lambda case: run_pipeline("extract", *common, case[0]), bad))
    for (_, message), res in zip(bad, runs):
        assert res.returncode == 1 and res.stderr.strip().splitlines() == [f"error: {res.stderr.strip()[7:]}"]
        assert message in res.stderr and "Traceback" not in res.stderr


def test_shards_default_from_torchrun_and_slurm(monkeypatch):
    from vidrnn.files import shard_from_env

    for var in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    assert shard_from_env() == (0, 1)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    assert shard_from_env() == (2, 4)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    assert shard_from_env() == (1, 3)  # torchrun wins over SLURM
    assert shard_from_env(2, 5) == (2, 5)  # explicit values win
    with pytest.raises(ValueError, match="outside 0..2"):
        shard_from_env(3, 3)


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomically written outputs are readable by others as plain writes are (not mkstemp's 0600)."""
    from vidrnn.features.store import atomic_write

    atomic_write(tmp_path / "out.json", lambda f: f.write(b"{}"))
    plain = tmp_path / "plain.json"
    plain.write_bytes(b"{}")
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_a_decoder_crash_fails_that_video_and_the_batch_goes_on(folder, tmp_path, encoder, monkeypatch):
    """A native crash (here a real SIGSEGV) in a decode worker: the file it was reading is reported, every
    other video is still encoded, and the features equal a run without the crash."""
    real = encode_module.stream_video

    def crashing(path, *args, **kw):  # the decode workers are forked: they run this
        if path.endswith("c.avi"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, *args, **kw)

    videos = [(v, str(folder / v)) for v in GOOD]
    args = dict(sampling=Sampling(num_frames=4), size=64, batch_size=4, workers=2)
    expected = {r.key: np.asarray(r.features) for r in encode_module.encode_videos(videos, encoder, **args)}
    monkeypatch.setattr(encode_module, "stream_video", crashing)
    results = list(encode_module.encode_videos(videos, encoder, **args))
    failed = {r.key: r.reason for r in results if isinstance(r, encode_module.Failed)}
    assert failed == {"c.avi": encode_module.CRASHED} and len(results) == len(GOOD)
    for r in results:
        if r.key != "c.avi":
            np.testing.assert_allclose(np.asarray(r.features), expected[r.key], rtol=1e-5, atol=1e-6)


def test_per_frame_functions_run_in_the_workers_and_a_crash_costs_one_video(folder, monkeypatch):
    """map_frames (the HOG counter's path): ``fn`` of every sampled full-size frame, laid out like the
    plan; a native crash in a worker fails the file it was reading and the rest are mapped."""
    real = encode_module.stream_video

    def crashing(path, *args, **kw):  # the decode workers are forked: they run this
        if path.endswith("c.avi"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, *args, **kw)

    def mean_level(frames):  # (n, H, W, 3) uint8 -> (n,): the frame's mean pixel value
        return frames.reshape(len(frames), -1).mean(1).astype(np.float32)

    videos = [(v, str(folder / v)) for v in GOOD]
    windows = Sampling(mode="window", num_frames=3, window_s=1.0, stride_s=1.0)
    expected = {r.key: r for r in encode_module.map_frames(videos, mean_level, windows, workers=2)}
    for key, r in expected.items():
        frames, meta = read_sampled(str(folder / key), windows, size=None)  # (W, N, H, W, 3)
        assert r.values.shape == np.shape(meta.frame_indices)
        np.testing.assert_allclose(r.values, frames.reshape(*frames.shape[:2], -1).mean(-1), rtol=1e-5)
    monkeypatch.setattr(encode_module, "stream_video", crashing)
    results = list(encode_module.map_frames(videos, mean_level, windows, workers=2))
    failed = {r.key: r.reason for r in results if isinstance(r, encode_module.Failed)}
    assert failed == {"c.avi": encode_module.CRASHED} and len(results) == len(GOOD)
    for r in results:
        if r.key != "c.avi":
            np.testing.assert_array_equal(r.values, expected[r.key].values)


def test_progress_counts_the_frames_as_they_are_done(folder, encoder, capsys):
    """Both paths report each batch of frames as it is done (a long video's bar moves before it ends), and
    the frames reported add up to the sampled frames read; the bar shows them."""
    videos = [(v, str(folder / v)) for v in GOOD]
    sampling = Sampling(num_frames=4)
    for run in (lambda report: encode_module.encode_videos(videos, encoder, sampling, size=32, batch_size=3,
                                                           workers=1, on_frames=report),
                lambda report: encode_module.map_frames(videos, _frame_means, sampling, workers=1, on_frames=report)):
        reported, finished = [], []
        for result in run(reported.append):
            finished.append((result.key, sum(reported)))
        read = sum(len(item.frames) for _, path in videos for item in stream_video(path, sampling, size=16)
                   if isinstance(item, Chunk))  # (a video read again after a wrong frame count: its frames twice)
        assert sum(reported) == read and len(finished) == len(GOOD)
        assert finished[0][1] < read  # counted while the videos were still being read, not at the end
    bar = encode_module.VideoBar(2)
    bar.add_frames(30)
    bar.add_frames(12)
    bar.close()
    assert "42 frames" in capsys.readouterr().err


def _frame_means(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(1).astype(np.float32)  # (n,)


def test_the_vidrnn_command_works_from_any_folder(folder, tmp_path):
    """`vidrnn extract ...` (the installed console command's main, as `python -m vidrnn`) run in the user's
    own folder, with paths relative to it: the configs are found wherever the command runs, and outputs land
    in that folder."""
    work = tmp_path / "user"
    shutil.copytree(folder, work / "my videos", symlinks=True)
    cmd = [sys.executable, "-m", "vidrnn", "extract", "input_dir=my videos", "output_dir=feats", "video.size=32",
           "video.num_frames=3", "video.workers=0", "quiet=true"]
    res = subprocess.run(cmd, cwd=work, env=pipeline_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "4 extracted" in res.stdout, res.stderr  # 2: the folder's two bad files
    assert len(manifest(work / "feats")) == 4


def test_train_on_an_extract_output_with_its_settings(tmp_path, monkeypatch):
    """data.features_dir: the model trains on an extract folder's features, with that folder's encoder,
    sampling and size (not the train settings'), and videos missing from it are extracted into it alike."""
    from vidrnn.checkpoint import load_checkpoint
    from vidrnn.synth import make_dataset
    from vidrnn.train.loop import TrainConfig
    from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model

    data = make_dataset(tmp_path / "data", num_videos=12, width=64, height=48, num_frames=8, fps=8.0)
    spec = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "grid", "grid": 2}
    feats = tmp_path / "feats"
    first = extract_folder(data["videos_dir"], str(feats), encoder=FrameEncoder(**spec), encoder_spec=spec,
                           sampling=Sampling(num_frames=3), size=32, workers=0, shard=(0, 2), progress=False)
    assert len(first.done) == 6
    asked = ExtractConfig(encoder={"name": "resnet18", "weights": None, "layer": None, "pooling": "avg", "grid": 2},
                          sampling=Sampling(num_frames=5), size=64, workers=0, progress=False)
    result = train_model("count", DataConfig(data["videos_dir"], data["counts"], cache_dir=str(tmp_path / "cache"),
                                             features_dir=str(feats)),
                         asked, ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=1),
                         out_dir=str(tmp_path / "run"))
    assert result["epochs_run"] == 1 and not (tmp_path / "cache").exists()
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/best.pt", task="count")
    assert ckpt["encoder"] == spec and ckpt["sampling"]["num_frames"] == 3 and ckpt["size"] == 32
    entries = [json.loads(line) for line in (feats / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == 12 and len({json.dumps(e["settings"], sort_keys=True) for e in entries}) == 1
    assert {e["dtype"] for e in entries} == {"float16"}  # the rest stored as extract stored the first half
    def no_weights(*args, **kwargs):
        raise RuntimeError("pretrained weights are not on this machine")

    for where in ("vidrnn.features.extract", "vidrnn.train.run"):  # every feature is there: no encoder needed
        monkeypatch.setattr(f"{where}.FrameEncoder", no_weights)
    again = train_model("count", DataConfig(data["videos_dir"], data["counts"], features_dir=str(feats)), asked,
                        ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=1), out_dir=str(tmp_path / "again"))
    assert again["epochs_run"] == 1
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        train_model("count", DataConfig(data["videos_dir"], data["counts"], features_dir=str(tmp_path / "nowhere")),
                    asked, ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=1), out_dir=str(tmp_path / "run2"))
    assert not (tmp_path / "nowhere").exists()


def test_training_on_features_sampled_at_fixed_fps_is_refused_up_front(tmp_path):
    """fps sampling gives each video its own number of frames (here 2, 4 and 8), which the models cannot stack:
    training says so before any video is read, not with numpy's error after extracting them all."""
    from vidrnn.train.loop import TrainConfig
    from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model

    videos = tmp_path / "videos"
    videos.mkdir()
    for name, fps in (("a", 10.0), ("b", 5.0), ("c", 2.5)):  # 2, 4 and 8 s long
        write_opencv(videos / f"{name}.avi", 20, "MJPG", fps=fps)
    spec = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 1}
    fps = Sampling(mode="fps", fps=1.0)
    extract_folder(str(videos), str(tmp_path / "feats"), encoder_spec=spec, sampling=fps, size=32, workers=0,
                   progress=False)
    (tmp_path / "counts.csv").write_text("video_id,count\na,1\nb,2\nc,0\n")
    for data, extract in ((DataConfig(str(videos), str(tmp_path / "counts.csv"), features_dir=str(tmp_path / "feats")),
                           ExtractConfig(encoder=spec, sampling=Sampling(), workers=0, progress=False)),
                          (DataConfig(str(videos), str(tmp_path / "counts.csv"), cache_dir=str(tmp_path / "cache")),
                           ExtractConfig(encoder=spec, sampling=fps, workers=0, progress=False))):
        with pytest.raises(ValueError, match="video.sampling=fps gives each video its own number of frames"):
            train_model("count", data, extract, ModelConfig(None, {"hidden": 8}), TrainConfig(max_epochs=1),
                        out_dir=str(tmp_path / "run"))
    assert not (tmp_path / "cache").exists()



def _given_threads(real, expected: int):
    """``real`` (``stream_video`` or ``read_sampled``), failing the video unless the decode worker that calls
    it (forked: it runs this) passes ``expected`` decoder threads."""
    def checked(path, *args, threads, **kw):
        if threads != expected:
            raise VideoError(f"decoder threads {threads}, not {expected}")
        return real(path, *args, threads=threads, **kw)
    return checked


@pytest.mark.parametrize("videos, expected", [(4, 4), (1, 8)])
def test_decode_workers_share_the_cpus(folder, monkeypatch, videos, expected):
    """Each decode worker's decoder gets its share of the CPUs but one (here 9 CPUs, 2 workers: 4 threads
    each; one video: 8 for the one worker that reads it), not one thread per CPU in every worker."""
    cv2.resize(np.zeros((480, 640, 3), np.uint8), (320, 240))  # OpenCV's thread pool started before the fork
    monkeypatch.setattr(device_module, "usable_cpus", lambda: 9)
    monkeypatch.setattr(encode_module, "stream_video", _given_threads(encode_module.stream_video, expected))
    paths = [(v, str(folder / v)) for v in GOOD[:videos]]

    def _mean(frames):  # (n, H, W, 3) -> (n,)
        return frames.reshape(len(frames), -1).mean(1)

    results = list(encode_module.map_frames(paths, _mean, Sampling(num_frames=3), workers=2))
    assert [type(r).__name__ for r in results] == ["Mapped"] * videos, [getattr(r, "reason", "") for r in results]


def test_frames_for_end_to_end_training_survive_a_decoder_crash(folder, monkeypatch):
    """The frames end-to-end training keeps are decoded as extraction's are: those of read_sampled, and a
    native crash (a real SIGSEGV) in a decode worker fails that file alone."""
    from vidrnn.features.cache import decoded_frames

    real = encode_module.stream_video

    def crashing(path, *args, **kw):  # the decode workers are forked: they run this
        if path.endswith("c.avi"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, *args, **kw)

    monkeypatch.setattr(encode_module, "stream_video", crashing)
    frames, metas, failed = decoded_frames(str(folder), GOOD, sampling=Sampling(num_frames=3), size=32, workers=2)
    assert failed == {"c.avi": encode_module.CRASHED} and sorted(frames) == sorted(v for v in GOOD if v != "c.avi")
    for video, got in frames.items():
        expected, meta = read_sampled(str(folder / video), Sampling(num_frames=3), size=32)  # (N, 32, 32, 3)
        np.testing.assert_array_equal(got, expected)
        assert metas[video]["frame_indices"] == list(meta.frame_indices)


def test_features_of_other_settings_are_not_overwritten_unless_asked(tmp_path):
    """A rerun into an output_dir with other settings stopped nothing: the features there (hours of work on a
    big folder) were overwritten. It now stops before any video, naming what changed; replace=True extracts
    over them."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_opencv(videos / "a.avi", 6, "MJPG")
    spec = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 1}

    def extract_with(frames: int, **kw):
        return extract_folder(str(videos), str(tmp_path / "out"), encoder_spec=spec,
                              sampling=Sampling(num_frames=frames), size=32, workers=0, progress=False, **kw)

    assert extract_with(2).done == ["a.avi"]
    before = (tmp_path / "out/features/a.avi.npz").read_bytes()
    with pytest.raises(ValueError, match=re.escape("holds features of 1 video ('a.avi') extracted with other settings "
                                                   "(sampling.num_frames 2 then, 3 now): give another output_dir, or "
                                                   "replace=true")):
        extract_with(3)
    assert (tmp_path / "out/features/a.avi.npz").read_bytes() == before
    assert extract_with(3, replace=True).done == ["a.avi"]
    assert load_features(tmp_path / "out/features/a.avi.npz")["features"].shape[0] == 3


@pytest.mark.parametrize("named", ["absolute", "from home"])
def test_a_weights_file_replaced_under_its_name_is_extracted_again(tmp_path, monkeypatch, named):
    """The features of a local state_dict file were kept when the file was replaced under its name: its
    contents (sha256) are part of the settings a rerun compares, also where it is named from ``~``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    videos = tmp_path / "videos"
    videos.mkdir()
    write_opencv(videos / "a.avi", 6, "MJPG")
    weights = tmp_path / "w.pt"
    spec = {"name": "resnet18", "weights": str(weights) if named == "absolute" else "~/w.pt", "layer": "layer1",
            "pooling": "avg", "grid": 1}

    def extract_with(seed: int):
        torch.manual_seed(seed)
        torch.save(torchvision.models.resnet18().state_dict(), weights)
        return extract_folder(str(videos), str(tmp_path / "out"), encoder_spec=spec, sampling=Sampling(num_frames=2),
                              size=32, workers=0, progress=False)

    assert extract_with(0).skipped == 0
    assert extract_with(0).skipped == 1  # written again with the same contents: kept
    assert extract_with(1).skipped == 0  # other weights under the same name: extracted again
