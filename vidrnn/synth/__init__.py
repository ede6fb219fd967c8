"""Deterministic synthetic videos (walkers + one moving coloured shape) with known ground truth."""

from .dataset import DEFAULT_HELDOUT, make_dataset, write_video
from .scene import (
    ALL_COMBOS,
    COLOURS,
    DIRECTIONS,
    NUMBER_WORDS,
    SHAPES,
    Background,
    ClipSpec,
    MovingShape,
    Person,
    captions_for,
    render_clip,
    sample_spec,
)

__all__ = [
    "ALL_COMBOS",
    "COLOURS",
    "DEFAULT_HELDOUT",
    "DIRECTIONS",
    "NUMBER_WORDS",
    "SHAPES",
    "Background",
    "ClipSpec",
    "MovingShape",
    "Person",
    "captions_for",
    "make_dataset",
    "render_clip",
    "sample_spec",
    "write_video",
]
