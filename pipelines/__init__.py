"""Hydra apps: each parses its config and calls the library. Run as ``python -m pipelines.<name>``."""
