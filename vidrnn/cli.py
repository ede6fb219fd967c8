"""``vidrnn <pipeline> key=value ...``: the installed console command for the Hydra pipelines."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import pipelines


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if m.name != "common")


def main() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: vidrnn {{{','.join(names)}}} [key=value ...]   (each takes Hydra's --help)")
        sys.exit(0 if len(sys.argv) >= 2 else 1)
    name = sys.argv[1]
    if name not in names:
        print(f"error: no pipeline {name!r}; choose one of {', '.join(names)}", file=sys.stderr)
        sys.exit(1)
    sys.argv = [f"vidrnn-{name}", *sys.argv[2:]]
    importlib.import_module(f"pipelines.{name}").main()
