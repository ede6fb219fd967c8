"""``vidrnn <pipeline> key=value ...``: the installed console command for the Hydra pipelines."""
from __future__ import annotations

import importlib
import os
import pkgutil
import select
import signal
import sys
from pathlib import Path

import yaml

import pipelines
from pipelines import CONF_DIR

from . import __version__


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if m.name != "common")


def summary(name: str) -> str:
    """The pipeline's one-line description: the first line of its --help header (conf/<name>.yaml)."""
    conf = yaml.safe_load((Path(CONF_DIR) / f"{name}.yaml").read_text(encoding="utf-8"))
    header = ((conf.get("hydra") or {}).get("help") or {}).get("header", "")
    return header.splitlines()[0].removeprefix(f"vidrnn {name}: ") if header else ""


def pipe_closed(error: BaseException) -> bool:
    """Whether ``error`` is a write to stdout or stderr after the pipe's reader went (``vidrnn ... | head``);
    those streams then point at the null device, so nothing more fails on them."""
    if not isinstance(error, BrokenPipeError):
        return False
    closed = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            if any(event & select.POLLERR for _, event in poller.poll(0)):  # a pipe whose reader has gone
                closed.append(fd)
        except (AttributeError, ValueError, OSError):  # a stream replaced or closed
            continue
    if closed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in closed:
            os.dup2(devnull, fd)
        os.close(devnull)
    return bool(closed)


PIPE_CLOSED = 128 + signal.SIGPIPE  # the exit status of a command stopped by a closed pipe, as the shell's tools


def main() -> None:
    try:
        _main()
    except BrokenPipeError as e:
        if not pipe_closed(e):
            raise
        sys.exit(PIPE_CLOSED)
    except KeyboardInterrupt:  # before the app's own handling starts: while torch and the rest are imported
        print("interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


def _main() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: vidrnn PIPELINE [key=value ...]   (vidrnn PIPELINE --help: its keys and an example; "
              "vidrnn --version)\n")
        print("\n".join(f"  {name:14s} {summary(name)}" for name in names))
        sys.exit(0 if len(sys.argv) >= 2 else 1)
    name = sys.argv[1]
    if name in ("--version", "-V"):
        print(f"vidrnn {__version__}")
        sys.exit(0)
    if name not in names:
        print(f"error: no pipeline {name!r}; choose one of {', '.join(names)}", file=sys.stderr)
        sys.exit(1)
    sys.argv = [f"vidrnn-{name}", *sys.argv[2:]]
    importlib.import_module(f"pipelines.{name}").main()
