"""Pictures of results: a contact sheet PNG per video (sampled frames with their times, the predicted
caption and count, the references when known) and an annotated copy of the video (the caption and the
live count burned in).

Caption and count runs record what each video got in their output folder's ``videos.jsonl`` (a JSON line
per video where a run found something new; later lines add to or replace earlier fields), so a folder
that both write into gets pictures, and a report, with both."""
from __future__ import annotations

import bisect
import ctypes
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .data import CaptionSet, CountLabels, fill_gaps, load_captions, load_count_labels
from .device import process_context
from .evaluate import annotated_ids
from .features.encode import CRASHED
from .features.store import _append_jsonl, _read_jsonl, atomic_write
from .files import file_name, fitted_name, n_videos, single_line
from .outputs import read_csv_rows
from .video import (Sampling, VideoError, count_remaining, decoded_edges, failure_reason, next_frame, open_video,
                    read_frames, read_sampled)

log = logging.getLogger("vidrnn.pictures")
NOTES, SHEETS, RENDERED = "videos.jsonl", "sheets", "rendered"
_FONT_DIR = Path(matplotlib.get_data_path(), "fonts", "ttf")  # DejaVu: every script, ships with matplotlib
TEXT, DIM, ACCENT = (20, 20, 20), (105, 105, 105), (25, 80, 160)  # ACCENT: the model's output
MARGIN, GAP = 12, 6  # contact sheet: around and between the tiles (pixels)
JOBS_PER_PROCESS = 4  # draw_each starts at most one process per 4 pictures (a start is not free)


def load_notes(out_dir: str | os.PathLike) -> dict[str, dict]:
    """video_id -> everything recorded about it in ``out_dir/videos.jsonl``, later lines winning."""
    notes: dict[str, dict] = {}
    for row in _read_jsonl(Path(out_dir, NOTES)):
        if isinstance(row, dict) and isinstance(row.get("video_id"), str):
            notes.setdefault(row["video_id"], {}).update(row)
    return notes


def per_frame(meta, frames: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((sampled frame indices, their times), predicted count of each) in frame order, from per-window counts
    ``frames`` (W, N): a frame that overlapping windows share is counted once, its predictions averaged."""
    idx, inverse = np.unique(np.asarray(meta.frame_indices).reshape(-1), return_inverse=True)
    times = np.zeros(len(idx))
    times[inverse] = np.asarray(meta.timestamps, float).reshape(-1)
    counts = np.bincount(inverse, weights=np.asarray(frames, float).reshape(-1)) / np.bincount(inverse)
    return (idx, times), counts.astype(np.float32)


def count_track(frames: np.ndarray, meta, truth: np.ndarray | None = None) -> list[list]:
    """``[frame, time_s, predicted, true or None, true is interpolated]`` per sampled frame, in frame order
    (``per_frame``), from per-frame counts shaped like the sampling plan (``(W, N)``) and the video's
    ``VideoMeta``; ``truth`` is the labelled count of every frame (NaN where unlabelled). A frame between two
    labelled ones gets their interpolation (``fill_gaps``, as training reads labels on every n-th frame)."""
    (idx, times), counts = per_frame(meta, frames)
    filled = fill_gaps(truth)
    rows = []
    for i, time_s, count in zip(idx.tolist(), times, counts):
        true = filled[i] if filled is not None and i < len(filled) and not np.isnan(filled[i]) else None
        rows.append([i, round(float(time_s), 4), round(float(count), 3), None if true is None else float(true),
                     bool(true is not None and np.isnan(truth[i]))])
    return rows


def track_at(track: list[list], frame: int) -> list | None:
    """The track row of the latest sampled frame at or before ``frame`` (the first row before it)."""
    if not track:
        return None
    k = bisect.bisect_right([row[0] for row in track], frame)
    return track[max(k - 1, 0)]


def caption_at(notes: dict, seconds: float) -> str | None:
    """The timed caption showing at ``seconds`` (the latest window started by then; none between a window's
    end and the next one's start, as in the .srt), else the clip's."""
    segments = notes.get("segments")
    if segments:
        started = [(end, text) for start, end, text in segments if start <= seconds]
        if not started:
            return segments[0][2]
        end, text = started[-1]
        return None if seconds >= end and len(started) < len(segments) else text
    return notes.get("caption")


def clock(seconds: float) -> str:
    """0:03.5, or 1:02:03.5 past an hour."""
    minutes, s = divmod(max(seconds, 0.0), 60)
    h, m = divmod(int(minutes), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def people(value: float | None) -> str:
    """A true count as shown: to one decimal, whole numbers without it."""
    if value is None:
        return "?"
    value = round(float(value), 1)
    return str(int(value)) if value.is_integer() else f"{value:.1f}"


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


@lru_cache(maxsize=256)
def _wrap(text: str, size: int, width: int, bold: bool = False) -> tuple[str, ...]:
    """``text`` broken into lines no wider than ``width`` pixels (a longer word is cut)."""
    font, lines, line = _font(size, bold), [], ""
    for word in text.split():
        while font.getlength(word) > width:  # a word wider than the line: cut it
            cut = max(k for k in range(1, len(word) + 1) if font.getlength(word[:k]) <= width or k == 1)
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    return tuple(lines + [line] if line else lines)


def _darken(canvas: Image.Image, box) -> None:
    box = tuple(int(v) for v in box)
    if box[2] <= box[0] or box[3] <= box[1]:  # off the canvas (a frame a few pixels high)
        return
    canvas.paste(canvas.crop(box).point(lambda v: v // 3), box)


def _boxed(canvas: Image.Image, xy: tuple[int, int], text: str, size: int, *, anchor: str = "la",
           color=(255, 255, 255)) -> None:
    """``text`` on a darkened box at ``xy`` (``anchor`` as PIL's: la top-left, ra top-right, ld bottom-left)."""
    draw, font, pad = ImageDraw.Draw(canvas), _font(size, True), max(2, size // 4)
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=font, anchor=anchor)
    _darken(canvas, (max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, canvas.width), min(y1 + pad, canvas.height)))
    draw.text(xy, text, font=font, fill=color, anchor=anchor)


def _count_label(row: list | None) -> str | None:
    if row is None:
        return None
    about = "\u2248" if len(row) > 4 and row[4] else ""  # between two labelled frames
    return f"people {row[2]:.1f}" + ("" if row[3] is None else f"  (true {about}{people(row[3])})")


def contact_sheet(notes: dict, path: str | os.PathLike, *, frames: int = 6, columns: int = 3,
                  tile_width: int = 320, backend: str = "auto") -> tuple[int, int]:
    """Write a PNG of ``frames`` evenly spaced frames of the video ``notes["path"]`` (its time and count
    on each: with a count ``track``, frames it counted, so the numbers are those of the frame shown), with
    the video's caption(s), references and count below; returns its (width, height)."""
    track = notes.get("track") or []
    if track:
        picks = np.unique(np.linspace(0, len(track) - 1, min(frames, len(track))).round().astype(int))
        rows = [track[k] for k in picks]
        indices, times = np.array([row[0] for row in rows]), np.array([row[1] for row in rows])
        images, about = _frames_at(notes["path"], indices, backend)
    else:
        images, meta = read_sampled(notes["path"], Sampling(num_frames=frames), size=None, backend=backend)
        keep = np.unique(meta.frame_indices, return_index=True)[1]  # short videos: no frame twice
        images, indices, times = images[keep], np.asarray(meta.frame_indices)[keep], np.asarray(meta.timestamps)[keep]
        about = _about(notes["path"], meta.width, meta.height, meta.frame_count, meta.fps, meta.duration_s)
    h, w = images.shape[1:3]  # images: (N, H, W, 3)
    tile_h = int(np.clip(round(tile_width * h / w), tile_width // 4, tile_width * 2))
    columns = min(columns, len(images))
    rows, gap, margin, size = math.ceil(len(images) / columns), GAP, MARGIN, 16
    width = 2 * margin + columns * tile_width + (columns - 1) * gap
    grid_h = rows * (tile_h + gap) - gap
    lines = _sheet_lines(notes, about, width - 2 * margin, size)
    line_h = round(size * 1.5)
    sheet = Image.new("RGB", (width, 2 * margin + grid_h + margin + len(lines) * line_h), "white")
    for k, (image, index, t) in enumerate(zip(images, indices, times)):
        tile = Image.fromarray(cv2.resize(image, (tile_width, tile_h), interpolation=cv2.INTER_AREA
                                          if w > tile_width else cv2.INTER_LINEAR))
        _boxed(tile, (6, 6), f"{clock(float(t))}  #{int(index)}", 14)
        label = _count_label(track_at(track, int(index)))
        if label:
            _boxed(tile, (6, tile_h - 6), label, 14, anchor="ld")
        r, c = divmod(k, columns)
        sheet.paste(tile, (margin + c * (tile_width + gap), margin + r * (tile_h + gap)))
    draw, y = ImageDraw.Draw(sheet), 2 * margin + grid_h
    for label, x, text, color, bold in lines:
        draw.text((margin, y), label, font=_font(size), fill=DIM)
        draw.text((margin + x, y), text, font=_font(size + 2 if bold else size, bold), fill=color)
        y += line_h
    atomic_write(path, lambda f: sheet.save(f, format="PNG", compress_level=1))  # level 6: 3x the time, 2/3 the size
    return sheet.size


def _frames_at(path: str, indices: np.ndarray, backend: str) -> tuple[np.ndarray, str]:
    """Frames ``indices`` (sorted, unique) of the video at ``path``, full size ((N, H, W, 3) uint8 RGB), and
    its ``_about`` line, from one pass over it."""
    reader = open_video(path, backend)
    try:
        found = dict(read_frames(reader, indices))
        total = count_remaining(reader)
        fps = reader.info.fps if reader.info.fps > 0 else 0.0
        edges = decoded_edges(reader, total, fps)
    finally:
        reader.close()
    if len(found) < len(indices):
        raise VideoError(f"frame {max(set(indices.tolist()) - set(found))} could not be read again")
    about = _about(path, reader.info.width, reader.info.height, total, fps,
                   None if edges is None else float(edges[-1]))
    return np.stack([found[int(i)] for i in indices]), about


def _about(path: str, width: int, height: int, frames: int, fps: float, duration_s: float | None) -> str:
    """A contact sheet's line on the video file: name, size, frames, rate and length (the decoder's clock)."""
    rate = f", {fps:.3g} fps" if fps else ""
    duration = f", {clock(duration_s)}" if duration_s is not None else ""
    return f"{Path(path).name}   {width}x{height}, {frames} frames{rate}{duration}"


def _sheet_lines(notes: dict, about: str, width: int, size: int) -> list[tuple[str, int, str, tuple, bool]]:
    """(label, x, text, colour, bold) lines of a contact sheet's panel, wrapped to ``width`` pixels: a grey
    label column ("caption", "references", ...) beside the text."""
    column = round(_font(size).getlength("references ")) + size
    out: list[tuple[str, int, str, tuple, bool]] = []

    def add(label: str | None, text: str, color=TEXT, bold: bool = False) -> None:
        """``label`` None: the text spans the width; else it sits right of the label column."""
        x = 0 if label is None else column
        for k, line in enumerate(_wrap(text, size + 2 if bold else size, width - x, bold)):
            out.append((label if k == 0 and label else "", x, line, color, bold))

    add(None, notes["video_id"], bold=True)
    add(None, about, DIM)
    if notes.get("caption"):
        add("caption", notes["caption"], ACCENT)
    segments = notes.get("segments") or []
    for k, (start, end, text) in enumerate(segments[:8]):
        add("" if k else "captions", f"{clock(start)}\u2013{clock(end)}   {text}", ACCENT)
    if len(segments) > 8:
        add("", f"... and {len(segments) - 8} more windows", DIM)
    refs = notes.get("references") or []
    for k, ref in enumerate(refs[:4]):
        add("" if k else "references", ref)
    if len(refs) > 4:
        add("", f"... and {len(refs) - 4} more", DIM)
    count, true = notes.get("count"), notes.get("true_count")
    told = ([] if count is None else [f"{count:.1f} predicted"]) + ([] if true is None else [f"{people(true)} true"])
    if told:
        add("people", ", ".join(told), ACCENT)
    return out


def render_video(notes: dict, path: str | os.PathLike, *, min_width: int = 480, backend: str = "auto") -> int:
    """Write an mp4 (mp4v) copy of the video ``notes["path"]`` with its caption (per window when timed)
    and the live count burned into every frame, scaled up to at least ``min_width`` pixels wide; frames
    are decoded, drawn and written one at a time. Returns the number of frames written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(fitted_name(f".{path.stem}.{os.getpid()}.partial", path.suffix))  # one per process
    reader = open_video(notes["path"], backend)  # a first pass for the decoder's clock of every frame
    try:
        info, total = reader.info, count_remaining(reader)
        fps = info.fps if info.fps > 0 else 25.0
        edges = decoded_edges(reader, total, fps)  # (total + 1,)
    finally:
        reader.close()
    # plays as long as the source (variable rates), at a rate mp4v takes (a frame every 1000 s plays faster)
    rate = min(max(total / edges[-1] if total and edges[-1] > 0 else fps, 1.0), 240.0)
    reader, writer, written = open_video(notes["path"], backend), None, 0
    try:
        size = _render_size(info.width, info.height, min_width)
        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), rate, size)
        if not writer.isOpened():
            raise VideoError(f"OpenCV cannot write {partial} (mp4v, {size[0]}x{size[1]}, {rate:g} frames/s)")
        text = max(16, round(size[0] / 40))
        while written < total and next_frame(reader):  # frames numbered as the runs number them
            frame = reader.retrieve()  # (H, W, 3) RGB
            if frame.shape[1::-1] != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            seconds = float(edges[written])
            writer.write(cv2.cvtColor(annotate(frame, notes, written, seconds, text), cv2.COLOR_RGB2BGR))
            written += 1
        writer.release()
        if not written:
            raise VideoError("no frame could be decoded")
        _check_written(partial, written)
        os.replace(partial, path)
    finally:
        reader.close()
        if writer is not None:
            writer.release()
        partial.unlink(missing_ok=True)
    return written


def _check_written(path: Path, frames: int) -> None:
    """OpenCV's writer reports no failed write (a full disk): the file must read back with its frames."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    if count != frames:
        raise OSError(f"{path.name}: the copy written does not read back ({count} of {frames} frames; a full disk?)")


def _render_size(width: int, height: int, min_width: int, *, most: int = 1920, least: int = 16) -> tuple[int, int]:
    """(width, height) of a rendered copy: scaled up to ``min_width`` wide, but each side within
    [``least``, ``most``] pixels (a 16x2000 video would grow to 480x60000) and even (as mp4v wants)."""
    scale = min(max(1.0, min_width / width), most / max(width, height))
    return tuple(2 * round(min(max(side * scale, least), most) / 2) for side in (width, height))


def annotate(frame: np.ndarray, notes: dict, index: int, seconds: float, size: int) -> np.ndarray:
    """``frame`` (H, W, 3) RGB with the time and live count at the top and the caption at the bottom."""
    canvas, pad = Image.fromarray(frame), size // 2
    _boxed(canvas, (canvas.width - pad, pad), clock(seconds), size, anchor="ra")
    label = _count_label(track_at(notes.get("track") or [], index))
    if label:
        _boxed(canvas, (pad, pad), label, size, color=(255, 225, 90))
    caption = caption_at(notes, seconds)
    if caption:
        lines = _wrap(caption, size, canvas.width - 2 * pad, True)
        if len(lines) > 3:
            lines = lines[:2] + (lines[2] + " ...",)
        line_h = round(size * 1.3)
        top = canvas.height - pad - len(lines) * line_h
        _darken(canvas, (0, max(top - pad // 2, 0), canvas.width, canvas.height))
        draw = ImageDraw.Draw(canvas)
        for k, line in enumerate(lines):
            draw.text((canvas.width // 2, top + k * line_h), line, font=_font(size, True), fill="white", anchor="ma")
    return np.asarray(canvas)


def draw_each(draw: Callable, jobs: Sequence[tuple], *, workers: int = 1, progress: bool = False) -> list[str | None]:
    """``draw(*job)`` for every job; returns, in job order, None or why it failed (one line): nothing
    raises. With ``workers`` > 1 and enough jobs they run in up to that many processes (drawing a PNG is
    CPU work in Python: on a folder of short videos it took more time than counting them), and a process
    that dies (a native crash in a decoder) costs only the picture it was drawing."""
    found: dict[int, str | None] = {}
    bar = tqdm(total=len(jobs), unit="picture", disable=not progress or not jobs, dynamic_ncols=True)
    processes = min(workers, len(jobs) // JOBS_PER_PROCESS)
    if processes > 1:
        try:
            context = process_context()
            stop = context.Event()  # set on an interrupt: the processes skip the pictures still queued
            with ProcessPoolExecutor(processes, context, initializer=_listen, initargs=(stop,)) as pool:
                futures = {pool.submit(_attempt, draw, job): k for k, job in enumerate(jobs)}
                try:
                    for future in as_completed(futures):
                        found[futures[future]] = future.result()
                        bar.update()
                except KeyboardInterrupt:
                    stop.set()
                    raise
                except BrokenProcessPool:
                    _kill_processes(pool)
                    raise
        except BrokenProcessPool:  # the rest one at a time, each in a process of its own
            for k in (k for k in range(len(jobs)) if k not in found):
                try:
                    with ProcessPoolExecutor(1, context, initializer=_listen, initargs=(stop,)) as pool:
                        found[k] = pool.submit(_attempt, draw, jobs[k]).result()
                except BrokenProcessPool:
                    found[k] = CRASHED
                bar.update()
    for k in (k for k in range(len(jobs)) if k not in found):
        found[k] = _attempt(draw, jobs[k])
        bar.update()
    bar.close()
    return [found[k] for k in range(len(jobs))]


_stop = None  # in a drawing process: draw_each's interrupt event


def _kill_processes(pool: ProcessPoolExecutor) -> None:
    """Kill a broken pool's processes: Python 3.12+ ends them with SIGTERM, which they ignore (``_listen``),
    and then waits for them, so a run whose drawing process died hung for ever."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


def _listen(stop) -> None:
    """A drawing process's start: it learns of interrupts through ``stop``, and dies with the run."""
    global _stop
    _stop = stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the main process's to act on (it stops the drawing)
    _die_with_parent()


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the one that started it dies: a run killed while
    drawing left its drawing processes waiting for work for ever, holding the records' lock it was
    started under (the rerun then waited on it)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _attempt(draw: Callable, job: tuple) -> str | None:
    if _stop is not None and _stop.is_set():
        return "interrupted"
    try:
        draw(*job)
    except Exception as e:  # pictures must never end the batch
        return failure_reason(e)
    return None


def _draw_picture(notes: dict, target: Path, backend: str) -> None:
    """A contact sheet (``.png``) or an annotated copy (``.mp4``) of one video."""
    draw = contact_sheet if target.suffix == ".png" else render_video
    draw(notes, target, backend=backend)


class Pictures:
    """Records what each video of a run got in ``out_dir/videos.jsonl`` and draws its pictures there:
    ``sheets/<video_id>.png`` and, with ``render``, ``rendered/<video_id>.mp4``.

    ``references``: a caption annotation file and ``labels``: count label files (per clip and/or per
    frame), shown where they know a video. Pictures are drawn in up to ``workers`` processes.
    A video whose pictures fail is logged and kept in ``failed`` (and its notes): never raised.
    """

    def __init__(self, out_dir: str | os.PathLike, *, sheets: bool = True, render: bool = False,
                 references: str | None = None, labels: Sequence[str] = (), backend: str = "auto",
                 workers: int = 1, progress: bool = False):
        self.dir, self.sheets, self.render = Path(out_dir), sheets, render
        self.backend, self.workers, self.progress = backend, workers, progress
        self.references = load_captions(references) if references else CaptionSet()
        self.referenced: set[str] = set()  # the videos added that have references
        self.clip_truth, self.frame_truth = {}, {}
        for path in labels:
            self._add_truth(load_count_labels(path))
        self.notes = load_notes(self.dir)
        self.failed: dict[str, str] = {}

    def add(self, video_id: str, path: str | os.PathLike, *, fresh: bool = True, **found) -> None:
        """Record ``found`` (``caption``, ``segments``, ``count``, ``track``...) for one video and draw its
        pictures with everything known about it; a video that is not ``fresh`` (an earlier run computed
        it) is drawn only where its pictures are missing."""
        self._add_all([(video_id, path, fresh, found)])

    def add_captions(self, input_dir: str, ids: dict[str, str], results: dict[str, dict], done) -> None:
        """The captions (``caption`` or timed ``segments``) of a caption run: ``results`` by video id,
        ``ids`` relative path -> video id, ``done`` the ids this run computed."""
        paths, done = {vid: Path(input_dir, f) for f, vid in ids.items()}, set(done)
        self._add_all([(vid, paths[vid], vid in done, {k: result[k] for k in ("caption", "segments") if k in result})
                       for vid, result in sorted(results.items())])

    def add_counts(self, input_dir: str, ids: dict[str, str], results: dict[str, tuple], done,
                   counts_csv: str | os.PathLike, truth: CountLabels | None = None) -> None:
        """The counts of a count run: the count per video as ``counts_csv`` holds it and the count over
        time from ``results`` (video id -> (clip counts, per-frame counts (W, N), VideoMeta)), with the
        ``truth`` the run scored them against."""
        paths, done = {vid: Path(input_dir, f) for f, vid in ids.items()}, set(done)
        if truth is not None:
            self._add_truth(truth)
        counts = {row["video_id"]: float(row["count"]) for row in read_csv_rows(counts_csv)}
        self._add_all([(vid, paths[vid], vid in done,
                        {"count": counts[vid], "track": count_track(frames, meta, self.frame_truth.get(vid))})
                       for vid, (_, frames, meta) in sorted(results.items())])

    def _add_truth(self, truth: CountLabels) -> None:
        self.clip_truth.update(truth.clip)
        self.frame_truth.update(truth.frames)

    def _add_all(self, found: list[tuple[str, str | os.PathLike, bool, dict]]) -> None:
        """Record (video id, path, fresh, fields) of many videos in one write, then draw them."""
        for vid in (vid for vid, _, fresh, _ in found if fresh):  # pictures of the results before: gone before the
            for target in self._targets(vid):  # new ones are recorded (a rerun after a kill draws what is missing)
                target.unlink(missing_ok=True)
        entries, refs = [], self.references
        named = annotated_ids([vid for vid, *_ in found], refs.captions, refs.paths)  # as evaluate matches them
        for vid, path, _, fields in found:
            entry = {"video_id": vid, "path": os.path.abspath(path), **fields}
            if named[vid] is not None:
                entry["references"] = refs.captions[named[vid]]
                self.referenced.add(vid)
            if vid in self.clip_truth or "count" in fields:  # a count run's: its truth, or none (not an earlier one's)
                entry["true_count"] = self.clip_truth.get(vid)
            entries.append(entry)
        self._record(entries)
        self.draw([vid for vid, _, fresh, _ in found if fresh], redraw=True)
        self.draw([vid for vid, _, fresh, _ in found if not fresh], redraw=False)

    def draw(self, videos: Sequence[str], *, redraw: bool = True) -> None:
        """Draw the pictures of these recorded videos; without ``redraw`` only where they are missing."""
        if not (self.sheets or self.render):
            return
        todo = [vid for vid in videos if redraw or not all(t.exists() for t in self._targets(vid))]
        if todo:
            log.info("drawing the pictures of %s into %s", n_videos(len(todo)), self.dir)
        jobs = [(vid, target) for vid in todo for target in self._targets(vid)]
        found = draw_each(_draw_picture, [(self.notes[vid], target, self.backend) for vid, target in jobs],
                          workers=self.workers, progress=self.progress)
        failed: dict[str, str | None] = {}
        for (vid, _), error in zip(jobs, found):
            failed[vid] = failed.get(vid) or error  # a video's first failure, or None
        errors = []
        for vid, error in failed.items():
            if error:
                self.failed[vid] = error
                log.warning("PICTURES FAILED %s: %s", single_line(vid), single_line(error))
            else:
                self.failed.pop(vid, None)
            if error or self.notes[vid].get("picture_error"):
                errors.append({"video_id": vid, "picture_error": error})
        self._record(errors)

    def folders(self) -> list[Path]:
        """The folders the pictures go in (whether or not this run draws any: an earlier one may have)."""
        return [self.dir / SHEETS, self.dir / RENDERED]

    def _targets(self, vid: str) -> list[Path]:
        return [self.dir / SHEETS / file_name(vid, ".png")] * self.sheets + \
            [self.dir / RENDERED / file_name(vid, ".mp4")] * self.render

    def _record(self, entries: list[dict]) -> None:
        """Append the entries that tell ``videos.jsonl`` something new (a rerun adds no lines)."""
        def new(entry: dict) -> bool:  # compared as JSON, as they read back (tuples become lists, NaN is NaN)
            known = self.notes.get(entry["video_id"], {})
            return any(json.dumps(known.get(k)) != json.dumps(v) for k, v in entry.items())

        entries = [json.loads(json.dumps(e)) for e in entries if new(e)]
        if not entries:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        _append_jsonl(self.dir / NOTES, entries)
        for entry in entries:
            self.notes.setdefault(entry["video_id"], {}).update(entry)
