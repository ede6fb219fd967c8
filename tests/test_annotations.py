"""Tests for vidrnn.data.annotations: caption files in their real layouts, splits, errors and file matching."""
import json
import re
import os

import pytest

from vidrnn.data import (AnnotationError, CaptionSet, apply_splits, load_captions, load_splits, match_videos,
                         normalize_split)

MSRVTT = {
    "info": {"contributor": "Microsoft MSM group", "version": "1.0"},
    "videos": [
        {"category": 9, "url": "https://www.youtube.com/watch?v=9lZi22qLlEo", "video_id": "video0",
         "start time": 137.72, "end time": 149.44, "split": "train", "id": 0},
        {"category": 16, "url": "https://www.youtube.com/watch?v=w4JM08PDEng", "video_id": "video1",
         "start time": 184.33, "end time": 206.89, "split": "validate", "id": 1, "path": "part0/video1.avi"},
        {"category": 9, "url": "https://www.youtube.com/watch?v=1lZi22qLlEo", "video_id": "video2",
         "start time": 1.0, "end time": 11.0, "split": "test", "id": 2},
    ],
    "sentences": [
        {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
        {"caption": "a man drives a vintage car", "video_id": "video0", "sen_id": 1},
        {"caption": "a woman is singing", "video_id": "video1", "sen_id": 2},
        {"caption": "people dance on a stage", "video_id": "video2", "sen_id": 3},
        {"caption": "   ", "video_id": "video2", "sen_id": 4},
    ],
}

MSVD = (
    "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
    "mv89psg6zh4,33,46,1,clean,17,English,A bird is bathing in a sink.\n"
    'mv89psg6zh4,33,46,2,unverified,25,English,"A bird, a parakeet, splashes in ""water""."\n'
    "mv89psg6zh4,33,46,3,clean,20,Spanish,Un pájaro se baña.\n"
    "mv89psg6zh4,33,46,4,clean,20,English,\n"
    "\n"
    "-4wsuPCjDBc,5,15,5,clean,30,English,A man is talking.\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_msrvtt_json(tmp_path):
    cs = load_captions(write(tmp_path, "train_val_videodatainfo.json", json.dumps(MSRVTT, indent=1)))
    assert cs.captions == {"video0": ["a car is shown", "a man drives a vintage car"],
                           "video1": ["a woman is singing"], "video2": ["people dance on a stage"]}
    assert cs.splits == {"video0": "train", "video1": "val", "video2": "test"}
    assert cs.paths == {"video1": "part0/video1.avi"}
    val = cs.subset("validate")
    assert val == CaptionSet(captions={"video1": ["a woman is singing"]}, splits={"video1": "val"},
                             paths={"video1": "part0/video1.avi"})
    assert list(cs.subset("train").captions) == ["video0"]


def test_coco_captions_json(tmp_path):
    """COCO's caption layout, as video captioning code writes its ground truth for pycocoevalcap."""
    coco = {"images": [{"id": "video0", "split": "train"}, {"id": 7, "file_name": "clips/seven.mp4"}],
            "annotations": [{"image_id": "video0", "id": 1, "caption": "a car is shown"},
                            {"image_id": 7, "id": 2, "caption": "a woman is singing"},
                            {"image_id": 7, "id": 3, "caption": "someone sings"}]}
    cs = load_captions(write(tmp_path, "coco.json", json.dumps(coco)))
    assert cs.captions == {"video0": ["a car is shown"], "7": ["a woman is singing", "someone sings"]}
    assert cs.splits == {"video0": "train", "7": None} and cs.paths == {"7": "clips/seven.mp4"}


def test_vatex_json(tmp_path):
    vatex = [{"videoID": "Ptf_2VRj-V0_000122_000132", "enCap": ["A man plays a drum.", "someone drums"],
              "chCap": ["一个男人在打鼓。"]},
             {"videoID": "-2dVJxq-X8o_000007_000017", "enCap": ["A girl dances."]}]
    cs = load_captions(write(tmp_path, "vatex_training_v1.0.json", json.dumps(vatex, ensure_ascii=False)))
    assert cs.captions == {"Ptf_2VRj-V0_000122_000132": ["A man plays a drum.", "someone drums"],
                           "-2dVJxq-X8o_000007_000017": ["A girl dances."]}
    assert set(cs.splits.values()) == {None}
    with pytest.raises(AnnotationError, match=r"v\.json:\[0\]: missing list 'enCap'"):
        load_captions(write(tmp_path, "v.json", json.dumps([{"videoID": "a", "chCap": ["x"]}])))


def test_msrvtt_sentences_only(tmp_path):
    cs = load_captions(write(tmp_path, "test.json", json.dumps({"sentences": MSRVTT["sentences"][:3]})))
    assert cs.splits == {"video0": None, "video1": None}
    assert cs.subset("train").captions == {}


def test_msvd_csv(tmp_path):
    cs = load_captions(write(tmp_path, "MSR Video Description Corpus.csv", MSVD))
    assert cs.captions == {
        "mv89psg6zh4_33_46": ["A bird is bathing in a sink.", 'A bird, a parakeet, splashes in "water".'],
        "-4wsuPCjDBc_5_15": ["A man is talking."],
    }
    assert cs.splits == {"mv89psg6zh4_33_46": None, "-4wsuPCjDBc_5_15": None}


def test_msvd_standard_split_from_youtube_mapping(tmp_path):
    """MSVD's corpus CSV has no splits; its youtube_mapping.txt numbers the clips, and papers split them
    vid1-1200 train, vid1201-1300 val, vid1301-1970 test. A video_id,split CSV gives splits too."""
    mapping = write(tmp_path, "youtube_mapping.txt", "-4wsuPCjDBc_5_15 vid1\nmv89psg6zh4_33_46 vid1201\n"
                                                      "zzit5b_-ukg_5_20 vid1300\nzv2RIbUsnSw_159_170 vid1970\n\n")
    assert load_splits(mapping) == {"-4wsuPCjDBc_5_15": "train", "mv89psg6zh4_33_46": "val",
                                    "zzit5b_-ukg_5_20": "val", "zv2RIbUsnSw_159_170": "test"}
    table = write(tmp_path, "splits.csv", "video_id,split\nclip1,train\nclip2,validate\nclip3,test\nclip4,\n")
    assert load_splits(table) == {"clip1": "train", "clip2": "val", "clip3": "test"}
    for name, text, says in [
        ("far.txt", "a_1_2 vid1\nb_1_2 vid1971\n", r"far\.txt:2: vid1971 is outside MSVD's vid1-vid1970"),
        ("other.csv", "id,fold\nclip1,train\n", r"other\.csv:1: neither a CSV with columns video_id,split nor MSVD"),
        ("refs.json", json.dumps(MSRVTT, indent=1), r"refs\.json:1: neither a CSV with columns video_id,split"),
        ("twice.csv", "video_id,split\nclip1,train\nclip1,test\n", r"twice\.csv:3: video 'clip1' is in split"),
        ("bad.csv", "video_id,split\nclip1,holdout\n", r"bad\.csv:2: unknown split 'holdout'"),
    ]:
        with pytest.raises(AnnotationError, match=says):
            load_splits(write(tmp_path, name, text))
    corpus = load_captions(write(tmp_path, "MSR Video Description Corpus.csv", MSVD))
    apply_splits(mapping, corpus.splits, corpus.captions)
    assert corpus.subset("test").captions == {} and list(corpus.subset("val").captions) == ["mv89psg6zh4_33_46"]
    with pytest.raises(AnnotationError, match=r"splits\.csv gives a split to none of the 2 annotated videos \(it "
                                              r"names 'clip1', 'clip2', \.\.\.; the annotations "
                                              r"'mv89psg6zh4_33_46', '-4wsuPCjDBc_5_15'\)$"):
        apply_splits(table, corpus.splits, corpus.captions)


def test_plain_csv(tmp_path):
    text = 'video_id,caption,split\nclip1,"a dog, running",train\nclip1,a dog runs,train\nclip2,a cat,dev\n'
    cs = load_captions(write(tmp_path, "captions.csv", text))
    assert cs.captions == {"clip1": ["a dog, running", "a dog runs"], "clip2": ["a cat"]}
    assert cs.splits == {"clip1": "train", "clip2": "val"}
    no_split = load_captions(write(tmp_path, "c2.csv", "video_id,caption\na/b/clip3,a bird\n"))
    assert no_split.splits == {"a/b/clip3": None}


def test_normalize_split():
    assert [normalize_split(s) for s in ("Train", "validate", "validation", "valid", "dev", "test", "", None)] == [
        "train", "val", "val", "val", "val", "test", None, None]
    with pytest.raises(ValueError, match="trainval"):
        normalize_split("trainval")


@pytest.mark.parametrize("name, text, where", [
    ("bad.json", '{"sentences": [\n  {"video_id": "v", "caption": "x"},\n  oops\n]}', r"bad\.json:3: invalid JSON"),
    ("nokey.json", json.dumps({"sentences": [{"video_id": "v", "caption": "x"}, {"video_id": "v"}]}),
     r"nokey\.json:sentences\[1\]: missing key 'caption'"),
    ("novid.json", json.dumps({"videos": [{"split": "train"}], "sentences": []}),
     r"novid\.json:videos\[0\]: missing key 'video_id'"),
    ("split.csv", "video_id,caption,split\nv1,a cat,train\nv2,a dog,trainval\n", r"split\.csv:3: unknown split"),
    ("clash.csv", "video_id,caption,split\nv1,a cat,train\n\nv1,a dog,test\n", r"clash\.csv:4: video 'v1'"),
    ("short.csv", "video_id,caption\nv1,a cat\nv2\n", r"short\.csv:3: 1 columns"),
    ("other.csv", "id,text\nv1,a cat\n", r"other\.csv:1: unknown caption layout.*MSR-VTT.*MSVD.*video_id,caption"),
    ("other.json", json.dumps({"items": []}), r"other\.json:1: unknown caption layout"),
    ("results.json", json.dumps([{"video_id": "v", "caption": "x"}]), r"results\.json:1: unknown caption layout"),
    ("coco.json", json.dumps({"annotations": [{"image_id": 3, "caption": "x"}, {"caption": "y"}]}),
     r"coco\.json:annotations\[1\]: missing key 'image_id'"),
    ("null.json", json.dumps({"sentences": [{"video_id": "v", "caption": "x"}, {"video_id": "v", "caption": None}]}),
     r"null\.json:sentences\[1\]: the caption is null, not text"),
    ("vatex.json", json.dumps([{"videoID": "v", "enCap": ["a cat", ["nested"]]}]),
     r"vatex\.json:\[0\]\.enCap\[1\]: the caption is \[\"nested\"\], not text"),
])
def test_malformed_caption_files(tmp_path, name, text, where):
    with pytest.raises(AnnotationError, match=where):
        load_captions(write(tmp_path, name, text))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("video_id,caption\nv1,a cat\nv2,un café\n".encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"latin1\.csv:3: not UTF-8"):
        load_captions(path)


FILES = ["clip1.mp4", "a/clip2.avi", "a/b/clip3.mp4", "x/dup.mp4", "y/dup.mp4", "extra/unlabelled.mkv",
         "part0/video1.avi", "z/video1.avi"]


def test_match_videos():
    ids = ["clip1", "clip2", "a/b/clip3", "dup", "x/dup", "video1", "gone"]
    report = match_videos(ids, FILES, paths={"video1": "part0/video1.avi", "gone": "old/gone.mp4"})
    assert report.matched == {"clip1": "clip1.mp4", "clip2": "a/clip2.avi", "a/b/clip3": "a/b/clip3.mp4",
                              "x/dup": "x/dup.mp4", "video1": "part0/video1.avi"}
    assert report.missing == {"dup": "2 files share stem 'dup': x/dup.mp4, y/dup.mp4",
                              "gone": "no file (path hint 'old/gone.mp4')"}
    assert report.unlabelled == ["extra/unlabelled.mkv", "y/dup.mp4", "z/video1.avi"]
    matched, missing, unlabelled = report  # unpacked: the missing ids alone
    assert matched == {"clip1": "clip1.mp4", "clip2": "a/clip2.avi", "a/b/clip3": "a/b/clip3.mp4",
                       "x/dup": "x/dup.mp4", "video1": "part0/video1.avi"}
    assert missing == ["dup", "gone"]
    assert unlabelled == ["extra/unlabelled.mkv", "y/dup.mp4", "z/video1.avi"]


def test_match_video_without_hint_is_ambiguous():
    report = match_videos(["video1", "clip1"], FILES)
    assert report.missing == {"video1": "2 files share stem 'video1': part0/video1.avi, z/video1.avi"}
    assert report.matched == {"clip1": "clip1.mp4"}


def test_a_file_name_that_is_not_utf8_is_matched_by_the_id_the_outputs_give_it():
    name = os.fsdecode(b"clips/caf\xe9.mp4")  # how Python lists a Latin-1 file name
    report = match_videos(["caf\\xe9", "clips/caf\\xe9"], [name, "clips/other.mp4"])
    assert report.matched == {"caf\\xe9": name, "clips/caf\\xe9": name} and report.unlabelled == ["clips/other.mp4"]


def test_msrvtt_videos_whose_ids_name_no_sentence_video_are_an_error(tmp_path):
    """videos[] with integer ids beside sentences[] naming "video0": before, the splits were silently lost and
    training held out a random validation set instead of the file's test split."""
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"videos": [{"video_id": 0, "split": "train"}, {"video_id": 1, "split": "test"}],
                                "sentences": [{"video_id": "video0", "caption": "a cat"},
                                              {"video_id": "video1", "caption": "a dog"}]}))
    with pytest.raises(AnnotationError, match=r"ann\.json:videos: none of its 2 video_ids \(such as '0'\) names a "
                                              r"video of sentences \(such as 'video0'\), so no split can be read"):
        load_captions(path)


def test_a_video_whose_captions_are_all_blank_is_named_in_a_warning(tmp_path, caplog):
    path = tmp_path / "ann.csv"
    path.write_text('video_id,caption,split\nv0,"  ",test\nv0,,test\nv1,a dog runs,test\nv1,,test\n')
    with caplog.at_level("WARNING", logger="vidrnn.data"):
        captions = load_captions(path)
    assert captions.captions == {"v1": ["a dog runs"]}
    assert "ann.csv: 1 video with only blank captions left out ('v0')" in caplog.text


def test_msrvtt_split_conflicts_are_errors_and_unlisted_videos_a_warning(tmp_path, caplog):
    """A video listed twice in videos[] with two splits took the last one silently (the test set shrank),
    where a CSV stops with the line; a video of sentences[] missing from videos[] joined training unsaid."""
    path = tmp_path / "ann.json"
    sentences = [{"video_id": v, "caption": "a cat sits"} for v in ("v0", "v1", "v2")]
    path.write_text(json.dumps({"videos": [{"video_id": "v0", "split": "test"}, {"video_id": "v1", "split": "train"},
                                           {"video_id": "v0", "split": "train"}], "sentences": sentences}))
    with pytest.raises(AnnotationError, match=re.escape("ann.json:videos[2]: video 'v0' is in split 'train' here "
                                                        "but in 'test' before")):
        load_captions(path)
    path.write_text(json.dumps({"videos": [{"video_id": "v0", "split": "test"}, {"video_id": "v1", "split": "train"},
                                           {"video_id": "v0", "split": "test"}], "sentences": sentences}))
    with caplog.at_level("WARNING", logger="vidrnn.data"):
        captions = load_captions(path)
    assert captions.splits == {"v0": "test", "v1": "train", "v2": None}
    assert "ann.json: 1 video of sentences not in videos, so in no split (training, or data.val_fraction's " \
           "validation): 'v2'" in caplog.text
