"""Caption metrics against pycocoevalcap's scorers, METEOR backends, tokenisation, and count errors."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import nltk.corpus
import numpy as np
import pytest
from conftest import pipeline_env, run_pipeline

from vidrnn.metrics import (CAPTION_METRICS, METEOR_JAR, METEOR_NLTK, PTB_JAR, PTB_NLTK, coco_tokens, count_errors,
                            mean_predictor_errors, meteor, score_captions, tokenize)

REFERENCES = {
    "guitar": ["A man is playing a guitar.", "A man plays the guitar on stage.",
               "Someone is playing an acoustic guitar."],
    "tomato": ["A woman is slicing a tomato.", "A woman cuts tomatoes in the kitchen.",
               "Someone slices a red tomato with a knife.", "A lady is cutting vegetables."],
    "dogs": ["Two dogs are running in the park.", "Dogs run on the grass.", "Two puppies play outside.",
             "A pair of dogs chase each other across a field.", "The dogs are running around."],
    "bike": ["A boy is riding a bike.", "A child rides a bicycle down the street."],
    "pancake": ["A chef doesn't burn the pancakes.", "A cook flips a pancake in a pan.", "Someone is making pancakes."],
    "dance": ["People are dancing at a party.", "A group of people dance.", "Men and women dance together in a hall."],
}
HYPOTHESES = {
    "guitar": "A man is playing a guitar.",  # perfect match
    "tomato": "A woman is cutting an onion.",  # partial
    "dogs": "dog dog dog running running",  # repeated words
    "bike": "A boy.",  # very short
    "pancake": "Someone is making pancakes in a pan, and the chef doesn't burn them!",  # longer than references
    "dance": "A group of people are dancing at a party in a hall.",
}
DEGENERATE = {"guitar": "...", "tomato": "tomato", "dogs": "the the the the the the the the"}


def _pycoco_scores(hypotheses: dict[str, str]) -> dict:
    """pycocoevalcap's BLEU-1..4, ROUGE-L and CIDEr (corpus, per-video list) on our tokenisation."""
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {v: [" ".join(tokenize(r)) for r in REFERENCES[v]] for v in hypotheses}
    res = {v: [" ".join(tokenize(h))] for v, h in hypotheses.items()}
    bleus, bleu_videos = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{k + 1}": (bleus[k], bleu_videos[k]) for k in range(4)}
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)
    scores["CIDEr-D"] = Cider().compute_score(gts, res)
    return scores


SUBSET = {v: HYPOTHESES[v] for v in ("tomato", "dogs", "dance")}  # CIDEr-D's document frequencies change


@pytest.mark.parametrize("hypotheses", [HYPOTHESES, SUBSET, DEGENERATE], ids=["all", "subset", "degenerate"])
def test_scores_equal_pycocoevalcap(hypotheses):
    expected = _pycoco_scores(hypotheses)
    result = score_captions(REFERENCES, hypotheses, meteor=False)

    assert list(result["per_video"]) == list(hypotheses)  # only videos with a hypothesis are scored
    assert set(result["corpus"]) == set(CAPTION_METRICS)
    for name, (corpus, per_video) in expected.items():
        assert result["corpus"][name] == pytest.approx(corpus, abs=1e-6), name
        ours = [result["per_video"][v][name] for v in hypotheses]
        np.testing.assert_allclose(ours, per_video, atol=1e-6, rtol=0, err_msg=name)
    assert result["corpus"]["METEOR"] is None and result["meteor_backend"] is None
    assert result["meteor_note"] == "METEOR not requested"


def test_perfect_match_and_sanity():
    scores = score_captions(REFERENCES, HYPOTHESES, meteor=False)["per_video"]
    assert scores["guitar"]["BLEU-4"] == pytest.approx(1.0) and scores["guitar"]["ROUGE-L"] == pytest.approx(1.0)
    # "a boy": all unigrams and the bigram match; brevity penalty against the closest reference (6 words)
    assert scores["bike"]["BLEU-1"] == pytest.approx(np.exp(1 - 6 / 2)) == scores["bike"]["BLEU-2"]
    assert max(scores, key=lambda v: scores[v]["CIDEr-D"]) == "guitar"


def test_hypothesis_without_references_is_named():
    with pytest.raises(ValueError, match="ghost"):
        score_captions(REFERENCES, {"guitar": "a man", "ghost": "a ghost"}, meteor=False)


def test_meteor_jar_equals_pycocoevalcap(monkeypatch):
    """Our METEOR runs pycocoevalcap's jar wrapper; one JVM serves both sides (each start takes ~5 s)."""
    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    import pycocoevalcap.meteor.meteor as meteor_module

    jar = meteor_module.Meteor()
    monkeypatch.setattr(meteor_module, "Meteor", lambda: jar)
    gts = {v: [" ".join(tokenize(r)) for r in REFERENCES[v]] for v in HYPOTHESES}
    res = {v: [" ".join(tokenize(h))] for v, h in HYPOTHESES.items()}
    corpus, per_video = jar.compute_score(gts, res)

    result = score_captions(REFERENCES, HYPOTHESES)
    assert result["meteor_backend"] == METEOR_JAR and result["meteor_note"] is None
    assert result["corpus"]["METEOR"] == pytest.approx(corpus, abs=1e-6)
    np.testing.assert_allclose([result["per_video"][v]["METEOR"] for v in HYPOTHESES], per_video, atol=1e-6, rtol=0)
    assert result["per_video"]["guitar"]["METEOR"] == pytest.approx(1.0, abs=1e-6)


class _MissingWordNet:
    def ensure_loaded(self):
        raise LookupError("Resource wordnet not found.")


class _NoSynonymWordNet:
    def ensure_loaded(self):
        pass

    def synsets(self, word, *args, **kwargs):
        return []


@pytest.mark.parametrize("wordnet", [_MissingWordNet(), _NoSynonymWordNet()], ids=["no-wordnet", "wordnet"])
def test_meteor_without_java_never_claims_the_jar(monkeypatch, wordnet):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    monkeypatch.setattr(nltk.corpus, "wordnet", wordnet)
    refs = {v: [" ".join(tokenize(r)) for r in REFERENCES[v]] for v in HYPOTHESES}
    hyps = {v: " ".join(tokenize(h)) for v, h in HYPOTHESES.items()}

    result = meteor(refs, hyps)
    assert result.backend != METEOR_JAR
    assert "java is not on PATH" in result.note
    if isinstance(wordnet, _MissingWordNet):
        assert result.backend is None and result.corpus is None and result.per_video is None
        assert "WordNet" in result.note
        scores = score_captions(REFERENCES, HYPOTHESES)
        assert scores["corpus"]["METEOR"] is None and scores["per_video"]["guitar"]["METEOR"] is None
        assert scores["meteor_backend"] is None and "WordNet" in scores["meteor_note"]
        assert scores["tokenizer"] == PTB_NLTK and "java is not on PATH" in scores["tokenizer_note"]
    else:
        assert result.backend == METEOR_NLTK and "not comparable" in result.note
        assert result.corpus == pytest.approx(np.mean(result.per_video))
        assert all(0.0 <= s <= 1.0 for s in result.per_video)
        assert result.per_video[0] == max(result.per_video)  # the perfect match scores highest


def test_a_java_that_starts_but_fails_on_the_jars_falls_back_and_never_hangs(tmp_path):
    """A java that answers ``-version`` but dies running a jar (a broken runtime, a heap it cannot get):
    tokens and METEOR fall back with a note that says so, and nothing waits on the dead process
    (pycocoevalcap's METEOR wrapper kept its lock on the error and waited for it when collected)."""
    pytest.importorskip("pycocoevalcap")
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\ncase "$*" in *-version*) exit 0;; esac\necho "Error: broken runtime" >&2\nexit 1\n')
    fake.chmod(0o755)
    code = ("from vidrnn.metrics import score_captions\n"
            "r = score_captions({'a': ['a dog runs']}, {'a': 'a dog'})\n"
            "print(r['tokenizer'], r['tokenizer_note'], r['meteor_backend'], r['meteor_note'], sep='\\n')")
    env = {**pipeline_env(), "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    tokenizer, tokenizer_note, backend, meteor_note = res.stdout.splitlines()
    assert tokenizer == PTB_NLTK and "status 1: Error: broken runtime" in tokenizer_note
    assert backend != METEOR_JAR and "the METEOR 1.5 jar failed" in meteor_note


def test_tokenize():
    assert tokenize("A Man, RIDING a horse!") == ["a", "man", "riding", "a", "horse"]
    assert tokenize("Don't stop; it's \"fun\"...") == ["do", "n't", "stop", "it", "'s", "fun"]
    assert tokenize("a man. a dog - running: fast?") == ["a", "man", "a", "dog", "running", "fast"]
    assert tokenize(" . ") == []
    assert tokenize("It\u2019s a caf\u00e9 \u2014 10\u201315 people\u2026") == [  # curly quote, dashes, ellipsis
        "it", "'s", "a", "caf\u00e9", "10", "15", "people"]
    assert tokenize("a dog \U0001F600 runs") == ["a", "dog", "runs"]  # as the jar, which drops emoji


def test_tokenize_matches_coco_ptb_tokenizer():
    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = [c for refs in REFERENCES.values() for c in refs] + list(HYPOTHESES.values()) + [
        "Don't stop: the dog's ball (red) is here!", "A woman slices a tomato... then, she cooks it.",
        "Two men -- one tall - walk.", 'She said "hello" to him.', "a man. a dog. a cat", "It's 3.5 meters; can't see?",
        "The U.S. flag waves", "I cannot believe it isn't butter", "he won't go, i'm sure", "it costs $5 & 10%",
        "a dog \U0001F600 runs \U0001F436"]  # emoji: the jar drops them as untokenizable
    ptb = PTBTokenizer().tokenize({str(i): [{"caption": c}] for i, c in enumerate(captions)})
    assert [" ".join(tokenize(c)) for c in captions] == [ptb[str(i)][0] for i in range(len(captions))]


# Captions where nltk's Treebank rules and Stanford's PTBTokenizer part ways (curly quotes, abbreviations,
# runs of punctuation, unicode dashes and ellipses, emoji): web-sourced references hold such text.
HARD_REFERENCES = {
    "cafe": ["It’s a café — people drink coffee…", "Mr. Smith orders a latte at 3 p.m.",
             "a man says “hello!!!” to the waiter", "people sit, talk, etc.."],
    "race": ["cars race around a track vs. the clock", "a car’s wheel spins 😀", "what?! a crash",
             "a #1 driver wins -- rock 'n' roll"],
    # the jar joins "3 1/2" and "(555) 555-1234" with a no-break space: one token for ROUGE-L, two for BLEU
    "pizza": ["a man eats 3 1/2 pizzas", "a man calls (555) 555-1234 for pizza"],
}
HARD_HYPOTHESES = {"cafe": "Mr. Smith says “hello” in a café…", "race": "a car’s race vs. the clock!!!",
                   "pizza": "a man eats 3 pizzas"}


def _ptb_available():
    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")


def test_coco_tokens_are_the_ptbtokenizer_jar_s():
    """coco_tokens gives pycocoevalcap's PTBTokenizer tokens where nltk's rules differ; a line break of any
    kind inside a caption stays inside it (pycocoevalcap's wrapper replaces only newlines)."""
    _ptb_available()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = [c for refs in HARD_REFERENCES.values() for c in refs] + list(HARD_HYPOTHESES.values())
    ptb = PTBTokenizer().tokenize({str(i): [{"caption": c}] for i, c in enumerate(captions)})
    tokens = coco_tokens(captions)
    assert tokens.backend == PTB_JAR and tokens.note is None
    assert tokens.captions == [ptb[str(i)][0] for i in range(len(captions))]
    assert tokens.captions != [" ".join(tokenize(c)) for c in captions]  # the fallback differs here
    assert coco_tokens(["a dog\r\nruns.", "", "A cat\u2028sits", ""]).captions == ["a dog runs", "", "a cat sits", ""]
    fallback = coco_tokens(captions, jar=False)
    assert fallback.backend == PTB_NLTK and fallback.captions == [" ".join(tokenize(c)) for c in captions]


def test_scores_on_hard_captions_equal_the_coco_evaluation():
    """score_captions equals the COCO caption evaluation end to end (its PTBTokenizer, then its scorers)
    on references whose tokens nltk's rules would get wrong."""
    _ptb_available()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = PTBTokenizer().tokenize({v: [{"caption": c} for c in refs] for v, refs in HARD_REFERENCES.items()})
    res = PTBTokenizer().tokenize({v: [{"caption": h}] for v, h in HARD_HYPOTHESES.items()})
    bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {**{f"BLEU-{k + 1}": bleus[k] for k in range(4)}, "ROUGE-L": Rouge().compute_score(gts, res)[0],
                "CIDEr-D": Cider().compute_score(gts, res)[0]}
    result = score_captions(HARD_REFERENCES, HARD_HYPOTHESES, meteor=False)
    assert result["tokenizer"] == PTB_JAR and result["tokenizer_note"] is None
    for name, value in expected.items():
        assert result["corpus"][name] == pytest.approx(value, abs=1e-6), name
    nltk_tokens = score_captions(HARD_REFERENCES, HARD_HYPOTHESES, meteor=False, exact_tokens=False)
    assert nltk_tokens["tokenizer"] == PTB_NLTK and nltk_tokens["corpus"]["BLEU-4"] != result["corpus"]["BLEU-4"]


def test_count_errors_per_clip():
    result = count_errors({"a": 3, "b": 5, "c": 0}, {"a": 4, "b": 2, "c": 0.0})
    assert result["MAE"] == pytest.approx((1 + 3 + 0) / 3)
    assert result["RMSE"] == pytest.approx(np.sqrt((1 + 9 + 0) / 3))
    assert result["per_video"]["b"] == {"MAE": 3.0, "RMSE": 3.0}


def test_count_errors_per_frame():
    truth = {"a": np.array([1, 2, 3]), "b": [0, 0]}
    pred = {"a": np.array([1.0, 4.0, 2.0]), "b": [1, 1]}
    result = count_errors(truth, pred)
    assert result["MAE"] == pytest.approx((0 + 2 + 1 + 1 + 1) / 5)  # over all frames, not per-video means
    assert result["RMSE"] == pytest.approx(np.sqrt((0 + 4 + 1 + 1 + 1) / 5))
    assert result["per_video"]["a"] == pytest.approx({"MAE": 1.0, "RMSE": np.sqrt(5 / 3)})


def test_count_errors_mismatches_are_named():
    with pytest.raises(ValueError, match="'b'.*3 true values but 2"):
        count_errors({"a": [1], "b": [1, 2, 3]}, {"a": [1], "b": [1, 2]})
    with pytest.raises(ValueError, match="'c'"):
        count_errors({"a": 1}, {"a": 1, "c": 2})


def test_mean_predictor_errors():
    result = mean_predictor_errors({"t1": [1, 3], "t2": 2}, {"a": [2, 4], "b": 0})
    assert result["mean"] == pytest.approx(2.0)
    assert result["MAE"] == pytest.approx((0 + 2 + 2) / 3)
    assert result["RMSE"] == pytest.approx(np.sqrt((0 + 4 + 4) / 3))
    assert mean_predictor_errors([1.0, 3.0], {"a": 1})["per_video"]["a"]["MAE"] == pytest.approx(1.0)


def test_a_file_that_is_no_prediction_file_is_named_with_the_layout(tmp_path):
    from vidrnn.evaluate import evaluate_captions, evaluate_counts

    refs, counts = tmp_path / "refs.csv", tmp_path / "counts.csv"
    refs.write_text("video_id,caption\nv1,a cat sits\n")
    counts.write_text("video_id,count\nv1,2\n")
    captions_json = tmp_path / "caps.json"
    captions_json.write_text('[{"video_id": "v1", "caption": "a cat"}]')
    binary = tmp_path / "bin.json"
    binary.write_bytes(bytes(range(128, 256)))
    numbers_json = tmp_path / "numbers.json"
    numbers_json.write_text('{"v1": 3}')
    layout = ('a JSON list of {"video_id" or "image_id", "caption"}, a JSON object of id -> caption, or a CSV with '
              'columns video_id,caption')
    for bad, says in ((counts, f"not a caption prediction file ({layout})"),
                      (numbers_json, f"not a caption prediction file ({layout})"),
                      (binary, f"not UTF-8 text, so not a caption prediction file ({layout})")):
        with pytest.raises(ValueError, match=re.escape(f"{bad}: {says}")):
            evaluate_captions(str(bad), str(refs), meteor=False)
    for bad in (captions_json, refs):
        with pytest.raises(ValueError, match=re.escape(f"{bad}: not a count prediction file (a CSV with columns "
                                                       "video_id,count)")):
            evaluate_counts(str(bad), str(counts))
    assert evaluate_counts(str(counts), str(counts))["videos"] == 1
    assert evaluate_captions(str(captions_json), str(refs), meteor=False)["videos"] == 1


@pytest.mark.parametrize("text", [
    '[{"image_id": "v1", "caption": "a cat sits"}, {"image_id": "v2", "caption": "a dog"}]',  # COCO results
    '{"v1": "a cat sits", "v2": "a dog"}',
    '{"predictions": {"v1": [{"image_id": "v1", "caption": "a cat sits"}, {"caption": "a cat"}], '
    '"v2": [{"caption": "a dog"}]}}',  # best first, as beam-search result files list them
    '{"results": {"v1": [{"sentence": "x", "caption": "a cat sits"}], "v2": [{"caption": "a dog"}]}}',
])
def test_caption_results_of_other_code_score_like_ours(tmp_path, text):
    """evaluate scores the result files other captioning code writes the same as the same captions in ours."""
    from vidrnn.evaluate import evaluate_captions

    refs, ours, theirs = tmp_path / "refs.csv", tmp_path / "ours.json", tmp_path / "theirs.json"
    refs.write_text("video_id,caption\nv1,a cat sits on a mat\nv2,a dog runs\n")
    ours.write_text('[{"video_id": "v1", "caption": "a cat sits"}, {"video_id": "v2", "caption": "a dog"}]')
    theirs.write_text(text)
    expected = evaluate_captions(str(ours), str(refs), meteor=False)
    assert evaluate_captions(str(theirs), str(refs), meteor=False) == expected and expected["videos"] == 2


def test_count_predictions_against_per_frame_labels_score_each_videos_mean_over_its_labelled_frames(tmp_path):
    """Without clip counts, a video's true count is the mean of its labelled frames (frames without a label
    are not zeros)."""
    from vidrnn.evaluate import evaluate_counts

    labels = tmp_path / "frames.csv"
    labels.write_text("video_id,frame,count\na,0,1\na,1,3\na,5,2\nb,0,4\nb,9,0\n")
    preds = tmp_path / "counts.csv"
    preds.write_text("video_id,count\na,2.5\nb,1.0\n")
    result = evaluate_counts(str(preds), str(labels))
    assert result["videos"] == 2 and result["MAE"] == pytest.approx((0.5 + 1.0) / 2)


def test_prediction_ids_that_are_numbers_or_paths_find_their_videos(tmp_path):
    """MSR-VTT results of other code often name video7010 by its number; a path names its last part (its
    file: x/video7011.mp4). A prediction naming no annotated video is listed as unknown (a typo), one of
    another split is not; with no prediction matching, the error shows ids of both sides."""
    from vidrnn.evaluate import evaluate_captions, evaluate_counts

    refs = tmp_path / "refs.csv"
    refs.write_text("video_id,caption,split\nvideo7010,a cat sits,test\nvideo7011,a dog runs,test\n"
                    "video12,a man sings,train\n")
    theirs = tmp_path / "theirs.json"
    theirs.write_text('[{"image_id": 7010, "caption": "a cat sits"}, {"image_id": "x/video7011.mp4", "caption": '
                      '"a dog"}, {"image_id": 12, "caption": "a man"}, {"image_id": "vidoe7012", "caption": "a typo"}]')
    result = evaluate_captions(str(theirs), str(refs), split="test", meteor=False)
    assert result["videos"] == 2 and result["missing"] == [] and result["unknown"] == ["vidoe7012"]
    assert result["per_video"]["video7010"]["BLEU-1"] == pytest.approx(1.0)
    res = run_pipeline("evaluate", f"predictions={theirs}", f"annotations={refs}", "split=test", "meteor=false",
                       f"output={tmp_path}/m.json")
    assert res.returncode == 0, res.stderr
    assert "evaluate: 1 prediction names no annotated video, not scored ('vidoe7012')" in res.stdout
    nothing = tmp_path / "nothing.json"
    nothing.write_text('[{"image_id": "clip_a", "caption": "a cat"}]')
    with pytest.raises(ValueError, match=re.escape(f"{nothing}: no caption prediction names an annotated video "
                                                   "(predictions: 'clip_a'; annotations: 'video7010', 'video7011', "
                                                   "'video12')")):
        evaluate_captions(str(nothing), str(refs), meteor=False)
    counts = tmp_path / "counts.csv"
    counts.write_text("video_id,count,split\nvid0001,2,test\nvid0002,0,test\n")
    predicted = tmp_path / "predicted.csv"
    predicted.write_text("video_id,count\n1,3\nvid0002,0\n")
    assert evaluate_counts(str(predicted), str(counts))["MAE"] == pytest.approx(0.5)


def test_predictions_named_after_the_annotated_files_find_their_videos(tmp_path):
    """The caption app names a video by its file; annotations whose ids are not file names (COCO's numeric
    ids with file_name, MSR-VTT's path) still score those predictions."""
    import json

    from vidrnn.evaluate import evaluate_captions

    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"images": [{"id": 1, "file_name": "clips/beach.mp4", "split": "test"},
                                           {"id": 2, "file_name": "clips/park.mp4", "split": "test"}],
                                "annotations": [{"image_id": 1, "caption": "waves roll in"},
                                                {"image_id": 2, "caption": "a dog runs"}]}))
    ours = tmp_path / "ours.json"
    ours.write_text('[{"video_id": "beach", "caption": "waves roll in"}, '
                    '{"video_id": "clips/park", "caption": "a dog"}]')
    result = evaluate_captions(str(ours), str(refs), split="test", meteor=False)
    assert result["videos"] == 2 and result["unknown"] == [] and result["missing"] == []
    assert result["per_video"]["1"]["BLEU-1"] == pytest.approx(1.0)
    # a file named with its extension (a caption run's id where two files share a stem; other tools' results)
    ours.write_text('[{"video_id": "clips/beach.mp4", "caption": "waves roll in"}, '
                    '{"video_id": "park.mp4", "caption": "a dog"}]')
    result = evaluate_captions(str(ours), str(refs), split="test", meteor=False)
    assert result["videos"] == 2 and result["unknown"] == [] and result["missing"] == []
    # annotation ids that are file names: matched by the caption app's ids (stems, or paths where stems repeat)
    named = tmp_path / "named.csv"
    named.write_text("video_id,caption,split\nbeach.mp4,waves roll in,test\ncamB/park.mkv,a dog runs,test\n")
    ours.write_text('[{"video_id": "beach", "caption": "waves roll in"}, {"video_id": "camB/park", "caption": "a"}]')
    result = evaluate_captions(str(ours), str(named), split="test", meteor=False)
    assert result["videos"] == 2 and result["unknown"] == [] and result["missing"] == []


def test_a_split_that_selects_no_video_is_named(tmp_path):
    """split=test on annotations without splits (VATEX) said that no prediction names an annotated video,
    with the same ids listed on both sides."""
    from vidrnn.evaluate import evaluate_captions, evaluate_counts

    refs = tmp_path / "refs.csv"
    refs.write_text("video_id,caption\nclip_a,a cat sits\n")
    ours = tmp_path / "ours.json"
    ours.write_text('[{"video_id": "clip_a", "caption": "a cat"}, {"video_id": "stray", "caption": "a dog"}]')
    with pytest.raises(ValueError, match=re.escape(f"{refs}: no video is in split 'test' (it gives no splits: "
                                                   "splits=FILE gives them")):
        evaluate_captions(str(ours), str(refs), split="test", meteor=False)
    counts = tmp_path / "counts.csv"
    counts.write_text("video_id,count,split\nclip_a,2,train\nclip_b,1,val\n")
    predicted = tmp_path / "predicted.csv"
    predicted.write_text("video_id,count\nclip_a,3\n")
    with pytest.raises(ValueError, match=re.escape(f"{counts}: no video is in split 'test' (its splits: train, val)")):
        evaluate_counts(str(predicted), str(counts), split="test")


@pytest.mark.parametrize(("name", "text", "says"), [
    ("p.json", '[{"video_id": "v2", "caption": "a dog"}, {"video_id": "v1", "caption": null}]',
     "p.json:[1] (video_id 'v1'): caption is null, not text"),
    ("p.json", '[{"video_id": "v1"}]', "p.json:[0] (video_id 'v1'): missing key 'caption'"),
    ("p.json", '[{"image_id": 7, "caption": ["a", "b"]}]',
     """p.json:[0] (image_id 7): caption is ["a", "b"], not text"""),
    ("p.json", '[{"caption": "a cat"}]', "p.json:[0]: missing key 'video_id' (or 'image_id')"),
    ("p.json", '{"v1": ["a cat", "a dog"]}', """p.json:['v1']: ["a cat", "a dog"] is not a caption"""),
    ("p.json", '{"v1": "a cat",\n "v2": "a dog"', "p.json:2: invalid JSON: Expecting ',' delimiter"),
    ("p.csv", "video_id,caption\nv1,a cat, sitting\n", "p.csv:2: 3 columns, but the header has 2"),
    ("p.csv", "video_id,caption\n,a cat\n", "p.csv:2: empty video_id"),
    ("p.json", "[]", "p.json: no predictions"),
    ("p.csv", "video_id,caption\n", "p.csv: no predictions"),
    ("p.json", "", "p.json: no predictions"),
])
def test_a_wrong_caption_prediction_is_named_with_its_entry(tmp_path, name, text, says):
    """A caption that is no text, or an entry without its id or caption, is one line naming the file and the
    entry (a CSV's line, a JSON list's index and id), not a crash or only the layouts."""
    from vidrnn.evaluate import evaluate_captions

    refs, bad = tmp_path / "refs.csv", tmp_path / name
    refs.write_text("video_id,caption\nv1,a cat sits\nv2,a dog runs\n")
    bad.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / says))}"):
        evaluate_captions(str(bad), str(refs), meteor=False)


@pytest.mark.parametrize(("text", "says"), [
    ("video_id,count\nv1,2\nv2,\n", "p.csv:3 (video_id 'v2'): count '' is not a number"),
    ("video_id,count\nv1,two\n", "p.csv:2 (video_id 'v1'): count 'two' is not a number"),
    ("video_id,count\nv1,nan\n", "p.csv:2 (video_id 'v1'): count 'nan' is not a number"),
    ("video_id,count\nv1,1\nv2,-inf\n", "p.csv:3 (video_id 'v2'): count '-inf' is not a number"),
    ("video_id,count\n", "p.csv: no predictions"),
])
def test_a_wrong_count_prediction_is_named_with_its_line(tmp_path, text, says):
    """An empty count, or one that is no finite number (metrics.json never holds NaN), names its line."""
    from vidrnn.evaluate import evaluate_counts

    truth, bad = tmp_path / "truth.csv", tmp_path / "p.csv"
    truth.write_text("video_id,count\nv1,2\nv2,3\n")
    bad.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / says))}$"):
        evaluate_counts(str(bad), str(truth))


@pytest.mark.parametrize(("name", "text", "says"), [
    ("p.json", '[{"video_id": "v1", "caption": "a"}, {"video_id": "v2", "caption": "b"}, '
               '{"video_id": "v1", "caption": "c"}]', "p.json: video 'v1' is predicted twice ([0] and [2])"),
    ("p.json", '{"v1": "a", "v2": "b", "v1": "c"}', "p.json: key 'v1' is given twice in one JSON object"),
    ("p.csv", "video_id,caption\nv1,a\nv2,b\nv1,c\n", "p.csv: video 'v1' is predicted twice (line 2 and line 4)"),
    ("p.csv", "video_id,rank,caption,score\nv1,1,a,0.1\nv1,1,b,0.2\n",
     "p.csv: video 'v1' is predicted twice (line 2 and line 3)"),
    ("p.json", '[{"video_id": "v1", "caption": "a"}, {"image_id": "clips/v1", "caption": "b"}]',
     "p.json: predictions 'v1' and 'clips/v1' both name video 'v1'"),
])
def test_a_video_predicted_twice_is_an_error(tmp_path, name, text, says):
    """Two predictions for one video (the last used to win unseen) are an error naming the video and both
    places; COCO's evaluation cannot score two captions of one image either."""
    from vidrnn.evaluate import evaluate_captions

    refs, bad = tmp_path / "refs.csv", tmp_path / name
    refs.write_text("video_id,caption\nv1,a cat sits\nv2,a dog runs\n")
    bad.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / says))}"):
        evaluate_captions(str(bad), str(refs), meteor=False)


def test_n_best_captions_score_their_best(tmp_path):
    """The caption app's n-best outputs (CSV: ranked rows per video; JSON: an n_best list) score rank 1."""
    from vidrnn.evaluate import evaluate_captions
    from vidrnn.outputs import write_captions

    refs, ours = tmp_path / "refs.csv", tmp_path / "ours.json"
    refs.write_text("video_id,caption\nv1,a cat sits on a mat\nv2,a dog runs\n")
    ours.write_text('[{"video_id": "v1", "caption": "a cat sits"}, {"video_id": "v2", "caption": "a dog"}]')
    rows = [{"video_id": "v1", "caption": "a cat sits", "score": -1.0,
             "n_best": [{"caption": "a cat sits", "score": -1.0}, {"caption": "a dog", "score": -2.0}]},
            {"video_id": "v2", "caption": "a dog", "score": -1.5,
             "n_best": [{"caption": "a dog", "score": -1.5}, {"caption": "a cat", "score": -3.0}]}]
    expected = evaluate_captions(str(ours), str(refs), meteor=False)
    for name in ("n_best.csv", "n_best.json"):
        write_captions(tmp_path / name, rows)
        assert evaluate_captions(str(tmp_path / name), str(refs), meteor=False) == expected


def test_prediction_csvs_are_read_like_annotation_csvs(tmp_path):
    """A byte-order mark (Excel's UTF-8 CSV) and spaces or capitals in the header, which the annotation
    loaders accept, are accepted in prediction files too; the app counts its videos in good English."""
    from vidrnn.evaluate import evaluate_captions, evaluate_counts

    truth, counts = tmp_path / "truth.csv", tmp_path / "counts.csv"
    truth.write_text("video_id,count\nv1,2\nv2,3\n")
    counts.write_text("\ufeffVideo_ID, count\nv1, 2\n", encoding="utf-8")
    assert evaluate_counts(str(counts), str(truth))["MAE"] == pytest.approx(0.0)
    refs, captions = tmp_path / "refs.csv", tmp_path / "captions.csv"
    refs.write_text("video_id,caption\nv1,a cat sits\n")
    captions.write_text("\ufeffvideo_id, caption\nv1,a cat sits\n", encoding="utf-8")
    assert evaluate_captions(str(captions), str(refs), meteor=False)["videos"] == 1
    res = run_pipeline("evaluate", "task=count", f"predictions={counts}", f"annotations={truth}",
                       f"output={tmp_path}/m.json", f"hydra.run.dir={tmp_path}/logs")
    assert res.returncode == 0, res.stderr
    assert "evaluate: 1 video: MAE 0.0000" in res.stdout
    assert "evaluate: 1 annotated video has no prediction" in res.stdout


def test_blank_references_count_as_the_coco_evaluation_counts_them(tmp_path):
    """A blank reference ("" or spaces) is kept by the COCO evaluation: it counts in CIDEr-D's mean over the
    references and in BLEU's closest length. evaluate scores it alike (it dropped it: CIDEr-D 2.25 against
    pycocoevalcap's 1.63); train does not train on it, and a video whose every caption is blank stays out."""
    _ptb_available()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from vidrnn.data import load_captions
    from vidrnn.evaluate import evaluate_captions

    refs = {"v1": ["a man is running", "", "a person runs fast"], "v2": ["a cat sleeps", "   "],
            "v3": ["a dog barks at a car", "a dog is barking"], "v4": [""]}
    hyps = {"v1": "a man runs", "v2": "a cat is sleeping", "v3": "a dog barks"}
    sentences = [{"video_id": v, "caption": c} for v, captions in refs.items() for c in captions]
    annotations = tmp_path / "refs.json"
    annotations.write_text(json.dumps({"videos": [{"video_id": v, "split": "test"} for v in refs],
                                       "sentences": sentences}))
    predictions = tmp_path / "captions.json"
    predictions.write_text(json.dumps([{"video_id": v, "caption": c} for v, c in hyps.items()]))
    result = evaluate_captions(str(predictions), str(annotations), meteor=False)

    gts = PTBTokenizer().tokenize({v: [{"caption": c} for c in refs[v]] for v in hyps})
    res = PTBTokenizer().tokenize({v: [{"caption": h}] for v, h in hyps.items()})
    bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {**{f"BLEU-{k + 1}": bleus[k] for k in range(4)}, "ROUGE-L": Rouge().compute_score(gts, res)[0],
                "CIDEr-D": Cider().compute_score(gts, res)[0]}
    for name, value in expected.items():
        assert result["corpus"][name] == pytest.approx(value, abs=1e-6), name
    assert result["missing"] == [] and result["videos"] == 3  # v4, with only a blank caption, is left out
    assert load_captions(annotations).captions["v1"] == ["a man is running", "a person runs fast"]  # trained on
