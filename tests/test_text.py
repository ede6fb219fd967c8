"""Tests for vidrnn.text: tokenisation and the vocabulary."""
import pytest
import torch

from vidrnn.text import Vocab, tokenize

CAPTIONS = ["A man is walking.", "a man is running", "A dog, brown, runs!", "the man's dog walks. it is happy"]


def test_tokenize():
    # the COCO evaluation's tokens: punctuation dropped, brackets kept as PTB names (it lowercases first)
    assert tokenize('A man, (in red) is "walking" -- isn\'t he? Yes... [really]') == [
        "a", "man", "-lrb-", "in", "red", "-rrb-", "is", "walking", "is", "n't", "he", "yes", "-lsb-", "really",
        "-rsb-"]
    assert tokenize("Two people dance. A dog barks!  It is 3.5 m away.") == [
        "two", "people", "dance", "a", "dog", "barks", "it", "is", "3.5", "m", "away"]
    assert tokenize("  ") == []


def test_build_order_and_specials():
    vocab = Vocab.build(CAPTIONS)
    assert vocab.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    # a, is, man 3 times; dog twice; then the words seen once, alphabetically
    assert vocab.tokens[4:10] == ["a", "is", "man", "dog", "'s", "brown"]
    assert len(vocab) == len(set(vocab.tokens))
    assert Vocab.build(reversed(CAPTIONS)).tokens == vocab.tokens


def test_encode_decode_round_trip():
    vocab = Vocab.build(CAPTIONS)
    ids = vocab.encode("A man is running!")
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id and vocab.unk_id not in ids
    assert vocab.decode(ids) == "a man is running"
    assert vocab.decode(ids + [vocab.pad_id] * 3) == "a man is running"
    assert vocab.decode(torch.tensor(ids[:-1] + [vocab.eos_id, vocab.encode("dog")[1]])) == "a man is running"


@pytest.mark.parametrize("caption, text", [
    ("The man's dog (brown) can't swim.", "the man's dog (brown) can't swim"),
    ("People aren't happy; I'm sure they'll leave [soon].", "people aren't happy i'm sure they'll leave [soon]"),
    ("A 10-year-old boy's toy costs $5, 50% off: r&d at 5:30 pm!", "a 10-year-old boy's toy costs $5 50% off r & d at "
                                                                   "5:30 pm"),
    ("a woman talks about u.s. politics... \"gonna\" 3 1/2 times",
     "a woman talks about u.s. politics gonna 3 1/2 times"),
])
def test_captions_are_written_as_text_that_gives_their_tokens_back(caption, text):
    """A caption is written for people ("can't", "(brown)"), not as Treebank tokens ("ca n't", "-lrb- brown
    -rrb-"), and scores as its tokens did: tokenising the text gives them back."""
    vocab = Vocab.build([caption])
    assert vocab.decode(vocab.encode(caption)) == text
    assert tokenize(text) == tokenize(caption)


def test_truncation_keeps_eos():
    vocab = Vocab.build(CAPTIONS)
    ids = vocab.encode("a man is running", max_len=4)
    assert len(ids) == 4 and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "a man"
    assert vocab.encode("a man", max_len=10) == vocab.encode("a man")
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode("a man", max_len=1)


def test_min_count_gives_unk():
    vocab = Vocab.build(CAPTIONS, min_count=2)
    assert "running" not in vocab.tokens and "man" in vocab.tokens
    assert vocab.decode(vocab.encode("a man is running")) == "a man is <unk>"


def test_checkpoint_round_trip(tmp_path):
    vocab = Vocab.build(CAPTIONS)
    torch.save({"vocab": vocab.to_dict(), "state": torch.zeros(2)}, tmp_path / "ckpt.pt")
    loaded = Vocab.from_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["vocab"])
    assert loaded.tokens == vocab.tokens
    assert loaded.encode("the dog walks") == vocab.encode("the dog walks")


def test_invalid_token_lists():
    with pytest.raises(ValueError, match="starts with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="once"):
        Vocab(["<pad>", "<bos>", "<eos>", "<unk>", "a", "a"])


def test_tokens_are_remembered_but_each_call_gets_its_own_list():
    first = tokenize("A dog runs.")
    first.append("changed")
    assert tokenize("A dog runs.") == ["a", "dog", "runs"]
