"""On a CUDA GPU: the encoder (with AMP), extraction, a training step and beam search give what the CPU
gives. Marked ``cuda`` (``pytest -m cuda``); skipped where there is no GPU."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_opencv

from vidrnn.features import Encoded, encode_videos
from vidrnn.models import FrameEncoder
from vidrnn.models.captioner import build_captioner
from vidrnn.models.counter import RecurrentCounter
from vidrnn.checkpoint import load_checkpoint
from vidrnn.device import resident
from vidrnn.models.decode import beam_search, greedy_decode
from vidrnn.synth import make_dataset
from vidrnn.tasks.captioning import CaptionSamples, CaptionTask
from vidrnn.tasks.counting import CountTask, build_samples
from vidrnn.text import Vocab
from vidrnn.train.loop import TrainConfig, fit
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 on the GPU (cuDNN's default TF32 keeps only 10 mantissa bits), so results can be
    compared with the CPU's."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def rowwise_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=1)


def test_encoder_on_cuda_matches_cpu_with_and_without_amp():
    torch.manual_seed(0)
    encoder = FrameEncoder("resnet18", layer="layer3", pooling="grid", grid=2)
    frames = torch.randint(0, 256, (6, 112, 112, 3), dtype=torch.uint8)  # (B, S, S, 3)
    with torch.inference_mode():
        cpu = encoder(frames)
        gpu = copy.deepcopy(encoder).to(CUDA)
        fp32 = gpu(frames.to(CUDA))
        with torch.autocast("cuda"):
            amp = gpu(frames.to(CUDA))
    assert amp.dtype == torch.float16 and torch.isfinite(amp).all()
    assert rowwise_cosine(cpu, fp32.cpu()).min() > 0.99999
    assert rowwise_cosine(cpu, amp.float().cpu()).min() > 0.999


def test_extraction_on_cuda_matches_cpu(tmp_path):
    """encode_videos with decode workers, pinned memory and AMP: the same frames and nearly the same
    features as on the CPU."""
    videos = [(f"v{i}.mp4", str(write_opencv(tmp_path / f"v{i}.mp4", 12 + 5 * i, "mp4v"))) for i in range(3)]
    encoder = FrameEncoder("resnet18")
    sampling = Sampling(num_frames=5)

    def run(device):
        out = encode_videos(videos, encoder, sampling, size=64, batch_size=4, workers=2, device=device)
        return {r.key: r for r in out if isinstance(r, Encoded)}

    cpu, gpu = run(torch.device("cpu")), run(CUDA)
    assert sorted(gpu) == sorted(cpu) == [k for k, _ in videos]
    for key, r in cpu.items():
        assert gpu[key].meta.frame_indices == r.meta.frame_indices
        assert gpu[key].features.dtype == np.float32 and gpu[key].features.shape == r.features.shape
        assert rowwise_cosine(*(torch.from_numpy(np.asarray(x.features)) for x in (r, gpu[key]))).min() > 0.999


def caption_task(device):
    """A captioner and its task on random features of 12 videos with two captions each."""
    words = ["a red circle moves left", "two people walk", "a blue square moves up", "nobody walks"]
    refs = {f"v{i}": [words[i % 4], words[(i + 1) % 4]] for i in range(12)}
    samples = CaptionSamples(list(refs), torch.randn(12, 4, 32), refs)
    vocab = Vocab.build((c for cs in refs.values() for c in cs), 1)
    model = build_captioner("attention", 32, len(vocab), hidden=32, embed=16)
    model.features.set_stats(samples.feats)
    return model, CaptionTask(vocab, samples, samples, batch_size=8, max_len=8, device=device)


def count_task(device):
    """A counter and its task on random features of 12 clips with clip and per-frame counts."""
    ids = [f"v{i}" for i in range(12)]
    samples = build_samples(ids, list(np.random.default_rng(0).normal(size=(12, 4, 32)).astype(np.float32)),
                            [np.arange(4)] * 12, [float(i % 3) for i in range(12)],
                            [np.full(4, float(i % 3), np.float32) for i in range(12)])
    model = RecurrentCounter(32, hidden=32)
    model.features.set_stats(samples.feats)
    return model, CountTask(samples, samples, batch_size=8, device=device)


@pytest.mark.parametrize("make", [caption_task, count_task])
def test_training_steps_on_cuda(make, tmp_path):
    """Two epochs of the real loop on the GPU (bfloat16 autocast): finite losses, weights that moved,
    and a best checkpoint that loads on the CPU."""
    torch.manual_seed(0)
    model, task = make(CUDA)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(max_epochs=2, monitor=task.monitor, mode=task.mode, patience=0)
    assert cfg.amp
    result = fit(model, task.batches, task.step, task.evaluate, cfg=cfg, out_dir=tmp_path, device=CUDA)
    assert all(np.isfinite(row["train_loss"]) for row in result["history"])
    assert next(model.parameters()).device.type == CUDA.type
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v.cpu(), before[k])]
    assert "features.proj.1.weight" in moved
    best = torch.load(tmp_path / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in best["model"].values())


@pytest.mark.parametrize("task", ["caption", "count"])
def test_training_the_encoder_end_to_end_on_cuda(task, tmp_path):
    """The train app's path with the encoder trained on the GPU (frames in, feature statistics computed
    there, a video's captions sharing its encoding): finite losses, and a best checkpoint on the CPU that
    holds the trained encoder and scores the test split."""
    data = make_dataset(tmp_path / "data", num_videos=12, seed=9, width=64, height=48, num_frames=8, fps=8.0)
    enc = {"name": "resnet18", "weights": None, "layer": "layer1", "pooling": "avg", "grid": 2}
    extract = ExtractConfig(encoder=enc, sampling=Sampling(num_frames=3), size=32, workers=2, progress=False,
                            trainable=True)
    labels = data["captions"] if task == "caption" else data["counts"]
    result = train_model(task, DataConfig(data["videos_dir"], labels, cache_dir=str(tmp_path / "cache")), extract,
                         ModelConfig("attention", {"hidden": 16}), TrainConfig(max_epochs=2, patience=0),
                         out_dir=str(tmp_path / "run"), device=CUDA)
    assert all(np.isfinite(row["train_loss"]) for row in result["history"]) and result["test"]
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/best.pt", task=task)
    assert ckpt["encoder_trained"] and any(k.startswith("features.encoder.") for k in ckpt["model"])
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())


@pytest.mark.parametrize("kind", ["s2vt", "attention"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_beam_search_on_cuda_equals_cpu(kind, cell):
    """Same captions, scores and n-best lists on both devices. In float64, so that rounding cannot swap
    two nearly tied words of an untrained model (the search keeps its scores in float32 either way)."""
    torch.manual_seed(0)
    model = build_captioner(kind, 24, 30, cell=cell, hidden=32, layers=2, embed=16).double().eval()
    feats = torch.randn(7, 5, 24, dtype=torch.float64)
    kw = {"bos": 1, "eos": 2, "max_len": 10}
    cpu = beam_search(model, feats, beam=5, n_best=5, **kw)
    cpu_greedy = greedy_decode(model, feats, **kw)
    model.to(CUDA)
    gpu = beam_search(model, feats.to(CUDA), beam=5, n_best=5, **kw)
    gpu_greedy = greedy_decode(model, feats.to(CUDA), **kw)
    assert [[h.tokens for h in hyps] for hyps in gpu] == [[h.tokens for h in hyps] for hyps in cpu]
    assert [h.score for hyps in gpu for h in hyps] == pytest.approx([h.score for hyps in cpu for h in hyps], abs=1e-5)
    assert [h.tokens for h in gpu_greedy] == [h.tokens for h in cpu_greedy]


@pytest.mark.parametrize("make", [caption_task, count_task])
def test_training_with_the_data_left_in_host_memory(make, tmp_path, monkeypatch):
    """Where the training data would take too much of the GPU's memory it stays in host memory and batches
    go over one at a time: the same losses as with the data on the GPU."""
    def losses(name):
        torch.manual_seed(0)
        model, task = make(CUDA)
        cfg = TrainConfig(max_epochs=2, monitor=task.monitor, mode=task.mode, patience=0, amp=False)
        result = fit(model, task.batches, task.step, task.evaluate, cfg=cfg, out_dir=tmp_path / name,
                     device=CUDA)
        data = task.train_feats if hasattr(task, "train_feats") else task.feats
        return data.device.type, [row["train_loss"] for row in result["history"]]

    on_gpu = losses("gpu")
    monkeypatch.setattr("vidrnn.tasks.captioning.resident", lambda data, device: resident(data, device, share=0.0))
    monkeypatch.setattr("vidrnn.tasks.counting.resident", lambda data, device: resident(data, device, share=0.0))
    on_host = losses("host")
    assert on_gpu[0] == "cuda" and on_host[0] == "cpu"
    assert np.allclose(on_host[1], on_gpu[1], rtol=1e-4) and all(np.isfinite(on_host[1]))


def test_a_run_resumed_on_cuda_trains_as_the_run_that_was_never_stopped(tmp_path):
    """last.pt keeps the CUDA generator's state too: stopped after epoch 2 and resumed, the losses are those
    of the uninterrupted run (dropout masks drawn on the GPU)."""
    def history(out, stop_after=None):
        torch.manual_seed(0)
        model, task = caption_task(CUDA)

        def batches(epoch):
            if stop_after is not None and epoch > stop_after:
                raise KeyboardInterrupt
            yield from task.batches(epoch)

        cfg = TrainConfig(max_epochs=4, monitor=task.monitor, mode=task.mode, patience=0, amp=False)
        try:
            return [row["train_loss"] for row in fit(model, batches, task.step, task.evaluate, cfg=cfg, out_dir=out,
                                                     device=CUDA)["history"]]
        except KeyboardInterrupt:
            return []

    whole = history(tmp_path / "whole")
    history(tmp_path / "stopped", stop_after=2)
    assert history(tmp_path / "stopped") == pytest.approx(whole, rel=1e-5)
