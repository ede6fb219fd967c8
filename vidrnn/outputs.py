"""The one place that writes (and reads back) result files: captions as JSON/CSV/SRT/VTT, counts as
CSV, all written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .data.annotations import AnnotationError, read_csv, read_text, require_columns
from .data.labels import number_at
from .features.store import atomic_write

CAPTION_FORMATS = (".json", ".csv", ".srt", ".vtt")
TIMED_FORMATS = (".srt", ".vtt")


def output_format(path: str | os.PathLike, formats: tuple[str, ...], what: str) -> str:
    """The format a ``what`` output file's name asks for: its extension, lower case, one of ``formats``."""
    suffix = Path(path).suffix
    if suffix.lower() not in formats:
        raise ValueError(f"{path}: {what} output must end in {', '.join(formats)} (not {suffix or 'no extension'})")
    if Path(path).is_dir():
        raise ValueError(f"{path}: a folder; the {what} output is a file (such as {Path(path, what + 's' + suffix)})")
    return suffix.lower()


def not_an_input(output: str | os.PathLike, **inputs: str | os.PathLike | None) -> None:
    """A ValueError where ``output`` is one of the files a run reads (``inputs``: what each is, and its path or
    None), which writing it would destroy."""
    for name, path in inputs.items():
        if path and _same_file(output, path):
            raise ValueError(f"{output}: the output is the {name} file too, which writing it would destroy; give "
                             "another output")


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = os.path.expanduser(a), os.path.expanduser(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically as UTF-8; the undecodable bytes of a file name in it as ``\\udcNN``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8", "backslashreplace")))


def write_captions(path: str | os.PathLike, rows: list[dict]) -> None:
    """Rows ``{"video_id", "caption"[, "score"][, "n_best": [{"caption", "score"}]]}`` as a COCO results
    JSON list (``image_id`` repeats ``video_id``, so the COCO caption evaluation's ``loadRes`` reads it), or
    as CSV (``video_id,caption,score``; n-best as extra rows with a rank)."""
    fmt = output_format(path, CAPTION_FORMATS, "caption")
    if fmt == ".json":
        coco = [{"video_id": r["video_id"], "image_id": r["video_id"], **r} for r in rows]
        write_text(path, json.dumps(coco, indent=1, ensure_ascii=False) + "\n")
        return
    if fmt != ".csv":
        raise ValueError(f"{path}: one caption per video is written as .json or .csv")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["video_id", "rank", "caption", "score"])
    for row in rows:
        for rank, hyp in enumerate(row.get("n_best") or [row], 1):
            writer.writerow([row["video_id"], rank, hyp["caption"], f"{hyp.get('score', float('nan')):.6f}"])
    write_text(path, buf.getvalue())


class PredictionError(AnnotationError):
    """A wrong entry of a prediction file (or none at all); the message names the file and the entry."""


def read_captions(path: str | os.PathLike, text: str | None = None) -> dict[str, str]:
    """video_id -> best caption, from a file written by ``write_captions`` or laid out as other captioning
    code writes its results: a COCO results list (``image_id`` for ``video_id``), or a JSON object of
    id -> caption or id -> [{"caption"}, ...] (best first), alone or under ``predictions`` / ``results``
    (``text``: the file's content, when already read). A wrong entry, or a video given twice, is a
    PredictionError; a file in none of these layouts another ValueError, KeyError or TypeError."""
    text = read_text(path) if text is None else text
    if Path(path).suffix.lower() != ".json":
        rows = _prediction_rows(path, text, ("video_id", "caption"))
        return _unique(path, [(f"line {line}", _csv_id(path, line, row), row["caption"])
                              for line, row in rows if row.get("rank", "1").strip() == "1"])
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _json_object(path, pairs))
    except json.JSONDecodeError as e:
        raise PredictionError.at(path, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None
    if isinstance(data, list):
        return _unique(path, [_listed_caption(path, i, r) for i, r in enumerate(data)])
    key = next((k for k in ("predictions", "results") if isinstance(data, dict) and k in data), None)
    found = data[key] if key else data
    if not isinstance(found, dict) or (found and not any(isinstance(c, (str, list, dict)) for c in found.values())):
        raise TypeError("not a JSON list or object of captions")  # e.g. counts: not a caption file at all
    return _unique(path, [(vid, vid, _caption_of(path, f"{key or ''}[{vid!r}]", c)) for vid, c in found.items()])


def read_counts(path: str | os.PathLike, text: str | None = None) -> dict[str, float]:
    """video_id -> count of a ``video_id,count`` CSV (``text``: its content, when already read). A count
    that is no finite number, or a video given twice, is a PredictionError; a file without those columns
    another ValueError."""
    entries = []
    for line, row in _prediction_rows(path, read_text(path) if text is None else text, ("video_id", "count")):
        vid = _csv_id(path, line, row)
        entries.append((f"line {line}", vid, _count(path, f"{line} (video_id {vid!r})", row["count"])))
    return _unique(path, entries)


def _prediction_rows(path, text: str, columns) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of each row of a prediction CSV, read as an annotation CSV is (a byte-order mark, and
    spaces or capitals in the header, allowed); a row of another length is a PredictionError, JSON or a
    header without ``columns`` another ValueError (not such a file)."""
    if text.lstrip().startswith(("{", "[")):
        raise ValueError(f"{path}: JSON, not CSV")
    try:
        header, rows = read_csv(path, text)
    except AnnotationError as e:
        raise PredictionError(str(e)) from None
    require_columns(path, header, columns)
    return rows


def _unique(path, entries: list[tuple[str, str, object]]) -> dict:
    """video_id -> prediction of (where, video_id, prediction) entries; a video given twice (the error
    names both places) or no entry at all is a PredictionError."""
    found, seen = {}, {}
    for where, vid, value in entries:
        if vid in seen:
            raise PredictionError(f"{path}: video {vid!r} is predicted twice ({seen[vid]} and {where}); "
                                  "one prediction per video is scored")
        found[vid], seen[vid] = value, where
    if not found:
        raise PredictionError(f"{path}: no predictions")
    return found


def _csv_id(path, line: int, row: dict[str, str]) -> str:
    """The video_id of a CSV row; an empty one is a PredictionError."""
    vid = row["video_id"].strip()
    if not vid:
        raise PredictionError.at(path, line, "empty video_id")
    return vid


def _count(path, where: str, cell: str) -> float:
    """The number in a count cell (``number_at``); one that is no finite number is a PredictionError."""
    try:
        return number_at(path, where, "count", cell)
    except AnnotationError as e:
        raise PredictionError(str(e)) from None


def _json_object(path, pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; one with a key given twice (JSON readers keep the last) is a PredictionError."""
    found = dict(pairs)
    if len(found) < len(pairs):
        keys = [k for k, _ in pairs]
        twice = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise PredictionError(f"{path}: key {twice!r} is given twice in one JSON object")
    return found


def _shown(value) -> str:
    """A JSON value in a message, cut to 40 characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _listed_caption(path, i: int, entry) -> tuple[str, str, str]:
    """(where, video_id, caption) of the entry ``[i]`` of a COCO results list."""
    if not isinstance(entry, dict):
        raise PredictionError.at(path, f"[{i}]", f'{_shown(entry)} is not an object {{"video_id", "caption"}}')
    key = "video_id" if "video_id" in entry else "image_id"
    vid = entry.get(key)
    if isinstance(vid, bool) or not isinstance(vid, (str, int)) or not str(vid).strip():
        raise PredictionError.at(path, f"[{i}]", "missing key 'video_id' (or 'image_id')" if key not in entry
                                 else f"{key} is {_shown(vid)}, not an id")
    return f"[{i}]", str(vid).strip(), _caption_of(path, f"[{i}] ({key} {vid!r})", entry)


def _caption_of(path, where: str, value) -> str:
    """The caption of an entry: text, an object's ``caption``, or a best-first list's first ``caption``."""
    best = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else value
    if isinstance(best, dict):
        if "caption" not in best:
            raise PredictionError.at(path, where, "missing key 'caption'")
        best = best["caption"]
        if not isinstance(best, str):
            raise PredictionError.at(path, where, f"caption is {_shown(best)}, not text")
    if not isinstance(best, str):
        raise PredictionError.at(path, where, f'{_shown(value)} is not a caption (text, {{"caption"}}, or a list of '
                                              f'{{"caption"}}, best first)')
    return best


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def write_timed_captions(path: str | os.PathLike, segments: list[tuple[float, float, str]]) -> None:
    """(start_s, end_s, caption) segments, in time order, as SubRip (.srt) or WebVTT (.vtt); a cue ends where
    the next one starts (windows that overlap, such as the last one pulled back to end with the video, would
    show two captions at once)."""
    fmt = output_format(path, CAPTION_FORMATS, "caption")
    segments = [(a, min(b, after[0]) if after else b, text)
                for (a, b, text), after in zip(segments, [*segments[1:], None])]
    if fmt == ".srt":
        blocks = [f"{k}\n{_timestamp(a, ',')} --> {_timestamp(b, ',')}\n{text}\n" for k, (a, b, text) in
                  enumerate(segments, 1)]
        write_text(path, "\n".join(blocks))
    elif fmt == ".vtt":
        blocks = [f"{_timestamp(a, '.')} --> {_timestamp(b, '.')}\n{text}\n" for a, b, text in segments]
        write_text(path, "WEBVTT\n\n" + "\n".join(blocks))
    else:
        raise ValueError(f"{path}: timed captions must end in .srt or .vtt")


def read_timed_captions(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """Segments of an .srt or .vtt file written by ``write_timed_captions``."""
    def seconds(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    segments = []
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in block.strip().splitlines() if ln and ln != "WEBVTT"]
        timing = next((k for k, ln in enumerate(lines) if " --> " in ln), None)
        if timing is not None:
            start, end = lines[timing].split(" --> ")
            segments.append((seconds(start), seconds(end), " ".join(lines[timing + 1:])))
    return segments


def write_csv(path: str | os.PathLike, header: list[str], rows: list[list]) -> None:
    """A CSV file with ``header`` (floats written with 4 decimals)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([[f"{v:.4f}" if isinstance(v, float) else v for v in row] for row in rows])
    write_text(path, buf.getvalue())


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
