"""timm's networks by name where timm is installed (issue 30): `timm:convnext_tiny`, `timm:vit_small_patch16_224`.

timm is never a dependency of the pack: this module imports it only when a `timm:` name is asked for, and says how
to install it when it is missing. Every timm network of the kinds DeepDream needs has `forward_intermediates`, which
returns its stages' (a convolutional network's) or its blocks' (a transformer's) outputs as `[B, C, H, W]` maps, the
class token apart (a layer of its own, `blocks.7.cls`). `dream_net` gives the network a subclass of its own class
whose forward pass hands each of those maps to a parameter-free `Tap` (the layer a hook reads) before the
classifier: the same modules and state-dict keys, so timm's weights and saved state dicts load as they are. Vision
transformers are made with `dynamic_img_size`, so they take any size (timm resizes the position embeddings).

From timm's own description of the network (`feature_info`, `pretrained_cfg`): the layers (named by their module
paths, `layer3`, `stages.2`, `blocks.7`), the default layer (the deepest at stride 16; a transformer's, all at one
stride, two thirds in), the preprocessing, the classifier head. ImageNet weights: timm's file on the Hugging Face
hub (its `model.safetensors`, read as data), fetched by `huggingface_hub` into its cache. A network that takes
only its training size (LeViT, CoAtNet) is refused: octaves need any size.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import UnknownModelError, WeightsNotFoundError
from .zoo import DERIVERS, IMAGENET_CLASS_COUNT, ModelSpec, linear_head_trainable

PREFIX = "timm:"
PROBE = 224
OTHER_SIZE = (167, 253)
"""A size other than the training size (and not square), that a network must take to dream in octaves."""


def _timm():
    """timm, imported when first needed; a clear message when it is not installed."""
    try:
        return importlib.import_module("timm")
    except ImportError as err:
        raise UnknownModelError(
            "timm models need the timm package, which is not installed. Install it into the Python that runs "
            "DeepDream (pip install timm; in ComfyUI: its own python -m pip install timm), or choose a torchvision "
            "network (deepdream models lists them)."
        ) from err


def timm_installed() -> bool:
    """Whether timm can be imported (without importing it twice)."""
    return importlib.util.find_spec("timm") is not None


class Tap(nn.Module):
    """No parameters: its output, the map it is given, is the layer a hook reads."""

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map


class Taps(nn.ModuleList):
    """A `Tap` for each intermediate map (and, on a transformer with a class token, one for each block's class token
    as a `[B, C, 1, 1]` map), and the multiple of pixels the network's input sides must be."""

    def __init__(self, count: int, pad_to: int, class_token: bool) -> None:
        super().__init__(Tap() for _ in range(count * (2 if class_token else 1)))
        self.pad_to = pad_to
        self.class_token = class_token


def _dream_forward(self, x: torch.Tensor) -> torch.Tensor:
    taps = self.taps
    if taps.pad_to > 1 and (x.shape[-2] % taps.pad_to or x.shape[-1] % taps.pad_to):  # a transformer's patches
        x = torch.nn.functional.pad(x, (0, -x.shape[-1] % taps.pad_to, 0, -x.shape[-2] % taps.pad_to), mode="replicate")
    if taps.class_token:
        final, pairs = self.forward_intermediates(x, output_fmt="NCHW", return_prefix_tokens=True)
        maps = [m for spatial, prefix in pairs for m in (spatial, prefix[:, 0, :, None, None])]
    else:
        final, maps = self.forward_intermediates(x, output_fmt="NCHW")
    for tap, feature_map in zip(taps, maps, strict=True):
        tap(feature_map)
    return self.forward_head(final)


_DREAM_CLASSES: dict[type, type] = {}


def dream_net(net: nn.Module) -> nn.Module:
    """A timm network whose forward pass also hands every intermediate map to a `Tap` (the same object).

    A transformer cut into patches takes sides that are a multiple of its deepest stride (Swin's windows merge
    three times): its input is padded to one, replicating the edge; convolutional networks take any size.
    """
    features = _features(net)
    cls = type(net)
    net.__class__ = _DREAM_CLASSES.setdefault(cls, type(f"Dream{cls.__name__}", (cls,), {"forward": _dream_forward}))
    patched = hasattr(net, "patch_embed") and features
    class_token = getattr(net, "cls_token", None) is not None and getattr(net, "num_prefix_tokens", 0) >= 1
    net.taps = Taps(len(features), max(f["reduction"] for f in features) if patched else 1, class_token)
    return net


def _create(timm_name: str, num_classes: int) -> nn.Module:
    timm = _timm()
    for any_size in ({"dynamic_img_size": True, "dynamic_img_pad": True}, {"dynamic_img_size": True}, {}):
        try:  # transformers: any size (a side not a multiple of the patch padded); convolutions take any already
            return dream_net(timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **any_size))
        except TypeError:
            continue
    raise AssertionError("unreachable: the last attempt has no extra arguments")


def _builder(timm_name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        return _create(timm_name, num_classes)

    return build


def _features(net: nn.Module) -> list[dict]:
    info = getattr(net, "feature_info", None)
    return list(getattr(info, "info", info) or [])


def _layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, module path of its `Tap`, aliases) of a timm network's layers, in forward order (a block's class
    token, `blocks.7.cls`, after the block)."""
    names = [feature["module"] for feature in _features(net)]
    taps = getattr(net, "taps", None)
    if isinstance(taps, Taps) and taps.class_token:
        names = [name for module in names for name in (module, f"{module}.cls")]
    return [(name, f"taps.{index}", ()) for index, name in enumerate(names)]


def _default_layer(net: nn.Module) -> str:
    features = _features(net)
    reductions = {feature["reduction"] for feature in features}
    if len(reductions) == 1:  # a plain transformer: every block at one stride
        return features[max(len(features) * 2 // 3 - 1, 0)]["module"]
    at_16 = [feature["module"] for feature in features if feature["reduction"] == 16]
    return at_16[-1] if at_16 else features[len(features) // 2]["module"]


def _check_dreamable(timm_name: str, net: nn.Module) -> None:
    if not hasattr(net, "forward_intermediates") or not _features(net):
        raise UnknownModelError(
            f"timm's {timm_name} does not hand out its intermediate feature maps, so it has no layers to dream "
            "with. Choose another timm network (e.g. timm:convnext_tiny) or a torchvision one."
        )
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, *OTHER_SIZE, device="meta"))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise UnknownModelError(
            f"timm's {timm_name} takes pictures of its training size only ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:80]}); DeepDream's octaves dream at many sizes. Choose another network."
        ) from err


def _stages(net: nn.Module) -> list[str]:
    return [feature["module"] for feature in _features(net)]


def _hub_weights(timm_name: str, hub_id: str | None) -> Callable[[], str]:
    """Where timm's ImageNet weights of `timm_name` are: its Hugging Face hub file, fetched into the hub's cache."""

    def path() -> str:
        if not hub_id:
            raise WeightsNotFoundError(
                f"timm has no downloadable weights for {timm_name}; use --weights random or a checkpoint file."
            )
        try:
            from huggingface_hub import hf_hub_download

            return hf_hub_download(repo_id=hub_id, filename="model.safetensors")
        except Exception as err:  # offline, no such file, no huggingface_hub: the same advice
            raise WeightsNotFoundError(
                f"timm's ImageNet weights for {timm_name} are not in the Hugging Face cache and could not be "
                f"downloaded ({type(err).__name__}). Download model.safetensors from https://huggingface.co/{hub_id} "
                "into models/deepdream and choose it as a checkpoint with this architecture, or use --weights random."
            ) from err

    return path


@functools.cache
def timm_spec(name: str) -> ModelSpec:
    """The spec of timm's network `timm:NAME` (see the module's text); raises for a name timm does not know."""
    timm_name = name[len(PREFIX) :]
    timm = _timm()
    if not timm.is_model(timm_name):
        raise UnknownModelError(
            f"timm has no model {timm_name!r}. Its names: timm.list_models() in Python (e.g. convnext_tiny, "
            "resnet50, vit_small_patch16_224, efficientnet_b0)."
        )
    with torch.device("meta"):
        net = _create(timm_name, IMAGENET_CLASS_COUNT).eval()
    _check_dreamable(timm_name, net)
    cfg: dict = dict(getattr(net, "pretrained_cfg", None) or {})
    mean, std = tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    head = cfg.get("classifier") or "head"
    is_linear = isinstance(net.get_submodule(head), nn.Linear)
    stages = _stages(net)  # read now: the meta network is not kept
    side = int(cfg.get("input_size", (3, PROBE, PROBE))[-1])
    return ModelSpec(
        name=name,
        description=f"{timm_name} (timm; layers from its feature_info)",
        build=_builder(timm_name),
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        layers=_layers,
        default_layers={_default_layer(net): 1.0},
        classifier_prefix=head,
        packaged_weights=_hub_weights(timm_name, cfg.get("hf_hub_id")),
        min_size=32,
        probe_size=side,
        train_size=side,
        trainable=linear_head_trainable(timm_name, head, lambda: stages) if is_linear else None,
    )


def cached_timm_models() -> list[str]:
    """`timm:NAME.TAG` for each timm network whose weights are in the Hugging Face cache (no import of timm)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return []
    folder = Path(HF_HUB_CACHE)
    if not folder.is_dir():
        return []
    prefix = "models--timm--"
    return sorted(PREFIX + path.name[len(prefix) :] for path in folder.glob(prefix + "*"))


def timm_line() -> str:
    """What `deepdream models` says of timm: installed or not, how many networks, whose weights are cached."""
    if not timm_installed():
        return "timm: not installed (pip install timm adds its networks as timm:NAME)."
    cached = cached_timm_models()
    return (
        f"timm {_timm().__version__}: {len(_timm().list_models())} networks, any as timm:NAME (deepdream layers "
        f"timm:NAME lists its layers); weights in the Hugging Face cache: {', '.join(cached) or 'none'}."
    )


def _derive(name: str) -> ModelSpec | None:
    return timm_spec(name) if name.startswith(PREFIX) else None


DERIVERS.append(_derive)
