"""Structured-config schemas of the Hydra apps: the keys each app takes, their types and allowed values.

Importing this module registers one schema per app in Hydra's ConfigStore (``<app>_schema``); each
conf/<app>.yaml names its schema first in its defaults list, so a misspelt key or a value of the wrong
type stops Hydra before the app starts. The values themselves live in conf/ only (every field here is
MISSING until a YAML file sets it). Enum-like keys stay plain strings (for ``${task}`` in paths,
checkpoints and library calls); ``validate`` checks them when a pipeline starts.
"""
# No ``from __future__ import annotations``: OmegaConf evaluates these annotations at run time, and
# Optional/List keep them valid on Python 3.9.
# ruff: noqa: FA100, UP006, UP035
import dataclasses
import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


def one_of(*choices: str, pattern: Optional[str] = None) -> Any:
    """A string field whose value must be one of ``choices`` (or match ``pattern``, which ``choices`` describe)."""
    return field(default=MISSING, metadata={"choices": choices,
                                            "pattern": pattern or "|".join(map(re.escape, choices))})


def number(low: Optional[float] = None, high: Optional[float] = None, *, above: bool = False,
           below: bool = False) -> Any:
    """A number field whose value (where it is set) must lie in [low, high]; ``above`` / ``below`` leave
    out the bound itself."""
    return field(default=MISSING, metadata={"range": (low, high, above, below)})


def _out_of_range(value: Any, low, high, above: bool, below: bool) -> Optional[str]:
    """What the range asks for, where ``value`` is outside it; None where it is inside (or unset)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if (low is None or (value > low if above else value >= low)) and (
            high is None or (value < high if below else value <= high)):
        return None
    if high is None:
        return f"{'>' if above else '>='} {low:g}"
    return f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"


def path() -> Any:
    """A file or folder field: ``validate`` expands a leading ``~`` (the user's home) in its value."""
    return field(default=MISSING, metadata={"path": True})


def device_field() -> Any:
    return one_of("auto", "cpu", "cuda", "cuda:N", "mps", pattern=r"auto|cpu|cuda(:\d+)?|mps")


@dataclass
class EncoderSchema:
    name: str = MISSING  # any torchvision classification model
    weights: Optional[str] = path()  # null | DEFAULT | a torchvision weights name | a state_dict file
    layer: Optional[str] = MISSING
    pooling: str = one_of("avg", "grid")
    grid: int = number(1)
    trainable: bool = MISSING


@dataclass
class VideoSchema:
    backend: str = one_of("auto", "opencv", "decord")
    sampling: str = one_of("uniform", "fps", "window")
    num_frames: int = number(1)
    fps: float = number(0, above=True)
    max_frames: Optional[int] = number(1)
    window_s: float = number(0, above=True)
    stride_s: float = number(0, above=True)
    size: int = number(16)
    workers: str = one_of("auto", "N", pattern=r"auto|\d+")  # auto | a number of decode processes


@dataclass
class ShardSchema:
    index: Optional[int] = MISSING
    count: Optional[int] = MISSING


@dataclass
class DataSchema:
    video_dir: str = path()
    annotations: str = path()
    frame_annotations: Optional[str] = path()
    splits: Optional[str] = path()
    time_split: Optional[float] = number(0, 1, above=True, below=True)
    cache_dir: str = path()
    features_dir: Optional[str] = path()
    val_fraction: float = number(0, 1, below=True)
    min_count: int = number(1)
    max_len: int = number(3)  # <bos>, a word, <eos>


@dataclass
class CaptionModelSchema:
    kind: str = one_of("attention", "s2vt")
    embed: int = number(1)
    per_cell: bool = MISSING


@dataclass
class CountModelSchema:
    bidirectional: bool = MISSING
    per_cell: bool = MISSING
    loss: str = one_of("mse", "huber", "poisson")


@dataclass
class ModelSchema:
    cell: str = one_of("lstm", "gru", "rnn")
    hidden: int = number(1)
    layers: int = number(1)
    dropout: float = number(0, 1, below=True)
    caption: CaptionModelSchema = field(default_factory=CaptionModelSchema)
    count: CountModelSchema = field(default_factory=CountModelSchema)


@dataclass
class TrainerSchema:
    max_epochs: int = number(1)
    batch_size: int = number(1)
    lr: float = number(0, above=True)
    weight_decay: float = number(0)
    clip_grad_norm: Optional[float] = number(0, above=True)
    scheduler: str = one_of("cosine", "plateau", "none")
    patience: int = number(0)
    label_smoothing: float = number(0, 1, below=True)
    scheduled_sampling: float = number(0, 1)
    amp: bool = MISSING
    resume: bool = MISSING
    test_beam: int = number(1)


@dataclass
class TrainSchema:
    task: str = one_of("caption", "count")
    device: str = device_field()
    seed: int = MISSING
    quiet: bool = MISSING
    encoder: EncoderSchema = field(default_factory=EncoderSchema)
    video: VideoSchema = field(default_factory=VideoSchema)
    data: DataSchema = field(default_factory=DataSchema)
    model: ModelSchema = field(default_factory=ModelSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)


@dataclass
class FolderSchema:
    """What every app that walks a folder of videos takes."""
    input_dir: str = path()
    extensions: List[str] = MISSING
    device: str = device_field()
    batch_size: int = number(1)
    quiet: bool = MISSING
    video: VideoSchema = field(default_factory=VideoSchema)
    shard: ShardSchema = field(default_factory=ShardSchema)


@dataclass
class ExtractSchema(FolderSchema):
    output_dir: str = path()
    dtype: str = one_of("float16", "float32")
    replace: bool = MISSING
    encoder: EncoderSchema = field(default_factory=EncoderSchema)


@dataclass
class PredictSchema(FolderSchema):
    """What the caption and count apps share: a prediction file and pictures beside it."""
    output: str = path()
    sheets: bool = MISSING
    render: bool = MISSING
    report: bool = MISSING


@dataclass
class DecodeSchema:
    beam: int = number(1)
    max_len: Optional[int] = number(1)
    length_penalty: float = MISSING
    n_best: int = number(1)
    batch: int = number(1)


@dataclass
class WindowSchema:
    window_s: float = number(0, above=True)
    stride_s: float = number(0, above=True)


@dataclass
class CaptionSchema(PredictSchema):
    checkpoint: str = path()
    references: Optional[str] = path()
    meteor: bool = MISSING
    decode: DecodeSchema = field(default_factory=DecodeSchema)
    window: WindowSchema = field(default_factory=WindowSchema)


@dataclass
class HogSchema:
    upscale: float = MISSING
    win_stride: int = MISSING
    scale: float = MISSING
    nms_threshold: float = MISSING
    min_confidence: float = MISSING


@dataclass
class CountSchema(PredictSchema):
    checkpoint: Optional[str] = path()
    counter: str = one_of("rnn", "hog")
    labels: Optional[str] = path()
    window_s: Optional[float] = number(0, above=True)
    stride_s: float = number(0, above=True)
    plots: bool = MISSING
    hog: HogSchema = field(default_factory=HogSchema)


@dataclass
class EvaluateSchema:
    task: str = one_of("caption", "count")
    predictions: str = path()
    annotations: str = path()
    split: Optional[str] = MISSING
    splits: Optional[str] = path()
    meteor: bool = MISSING
    output: str = path()


@dataclass
class SummarizeSchema:
    sweep_dir: str = path()


@dataclass
class DemoSizesSchema:
    tiny: int = number(1)
    small: int = number(1)
    large: int = number(1)


@dataclass
class DemoCaptionerSchema:
    kind: str = one_of("attention", "s2vt")
    hidden: int = number(1)
    embed: int = number(1)
    dropout: float = number(0, 1, below=True)


@dataclass
class DemoCounterSchema:
    hidden: int = number(1)
    dropout: float = number(0, 1, below=True)


@dataclass
class DemoSettingsSchema:
    size: str = one_of("tiny", "small", "large")
    videos: DemoSizesSchema = field(default_factory=DemoSizesSchema)
    epochs: DemoSizesSchema = field(default_factory=DemoSizesSchema)
    lr: float = number(0, above=True)
    captioner: DemoCaptionerSchema = field(default_factory=DemoCaptionerSchema)
    counter: DemoCounterSchema = field(default_factory=DemoCounterSchema)


@dataclass
class DemoSchema:
    demo: DemoSettingsSchema = field(default_factory=DemoSettingsSchema)
    output_dir: str = path()
    seed: int = MISSING
    device: str = device_field()
    quiet: bool = MISSING
    encoder: EncoderSchema = field(default_factory=EncoderSchema)
    video: VideoSchema = field(default_factory=VideoSchema)


@dataclass
class CueTaskSchema:
    length: int = MISSING
    cue_steps: int = MISSING
    classes: int = MISSING
    dim: int = MISSING
    noise: float = MISSING


@dataclass
class GradientFlowModelSchema:
    cell: str = one_of("lstm", "gru", "rnn")
    hidden: int = MISSING
    gate_bias: Optional[float] = MISSING


@dataclass
class GradientFlowTrainerSchema:
    max_epochs: int = MISSING
    batches_per_epoch: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    clip_grad_norm: Optional[float] = MISSING


@dataclass
class GradientFlowSchema:
    task: CueTaskSchema = field(default_factory=CueTaskSchema)
    model: GradientFlowModelSchema = field(default_factory=GradientFlowModelSchema)
    trainer: GradientFlowTrainerSchema = field(default_factory=GradientFlowTrainerSchema)
    probe_batches: int = MISSING
    seed: int = MISSING
    threads: int = MISSING


SCHEMAS = {"extract": ExtractSchema, "train": TrainSchema, "caption": CaptionSchema, "count": CountSchema,
           "evaluate": EvaluateSchema, "summarize": SummarizeSchema, "demo": DemoSchema,
           "gradient_flow": GradientFlowSchema}


def validate(cfg: DictConfig, prefix: str = "", *, unset_ok: bool = False) -> None:
    """Raise ValueError naming the first key that is unset (``???``; allowed with ``unset_ok``), that its
    schema lacks (added by a config file; the apps refuse ``+key=...`` on the command line), or whose
    value is not one its schema allows (a choice, a number out of its range, an empty path). A leading ``~``
    of a path key's value (a ``path()`` field) is expanded in ``cfg``."""
    schema = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in cfg:
        name = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            if unset_ok:
                continue
            raise ValueError(f"{name} is not set: add {name}=...")
        if fields is not None and key not in fields:
            raise ValueError(f"there is no key {name} ({_closest(prefix, key, fields)}); --help lists them all")
        value, meta = cfg[key], fields[key].metadata if fields else {}
        if isinstance(value, DictConfig):
            validate(value, f"{name}.", unset_ok=unset_ok)
        elif "pattern" in meta and not (isinstance(value, str) and re.fullmatch(meta["pattern"], value)):
            raise ValueError(f"{name} must be one of {' | '.join(meta['choices'])}, not {value!r}")
        elif "range" in meta and (wanted := _out_of_range(value, *meta["range"])):
            raise ValueError(f"{name} must be {wanted}, not {value!r}")
        elif meta.get("path") and isinstance(value, str) and not value.strip():  # an unset shell variable:
            none = " (null for none)" if _optional(fields[key].type) else ""  # not the current folder
            raise ValueError(f"{name} is empty: give a file or folder{none}")
        elif meta.get("path") and isinstance(value, str) and value.startswith("~"):
            cfg[key] = os.path.expanduser(value)


def _optional(kind: Any) -> bool:
    return type(None) in typing.get_args(kind)


def _closest(prefix: str, key: str, keys) -> str:
    """"did you mean model.hidden?", or where no key is close, "its keys here: ..." (``prefix``: the
    dotted path to ``keys``)."""
    near = difflib.get_close_matches(key, keys, n=1)
    named = [f"{prefix}{name}" for name in (near or keys)]
    return f"did you mean {named[0]}?" if near else f"its keys here: {', '.join(named)}"


def unknown_key(app: str, key: str) -> Optional[str]:
    """Why the command-line key ``key`` (``trainer.max_epochs``) is not one of ``app``'s, with the closest
    key it has; None where it is one (or leads into a part the schema leaves open)."""
    return _key_type(app, key)[2]


def bad_value(app: str, key: str, value: Any) -> Optional[str]:
    """Why ``value``, as Hydra's grammar read it from the command line (a string, number, list, ... or None
    for ``null``), cannot be ``key``'s (Hydra says it in six lines); None where it can, or where Hydra
    resolves it later (``${...}``)."""
    kind, optional, _ = _key_type(app, key)
    if kind is None or dataclasses.is_dataclass(kind) or (isinstance(value, str) and "${" in value):
        return None  # (a mapping for a section is merged into it)
    if value is None:
        return None if optional else f"{key} cannot be null: give a value"
    if typing.get_origin(kind) is list:
        return None if isinstance(value, list) else f"{key} takes a list: {key}=[{value}]"
    if isinstance(value, (list, dict)):
        return f"{key} takes one value, not a {'list' if isinstance(value, list) else 'mapping'}"
    if kind not in _SCALARS:
        return None
    try:
        _SCALARS[kind](str(value).strip())
    except ValueError:
        return f"{key} must be {_SCALAR_NAMES[kind]}, not {str(value)!r}"
    return None


def _yes_no(value: str) -> bool:
    if value.lower() not in ("true", "false", "yes", "no", "y", "n", "on", "off", "1", "0"):
        raise ValueError(value)
    return True


_SCALARS = {int: int, float: float, bool: _yes_no}
_SCALAR_NAMES = {int: "a whole number", float: "a number", bool: "true or false"}


def key_type(app: str, key: str) -> Any:
    """The type of ``app``'s key ``key`` (``Optional[X]``: X; a list: ``List[X]``), None where it has no such key."""
    return _key_type(app, key)[0]


def _key_type(app: str, key: str) -> tuple[Any, bool, Optional[str]]:
    """(the type of ``app``'s key ``key`` (``Optional[X]``: X), whether it may be null, None), (None, False, why
    it has no such key), or (None, True, None) where the key leads into a part the schema leaves open."""
    schema, optional, path = SCHEMAS[app], False, []
    for part in key.split("."):
        if not dataclasses.is_dataclass(schema):
            return None, True, None
        fields = {f.name: f.type for f in dataclasses.fields(schema)}
        if part not in fields:
            prefix = "".join(f"{p}." for p in path)
            return None, False, (f"vidrnn {app} has no key {key} ({_closest(prefix, part, fields)}); --help lists "
                                 "them all")
        path.append(part)
        kind, optional = fields[part], _optional(fields[part])
        schema = next(t for t in typing.get_args(kind) if t is not type(None)) if optional else kind
    return schema, optional, None


for _app, _schema in SCHEMAS.items():
    ConfigStore.instance().store(name=f"{_app}_schema", node=_schema)
