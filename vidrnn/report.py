"""An HTML report of a caption, count or demo run's output folder: ``report.html``, one page that opens
in a browser with no server (it links the folder's own files by relative paths): the metrics, the plots
and, per video, its contact sheet, captions, counts and count timeline."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from .files import file_name
from .outputs import write_text
from .pictures import RENDERED, SHEETS, load_notes, people

REPORT = "report.html"
RESULT_SUFFIXES = (".json", ".jsonl", ".csv", ".srt", ".vtt", ".png", ".mp4")
# per-epoch and per-video numbers (in the files, too long here); a best epoch's number, learning rate and time
SKIPPED_KEYS = ("history", "final", "per_video", "epoch", "lr", "seconds", "complete")
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { padding: 3px 10px; text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.metrics { display: flex; flex-wrap: wrap; gap: 0 32px; align-items: flex-start; } .metrics h3 { font-size: 15px; }
.plots img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0; }
.video { border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
.video img { max-width: 100%; display: block; margin: 6px 0; }
.video dt { color: #666; float: left; width: 9.5em; clear: left; } .video dd { margin-left: 10em; }
.predicted { color: #1a50a0; font-weight: 600; } .error { color: #b00; } .dim { color: #666; }
"""


def write_report(out_dir: str | os.PathLike, *, title: str = "vidrnn results",
                 videos: Sequence[str] | None = None, note: str = "") -> Path:
    """Write ``out_dir/report.html`` from what is in ``out_dir`` (``videos.jsonl``, ``sheets/``,
    ``rendered/``, ``*_plots/``, ``*metrics.json`` and ``*/metrics.json``, ``*.png`` and
    ``*/curves.png``); ``videos``: show only these ids; ``note``: a paragraph under the title. Returns its path."""
    out = Path(out_dir)
    notes = load_notes(out)
    ids = sorted(notes) if videos is None else sorted(set(notes) & set(videos))
    body = [f"<h1>{escape(title)}</h1>", f'<p class="dim">{escape(str(out.resolve()))}</p>']
    if note:
        body.append(f"<p>{escape(note)}</p>")
    metrics = sorted(out.glob("*metrics.json")) + sorted(out.glob("*/metrics.json"))
    if metrics:
        body.append('<h2>Metrics</h2><div class="metrics">')
        body += [_metrics_table(out, path) for path in metrics]
        body.append("</div>")
    if ids:
        body.append(f"<h2>Videos ({len(ids)})</h2>")
        body.append(_video_table(ids, notes))
        body += [_video_card(out, vid, notes[vid]) for vid in ids]
    plots = sorted(out.glob("*.png")) + sorted(out.glob("*/curves.png"))
    if plots:
        body.append('<h2>Plots</h2><div class="plots">')
        body += [f'<p>{escape(_rel(out, p))}<br>{_img(out, p, "plot " + _rel(out, p))}</p>' for p in plots]
        body.append("</div>")
    files = [p for p in sorted(out.iterdir())
             if p.is_file() and p.suffix.lower() in RESULT_SUFFIXES and not p.name.startswith(".")]
    if files:
        body.append("<h2>Files</h2><ul>")
        body += [f"<li>{_link(out, p)} <span class='dim'>({p.stat().st_size:,} bytes)</span></li>" for p in files]
        body.append("</ul>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out / REPORT
    write_text(path, page)
    return path


def _rel(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()


def _href(out: Path, path: Path) -> str:
    return escape(quote(_rel(out, path)))


def _img(out: Path, path: Path, alt: str) -> str:
    return f'<a href="{_href(out, path)}"><img src="{_href(out, path)}" alt="{escape(alt)}"></a>'


def _link(out: Path, path: Path, text: str | None = None) -> str:
    return f'<a href="{_href(out, path)}">{escape(text or _rel(out, path))}</a>'


def _flat(obj: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, value) of the scalars in nested dicts, lists and ``SKIPPED_KEYS`` left out."""
    rows = []
    for key, value in obj.items():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            rows.append((f"{prefix}{key}", value))
    return rows


def _metrics_table(out: Path, path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f'<p>{_link(out, path)}: <span class="error">{escape(str(e))}</span></p>'
    rows = _flat(data) if isinstance(data, dict) else []
    cells = "".join(f"<tr><td>{escape(k)}</td><td class='num'>{escape(_number(v))}</td></tr>" for k, v in rows)
    return f"<div><h3>{_link(out, path)}</h3><table>{cells}</table></div>"


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _video_table(ids: list[str], notes: dict) -> str:
    """One row per video, linked to its card: its caption, count and true count (a column nobody has is left out)."""
    def caption(n: dict) -> str:
        return n.get("caption") or " / ".join(text for _, _, text in n.get("segments") or [])

    def number(value, show) -> str:
        return "" if value is None else show(value)

    columns = [("caption", "predicted", caption),
               ("people", "num", lambda n: number(n.get("count"), lambda v: f"{v:.1f}")),
               ("true", "num", lambda n: number(n.get("true_count"), people))]
    columns = [c for c in columns if any(c[2](notes[vid]) for vid in ids)]
    head = "<tr><th>video</th>" + "".join(f"<th>{name}</th>" for name, _, _ in columns) + "</tr>"
    rows = [f'<tr><td><a href="#{escape(quote(vid))}">{escape(vid)}</a></td>'
            + "".join(f'<td class="{css}">{escape(cell(notes[vid]))}</td>' for _, css, cell in columns) + "</tr>"
            for vid in ids]
    return f"<table>{head}{''.join(rows)}</table>"


def _video_card(out: Path, vid: str, n: dict) -> str:
    parts = [f'<section class="video" id="{escape(quote(vid))}"><h3>{escape(vid)}</h3>',
             f'<p class="dim">{escape(n.get("path", ""))}</p>']
    png = file_name(vid, ".png")
    sheet = out / SHEETS / png
    if sheet.is_file():
        parts.append(_img(out, sheet, f"contact sheet of {vid}"))
    facts = [] if sheet.is_file() else _facts(n)  # a contact sheet carries the captions and counts itself
    rendered = out / RENDERED / file_name(vid, ".mp4")
    if rendered.is_file():
        facts.append(("annotated video",
                      _link(out, rendered) + ' <span class="dim">(mp4v: open it in a video player)</span>'))
    if n.get("picture_error"):
        facts.append(("pictures", f'<span class="error">failed: {escape(n["picture_error"])}</span>'))
    parts.append("<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    timelines = [d / png for d in sorted(out.glob("*_plots")) if (d / png).is_file()]
    parts += [_img(out, p, f"count timeline of {vid}") for p in timelines]
    parts.append("</section>")
    return "\n".join(parts)


def _facts(n: dict) -> list[tuple[str, str]]:
    """(label, HTML) of a video's captions, references and counts, for a card without a contact sheet."""
    facts = []
    if n.get("caption"):
        facts.append(("caption", f'<span class="predicted">{escape(n["caption"])}</span>'))
    if n.get("segments"):
        rows = "".join(f"<tr><td class='num'>{start:.1f}\u2013{end:.1f} s</td>"
                       f"<td class='predicted'>{escape(text)}</td></tr>" for start, end, text in n["segments"])
        facts.append(("timed captions", f"<table>{rows}</table>"))
    if n.get("references"):
        facts.append(("references", "<br>".join(escape(r) for r in n["references"])))
    if n.get("count") is not None or n.get("true_count") is not None:
        told = ([] if n.get("count") is None else [f'<span class="predicted">{n["count"]:.2f}</span> predicted']) + \
               ([] if n.get("true_count") is None else [f"{escape(people(n['true_count']))} true"])
        facts.append(("people", ", ".join(told)))
    return facts
