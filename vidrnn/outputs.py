"""The one place that writes (and reads back) result files: captions as JSON/CSV/SRT/VTT, counts as
CSV, all written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .features.store import atomic_write

CAPTION_FORMATS = (".json", ".csv", ".srt", ".vtt")
TIMED_FORMATS = (".srt", ".vtt")


def output_format(path: str | os.PathLike, formats: tuple[str, ...], what: str) -> str:
    """The format a ``what`` output file's name asks for: its extension, lower case, one of ``formats``."""
    suffix = Path(path).suffix
    if suffix.lower() not in formats:
        raise ValueError(f"{path}: {what} output must end in {', '.join(formats)} (not {suffix or 'no extension'})")
    return suffix.lower()


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


def read_captions(path: str | os.PathLike) -> dict[str, str]:
    """video_id -> best caption, from a file written by ``write_captions`` or laid out as other captioning
    code writes its results: a COCO results list (``image_id`` for ``video_id``), or a JSON object of
    id -> caption or id -> [{"caption"}, ...] (best first), alone or under ``predictions`` / ``results``."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        with open(path, newline="", encoding="utf-8") as f:
            return {r["video_id"]: r["caption"] for r in csv.DictReader(f) if r.get("rank", "1") == "1"}
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return {str(r["video_id"] if "video_id" in r else r["image_id"]): r["caption"] for r in data}
    found = data.get("predictions", data.get("results", data))
    return {str(vid): c if isinstance(c, str) else (c[0] if isinstance(c, list) else c)["caption"]
            for vid, c in found.items()}


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def write_timed_captions(path: str | os.PathLike, segments: list[tuple[float, float, str]]) -> None:
    """(start_s, end_s, caption) segments as SubRip (.srt) or WebVTT (.vtt)."""
    fmt = output_format(path, CAPTION_FORMATS, "caption")
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
