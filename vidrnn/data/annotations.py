"""Caption annotations (MSR-VTT JSON, MSVD corpus CSV, plain CSV) and matching their videos to files."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..files import n_videos, printable, some_of

log = logging.getLogger("vidrnn.data")

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "validate": "val", "validation": "val",
                 "valid": "val", "dev": "val", "test": "test", "testing": "test"}
MSVD_COLUMNS = ("videoid", "start", "end", "language", "description")
CAPTION_LAYOUTS = ('MSR-VTT JSON ({"videos": [...], "sentences": [{"video_id", "caption"}]})',
                   'COCO captions JSON ({"images": [...], "annotations": [{"image_id", "caption"}]})',
                   'VATEX JSON ([{"videoID", "enCap": [...]}])',
                   "MSVD corpus CSV (VideoID,Start,End,...,Language,Description)",
                   "CSV with header video_id,caption[,split]")


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the line (or record)."""

    @classmethod
    def at(cls, path, where, message: str) -> AnnotationError:
        """The error for ``message`` at ``where`` (a 1-based line number or a record) of ``path``."""
        return cls(f"{path}:{where}: {message}")


def normalize_split(name: str | None) -> str | None:
    """The split ("train", "val" or "test") a name or alias ("validate", "dev", ...) means; None when empty."""
    if name is None or not str(name).strip():
        return None
    key = str(name).strip().lower()
    if key not in SPLIT_ALIASES:
        raise ValueError(f"unknown split {name!r} (expected train, val or test, or one of "
                         f"{', '.join(sorted(SPLIT_ALIASES))})")
    return SPLIT_ALIASES[key]


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of an annotation file (a byte-order mark is dropped)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError.at(path, data.count(b"\n", 0, e.start) + 1, f"not UTF-8 text ({e.reason})") from None


def read_csv(path: str | os.PathLike, text: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (stripped, lower-case) and (1-based line, {column: value}) of each non-blank row of a CSV file
    (``text``: its content, when already read)."""
    reader = csv.reader(io.StringIO(read_text(path) if text is None else text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    rows, line = [], reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) != len(header):
                raise AnnotationError.at(path, line, f"{len(row)} columns, but the header has {len(header)} "
                                                     f"({','.join(header)})")
            rows.append((line, dict(zip(header, row))))
        line = reader.line_num + 1
    return header, rows


def require_columns(path, header: list[str], columns) -> None:
    """Raise AnnotationError (at line 1) unless ``header`` has all ``columns``."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise AnnotationError.at(path, 1, f"missing column(s) {', '.join(missing)} "
                                          f"(header: {','.join(header) or 'empty'})")


def split_at(path, where, name: str | None) -> str | None:
    """``normalize_split(name)``, an unknown name raising AnnotationError at ``where`` of ``path``."""
    try:
        return normalize_split(name)
    except ValueError as e:
        raise AnnotationError.at(path, where, str(e)) from None


def set_split(path, where, splits: dict, video_id: str, split: str | None) -> None:
    """Record ``split`` of ``video_id``; a different split given before raises AnnotationError."""
    known = splits.get(video_id)
    if known and split and known != split:
        raise AnnotationError.at(path, where, f"video {video_id!r} is in split {split!r} here "
                                              f"but in {known!r} before")
    splits[video_id] = known or split


@dataclass
class CaptionSet:
    """Raw captions and split of each video (videos without a caption are left out)."""

    captions: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, str | None] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # video_id -> relative file path hint, where given
    blank: Counter = field(default_factory=Counter)  # video_id -> its blank captions

    def scored(self, video_id: str) -> list[str]:
        """The references a video's caption is scored against: its blank captions too, as the COCO
        evaluation keeps them (one counts in CIDEr-D's mean over references and BLEU's closest length)."""
        return self.captions[video_id] + [""] * self.blank[video_id]

    def add(self, video_id: str, caption: str, split: str | None = None) -> None:
        """Add one caption of ``video_id`` (a blank caption is counted in ``blank``, not trained on)."""
        if caption.strip():
            self.captions.setdefault(video_id, []).append(caption.strip())
            self.splits.setdefault(video_id, split)
        else:
            self.blank[video_id] += 1

    def subset(self, split: str) -> CaptionSet:
        """The videos of one split (aliases such as "validate" accepted)."""
        split = normalize_split(split)
        ids = [v for v in self.captions if self.splits.get(v) == split]
        return CaptionSet(captions={v: self.captions[v] for v in ids}, splits={v: split for v in ids},
                          paths={v: self.paths[v] for v in ids if v in self.paths},
                          blank=Counter({v: self.blank[v] for v in ids if v in self.blank}))


# JSON layouts: (list of captions, its video-id key, list of videos, their id key, their file-path key)
JSON_LAYOUTS = (("sentences", "video_id", "videos", "video_id", "path"),  # MSR-VTT
                ("annotations", "image_id", "images", "id", "file_name"))  # COCO captions


def load_captions(path: str | os.PathLike) -> CaptionSet:
    """Captions of an MSR-VTT, COCO captions or VATEX JSON, MSVD corpus CSV or ``video_id,caption[,split]``
    CSV file."""
    text = read_text(path)
    if text.lstrip().startswith(("{", "[")):
        out = _load_json(path, text)
    else:
        header, rows = read_csv(path, text)
        if all(c in header for c in MSVD_COLUMNS):
            out = _load_msvd(rows)
        elif "video_id" in header and "caption" in header:
            out = _load_caption_csv(path, rows)
        else:
            raise _unknown_layout(path)
    left_out = sorted(out.blank.keys() - out.captions.keys())
    if left_out:
        log.warning("%s: %s with only blank captions left out (%s)", path, n_videos(len(left_out)), some_of(left_out))
    return out


# MSVD's standard split (Venugopalan et al. 2015, and the papers since) by the number of youtube_mapping.txt
MSVD_SPLIT = ((1200, "train"), (1300, "val"), (1970, "test"))
_MAPPING_LINE = re.compile(r"(\S+)\s+vid(\d+)")


def load_splits(path: str | os.PathLike, names: dict | None = None) -> dict[str, str]:
    """video_id -> split from a ``video_id,split`` CSV, or from MSVD's ``youtube_mapping.txt`` (``<clip>
    vid<N>`` lines): the standard split, vid1-1200 train, vid1201-1300 val, vid1301-1970 test. For the
    mapping, ``names`` (if given) gets clip -> ``vid<N>``, the name of MSVD copies whose files are renamed."""
    text = read_text(path)
    mapped = [(k, _MAPPING_LINE.fullmatch(line.strip())) for k, line in enumerate(text.splitlines(), 1)
              if line.strip()]
    if mapped and all(match for _, match in mapped):
        splits = {}
        for k, match in mapped:
            clip, number = match[1], int(match[2])
            split = next((name for last, name in MSVD_SPLIT if number <= last), None) if number >= 1 else None
            if split is None:
                raise AnnotationError.at(path, k, f"vid{match[2]} is outside MSVD's vid1-vid1970")
            splits[clip] = split
            if names is not None:
                names[clip] = f"vid{match[2]}"
        return splits
    header = [name.strip().lower() for name in next(csv.reader(io.StringIO(text)), [])]
    if not {"video_id", "split"} <= set(header):
        raise AnnotationError.at(path, 1, "neither a CSV with columns video_id,split nor MSVD's youtube_mapping.txt "
                                          "(lines '<clip> vid<N>')")
    splits, (_, rows) = {}, read_csv(path, text)
    for line, row in rows:
        split = split_at(path, line, row["split"])
        if split:
            set_split(path, line, splits, row["video_id"].strip(), split)
    return splits


def apply_splits(path: str | os.PathLike, splits: dict, ids, paths: dict | None = None) -> None:
    """Set ``splits`` (video id -> split) from the splits file ``path`` (``load_splits``); a file that gives
    none of the videos ``ids`` a split is an error (the wrong file, or ids of another layout). ``paths``
    (video id -> file path hint) gets the file names the splits file gives (MSVD's ``vid<N>``) where it has
    none, so videos whose files carry those names are found."""
    names: dict[str, str] = {}
    given, ids = load_splits(path, names), list(ids)
    if not set(given) & set(ids):
        raise AnnotationError(f"{path} gives a split to none of the {len(ids)} annotated videos (it names "
                              f"{some_of(given, 2)}; the annotations {some_of(ids, 2)})")
    splits.update(given)
    if paths is not None:
        for video_id in ids:
            if video_id in names:
                paths.setdefault(video_id, names[video_id])


def _unknown_layout(path) -> AnnotationError:
    """The error for a caption file in none of the accepted layouts."""
    return AnnotationError.at(path, 1, "unknown caption layout; expected " + "; or ".join(CAPTION_LAYOUTS))


def _json_field(path, where: str, record, key: str, text: bool = True):
    """``record[key]`` (``text``: as a string), AnnotationError naming ``where`` when it is missing."""
    if not isinstance(record, dict) or key not in record:
        raise AnnotationError.at(path, where, f"missing key {key!r}")
    return str(record[key]) if text else record[key]


def _caption_text(path, where: str, caption) -> str:
    """A JSON caption, which must be text (a null caption read as "None" scored a caption "none" 1.0)."""
    if not isinstance(caption, str):
        raise AnnotationError.at(path, where, f"the caption is {json.dumps(caption)[:40]}, not text")
    return caption


def _load_json(path, text: str) -> CaptionSet:
    """MSR-VTT layout: ``videos`` (video_id, split, optional path) and ``sentences`` (video_id, caption);
    or COCO's: ``images`` (id, optional split and file_name) and ``annotations`` (image_id, caption)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError.at(path, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    if isinstance(data, list) and data and isinstance(data[0], dict) and "videoID" in data[0]:
        return _load_vatex(path, data)
    layout = next((k for k in JSON_LAYOUTS if isinstance(data, dict) and isinstance(data.get(k[0]), list)), None)
    if layout is None:
        raise _unknown_layout(path)
    captions, caption_id, videos, video_id_key, path_key = layout
    splits, paths = {}, {}
    for i, video in enumerate(data.get(videos, [])):
        video_id = _json_field(path, f"{videos}[{i}]", video, video_id_key)
        set_split(path, f"{videos}[{i}]", splits, video_id, split_at(path, f"{videos}[{i}]", video.get("split")))
        if video.get(path_key):
            paths[video_id] = str(video[path_key])
    out = CaptionSet()
    for i, sentence in enumerate(data[captions]):
        video_id = _json_field(path, f"{captions}[{i}]", sentence, caption_id)
        out.add(video_id, _caption_text(path, f"{captions}[{i}]", _json_field(path, f"{captions}[{i}]", sentence,
                                                                              "caption", text=False)),
                splits.get(video_id))
    if splits and out.captions and not splits.keys() & out.captions.keys():
        raise AnnotationError.at(path, videos, f"none of its {len(splits)} {video_id_key}s (such as "
                                 f"{next(iter(splits))!r}) names a video of {captions} (such as "
                                 f"{next(iter(out.captions))!r}), so no split can be read")
    unlisted = [v for v in out.captions if v not in splits]
    if splits and unlisted:
        log.warning("%s: %s of %s not in %s, so in no split (training, or data.val_fraction's validation): %s",
                    path, n_videos(len(unlisted)), captions, videos, some_of(unlisted))
    out.paths = {v: p for v, p in paths.items() if v in out.captions}
    return out


def _load_vatex(path, videos: list) -> CaptionSet:
    """VATEX layout: a list of ``{"videoID", "enCap": [English captions]}`` (Chinese ``chCap`` left out);
    no splits (VATEX ships one file per split)."""
    out = CaptionSet()
    for i, video in enumerate(videos):
        video_id = _json_field(path, f"[{i}]", video, "videoID")
        captions = video.get("enCap")
        if not isinstance(captions, list):
            raise AnnotationError.at(path, f"[{i}]", "missing list 'enCap' (English captions)")
        for k, caption in enumerate(captions):
            out.add(video_id, _caption_text(path, f"[{i}].enCap[{k}]", caption))
    return out


def _load_msvd(rows) -> CaptionSet:
    """MSVD corpus rows: English descriptions of clip ``{VideoID}_{Start}_{End}``; no splits."""
    out = CaptionSet()
    for _, row in rows:
        if row["language"].strip().lower() == "english":
            out.add(f"{row['videoid'].strip()}_{row['start'].strip()}_{row['end'].strip()}", row["description"])
    return out


def _load_caption_csv(path, rows) -> CaptionSet:
    """``video_id,caption[,split]`` rows."""
    out = CaptionSet()
    for line, row in rows:
        video_id = row["video_id"].strip()
        if not video_id:
            raise AnnotationError.at(path, line, "empty video_id")
        split = split_at(path, line, row.get("split")) if row["caption"].strip() else None
        if split:
            set_split(path, line, out.splits, video_id, split)
        out.add(video_id, row["caption"], split)
    return out


@dataclass
class MatchReport:
    """Which annotated videos have a file; unpacks as (matched, missing ids, unlabelled files)."""

    matched: dict[str, str]  # video_id -> relative file path
    missing: dict[str, str]  # video_id -> why no file was picked
    unlabelled: list[str]  # files that no video_id names

    def __iter__(self):
        """Iterate as the tuple (matched, list of missing ids, unlabelled)."""
        return iter((self.matched, list(self.missing), self.unlabelled))


class _FileIndex:
    """Relative file paths looked up by full path, by path without extension, by stem, or by file name."""

    def __init__(self, files):
        self.files = set(files)
        self.by_path, self.by_stem, self.by_name = defaultdict(list), defaultdict(list), defaultdict(list)
        self.by_printable = defaultdict(list)  # names with bytes that are not UTF-8, as ids write them
        for f in sorted(self.files):
            p = PurePosixPath(f)
            self.by_path[p.with_suffix("").as_posix()].append(f)
            self.by_stem[p.stem].append(f)
            self.by_name[p.name].append(f)
            for name in {p.stem, p.with_suffix("").as_posix()}:
                if printable(name) != name:
                    self.by_printable[printable(name)].append(f)

    def lookup(self, name: str) -> list[str]:
        """Files that ``name`` names: the file itself, else those with it as path or stem (may be several)."""
        if name in self.by_printable:
            return self.by_printable[name]
        name = PurePosixPath(name.replace("\\", "/")).as_posix()
        if name in self.files:
            return [name]
        return self.by_path.get(name) or self.by_stem.get(name) or self.by_name.get(name, [])


def match_videos(ids, files: list[str], paths: dict[str, str] | None = None) -> MatchReport:
    """Match each video id to one of ``files`` (relative POSIX paths with extension): by its path hint in
    ``paths``, by relative path without extension, or by unique stem."""
    index, paths = _FileIndex(files), paths or {}
    matched, missing = {}, {}
    for video_id in ids:
        hint = paths.get(video_id)
        found = (index.lookup(hint) if hint else []) or index.lookup(video_id)
        if len(found) == 1:
            matched[video_id] = found[0]
        elif found:
            missing[video_id] = f"{len(found)} files share stem {PurePosixPath(found[0]).stem!r}: {', '.join(found)}"
        else:
            missing[video_id] = "no file" + (f" (path hint {hint!r})" if hint else "")
    used = set(matched.values())
    return MatchReport(matched=matched, missing=missing, unlabelled=[f for f in sorted(index.files) if f not in used])
