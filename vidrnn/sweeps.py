"""Hydra multirun sweeps: skipping runs that already finished, recording failed runs, and a summary of
the sweep dir (one row per run: its overrides, status and final metrics) as CSV, Markdown and a plot."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from .features.store import atomic_write, changes, flat
from .outputs import write_json, write_text
from .schemas import validate

METRICS, ERROR, SETTINGS, STARTED = "metrics.json", "error.txt", "settings.json", ".sweep_started"
SKIP = ("epoch", "lr", "seconds")  # history columns that are not results


def _finished(metrics: dict, max_epochs: int, patience: int | None = None) -> bool:
    """Trained to the end and scored (``complete`` is false from the first epoch until the test scores are
    in; metrics of older runs lack it). With ``patience`` a run stopped early counts as finished only where
    it would stop with that patience too (a rerun with more trains on)."""
    epochs = metrics.get("epochs_run", 0)
    stopped = bool(metrics.get("stopped_early")) if patience is None else \
        bool(patience and epochs - (metrics.get("best_epoch") or 0) >= patience)
    return (epochs >= max_epochs or stopped) and metrics.get("complete", True)


def _read_metrics(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / METRICS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def finished_result(run_dir: str | os.PathLike, max_epochs: int, patience: int | None = None) -> dict | None:
    """The run's metrics.json when it trained to the end (``max_epochs`` epochs, or stopped early: with
    ``patience``, as early stopping with that patience would), else None."""
    metrics = _read_metrics(Path(run_dir))
    return metrics if metrics is not None and _finished(metrics, max_epochs, patience) else None


# Settings a rerun of a run dir may change: how and where it runs, how long it trains.
RESUMABLE = ("quiet", "device", "video.workers", "data.cache_dir", "trainer.resume", "trainer.max_epochs",
             "trainer.patience")


def check_settings(run_dir: str | os.PathLike, settings: dict, resume: bool = True, paths: tuple = ()) -> None:
    """A run dir holds one training run. Rerunning it with other settings would skip or resume the run
    trained with the old ones, so that is an error naming them (unless not ``resume``: train afresh). The
    settings (a run's config; ``RESUMABLE`` keys left out) are kept in the run dir's settings.json; those
    named in ``paths`` (dotted keys) are compared as absolute paths (``data/`` and ``./data`` are one)."""
    path, run = Path(run_dir, SETTINGS), Path(run_dir)

    def plain(values: dict) -> dict:
        return {k: os.path.abspath(os.path.expanduser(v)) if k in paths and isinstance(v, str) and v else v
                for k, v in values.items() if k not in RESUMABLE}

    now = plain(flat(json.loads(json.dumps(settings))))
    trained = (run / METRICS).exists() or (run / "checkpoints" / "last.pt").exists()
    if resume and trained and path.exists():
        before = plain(json.loads(path.read_text()))
        changed = changes(before, now, "there")
        if changed:
            raise ValueError(f"{run} holds a run with other settings ({'; '.join(changed[:3])}"
                             f"{'; ...' if len(changed) > 3 else ''}): give this run another hydra.run.dir (a sweep: "
                             "another hydra.sweep.dir), or trainer.resume=false to train it afresh there")
    if not resume:  # afresh: the old run goes before the new settings are kept (a stop in between left the old
        for old in (METRICS, "curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):  # model passing for one
            (run / old).unlink(missing_ok=True)  # trained with them)
    write_json(path, now)


def one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def record_error(run_dir: str | os.PathLike, error: BaseException) -> None:
    """Keep a failed run's one-line error in ``run_dir/error.txt`` for the sweep summary."""
    atomic_write(Path(run_dir, ERROR), lambda f: f.write(f"{one_line(error)}\n".encode()))


def clear_error(run_dir: str | os.PathLike) -> None:
    """Forget the error of an earlier try of this run."""
    Path(run_dir, ERROR).unlink(missing_ok=True)


def _run_row(run_dir: Path) -> dict:
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    row: dict[str, Any] = {"run": run_dir.name}
    row.update(o.split("=", 1) if "=" in o else (o, "") for o in overrides)
    config = run_dir / ".hydra" / "config.yaml"
    max_epochs = OmegaConf.select(OmegaConf.load(config), "trainer.max_epochs", default=0) if config.exists() else 0
    metrics = _read_metrics(run_dir)
    error = run_dir / ERROR
    if error.exists():  # (an interrupted run goes on when the sweep is run again)
        row["status"] = "interrupted" if error.read_text().strip() == one_line(KeyboardInterrupt()) else "failed"
    else:
        row["status"] = "done" if metrics is not None and _finished(metrics, max_epochs) else "running"
    if metrics is not None and not error.exists():  # a failed try's dir may hold an earlier run's metrics
        row.update(epochs=metrics.get("epochs_run"), best_epoch=metrics.get("best_epoch"),
                   monitor=metrics.get("monitor"), mode=metrics.get("mode"))
        for prefix, values in (("best", metrics.get("best")), ("test", metrics.get("test"))):
            row.update({f"{prefix}.{k}": v for k, v in (values or {}).items()
                        if k not in SKIP and isinstance(v, (int, float))})
    row["error"] = error.read_text().strip() if error.exists() else ""
    return row


def mark_sweep_start(sweep_dir: str | os.PathLike) -> None:
    """Note that a sweep starts in ``sweep_dir`` now: run dirs an earlier, larger sweep left there are not
    this sweep's (``sweep_runs``)."""
    atomic_write(Path(sweep_dir, STARTED), lambda f: f.write(b""))


def sweep_runs(sweep_dir: str | os.PathLike) -> list[Path]:
    """The run dirs of the last sweep launched into ``sweep_dir`` (each job rewrites its .hydra files;
    every run dir where no sweep was marked), by job number."""
    sweep = Path(sweep_dir)
    started = (sweep / STARTED).stat().st_mtime_ns if (sweep / STARTED).exists() else 0
    runs = [p.parent.parent for p in sweep.glob("**/.hydra/overrides.yaml") if p.stat().st_mtime_ns >= started]
    return sorted(runs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, str(p)))


def summarize_sweep(sweep_dir: str | os.PathLike) -> list[dict]:
    """One row per run of a sweep dir; writes summary.csv, summary.md and summary.png into it."""
    sweep = Path(sweep_dir)
    rows = [_run_row(run) for run in sweep_runs(sweep)]
    if not rows:
        raise ValueError(f"no runs in {sweep} (a run dir holds .hydra/overrides.yaml)")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(sweep / "summary.csv", text.getvalue())
    write_text(sweep / "summary.md", markdown(rows))
    plot_runs(rows, sweep / "summary.png")
    return rows


def _override_keys(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(keys whose value differs between runs, keys that are the same in every run)."""
    keys = list(dict.fromkeys(k for row in rows for k in list(row)[1:list(row).index("status")]))
    varying = [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]
    return varying, [k for k in keys if k not in varying]


def _label(row: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={_short(row[k])}" for k in keys if k in row) or f"run {row['run']}"


def _short(value) -> str:
    """A value as the table shows it: numbers to 4 significant digits (an Optuna trial's 0.21879360563134626
    as 0.2188), the rest as it is."""
    if isinstance(value, str) and re.fullmatch(r"-?\d*\.\d{5,}(e-?\d+)?", value):
        value = float(value)
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value) -> str:
    return _short(value).replace("|", "\\|")


def markdown(rows: list[dict]) -> str:
    """A Markdown table of the runs: the overrides that differ between them, status, metrics, error."""
    varying, same = _override_keys(rows)
    results = list(dict.fromkeys(k for row in rows for k in row if k.startswith(("best.", "test."))))
    columns = ["run", *varying, "status", "epochs", "best_epoch", *results, "error"]
    lines = [f"Overrides shared by all runs: {', '.join(f'`{k}={rows[0][k]}`' for k in same)}", ""] if same else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_runs(rows: list[dict], path: Path) -> None:
    """Horizontal bars: each run's best validation value of the monitored metric (so far, for a run
    still running); runs without one (failed, or not through an epoch yet) are shown as missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monitor = next((r["monitor"] for r in rows if r.get("monitor")), None)
    mode = next((r["mode"] for r in rows if r.get("mode")), "min")
    varying, _ = _override_keys(rows)
    values = [row.get(f"best.{monitor}") for row in rows]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)))
    y = range(len(rows))
    ax.barh(y, [v if v is not None else 0 for v in values], color="tab:blue")
    for i, (row, v) in enumerate(zip(rows, values)):
        note = "" if row["status"] == "done" else f"({row['status']})"
        ax.annotate(f"{v:.4g} {note}".strip() if v is not None else note, (v or 0, i), xytext=(3, 0),
                    textcoords="offset points", va="center", color="black" if v is not None else "tab:red")
    ax.set_yticks(list(y), [_label(row, varying) for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"best validation {monitor} ({'lower' if mode == 'min' else 'higher'} is better)"
                  if monitor else "no finished epochs yet")
    ax.margins(x=0.15)  # room for the values beside the bars
    ax.grid(axis="x", alpha=0.3)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90, bbox_inches="tight"))  # room for long labels
    plt.close(fig)


class SummarizeCallback(Callback):
    """Writes the sweep dir's summary after every job of a multirun (so it exists even when a failed run
    makes Hydra stop before ``on_multirun_end``) and at the end, where it also prints the table."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """The settings and data every run of the sweep shares (the keys not swept) must be right: a value
        out of its choices or range, or a missing folder or file, is one line and status 1 before any run
        starts, not the same error from every run (and an Optuna search none of whose trials finished ends
        in Optuna's traceback)."""
        shared = config.copy()
        with open_dict(shared):
            del shared["hydra"]
        try:
            validate(shared, unset_ok=True)  # swept keys are unset here
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        for key, exists, what in (("data.video_dir", os.path.isdir, "folder"),
                                  ("data.annotations", os.path.isfile, "file")):
            value = OmegaConf.select(shared, key, default=None, throw_on_missing=False)  # ~ expanded
            if isinstance(value, str) and not exists(value):  # None where it is swept or unset
                print(f"error: {key}={value}: no such {what}", file=sys.stderr)
                sys.exit(1)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            summarize_sweep(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        print(markdown(summarize_sweep(sweep)) + f"summary written to {sweep}/summary.csv, summary.md, summary.png")
