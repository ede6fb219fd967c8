"""People-count labels: per-clip and per-frame count CSVs, and MOT-Challenge ground truth."""
from __future__ import annotations

import configparser
import csv
import logging
import math
import os
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .annotations import AnnotationError, match_videos, read_csv, read_text, require_columns, set_split, split_at

MOT_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility")
MOT15_COLUMNS = MOT_COLUMNS[:7] + ("x", "y", "z")  # also detection files: class/x/y/z are -1
PEDESTRIAN = 1
log = logging.getLogger("vidrnn.data")


@dataclass
class CountLabels:
    """Raw people counts: per clip and/or per frame (NaN where a frame is unlabelled), and splits."""

    clip: dict[str, float] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    splits: dict[str, str | None] = field(default_factory=dict)
    named_by_file: bool = False  # one MOT sequence, its video id taken from the file's folder or name
    dense: bool = False  # every frame labelled (MOT: a frame without a box has nobody), to the video's end

    def reaching(self, lengths: dict[str, int]) -> CountLabels:
        """Dense labels reaching each video's ``lengths`` frames: the frames after a MOT file's last row (nobody
        in view there) count 0, not unlabelled. Other labels are returned as they are."""
        if not self.dense:
            return self
        frames = {v: np.pad(f, (0, max(lengths.get(v, 0) - len(f), 0))) for v, f in self.frames.items()}
        return replace(self, frames=frames)

    def with_frames_of(self, other: CountLabels) -> CountLabels:
        """These labels with ``other``'s per-frame counts added (``data.frame_annotations`` beside clip counts);
        dense where either is (a MOT file's frames after its last row hold nobody)."""
        return replace(self, frames={**self.frames, **other.frames}, dense=self.dense or other.dense)

    def for_videos(self, ids: Collection[str]) -> CountLabels:
        """These labels for a folder of videos ``ids``: one MOT sequence whose folder or file name is none of
        them belongs to the folder's only video (``labels=gt.txt`` beside one recording)."""
        ids = list(ids)
        if not self.named_by_file or len(ids) != 1 or set(self.frames) <= set(ids):
            return self
        (frames,) = self.frames.values()
        return CountLabels(frames={ids[0]: frames}, splits={ids[0]: None}, dense=self.dense)

    def for_files(self, files: dict[str, str]) -> tuple[CountLabels, list[str]]:
        """These labels keyed by the ids of the video files they name (``files``: relative path -> video id),
        a label's id naming a file as annotations do for training (``match_videos``: by stem, relative path
        or file name), and the labelled ids that name none of the files."""
        labels = self.for_videos(files.values())
        report = match_videos(sorted(set(labels.clip) | set(labels.frames)), list(files))
        vid = {label: files[f] for label, f in report.matched.items()}

        def renamed(values: dict) -> dict:
            return {vid[k]: v for k, v in values.items() if k in vid}

        return (CountLabels(renamed(labels.clip), renamed(labels.frames), renamed(labels.splits), dense=labels.dense),
                list(report.missing))


def number_at(path, line: int | str, column: str, text: str) -> float:
    """``text`` as a finite number, else AnnotationError naming the line and column."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AnnotationError.at(path, line, f"{column} {text.strip()!r} is not a number")
    return value


def _count(path, line: int, text: str) -> float:
    """A people count: a number that is not negative."""
    value = number_at(path, line, "count", text)
    if value < 0:
        raise AnnotationError.at(path, line, f"count {value:g} is negative")
    return value


def _video_id(path, line: int, row: dict) -> str:
    """The row's non-empty video_id."""
    video_id = row["video_id"].strip()
    if not video_id:
        raise AnnotationError.at(path, line, "empty video_id")
    return video_id


def load_clip_counts(path: str | os.PathLike) -> tuple[dict[str, float], dict[str, str | None]]:
    """(video_id -> count, video_id -> split) of a ``video_id,count[,split]`` CSV file."""
    header, rows = read_csv(path)
    require_columns(path, header, ("video_id", "count"))
    counts, splits = {}, {}
    for line, row in rows:
        video_id = _video_id(path, line, row)
        if video_id in counts:
            raise AnnotationError.at(path, line, f"video {video_id!r} is listed twice")
        counts[video_id] = _count(path, line, row["count"])
        splits[video_id] = split_at(path, line, row.get("split"))
    return counts, splits


def load_frame_counts(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per video, float32 counts indexed by 0-based frame (NaN for unlisted frames) of a
    ``video_id,frame,count`` CSV file."""
    return _read_frame_counts(path)[0]


def _read_frame_counts(path) -> tuple[dict[str, np.ndarray], dict[str, str | None]]:
    """Per-frame counts and splits (from an optional ``split`` column) of a ``video_id,frame,count`` CSV."""
    header, rows = read_csv(path)
    require_columns(path, header, ("video_id", "frame", "count"))
    counts, splits = defaultdict(dict), {}
    for line, row in rows:
        video_id = _video_id(path, line, row)
        frame = _frame(path, line, row["frame"], first=0)
        if frame in counts[video_id]:
            raise AnnotationError.at(path, line, f"frame {frame} of video {video_id!r} is listed twice")
        counts[video_id][frame] = _count(path, line, row["count"])
        set_split(path, line, splits, video_id, split_at(path, line, row.get("split")))
    if counts and all(min(c) == 1 for c in counts.values()):
        log.warning("%s: frames count from 0 (the first frame is 0), and every video's labels here start at frame 1: "
                    "numbered from 1? (a MOT gt.txt is; this CSV is read as numbered from 0)", path)
    return {v: _frame_array(c, max(c) + 1, np.nan) for v, c in counts.items()}, splits


def _frame(path, line: int, text: str, *, first: int) -> int:
    """A frame number (an integer, at least ``first``) as a 0-based index."""
    value = number_at(path, line, "frame", text)
    if not value.is_integer() or value < first:
        raise AnnotationError.at(path, line, f"frame {text.strip()!r} is not an integer >= {first}")
    return int(value) - first


def fill_gaps(counts: np.ndarray | None) -> np.ndarray | None:
    """Per-frame counts with each unlabelled (NaN) frame between two labelled ones linearly interpolated
    (labels on every n-th frame); frames before the first and after the last label stay unlabelled."""
    if counts is None:
        return None
    known = np.flatnonzero(~np.isnan(counts))
    if len(known) < 2:
        return counts
    out = counts.copy()
    inside = np.arange(known[0], known[-1] + 1)
    out[inside] = np.interp(inside, known, counts[known])
    return out


def _frame_array(counts: dict[int, float], length: int, fill: float) -> np.ndarray:
    """float32 array of ``length`` with ``counts`` at their frame indices and ``fill`` elsewhere."""
    out = np.full(length, fill, np.float32)
    out[list(counts)] = list(counts.values())
    return out


def load_mot(path: str | os.PathLike, *, num_frames: int | None = None, min_visibility: float = 0.0,
             classes=(PEDESTRIAN,)) -> np.ndarray:
    """float32 people count of each frame (index = frame - 1) of a MOT-Challenge ground-truth file.

    Counts the distinct track ids with a box in the frame (a box with id -1, as in detection files,
    counts alone), leaving out boxes with conf 0, a class not in ``classes`` (class -1 or no class
    column, as in MOT15's 10 columns, is a pedestrian) or visibility below ``min_visibility`` (1 where
    not given). The length is ``num_frames``, else the last annotated frame.
    """
    people = defaultdict(set)
    last = 0
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        frame, track, conf, cls, visibility = _mot_row(path, line, text)
        if num_frames is not None and frame >= num_frames:
            raise AnnotationError.at(path, line, f"frame {frame + 1} is past num_frames={num_frames}")
        last = max(last, frame + 1)
        if conf != 0 and cls in classes and visibility >= min_visibility:
            people[frame].add(track if track != -1 else ("box", line))
    counts = {frame: len(ids) for frame, ids in people.items()}
    return _frame_array(counts, last if num_frames is None else num_frames, 0.0)


def _mot_row(path, line: int, text: str) -> tuple[int, float, float, float, float]:
    """(0-based frame, id, conf, class, visibility) of one MOT line."""
    cells = text.split(",")
    if not 7 <= len(cells) <= 10:
        raise AnnotationError.at(path, line, f"{len(cells)} columns; expected MOT rows "
                                             f"{','.join(MOT_COLUMNS)} or {','.join(MOT15_COLUMNS)}")
    names = MOT15_COLUMNS if len(cells) == 10 else MOT_COLUMNS
    row = {name: number_at(path, line, name, cell) for name, cell in zip(names[1:], cells[1:])}
    cls = row.get("class", -1)
    return (_frame(path, line, cells[0], first=1), row["id"], row["conf"], PEDESTRIAN if cls == -1 else cls,
            row.get("visibility", 1.0))


def load_count_labels(path: str | os.PathLike, *, video_id: str | None = None, **mot_options) -> CountLabels:
    """Count labels of a MOT ground-truth file (``video_id``: its sequence folder, or the file stem, unless
    given; ``mot_options`` go to ``load_mot``), a ``video_id,frame,count`` CSV, or a
    ``video_id,count[,split]`` CSV."""
    first = next((ln for ln in read_text(path).splitlines() if ln.strip()), "")
    if first.lstrip().startswith(("{", "[")):
        raise AnnotationError.at(path, 1, "JSON, not count labels; expected a video_id,count[,split] CSV, a "
                                          "video_id,frame,count CSV or a MOT-Challenge gt.txt")
    if _is_numeric_row(first):
        named = video_id or _mot_sequence(Path(path))
        mot_options.setdefault("num_frames", _sequence_length(Path(path)))
        return CountLabels(frames={named: load_mot(path, **mot_options)}, splits={named: None},
                           named_by_file=video_id is None, dense=True)
    if "frame" in (name.strip().lower() for name in next(csv.reader([first]))):  # "frame" quoted by pandas, R
        frames, splits = _read_frame_counts(path)
        return CountLabels(frames=frames, splits=splits)
    clip, splits = load_clip_counts(path)
    return CountLabels(clip=clip, splits=splits)


def _is_numeric_row(text: str) -> bool:
    """Whether ``text`` is comma-separated numbers (a MOT line rather than a CSV header)."""
    try:
        return all(math.isfinite(float(cell)) for cell in text.split(","))
    except ValueError:
        return False


def _sequence_length(path: Path) -> int | None:
    """``seqLength`` of the MOT sequence of ``SEQ/gt/gt.txt`` (its ``SEQ/seqinfo.ini``), where given."""
    info = path.parent.parent / "seqinfo.ini"
    if path.parent.name != "gt" or not info.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(read_text(info))
        return int(parser["Sequence"]["seqLength"])
    except (configparser.Error, KeyError, ValueError):
        return None


def _mot_sequence(path: Path) -> str:
    """The sequence name of ``SEQ/gt/gt.txt``, else the file's stem."""
    return path.parent.parent.name if path.parent.name == "gt" else path.stem
