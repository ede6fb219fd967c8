"""Captioning: models, decoding, training a tiny model, the caption and evaluate pipelines."""
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_job, run_pipeline

from vidrnn.checkpoint import CheckpointError, build_model, load_checkpoint
from vidrnn.data import load_captions
from vidrnn.features.cache import cached_features
from vidrnn.models import FrameEncoder
from vidrnn.models.captioner import Captioner, build_captioner
from vidrnn.metrics import PTB_JAR, PTB_NLTK
from vidrnn.metrics.java import java_problem
from vidrnn.models.decode import beam_search, greedy_decode
from vidrnn.outputs import read_captions, read_timed_captions
from vidrnn.predict import caption_folder
from vidrnn.synth import make_dataset
from vidrnn.tasks.captioning import CaptionSamples, CaptionTask
from vidrnn.text import Vocab
from vidrnn.train.loop import TrainConfig, fit
from vidrnn.train.run import DataConfig, ExtractConfig, ModelConfig, train_model
from vidrnn.video import Sampling

TEST_METRICS = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"}  # train's test scores
ENCODER = {"name": "resnet18", "weights": None, "layer": "layer3", "pooling": "grid", "grid": 2}


@pytest.mark.parametrize(("kind", "cells"), [("s2vt", 1), ("attention", 1), ("attention", 4)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_models_shapes_and_beam_one_equals_greedy(kind, cells, cell):
    torch.manual_seed(0)
    model = build_captioner(kind, 24, 17, cell=cell, hidden=16, layers=2, embed=8, cells=cells).eval()
    feats, caps = torch.randn(3, 5, 24), torch.randint(0, 17, (3, 6))
    assert model(feats, caps).shape == (3, 5, 17)
    assert model(feats, caps, sample_prob=1.0).shape == (3, 5, 17)
    for penalty in (1.0, 0.0, 0.6):  # the same captions, scored alike
        greedy = greedy_decode(model, feats, bos=1, eos=2, max_len=8, length_penalty=penalty)
        beam1 = beam_search(model, feats, bos=1, eos=2, beam=1, max_len=8, length_penalty=penalty)
        assert [g.tokens for g in greedy] == [b[0].tokens for b in beam1]
        assert [g.logprob for g in greedy] == pytest.approx([b[0].logprob for b in beam1], abs=1e-5)
        assert [g.score for g in greedy] == pytest.approx([b[0].score for b in beam1], abs=1e-5)
    nbest = beam_search(model, feats, bos=1, eos=2, beam=4, max_len=8, n_best=3)
    assert all(len(h) == 3 and h[0].score >= h[1].score >= h[2].score for h in nbest)


@pytest.mark.parametrize("kind", ["s2vt", "attention"])
def test_teacher_forcing_and_scheduled_sampling_match_step_by_step_decoding(kind):
    """forward (all words embedded and projected at once) gives step()'s logits; with sample_prob=1 it
    feeds the model's own previous words, so it decodes greedily."""
    torch.manual_seed(0)
    model = build_captioner(kind, 24, 17, hidden=16, layers=2, embed=8).eval()
    with torch.no_grad():  # as after training: <pad>, <bos> and <eos> unlikely (decoding never picks the first two)
        model.out.bias[:3] = -1e4
    feats, caps = torch.randn(3, 5, 24), torch.randint(3, 17, (3, 9))
    caps[:, 0] = 1  # <bos>
    memory = model.encode(feats)
    state, stepped = model.init_state(memory), []
    for t in range(8):
        logits, state = model.step(caps[:, t], state, memory)
        stepped.append(logits)
    assert torch.allclose(model(feats, caps), torch.stack(stepped, 1), atol=1e-6)
    own = model(feats, caps, sample_prob=1.0).argmax(-1)  # (B, 8)
    for row, hyp in zip(own.tolist(), greedy_decode(model, feats, bos=1, eos=2, max_len=8)):
        words = (hyp.tokens + [2])[:8]
        assert row[:len(words)] == words


def test_training_on_frames_encodes_each_video_once_per_group_of_its_captions():
    """End to end (frames in, the encoder trained), a batch holds up to GROUP captions of each of its
    videos and runs the CNN once per video; the loss is the one of every caption with its own copy."""
    torch.manual_seed(0)
    vocab = Vocab.build(["a red circle", "a blue square moves", "two people walk"], min_count=1)
    refs = {"v0": ["a red circle"] * 6, "v1": ["a blue square moves"] * 2, "v2": ["two people walk"]}
    frames = torch.randint(0, 255, (3, 2, 32, 32, 3), dtype=torch.uint8)  # (S, T, S, S, 3)
    encoder = FrameEncoder("resnet18", layer="layer1", trainable=True)
    model = build_captioner("attention", encoder.out_dim, len(vocab), hidden=8, embed=8, encoder=encoder).eval()
    calls = []
    encoder.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    task = CaptionTask(vocab, CaptionSamples(list(refs), frames, refs), CaptionSamples([], frames[:0], {}),
                       batch_size=8, max_len=8)
    batches = list(task.batches(0))
    assert task.GROUP == 4 and len(batches) == 2  # groups: v0's first 4 and last 2 captions, v1's 2, v2's 1
    videos = [[next(k for k in range(3) if torch.equal(f[r], frames[k])) for r in rows] for f, _, rows in batches]
    assert sorted(sum(videos, [])) == [0] * 6 + [1] * 2 + [2]  # every caption once an epoch
    assert all(len(set(rows.tolist())) == len(f) for f, _, rows in batches)  # no video twice in a batch
    for feats, caps, rows in batches:
        calls.clear()
        grouped = model(feats, caps, rows=rows)
        assert calls == [2 * len(feats)]  # every video of the batch through the CNN once
        assert torch.allclose(grouped, model(feats[rows], caps), atol=1e-5)


def test_per_cell_attention_attends_to_every_cell_of_every_frame():
    torch.manual_seed(0)
    model = build_captioner("attention", 6 * 4, 17, hidden=16, embed=8, cells=4).eval()
    memory = model.encode(torch.randn(3, 5, 24))
    assert memory["frames"].shape == (3, 5 * 4, 16)  # (B, cells * T, H)
    with pytest.raises(ValueError, match="needs model.caption.kind=attention"):
        build_captioner("s2vt", 24, 17, cells=4)


class _Table(Captioner):
    """A captioner whose next-word distribution depends only on the previous word (a Markov table)."""

    def __init__(self, table):
        super().__init__(1, table.shape[0], hidden=1)
        self.logp = table.log()

    def encode(self, feats):
        return {"x": feats}

    def init_state(self, memory):
        return torch.zeros(1, memory["x"].shape[0], 1)

    def step(self, tokens, state, memory):
        return self.logp[tokens], state


def test_beam_search_finds_a_likelier_caption_than_greedy():
    # words: 0 pad, 1 bos, 2 eos, 3 unk, 4 "a" (greedy's first pick), 5 "b"
    table = torch.full((6, 6), 1e-9)
    table[1, 4], table[1, 5] = 0.6, 0.4  # after <bos>: "a" looks best...
    table[4, 2], table[4, 3], table[4, 5] = 0.34, 0.33, 0.33  # ...but "a" leads nowhere sure
    table[5, 2] = 1.0  # "b" then <eos> for certain
    table[3, 2] = table[2, 2] = 1.0
    model = _Table(table / table.sum(1, keepdim=True))
    feats = torch.zeros(2, 1, 1)
    greedy = greedy_decode(model, feats, bos=1, eos=2, max_len=5)[0]
    best = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=5, length_penalty=0.0)[0][0]
    assert greedy.tokens == [4] and best.tokens == [5]
    assert best.logprob > greedy.logprob + 0.3


def test_beam_search_length_penalty_divides_by_the_length_with_its_end_token():
    """score = logprob / length ** length_penalty, the length counting <eos> where the caption ended: with
    penalty 0 the likeliest caption wins, with penalty 1 the best per word, here a longer one."""
    # words: 0 pad, 1 bos, 2 eos, 3 unk, 4 "a", 5 "b", 6 "c"
    table = torch.full((7, 7), 1e-9)
    table[1, 4], table[1, 5] = 0.55, 0.45  # "a <eos>": log .55 = -0.60, per token (2) -0.30
    table[4, 2] = 1.0
    table[5, 6] = 1.0  # "b c <eos>": log .45 = -0.80, per token (3) -0.27
    table[6, 2] = table[2, 2] = table[3, 2] = 1.0
    model = _Table(table / table.sum(1, keepdim=True))
    logp = model.logp
    short, long = (logp[1, 4] + logp[4, 2]).item(), (logp[1, 5] + logp[5, 6] + logp[6, 2]).item()
    feats = torch.zeros(2, 1, 1)
    plain = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=5, length_penalty=0.0, n_best=2)
    per_word = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=5, length_penalty=1.0, n_best=2)
    for hyps in plain:
        assert [h.tokens for h in hyps] == [[4], [5, 6]]  # the likeliest first
        assert [h.logprob for h in hyps] == pytest.approx([short, long], abs=1e-5)
        assert [h.score for h in hyps] == pytest.approx([short, long], abs=1e-5)  # score == logprob
    for hyps in per_word:
        assert [h.tokens for h in hyps] == [[5, 6], [4]]  # the longer caption wins
        assert [h.logprob for h in hyps] == pytest.approx([long, short], abs=1e-5)
        assert [h.score for h in hyps] == pytest.approx([long / 3, short / 2], abs=1e-5)  # <eos> counted
    half = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=5, length_penalty=0.5, n_best=2)[0]
    assert [h.tokens for h in half] == [[4], [5, 6]]  # -0.42 against -0.46
    assert [h.score for h in half] == pytest.approx([short / 2 ** 0.5, long / 3 ** 0.5], abs=1e-5)
    # a caption cut at max_len has no <eos>: its length is its words alone
    cut = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=2, length_penalty=1.0, n_best=3)[0]
    cut_bc = next(h for h in cut if h.tokens == [5, 6])
    assert cut_bc.logprob == pytest.approx((logp[1, 5] + logp[5, 6]).item(), abs=1e-5)
    assert cut_bc.score == pytest.approx(cut_bc.logprob / 2, abs=1e-5)


def test_a_caption_is_never_empty():
    """<eos> first is the likeliest caption of an undertrained model; both decoders give the likeliest
    caption with a word instead (the empty one was written as "caption": ""), and never a <pad>, <bos> or
    <unk> (here the likeliest word after <eos>: a vocabulary's minimum count made it so)."""
    table = torch.full((6, 6), 1e-9)
    table[1, 2], table[1, 3], table[1, 4], table[1, 5] = 0.6, 0.2, 0.15, 0.05  # <eos>, <unk>, "a", "b"
    table[4, 2] = table[5, 2] = table[2, 2] = table[3, 2] = 1.0
    model = _Table(table / table.sum(1, keepdim=True))
    feats = torch.zeros(2, 1, 1)
    assert [h.tokens for h in greedy_decode(model, feats, bos=1, eos=2, max_len=5)] == [[4], [4]]
    n_best = beam_search(model, feats, bos=1, eos=2, beam=3, max_len=5, n_best=3)
    assert [[h.tokens for h in hyps][:2] for hyps in n_best] == [[[4], [5]]] * 2
    assert not {0, 1, 3} & {t for hyps in n_best for h in hyps for t in h.tokens}  # never <pad>, <bos> or <unk>


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny captioner trained on synthetic clips, and its data."""
    root = tmp_path_factory.mktemp("cap")
    data = make_dataset(root / "data", num_videos=40, seed=3, width=96, height=72, num_frames=16, fps=8.0)
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=64, workers=0, progress=False)
    trainer = TrainConfig(max_epochs=12, lr=3e-3, patience=0)
    model = ModelConfig("attention", {"cell": "gru", "hidden": 64, "embed": 32, "dropout": 0.1})
    result = train_model("caption", DataConfig(data["videos_dir"], data["captions"], cache_dir=str(root / "cache")),
                         extract, model, trainer, out_dir=str(root / "run"), batch_size=16, test_beam=5)
    return root, data, result


def test_tiny_captioner_learns(trained):
    root, data, result = trained
    history = result["history"]
    assert len(history) == 12 and history[-1]["train_loss"] < history[0]["train_loss"]
    # after one epoch the model writes little of use; training lifts CIDEr-D far above that
    assert result["best"]["CIDEr-D"] > 0.5 and result["best"]["CIDEr-D"] > 3 * max(history[0]["CIDEr-D"], 0.05)
    assert "test" in result and set(result["test"]) == TEST_METRICS  # as evaluate scores, METEOR aside
    metrics = json.loads((root / "run/metrics.json").read_text())
    assert metrics["best_epoch"] == result["best_epoch"] and (root / "run/curves.png").stat().st_size > 1000
    assert metrics["test_beam"] == 5 and metrics["test"] == result["test"]
    # which tokens scored them, and why not the COCO evaluation's jar where it did not run, as evaluate says
    jar = java_problem() is None
    assert metrics["tokenizer"] == (PTB_JAR if jar else PTB_NLTK) and (metrics["tokenizer_note"] is None) == jar


def test_the_test_score_decodes_with_the_beam_the_caption_app_uses(trained):
    """The held-out score in metrics.json is the best checkpoint's, decoded with beam search (width 5)."""
    root, data, result = trained
    ckpt = load_checkpoint(root / "run/checkpoints/best.pt", task="caption")
    model, vocab = build_model(ckpt), Vocab.from_dict(ckpt["vocab"])
    refs = load_captions(data["captions"]).subset("test")
    ids = sorted(refs.captions)
    feats, _ = cached_features(data["videos_dir"], [f"{refs.paths[v]}" for v in ids], cache_root=str(root / "cache"),
                               encoder_spec=ckpt["encoder"], sampling=Sampling(**ckpt["sampling"]), size=ckpt["size"],
                               encoder=FrameEncoder(**ckpt["encoder"]), workers=0, progress=False)
    test = CaptionSamples(ids, torch.from_numpy(np.stack([feats[refs.paths[v]] for v in ids])), refs.captions)
    task = CaptionTask(vocab, test, test, beam=5, exact_tokens=True, every_metric=True)
    assert result["test"] == task.evaluate(model)


def test_a_vocabulary_that_keeps_no_word_is_an_error(trained, tmp_path, caplog):
    """data.min_count above every word's count would train a model that writes only <unk>: one line instead
    (and a warning where most words are lost)."""
    root, data, _ = trained
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=64, workers=0, progress=False)
    model = ModelConfig("s2vt", {"cell": "gru", "hidden": 8, "embed": 8})
    with pytest.raises(ValueError, match=r"no word occurs data.min_count=100000 times in the \d+ training captions"):
        train_model("caption", DataConfig(data["videos_dir"], data["captions"], cache_dir=str(root / "cache"),
                                          min_count=100000), extract, model, TrainConfig(max_epochs=1),
                    out_dir=str(tmp_path / "none"))
    assert not (tmp_path / "none" / "checkpoints").exists()
    # only the most frequent words ("a", "moves", ...) occur 40 times: most words become <unk>
    train_model("caption", DataConfig(data["videos_dir"], data["captions"], cache_dir=str(root / "cache"),
                                      min_count=40), extract, model, TrainConfig(max_epochs=1),
                out_dir=str(tmp_path / "rare"))
    assert any("become <unk>" in r.getMessage() for r in caplog.records)


def test_training_resumes_from_last_checkpoint(trained, tmp_path):
    root, data, _ = trained
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=64, workers=0, progress=False)
    model = ModelConfig("s2vt", {"cell": "lstm", "hidden": 32, "embed": 16})
    args = (DataConfig(data["videos_dir"], data["captions"], cache_dir=str(root / "cache")), extract, model)
    first = train_model("caption", *args, TrainConfig(max_epochs=2, patience=0), out_dir=str(tmp_path))
    second = train_model("caption", *args, TrainConfig(max_epochs=4, patience=0), out_dir=str(tmp_path))
    assert [r["epoch"] for r in second["history"]] == [1, 2, 3, 4]
    assert second["history"][:2] == first["history"]


def _tiny_caption_fit(out_dir, max_epochs: int, stop_after: int | None = None) -> list[dict]:
    """A captioner with dropout trained by the real loop on random features; ``stop_after``: Ctrl-C in the
    epoch after that one. The history of the epochs run."""
    torch.manual_seed(0)
    words = ["a red circle moves left", "two people walk", "a blue square moves up", "nobody walks"]
    refs = {f"v{i}": [words[i % 4], words[(i + 1) % 4]] for i in range(12)}
    samples = CaptionSamples(list(refs), torch.randn(12, 4, 32), refs)
    vocab = Vocab.build((c for cs in refs.values() for c in cs), 1)
    model = build_captioner("attention", 32, len(vocab), hidden=32, embed=16, dropout=0.5)
    model.features.set_stats(samples.feats)
    task = CaptionTask(vocab, samples, samples, batch_size=8, max_len=8, scheduled_sampling=0.5)

    def batches(epoch):
        if stop_after is not None and epoch > stop_after:
            raise KeyboardInterrupt
        yield from task.batches(epoch)

    cfg = TrainConfig(max_epochs=max_epochs, monitor=task.monitor, mode=task.mode, patience=0)
    try:
        return fit(model, batches, task.step, task.evaluate, cfg=cfg, out_dir=out_dir, device=torch.device("cpu"))[
            "history"]
    except KeyboardInterrupt:
        return []


def test_a_resumed_run_trains_as_the_run_that_was_never_stopped(tmp_path):
    """last.pt keeps the random generators' state, so dropout and scheduled sampling go on where they were:
    stopped after epoch 2 and resumed, the run's history equals the uninterrupted run's (before, the resumed
    epochs drew the masks of epoch 1 again)."""
    whole = _tiny_caption_fit(tmp_path / "whole", 4)
    _tiny_caption_fit(tmp_path / "stopped", 4, stop_after=2)
    resumed = _tiny_caption_fit(tmp_path / "stopped", 4)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed] == strip


def test_training_longer_stretches_the_cosine_schedule(tmp_path):
    """trainer.max_epochs raised on a finished run: the cosine schedule ends at the new last epoch instead of
    climbing back up after the old one."""
    first = _tiny_caption_fit(tmp_path, 2)
    longer = _tiny_caption_fit(tmp_path, 5)
    lr = [row["lr"] for row in longer]
    low, high = lr[4], TrainConfig().lr  # the schedule's floor and start
    assert longer[:2] == first and lr[2] > lr[3] > lr[4] and low == pytest.approx(first[-1]["lr"])
    assert lr[2] == pytest.approx(low + (high - low) * (1 + np.cos(np.pi * 3 / 5)) / 2)


def test_caption_pipeline_formats_parse_back(trained, tmp_path):
    root, data, _ = trained
    videos, ckpt = data["videos_dir"], str(root / "run/checkpoints/best.pt")
    common = [f"input_dir={videos}", f"checkpoint={ckpt}", "quiet=true", "video.workers=0", "sheets=false",
              "report=false"]  # (pictures: test_pictures.py)
    res = run_job("caption", *common, f"output={tmp_path}/c.json", "decode.n_best=3",
                  f"references={data['captions']}", "meteor=false")
    assert res.returncode == 0, res.stderr
    assert f"-> {tmp_path}/c_metrics.json" in res.stdout  # scored against the references given
    scored = json.loads((tmp_path / "c_metrics.json").read_text())
    rows = json.loads((tmp_path / "c.json").read_text())
    assert len(rows) == 40 and all(len(r["n_best"]) == 3 and r["caption"] == r["n_best"][0]["caption"] for r in rows)
    assert all(r["n_best"][0]["score"] >= r["n_best"][1]["score"] for r in rows)
    with pytest.raises(ValueError, match=re.escape("decode.n_best=3 needs decode.beam >= 3 (a beam of 2 keeps 2 "
                                                   "captions)")):  # 2 captions where 3 were asked for: no
        caption_folder(videos, ckpt, str(tmp_path / "more.json"), n_best=3, beam=2)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}/wrong.txt: caption output must end in .json, .csv, "
                                                   ".srt, .vtt (not .txt)")):  # before any video is read
        caption_folder(videos, ckpt, str(tmp_path / "wrong.txt"))
    assert not (tmp_path / "more_records").exists() and not (tmp_path / "wrong_records").exists()
    other = tmp_path / "other_refs.csv"
    other.write_text("video_id,caption\nsomeone_else,a cat sits\n")
    res = run_job("caption", *common, f"output={tmp_path}/c.csv", "decode.beam=1", f"references={other}")
    assert f"caption: warning: {other} has references for none of these videos" in res.stdout
    assert res.returncode == 0 and len(read_captions(tmp_path / "c.csv")) == 40
    one = tmp_path / "one"
    one.mkdir()
    (one / "clip.mp4").symlink_to(Path(videos) / "part0/vid0000.mp4")
    def timed(suffix: str, *more: str, name: str = "t") -> str:
        res = run_job("caption", f"input_dir={one}", f"checkpoint={ckpt}", f"output={tmp_path}/{name}{suffix}",
                      "window.window_s=0.5", "window.stride_s=0.5", "quiet=true", "video.workers=0", *more)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def check(path: Path) -> None:
        segments = read_timed_captions(path)
        assert len(segments) == 4 and segments[0][0] == 0.0 and segments[-1][1] == pytest.approx(2.0)
        assert all(a < b for a, b, _ in segments) and all(text for _, _, text in segments)

    timed(".srt")
    check(tmp_path / "t.srt")
    (one / "other.mp4").symlink_to(sorted(Path(videos).rglob("*.mp4"))[-1])  # two videos: a file each, in a folder
    out = timed(".VTT")  # the extension in any case
    assert f"caption: 1 video done, 1 already done, 0 failed -> {tmp_path}/t/ (a .VTT file per video)" in out
    for name in ("clip", "other"):
        check(tmp_path / f"t/{name}.VTT")
    out = timed(".vtt", "shard.index=1", "shard.count=2", name="s")  # a shard of one video: a file each, in a folder
    assert f"caption: 1 video done, 0 already done, 0 failed -> {tmp_path}/s/ (a .vtt file per video)" in out
    check(tmp_path / "s/other.vtt")
    with pytest.raises(ValueError, match=re.escape("decode.n_best=3: a .srt file holds one caption per window; "
                                                   "n-best captions go into .json or .csv")):
        caption_folder(str(one), ckpt, str(tmp_path / "n.srt"), n_best=3)
    res = run_job("evaluate", f"predictions={tmp_path}/c.json", f"annotations={data['captions']}",
                  f"output={tmp_path}/m.json", "meteor=false")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["videos"] == 40 and 0 < metrics["corpus"]["BLEU-4"] <= 1 and metrics["corpus"]["METEOR"] is None
    assert all(scored["corpus"][k] == metrics["corpus"][k] for k in ("BLEU-4", "CIDEr-D"))  # as evaluate scores


def test_one_video_file_is_captioned_as_the_folder_that_holds_it(trained, tmp_path):
    """input_dir may name one video: its captions, timed captions and contact sheet are those of a folder
    holding only that video."""
    root, data, _ = trained
    ckpt = str(root / "run/checkpoints/best.pt")
    video = Path(data["videos_dir"]) / "part0/vid0000.mp4"
    one = tmp_path / "one"
    one.mkdir()
    (one / video.name).symlink_to(video)
    file, folder = tmp_path / "file", tmp_path / "folder"
    for output, extra in (("c.json", []), ("t.srt", ["window.window_s=0.5", "window.stride_s=0.5"])):
        res = run_job("caption", f"input_dir={video}", f"checkpoint={ckpt}", f"output={file / output}",
                      "quiet=true", "video.workers=0", *extra)
        assert res.returncode == 0, res.stderr
        assert "caption: 1 video done, 0 already done, 0 failed" in res.stdout
        window = {"window_s": 0.5, "stride_s": 0.5} if extra else {}
        assert caption_folder(str(one), ckpt, str(folder / output), progress=False, **window).done == ["vid0000"]
    assert json.loads((file / "c.json").read_text()) == json.loads((folder / "c.json").read_text())
    assert read_timed_captions(file / "t.srt") == read_timed_captions(folder / "t.srt")
    assert len(read_timed_captions(file / "t.srt")) == 4
    assert (file / "sheets/vid0000.png").stat().st_size > 0
    again = caption_folder(str(video), ckpt, str(file / "c.json"), progress=False)
    assert again.done == [] and again.skipped == 1  # resumes like a folder


def test_a_caption_output_inside_its_input_folder_is_not_read_back(trained, tmp_path):
    """Annotated videos and contact sheets written inside the input folder are no input: a rerun finds the
    same videos, all done."""
    from vidrnn.pictures import Pictures
    from vidrnn.predict import caption_folder
    root, data, _ = trained
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").symlink_to(Path(data["videos_dir"]) / "part0/vid0000.mp4")
    for _ in range(2):
        summary = caption_folder(str(videos), str(root / "run/checkpoints/best.pt"), str(videos / "c.json"),
                                 workers=0, progress=False, pictures=Pictures(videos, render=True))
    assert (videos / "rendered/clip.mp4").is_file()
    assert summary.done == [] and summary.skipped == 1
    assert [r["video_id"] for r in json.loads((videos / "c.json").read_text())] == ["clip"]


def test_checkpoints_are_checked(trained, tmp_path):
    root, _, _ = trained
    with pytest.raises(CheckpointError, match="a caption checkpoint, but this pipeline needs a count"):
        load_checkpoint(root / "run/checkpoints/best.pt", task="count")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"task": "caption", "model": Evil()}))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    res = run_pipeline("caption", f"input_dir={root}/data/videos", f"checkpoint={evil}", f"output={tmp_path}/x.json")
    assert res.returncode == 1 and "refused" in res.stderr and "Traceback" not in res.stderr
    video = next((root / "data/videos").rglob("*.mp4"))  # a video given as the checkpoint: not "refused"
    with pytest.raises(CheckpointError, match=f"^{video}: not a checkpoint file "):
        load_checkpoint(video)


def test_a_checkpoint_whose_encoder_weights_file_was_moved_says_so(trained, tmp_path):
    """A model trained on the features of a local weights file cannot caption without that file: the
    caption app says which file, for the checkpoint's encoder, in one line."""
    root, _, _ = trained
    ckpt = load_checkpoint(root / "run/checkpoints/best.pt")
    ckpt["encoder"] = {**ckpt["encoder"], "weights": str(tmp_path / "gone" / "resnet18.pth")}
    torch.save(ckpt, tmp_path / "moved.pt")
    res = run_pipeline("caption", f"input_dir={root}/data/videos", f"checkpoint={tmp_path}/moved.pt",
                       f"output={tmp_path}/c.json")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "error: the checkpoint's frame encoder (its model reads that encoder's features): encoder weights file "
        f"{tmp_path}/gone/resnet18.pth does not exist")


def test_many_annotated_videos_without_files_are_counted_not_listed(caplog):
    """Part of MSR-VTT downloaded: five videos by name, then one line for the rest."""
    from vidrnn.train.run import _warn_missing

    _warn_missing({f"video{k}": "no file" for k in range(7000)}, "/data/msrvtt")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:5] == [f"annotated video video{k} skipped: no file" for k in range(5)]
    assert lines[5:] == ["... and 6995 more annotated videos skipped (7000 in all have no single file under "
                         "/data/msrvtt)"]


@pytest.mark.parametrize("named", ["clip", "vid"])
def test_msvd_trains_and_scores_on_its_standard_split(trained, tmp_path, caplog, named):
    """MSVD as downloaded: clips named VideoID_Start_End (or, in some copies, renamed vid<N> as
    youtube_mapping.txt numbers them), the corpus CSV (no splits) and youtube_mapping.txt: with
    data.splits / splits= the standard split trains, validates and tests as papers do."""
    from vidrnn.evaluate import evaluate_captions

    root, data, _ = trained
    refs = load_captions(data["captions"]).captions
    videos = sorted(Path(data["videos_dir"]).rglob("*.mp4"))[:8]
    clips, rows, mapping = tmp_path / "YouTubeClips", [], []
    clips.mkdir()
    for k, video in enumerate(videos):
        clip, number = f"yt{k}-x_{k}_{k + 5}", (1, 2, 3, 4, 5, 1250, 1301, 1970)[k]
        (clips / f"{clip if named == 'clip' else f'vid{number}'}.mp4").symlink_to(video)
        rows += [f"yt{k}-x,{k},{k + 5},{w},clean,10,English,\"{c}\"" for w, c in enumerate(refs[video.stem])]
        mapping.append(f"{clip} vid{number}")
    corpus = tmp_path / "MSR Video Description Corpus.csv"
    corpus.write_text("VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n" + "\n".join(rows))
    splits = tmp_path / "youtube_mapping.txt"
    splits.write_text("\n".join(mapping) + "\n")
    extract = ExtractConfig(encoder=ENCODER, sampling=Sampling(num_frames=6), size=64, workers=0, progress=False)
    model = ModelConfig("attention", {"cell": "gru", "hidden": 32, "embed": 16, "dropout": 0.0})
    msvd = DataConfig(str(clips), str(corpus), splits=str(splits), cache_dir=str(root / "cache"))
    caplog.set_level("INFO", logger="vidrnn.train")
    result = train_model("caption", msvd, extract, model, TrainConfig(max_epochs=2, patience=0),
                         out_dir=str(tmp_path / "run"), batch_size=8, test_beam=5)
    assert result["epochs_run"] == 2 and set(result["test"]) == TEST_METRICS
    assert "videos: {'train': 5, 'val': 1, 'test': 2}" in caplog.messages
    assert "captions: {'train': 20, 'val': 4, 'test': 8}" in caplog.messages
    splits_json = json.loads((tmp_path / "run/splits.json").read_text())
    assert splits_json["test"] == ["yt6-x_6_11", "yt7-x_7_12"] and len(splits_json["train"]) == 5
    res = run_pipeline("caption", f"input_dir={clips}", f"checkpoint={tmp_path}/run/checkpoints/best.pt",
                       f"output={tmp_path}/c.json", "quiet=true", "sheets=false", "report=false")
    assert res.returncode == 0, res.stderr
    scored = evaluate_captions(str(tmp_path / "c.json"), str(corpus), split="test", splits=str(splits), meteor=False)
    assert scored["videos"] == 2 and sorted(scored["per_video"]) == ["yt6-x_6_11", "yt7-x_7_12"]
    for name, value in result["test"].items():
        assert scored["corpus"][name] == pytest.approx(value, abs=1e-9), name


def test_caption_json_is_read_by_the_coco_caption_evaluation(trained, tmp_path):
    """captions.json is a COCO results file: pycocotools' loadRes reads it against a COCO ground truth of the
    references, and the COCO caption evaluation's steps on it (its PTBTokenizer, then its scorers) give
    evaluate's BLEU, ROUGE-L and CIDEr-D."""
    pytest.importorskip("pycocotools")
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocotools.coco import COCO

    from vidrnn.evaluate import evaluate_captions

    root, data, _ = trained
    res = run_pipeline("caption", f"input_dir={data['videos_dir']}", f"checkpoint={root}/run/checkpoints/best.pt",
                       f"output={tmp_path}/c.json", "quiet=true", "sheets=false", "report=false")
    assert res.returncode == 0, res.stderr
    every = load_captions(data["captions"])
    truth = {"images": [{"id": v} for v in every.captions], "type": "captions", "info": {}, "licenses": [],
             "annotations": [{"image_id": v, "id": k, "caption": c}
                             for k, (v, c) in enumerate((v, c) for v, cs in every.captions.items() for c in cs)]}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    coco = COCO(str(tmp_path / "truth.json"))
    results = coco.loadRes(str(tmp_path / "c.json"))
    test = list(every.subset("test").captions)
    gts = PTBTokenizer().tokenize({v: coco.imgToAnns[v] for v in test})
    hyps = PTBTokenizer().tokenize({v: results.imgToAnns[v] for v in test})
    bleus, _ = Bleu(4).compute_score(gts, hyps, verbose=0)
    expected = {"BLEU-4": bleus[3], "ROUGE-L": Rouge().compute_score(gts, hyps)[0],
                "CIDEr-D": Cider().compute_score(gts, hyps)[0]}
    ours = evaluate_captions(str(tmp_path / "c.json"), data["captions"], split="test", meteor=False)["corpus"]
    assert {k: ours[k] for k in expected} == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("suffix", [".srt", ".vtt"])
def test_timed_captions_never_show_two_cues_at_once(tmp_path, suffix):
    """Overlapping windows (the last one pulled back to end with the video, or stride_s < window_s): each cue
    ends where the next starts."""
    from vidrnn.outputs import write_timed_captions

    windows = [(0.0, 5.0, "a"), (5.0, 10.0, "b"), (9.5, 14.5, "c"), (12.0, 17.0, "d")]
    write_timed_captions(tmp_path / f"t{suffix}", windows)
    assert read_timed_captions(tmp_path / f"t{suffix}") == [(0.0, 5.0, "a"), (5.0, 9.5, "b"), (9.5, 12.0, "c"),
                                                             (12.0, 17.0, "d")]


def test_caption_references_are_matched_as_evaluate_matches_them(trained, tmp_path):
    """`caption references=FILE` matches ids as `evaluate` does (here annotation ids that are file names,
    clip.mp4, against the run's stems), and says its score covers every split; a later run into the same
    folder whose videos have no references warns (before: it scored the folder's earlier videos and failed)."""
    root, data, _ = trained
    first, second = tmp_path / "first", tmp_path / "second"
    files = {p.stem: p for p in Path(data["videos_dir"]).rglob("vid000[0-2].*")}
    for folder, stem in ((first, "vid0000"), (first, "vid0001"), (second, "vid0002")):
        folder.mkdir(exist_ok=True)
        (folder / files[stem].name).symlink_to(files[stem])
    refs = tmp_path / "refs.csv"
    refs.write_text(f"video_id,caption\n{files['vid0000'].name},a red circle moves left\n"
                    f"{files['vid0001'].name},a green square moves up\n")

    def run(folder: Path) -> str:
        res = run_job("caption", f"input_dir={folder}", f"checkpoint={root}/run", f"references={refs}",
                      f"output={tmp_path}/out/{folder.name}.json", "quiet=true", "video.workers=0", "report=false",
                      "meteor=false")
        assert res.returncode == 0
        return res.stdout

    said = run(first)
    assert "caption: 2 with references, whatever their split (evaluate split=test scores one): BLEU-1" in said
    assert json.loads((tmp_path / "out/first_metrics.json").read_text())["videos"] == 2
    notes = [json.loads(line) for line in (tmp_path / "out/videos.jsonl").read_text().splitlines()]
    assert {n["video_id"]: n.get("references") for n in notes} == {"vid0000": ["a red circle moves left"],
                                                                  "vid0001": ["a green square moves up"]}
    assert f"caption: warning: {refs} has references for none of these videos" in run(second)
