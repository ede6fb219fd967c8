"""Synthetic scenes: a backdrop, walking stick figures and one moving coloured shape.

Everything is described by small frozen dataclasses sampled from an integer seed, so a
clip is fully reproducible and its ground truth (counts, captions) follows from the spec.
Coordinates are in pixels and times are frame indices; colours are RGB tuples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

RGB = tuple[int, int, int]
Point = tuple[float, float]

COLOURS: dict[str, RGB] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
ALL_COMBOS: tuple[tuple[str, str], ...] = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)
BACKGROUNDS = ("solid", "vgradient", "hgradient", "noise", "stripes")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# Muted clothing and skin tones, kept away from the saturated shape colours.
_CLOTHES: tuple[RGB, ...] = (
    (25, 25, 30), (45, 45, 60), (30, 45, 90), (90, 30, 40), (70, 50, 35),
    (60, 70, 40), (80, 60, 100), (110, 95, 80), (40, 80, 80), (120, 110, 130),
)
_SKIN: tuple[RGB, ...] = ((240, 200, 170), (205, 160, 120), (150, 105, 75), (95, 65, 45))
_LEG_SWING = 0.45  # radians, peak leg angle from vertical
_STRIDE = 0.6  # body heights walked per leg-swing cycle
_NOISE_CELL = 12  # px between random control points of the noise texture


def _pt(point: Point) -> tuple[int, int]:
    """Round a float point to the integer pixel tuple cv2 expects."""
    return round(point[0]), round(point[1])


def _rgb(values: Iterable[float]) -> RGB:
    """Clip to [0, 255] and convert to a tuple of Python ints."""
    r, g, b = (int(v) for v in np.clip(np.round(np.asarray(values, float)), 0, 255))
    return r, g, b


def _stretch(grid: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linearly resample ``grid`` to ``n`` samples along ``axis``."""
    pos = np.linspace(0.0, grid.shape[axis] - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, grid.shape[axis] - 1)
    frac = (pos - lo).reshape([-1 if a == axis else 1 for a in range(grid.ndim)])
    return np.take(grid, lo, axis) * (1 - frac) + np.take(grid, hi, axis) * frac


def _smooth_noise(seed: int, width: int, height: int) -> np.ndarray:
    """Blobby noise in [0, 1] of shape (H, W): a coarse random grid, bilinearly upsampled."""
    rng = np.random.default_rng(seed)
    grid = rng.random((height // _NOISE_CELL + 2, width // _NOISE_CELL + 2))
    return _stretch(_stretch(grid, height, 0), width, 1)


@dataclass(frozen=True)
class Background:
    """Static backdrop: a per-pixel mix of two muted colours chosen by ``kind``."""

    kind: str  # one of BACKGROUNDS
    base: RGB
    other: RGB
    period: int  # stripe width, px
    noise_seed: int

    def _mix(self, width: int, height: int) -> np.ndarray:
        """Weight of ``other`` per pixel, broadcastable to (H, W, 1)."""
        if self.kind == "vgradient":
            return np.linspace(0.0, 1.0, height)[:, None, None]
        if self.kind == "hgradient":
            return np.linspace(0.0, 1.0, width)[None, :, None]
        if self.kind == "stripes":
            return ((np.arange(width) // self.period) % 2)[None, :, None]
        if self.kind == "noise":
            return _smooth_noise(self.noise_seed, width, height)[:, :, None]
        return np.zeros((1, 1, 1))

    def render(self, width: int, height: int) -> np.ndarray:
        """Return the backdrop as an RGB uint8 array (H, W, 3)."""
        base = np.asarray(self.base, float)
        image = base + (np.asarray(self.other, float) - base) * self._mix(width, height)
        return np.ascontiguousarray(np.broadcast_to(np.round(image).astype(np.uint8), (height, width, 3)))


@dataclass(frozen=True)
class Person:
    """A stick figure (head, torso, two swinging legs) walking horizontally at constant speed."""

    x0: float  # body-centre x at frame 0
    foot_y: float  # ground line under the feet
    speed: float  # px per frame; negative walks left
    height: float  # head top to feet, px
    shirt: RGB
    trousers: RGB
    skin: RGB
    phase: float  # leg-swing phase at frame 0, radians

    def centre(self, t: int) -> Point:
        """Body centre (x, y) at frame ``t``."""
        return self.x0 + self.speed * t, self.foot_y - self.height / 2

    def visible(self, t: int, width: int, height: int) -> bool:
        """Whether the body centre lies inside a ``width`` x ``height`` frame at frame ``t``."""
        x, y = self.centre(t)
        return 0 <= x < width and 0 <= y < height

    def draw(self, frame: np.ndarray, t: int) -> None:
        """Paint the figure at frame ``t`` onto ``frame`` (H, W, 3) in place."""
        h = self.height
        x = self.x0 + self.speed * t
        top = self.foot_y - h
        hip = (x, top + 0.55 * h)
        swing = _LEG_SWING * math.sin(self.phase + 2 * math.pi * abs(self.speed) * t / (_STRIDE * h))
        leg, thickness = 0.45 * h, max(2, round(0.09 * h))
        for angle in (swing, -swing):
            foot = (x + leg * math.sin(angle), hip[1] + leg * math.cos(angle))
            cv2.line(frame, _pt(hip), _pt(foot), self.trousers, thickness, cv2.LINE_AA)
        half = 0.11 * h
        cv2.rectangle(frame, _pt((x - half, top + 0.2 * h)), _pt((x + half, top + 0.58 * h)), self.shirt, cv2.FILLED)
        cv2.circle(frame, _pt((x, top + 0.1 * h)), max(2, round(0.1 * h)), self.skin, cv2.FILLED, cv2.LINE_AA)


@dataclass(frozen=True)
class MovingShape:
    """The clip's single saturated shape, moving in a straight line at constant velocity."""

    kind: str  # one of SHAPES
    colour: str  # key of COLOURS
    direction: str  # key of DIRECTIONS
    size: float  # side of the bounding box, px
    start: Point  # centre (x, y) at frame 0
    velocity: Point  # px per frame

    def centre(self, t: int) -> Point:
        """Shape centre (x, y) at frame ``t``."""
        return self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t

    def draw(self, frame: np.ndarray, t: int) -> None:
        """Paint the shape at frame ``t`` onto ``frame`` (H, W, 3) in place."""
        (cx, cy), r, rgb = self.centre(t), self.size / 2, COLOURS[self.colour]
        if self.kind == "circle":
            cv2.circle(frame, _pt((cx, cy)), round(r), rgb, cv2.FILLED, cv2.LINE_AA)
        elif self.kind == "square":
            cv2.rectangle(frame, _pt((cx - r, cy - r)), _pt((cx + r, cy + r)), rgb, cv2.FILLED)
        else:
            corners = np.array([_pt((cx, cy - r)), _pt((cx - r, cy + r)), _pt((cx + r, cy + r))], np.int32)
            cv2.fillPoly(frame, [corners], rgb, cv2.LINE_AA)


def captions_for(colour: str, shape: str, direction: str, people: int) -> list[str]:
    """Templated lowercase captions; the first one is always the canonical template."""
    word = NUMBER_WORDS[people]
    noun = "person" if people == 1 else "people"
    there = f"there {'is' if people == 1 else 'are'} {word} {noun}"
    walking = "nobody walks" if people == 0 else f"{word} {noun} {'walks' if people == 1 else 'walk'}"
    way = f"to the {direction}" if direction in ("left", "right") else direction
    thing = f"{colour} {shape}"
    return [
        f"a {thing} moves {direction} and {there}",
        f"a {thing} moves {way} while {walking}",
        f"{walking} as a {thing} moves {direction}",
        f"the {thing} is moving {way} with {word} {noun} in the scene",
    ]


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip and derive its ground truth."""

    seed: int
    width: int
    height: int
    num_frames: int
    fps: float
    background: Background
    people: tuple[Person, ...]  # in drawing order, far (high up) to near
    shape: MovingShape

    @property
    def combo(self) -> tuple[str, str]:
        """The (colour, shape) pair shown in the clip."""
        return self.shape.colour, self.shape.kind

    def frame_counts(self) -> list[int]:
        """Number of visible people in each frame (length ``num_frames``)."""
        return [
            sum(p.visible(t, self.width, self.height) for p in self.people) for t in range(self.num_frames)
        ]

    @property
    def count(self) -> int:
        """Number of distinct people visible in at least one frame."""
        return sum(
            any(p.visible(t, self.width, self.height) for t in range(self.num_frames)) for p in self.people
        )

    def captions(self) -> list[str]:
        """Paraphrased captions of the clip, canonical template first."""
        return captions_for(self.shape.colour, self.shape.kind, self.shape.direction, self.count)


def _sample_background(rng: np.random.Generator) -> Background:
    """A random low-saturation backdrop."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = rng.uniform(120, 210) + rng.uniform(-12, 12, 3)
    other = base + (-1.0, 1.0)[rng.integers(2)] * rng.uniform(20, 60) + rng.uniform(-12, 12, 3)
    period, noise_seed = int(rng.integers(6, 16)), int(rng.integers(2**31))
    return Background(kind, _rgb(base), _rgb(other), period, noise_seed)


def _sample_shape(
    rng: np.random.Generator, colour: str, kind: str, width: int, height: int, num_frames: int
) -> MovingShape:
    """A shape crossing most of the frame along its direction, fully in view throughout."""
    direction = tuple(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
    size = rng.uniform(0.2, 0.3) * height
    r = size / 2
    axis = 0 if DIRECTIONS[direction][0] else 1  # 0: moves along x, 1: along y
    length, cross = (width, height) if axis == 0 else (height, width)
    near = r + rng.uniform(0, 0.15) * length
    far = length - r - rng.uniform(0, 0.15) * length
    first, last = (near, far) if sum(DIRECTIONS[direction]) > 0 else (far, near)
    across = rng.uniform(r, cross - r)
    step = (last - first) / max(num_frames - 1, 1)
    start, velocity = ((first, across), (step, 0.0)) if axis == 0 else ((across, first), (0.0, step))
    return MovingShape(kind, colour, direction, size, start, velocity)


def _sample_person(rng: np.random.Generator, width: int, height: int, num_frames: int, fps: float) -> Person:
    """A walker guaranteed to be visible in at least one frame."""
    body = rng.uniform(0.25, 0.40) * height
    speed = (-1.0, 1.0)[rng.integers(2)] * rng.uniform(0.15, 0.35) * width / fps
    seen_at, seen_x = int(rng.integers(num_frames)), rng.uniform(0.05, 0.95) * width
    foot_y = rng.uniform(0.6, 0.97) * height
    shirt, trousers = (_CLOTHES[i] for i in rng.integers(len(_CLOTHES), size=2))
    skin = _SKIN[rng.integers(len(_SKIN))]
    return Person(seen_x - speed * seen_at, foot_y, speed, body, shirt, trousers, skin, rng.uniform(0, 2 * math.pi))


def _combo_pool(combos: Iterable[Sequence[str]] | None) -> list[tuple[str, str]]:
    """Validated, sorted (colour, shape) pairs to choose from (sorted so sets stay deterministic)."""
    pool = sorted({(c[0], c[1]) for c in combos}) if combos is not None else list(ALL_COMBOS)
    unknown = [c for c in pool if c not in ALL_COMBOS]
    if unknown or not pool:
        raise ValueError(f"combos must be a non-empty subset of {ALL_COMBOS}, got {unknown or 'nothing'}")
    return pool


def sample_spec(
    seed: int,
    *,
    width: int = 160,
    height: int = 120,
    num_frames: int = 48,
    fps: float = 12.0,
    max_people: int = 4,
    combos: Iterable[Sequence[str]] | None = None,
) -> ClipSpec:
    """Sample a reproducible clip description from ``seed``; ``combos`` limits the (colour, shape) pairs."""
    if width < 16 or height < 16 or num_frames < 1 or fps <= 0:
        raise ValueError("need width, height >= 16, num_frames >= 1 and fps > 0")
    if not 0 <= max_people < len(NUMBER_WORDS):
        raise ValueError(f"max_people must be in [0, {len(NUMBER_WORDS) - 1}], got {max_people}")
    pool = _combo_pool(combos)
    rng = np.random.default_rng(seed)
    colour, kind = pool[rng.integers(len(pool))]
    background = _sample_background(rng)
    shape = _sample_shape(rng, colour, kind, width, height, num_frames)
    walkers = [_sample_person(rng, width, height, num_frames, fps) for _ in range(rng.integers(max_people + 1))]
    people = tuple(sorted(walkers, key=lambda p: p.foot_y))
    return ClipSpec(int(seed), width, height, num_frames, float(fps), background, people, shape)


def render_clip(spec: ClipSpec) -> Iterator[np.ndarray]:
    """Yield the clip's frames one at a time as RGB uint8 arrays (H, W, 3)."""
    backdrop = spec.background.render(spec.width, spec.height)  # (H, W, 3), drawn once per clip
    for t in range(spec.num_frames):
        frame = backdrop.copy()
        for person in spec.people:
            person.draw(frame, t)
        spec.shape.draw(frame, t)
        yield frame
