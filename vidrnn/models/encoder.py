"""Frame encoder: any torchvision classification backbone, cut before its global pooling."""
from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import warnings
import zipfile

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger("vidrnn.encoder")
_ENLARGED: set[tuple[int, int]] = set()  # (frame side, model side) warned about

POOLINGS = ("avg", "grid")
_GLOBAL_POOL_NODES = ("avgpool", "adaptive_avg_pool2d", "mean")
RANDOM_INIT_SEED = 0  # random weights are a function of the backbone's name alone
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class EncoderError(ValueError):
    """A backbone, layer or weights setting that cannot be built; the message is one line."""


def build_backbone(name: str, weights: str | None = None, *, load: bool = True) -> tuple[nn.Module, tuple, tuple]:
    """A torchvision classification model and its input mean/std.

    weights: None (random, but the same in every process: drawn from a fixed seed, so a model trained on
    random-encoder features meets the same features when it is applied later), ``DEFAULT`` or a torchvision
    weights name (``IMAGENET1K_V1``, ``ResNet18_Weights.IMAGENET1K_V1``), fetched through torchvision's own
    cache, or the path of a local state_dict file (loaded with ``weights_only=True``). ``load=False``: the
    model with random weights and the input mean/std of ``weights`` (the weights to come from a checkpoint).
    """
    import torchvision  # here, not at the top: it takes seconds, and commands without an encoder need none

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise EncoderError(f"unknown encoder {name!r}: use a name from torchvision.models.list_models()")
    path = os.path.expanduser(str(weights)) if weights is not None else None
    local = path is not None and (os.path.isfile(path) or _names_a_file(path))  # a state_dict file
    try:
        spec = None if weights is None or local else torchvision.models.get_model_weights(name).verify(weights)
    except (KeyError, ValueError) as e:
        names = [w.name for w in torchvision.models.get_model_weights(name)]
        raise EncoderError(f"encoder weights {weights!r} are neither a file nor one of {names}") from e
    if load and local and not os.path.isfile(path):
        raise EncoderError(f"encoder weights file {weights} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # inception/googlenet init notices
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model = torchvision.models.get_model(name, weights=spec if load else None)
        except OSError as e:  # no network (an air-gapped machine) or a download cut off
            cache = os.path.join(torch.hub.get_dir(), "checkpoints")
            raise EncoderError(f"encoder weights {weights!r} of {name} could not be downloaded ({e}): put "
                               f"{os.path.basename(spec.url)} into {cache}, or give encoder.weights=<a local "
                               "state_dict file>") from e
    if load and local:
        _load_state_dict(model, path)
    if spec is None:
        return model, _IMAGENET_MEAN, _IMAGENET_STD
    tf = spec.transforms()
    return model, tuple(tf.mean), tuple(tf.std)


def weights_file(weights: str | None) -> str | None:
    """The state_dict file that ``weights`` names (a leading ``~`` expanded), or None for none or a name."""
    path = os.path.expanduser(weights) if weights else None
    return path if path and os.path.isfile(path) else None


def _names_a_file(weights: str) -> bool:
    """Whether ``weights`` reads as a file's path rather than a weights name (``ResNet18_Weights.DEFAULT``)."""
    return "/" in weights or os.sep in weights or weights.lower().endswith((".pt", ".pth", ".bin", ".ckpt"))


def resolved_weights(name: str, weights: str | None) -> str | None:
    """``DEFAULT`` as the torchvision weights it stands for now (``IMAGENET1K_V1`` for resnet18), so that
    manifests and checkpoints keep naming the same weights after torchvision changes its default (as it did
    for resnet50); anything else unchanged (a bad name is left to ``build_backbone`` to report)."""
    if weights != "DEFAULT" or os.path.isfile(weights):  # (a state_dict file could be named DEFAULT)
        return weights
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).verify("DEFAULT").name
    except (KeyError, ValueError):
        return weights


def saved_by_torch(path: str | os.PathLike) -> bool:
    """Whether a file is laid out as ``torch.save`` writes it: a zip archive, or (before PyTorch 1.6) a
    pickle stream. Anything else is refused before ``torch.load`` (whose message would suggest loading it
    with ``weights_only=False``)."""
    with open(path, "rb") as f:
        if zipfile.is_zipfile(f):
            return True
        f.seek(0)
        return f.read(1) == pickle.PROTO


def _load_state_dict(model: nn.Module, path: str) -> None:
    if not saved_by_torch(path):
        raise EncoderError(f"{path}: not a state_dict file (torch.save writes a zip archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EncoderError(f"{path}: not a plain state_dict file ({str(e).splitlines()[0][:160]})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise EncoderError(f"{path}: weights do not fit this encoder ({str(e).splitlines()[0][:160]})") from e


def feature_node(model: nn.Module, layer: str | None = None) -> str:
    """The graph node whose (B, C, h, w) output (a vision transformer's: (B, 1 + h * w, C) tokens) is used:
    the last one named ``layer`` or starting with ``layer.``, or by default the input of the model's global
    pooling (a vision transformer's last layer norm)."""
    from torchvision.models import VisionTransformer
    from torchvision.models.feature_extraction import get_graph_node_names

    nodes = get_graph_node_names(model)[1]
    if not layer and isinstance(model, VisionTransformer):
        return "encoder.ln"
    if layer:
        hits = [n for n in nodes if n == layer or n.startswith(layer + ".")]
        if not hits:
            raise EncoderError(f"encoder has no layer {layer!r}; top-level layers: "
                               f"{sorted(dict.fromkeys(n.split('.')[0] for n in nodes))}")
        return hits[-1]
    for k, n in enumerate(nodes):
        if k and (n.split(".")[-1] in _GLOBAL_POOL_NODES or isinstance(_module(model, n), nn.AdaptiveAvgPool2d)):
            return nodes[k - 1]
    raise EncoderError("encoder has no global pooling to cut at (not a convolutional backbone); "
                       "name a layer with encoder.layer")


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    """Whether ``norm`` can be folded into ``conv`` (a BatchNorm with running statistics right after it)."""
    return type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats


def _module(model: nn.Module, node: str) -> nn.Module | None:
    """The submodule a graph node calls, if it calls one."""
    try:
        return model.get_submodule(node)
    except AttributeError:
        return None


def _fixed_input_size(model: nn.Module) -> int | None:
    """The one input size a transformer works at (its position embedding or attention windows are built for
    it); None for a network that takes any size."""
    from torchvision.models import MaxVit, VisionTransformer

    if isinstance(model, VisionTransformer):
        return model.image_size
    return 224 if isinstance(model, MaxVit) else None  # torchvision's maxvit_t is built for 224 x 224


class FrameEncoder(nn.Module):
    """Frames (B, H, W, 3) uint8 RGB -> features (B, D).

    pooling ``avg`` gives D = C; ``grid`` keeps a grid x grid map of spatial cells, D = C * grid**2, so
    where things are (and so how they move) survives pooling. ``trainable=False`` freezes the weights
    and keeps BatchNorm in eval mode. A transformer built for one input size (``vit_b_16``, ``maxvit_t``)
    sees frames resized to it; a vision transformer's ``avg`` is its class token, and ``grid`` pools its
    patch tokens laid out in rows. ``load_weights=False`` leaves out loading ``weights`` (the encoder's
    weights come from a checkpoint next), keeping their input normalisation.
    """

    def __init__(self, name: str = "resnet18", *, weights: str | None = None, layer: str | None = None,
                 pooling: str = "avg", grid: int = 2, trainable: bool = False, load_weights: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise EncoderError(f"encoder pooling must be one of {POOLINGS}, not {pooling!r}")
        from torchvision.models.feature_extraction import create_feature_extractor

        model, mean, std = build_backbone(name, weights, load=load_weights)
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # train/eval graph note from torchvision
            self.body = create_feature_extractor(model, {feature_node(model, layer): "feat"})
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)
        self.pooling, self.grid, self.trainable = pooling, grid, trainable
        self.image_size = _fixed_input_size(model)
        with torch.no_grad():
            channels = self._feature_map(torch.zeros(1, 3, 224, 224))[0].shape[1]
        self.out_dim = channels * (grid * grid if pooling == "grid" else 1)
        self.requires_grad_(trainable)
        self.train(trainable)

    def train(self, mode: bool = True) -> FrameEncoder:
        return super().train(mode and self.trainable)

    def __setstate__(self, state: dict) -> None:
        """A copy (``copy.deepcopy``) rebuilds torchvision's feature extractor in train mode, so a frozen
        encoder's copy would normalise by batch statistics: give the copy this encoder's mode."""
        super().__setstate__(state)
        self.train(self.training)

    def for_inference(self) -> FrameEncoder:
        """A frozen copy in eval mode with each BatchNorm folded into the convolution before it: the same
        features (to float rounding) from fewer passes over memory (resnet18's network on a CPU: 1.16x frames/s)."""
        folded = copy.deepcopy(self).requires_grad_(False).eval()
        folded.body.eval()  # (a deep copy rebuilds torchvision's extractor in train mode)
        for seq in folded.body.modules():  # pairs in modules the graph calls whole (torchvision's Conv2dNormActivation)
            if isinstance(seq, nn.Sequential):
                for i in range(len(seq) - 1):
                    if _foldable(seq[i], seq[i + 1]):
                        seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
        folded.body = fuse(folded.body, inplace=True, no_trace=True)  # pairs the graph calls one by one (ResNet)
        return folded

    def _feature_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised images (B, 3, H, W) -> a feature map (B, C, h, w), and a transformer's class token
        (B, C) (None for a convolutional network)."""
        if self.image_size is not None and x.shape[-2:] != (self.image_size, self.image_size):
            # a transformer built for one input size: position embedding, attention windows
            if (x.shape[-1], self.image_size) not in _ENLARGED and x.shape[-1] < self.image_size:
                _ENLARGED.add((x.shape[-1], self.image_size))
                log.warning("this encoder sees %dx%d frames: frames read at %d px are enlarged to it, blurred "
                            "(video.size=%d reads them at its size)", self.image_size, self.image_size,
                            x.shape[-1], self.image_size)
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        out = self.body(x)["feat"]
        if out.dim() == 4:
            return out, None
        patches = out[:, 1:]  # (B, 1 + h * w, C) tokens: the class token, then the patches row by row
        side = math.isqrt(patches.shape[1])
        return patches.transpose(1, 2).reshape(len(x), -1, side, side), out[:, 0]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float()  # (B, 3, H, W), channels_last strides
        x = (x - self.mean) / self.std
        fmap, class_token = self._feature_map(x)  # (B, C, h, w), (B, C) or None
        if self.pooling == "avg":
            return fmap.mean(dim=(2, 3)) if class_token is None else class_token  # (B, C)
        return F.adaptive_avg_pool2d(fmap, self.grid).flatten(1)  # (B, C * grid * grid)
