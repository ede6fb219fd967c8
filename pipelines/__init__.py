"""Hydra apps: each parses its config and calls the library. Run as ``python -m pipelines.<name>``."""
from pathlib import Path

# The configs, by absolute path: Hydra would take "../conf" as a module path and find it only from the
# repository root, and `vidrnn ...` runs from wherever the user is. pipelines/conf is a link to the
# checkout's conf/, and a copy of it in an installed package (pyproject.toml).
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
