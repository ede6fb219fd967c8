"""``vidrnn <pipeline> key=value ...``: the installed console command for the Hydra pipelines."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import yaml

import pipelines
from pipelines import CONF_DIR


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if m.name != "common")


def summary(name: str) -> str:
    """The pipeline's one-line description: the first line of its --help header (conf/<name>.yaml)."""
    conf = yaml.safe_load((Path(CONF_DIR) / f"{name}.yaml").read_text(encoding="utf-8"))
    header = ((conf.get("hydra") or {}).get("help") or {}).get("header", "")
    return header.splitlines()[0].removeprefix(f"vidrnn {name}: ") if header else ""


def main() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: vidrnn PIPELINE [key=value ...]   (vidrnn PIPELINE --help: its keys and an example)\n")
        print("\n".join(f"  {name:14s} {summary(name)}" for name in names))
        sys.exit(0 if len(sys.argv) >= 2 else 1)
    name = sys.argv[1]
    if name not in names:
        print(f"error: no pipeline {name!r}; choose one of {', '.join(names)}", file=sys.stderr)
        sys.exit(1)
    sys.argv = [f"vidrnn-{name}", *sys.argv[2:]]
    importlib.import_module(f"pipelines.{name}").main()
