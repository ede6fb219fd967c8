"""Tests for vidrnn.data.labels: clip and frame count CSVs, MOT ground truth, dispatch and errors."""
import numpy as np
import pytest

from vidrnn.data import (AnnotationError, CountLabels, fill_gaps, load_clip_counts, load_count_labels,
                         load_frame_counts, load_mot)

# MOT16/17/20 gt.txt: frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility
MOT17_GT = """\
1,1,912,484,97,109,0,7,1
1,2,1338,418,167,379,1,1,0.86
1,3,586,447,85,263,1,1,1

2,2,1340,418,167,379,1,1,0.9
2,3,588,447,85,263,1,1,0.2
2,3,588,447,85,263,1,1,0.2
2,4,100,100,50,120,1,2,1
2,5,200,100,50,120,0,1,1
4,3,590,447,85,263,1,1,1
"""

# MOT15 gt.txt: frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z
MOT15_GT = """\
1,1,100,200,50,120,1,-1,-1,-1
1,2,300,200,50,120,1,-1,-1,-1
2,1,105,200,50,120,1,-1,-1,-1
3,2,310,200,50,120,0,-1,-1,-1
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clip_counts(tmp_path):
    counts, splits = load_clip_counts(write(tmp_path, "counts.csv", "video_id,count,split\nv1,3,train\n"
                                                                    "v2,0,validate\nv3,1.5,\n"))
    assert counts == {"v1": 3.0, "v2": 0.0, "v3": 1.5}
    assert splits == {"v1": "train", "v2": "val", "v3": None}
    assert load_clip_counts(write(tmp_path, "c.csv", "video_id,count\na/v1,2\n")) == ({"a/v1": 2.0}, {"a/v1": None})


def test_frame_counts(tmp_path):
    frames = load_frame_counts(write(tmp_path, "f.csv", "video_id,frame,count\nv1,0,1\nv1,1,2\nv1,3,0\nv2,0,4\n"))
    np.testing.assert_array_equal(frames["v1"], [1, 2, np.nan, 0])
    np.testing.assert_array_equal(frames["v2"], [4])
    assert frames["v1"].dtype == np.float32


def test_mot17(tmp_path):
    path = write(tmp_path, "MOT17-02-FRCNN/gt/gt.txt", MOT17_GT)
    np.testing.assert_array_equal(load_mot(path), [2, 2, 0, 1])  # frame 3: nobody
    np.testing.assert_array_equal(load_mot(path, num_frames=6), [2, 2, 0, 1, 0, 0])
    np.testing.assert_array_equal(load_mot(path, min_visibility=0.5), [2, 1, 0, 1])
    np.testing.assert_array_equal(load_mot(path, classes=(1, 2, 7)), [2, 3, 0, 1])  # conf 0 rows stay out
    assert load_mot(path).dtype == np.float32


def test_mot15_and_detections(tmp_path):
    np.testing.assert_array_equal(load_mot(write(tmp_path, "gt.txt", MOT15_GT)), [2, 1, 0])
    det = "1,-1,10,10,5,5,0.9,-1,-1,-1\n1,-1,30,10,5,5,-0.4,-1,-1,-1\n2,-1,10,10,5,5,0.8,-1,-1,-1\n"
    np.testing.assert_array_equal(load_mot(write(tmp_path, "det.txt", det)), [2, 1])  # boxes without id count alone


def test_count_labels_dispatch(tmp_path):
    mot = load_count_labels(write(tmp_path, "MOT17-02-FRCNN/gt/gt.txt", MOT17_GT), num_frames=5)
    assert mot.clip == {} and mot.splits == {"MOT17-02-FRCNN": None}
    np.testing.assert_array_equal(mot.frames["MOT17-02-FRCNN"], [2, 2, 0, 1, 0])
    assert list(load_count_labels(write(tmp_path, "seq9.txt", MOT15_GT), video_id="cam1").frames) == ["cam1"]
    assert list(load_count_labels(write(tmp_path, "seq9.txt", MOT15_GT)).frames) == ["seq9"]

    frames = load_count_labels(write(tmp_path, "fc.csv", "video_id,frame,count,split\nv1,1,2,test\nv1,0,1,test\n"))
    assert frames.clip == {} and frames.splits == {"v1": "test"}
    np.testing.assert_array_equal(frames.frames["v1"], [1, 2])

    clip = load_count_labels(write(tmp_path, "cc.csv", "video_id,count,split\nv1,2,dev\n"))
    assert clip == CountLabels(clip={"v1": 2.0}, splits={"v1": "val"})
    # every field quoted (R's write.csv, pandas' QUOTE_ALL): per-frame counts were read as clip counts
    quoted = load_count_labels(write(tmp_path, "q.csv", '"video_id","frame","count"\n"v1","0","3"\n"v2","4","5"\n'))
    assert quoted.clip == {} and set(quoted.frames) == {"v1", "v2"} and quoted.frames["v2"][4] == 5


@pytest.mark.parametrize("name, text, where", [
    ("c1.csv", "video_id,count\nv1,2\nv2,many\n", r"c1\.csv:3: count 'many' is not a number"),
    ("c2.csv", "video_id,split\nv1,train\n", r"c2\.csv:1: missing column\(s\) count"),
    ("c3.csv", "video_id,count\nv1,-1\n", r"c3\.csv:2: count -1 is negative"),
    ("c4.csv", "video_id,count\nv1,1\n\nv1,2\n", r"c4\.csv:4: video 'v1' is listed twice"),
    ("c5.csv", "video_id,count\nv1,nan\n", r"c5\.csv:2: count 'nan' is not a number"),
    ("f1.csv", "video_id,frame,count\nv1,0,1\nv1,0.5,1\n", r"f1\.csv:3: frame '0.5' is not an integer >= 0"),
    ("f2.csv", "video_id,frame,count\nv1,0,1\nv1,0,2\n", r"f2\.csv:3: frame 0 of video 'v1' is listed twice"),
    ("f3.csv", "video_id,frame,count\nv1,0,1,9\n", r"f3\.csv:2: 4 columns"),
    ("m1.txt", "1,1,1,1,1,1,1,1,1\n\n2,1,1,1,x,1,1,1,1\n", r"m1\.txt:3: bb_width 'x' is not a number"),
    ("m2.txt", "1,1,1,1,1,1,1,1,1\n1,2,1,1,1\n", r"m2\.txt:2: 5 columns; expected MOT rows"),
    ("m3.txt", "0,1,1,1,1,1,1,1,1\n", r"m3\.txt:1: frame '0' is not an integer >= 1"),
    ("caps.json", '{"videos": [{"video_id": "v1"}],\n "sentences": []}\n',
     r"caps\.json:1: JSON, not count labels; expected a video_id,count\[,split\] CSV"),
])
def test_malformed_count_files(tmp_path, name, text, where):
    with pytest.raises(AnnotationError, match=where):
        load_count_labels(write(tmp_path, name, text))


def test_mot_frame_past_num_frames(tmp_path):
    with pytest.raises(AnnotationError, match=r"gt\.txt:10: frame 4 is past num_frames=3"):
        load_mot(write(tmp_path, "gt.txt", MOT17_GT), num_frames=3)


def test_mot_frame_labels_beside_clip_counts_hold_nobody_after_their_last_row(tmp_path):
    """data.frame_annotations=gt.txt beside clip counts: the MOT file's frames after its last row count 0 to
    the video's end, as they do where the MOT file is the annotations."""
    clip = load_count_labels(write(tmp_path, "c.csv", "video_id,count\ncam,2\n"))
    frames = load_count_labels(write(tmp_path, "cam/gt/gt.txt", "1,1,10,10,5,9,1,1,1\n2,1,11,10,5,9,1,1,1\n"))
    both = clip.with_frames_of(frames).reaching({"cam": 6})
    assert both.clip == {"cam": 2.0}
    np.testing.assert_array_equal(both.frames["cam"], [1, 1, 0, 0, 0, 0])


def test_fill_gaps_interpolates_between_labelled_frames_only():
    nan = np.nan
    counts = np.array([nan, 2, nan, nan, 5, nan, 3, nan], np.float32)
    np.testing.assert_allclose(fill_gaps(counts), [nan, 2, 3, 4, 5, 4, 3, nan])
    assert np.isnan(counts[2])  # the labels themselves are left as they were
    one = np.array([nan, 1, nan], np.float32)
    np.testing.assert_array_equal(fill_gaps(one), one)
    assert fill_gaps(None) is None


def test_a_mot_file_beside_the_only_video_is_its_labels(tmp_path):
    """``labels=gt.txt`` next to one recording: the file's name is no video id, but the labels are the video's;
    with several videos, or labels that name their video, nothing is guessed."""
    mot = load_count_labels(write(tmp_path, "gt.txt", MOT17_GT))
    assert list(mot.frames) == ["gt"] and list(mot.for_videos(["cam1"]).frames) == ["cam1"]
    np.testing.assert_array_equal(mot.for_videos(["cam1"]).frames["cam1"], [2, 2, 0, 1])
    assert mot.for_videos(["cam1", "cam2"]) is mot and mot.for_videos(["gt"]) is mot
    csv_labels = load_count_labels(write(tmp_path, "frames.csv", "video_id,frame,count\nother,0,2\n"))
    assert csv_labels.for_videos(["cam1"]) is csv_labels  # a CSV names its videos itself
    named = load_count_labels(write(tmp_path, "MOT17-02/gt/gt.txt", MOT17_GT))
    assert named.for_videos(["MOT17-02"]) is named and list(named.for_videos(["cam1"]).frames) == ["cam1"]
    # evaluate reads it alike: one video's count against the gt.txt (its frames' mean, 5/4 people)
    from vidrnn.evaluate import evaluate_counts
    scores = evaluate_counts(str(write(tmp_path, "counts.csv", "video_id,count\ncam1,2.0\n")), str(tmp_path / "gt.txt"))
    assert scores["videos"] == 1 and scores["MAE"] == pytest.approx(0.75)


def test_mot_frames_after_the_last_row_hold_nobody_to_the_video_s_end(tmp_path):
    """Frames after a gt.txt's last row were unlabelled (NaN) where they have nobody in view: the labels now
    reach the video's end (or seqinfo.ini's seqLength) with 0, and scoring counts those frames."""
    labels = load_count_labels(write(tmp_path, "MOT17-02/gt/gt.txt", MOT17_GT))
    np.testing.assert_array_equal(labels.frames["MOT17-02"], [2, 2, 0, 1])
    np.testing.assert_array_equal(labels.reaching({"MOT17-02": 6}).frames["MOT17-02"], [2, 2, 0, 1, 0, 0])
    csv = load_count_labels(write(tmp_path, "f.csv", "video_id,frame,count\nv1,0,1\nv1,2,2\n"))
    assert csv.reaching({"v1": 5}) is csv  # a CSV's unlisted frames stay unlabelled
    write(tmp_path, "MOT17-02/seqinfo.ini", "[Sequence]\nname=MOT17-02\nframeRate=30\nseqLength=7\n")
    labelled = load_count_labels(tmp_path / "MOT17-02/gt/gt.txt")
    np.testing.assert_array_equal(labelled.frames["MOT17-02"], [2, 2, 0, 1, 0, 0, 0])
    renamed, _ = labelled.for_files({"MOT17-02.mp4": "MOT17-02"})
    assert renamed.dense


def test_frame_labels_numbered_from_1_are_named_in_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="vidrnn.data"):
        load_count_labels(write(tmp_path, "f.csv", "video_id,frame,count\nv1,1,1\nv1,2,2\nv2,1,0\n"))
    assert "every video's labels here start at frame 1: numbered from 1?" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="vidrnn.data"):
        load_count_labels(write(tmp_path, "g.csv", "video_id,frame,count\nv1,0,1\nv2,1,0\n"))
    assert "numbered from 1" not in caplog.text


def test_the_mean_predictor_leaves_unlabelled_values_out():
    """Windows without a labelled frame (labels that start late) made the baseline's errors NaN."""
    from vidrnn.metrics import mean_predictor_errors

    errors = mean_predictor_errors({"a": 1.0, "b": float("nan"), "c": 3.0}, {"x": 4.0, "y": float("nan")})
    assert errors["mean"] == 2.0 and errors["MAE"] == 2.0 and errors["scored"] == 1
