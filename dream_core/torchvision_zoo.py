"""Every torchvision classification network by name (toward issue 30): a `ModelSpec` derived from the network's
own structure, not written by hand.

`derived_spec("convnext_tiny")` builds the network once on the meta device (no weights, no memory) and reads:

* its **layers**: the trunk (the chain of modules the picture runs through, found by descending while a single
  child holds the whole feature map: `features` in ConvNeXt, DenseNet, MobileNet, EfficientNet; the root in
  ResNet; `trunk_output` in RegNet), each trunk module that yields a feature map, and the blocks inside each
  stage (a trunk module made of several blocks), named by their module paths (`layer3.1`, `features.5.2`);
* its **default layer**: the deepest trunk module at stride 16 (ResNet's `layer3`, ConvNeXt's `features.5`),
  where the classic dreams' eyes and animal parts live;
* its **smallest side**: the least of 32, 48, 64, ... px its forward pass takes;
* from torchvision's weights entry: the **preprocessing** (mean and std of its transforms), the **ImageNet
  weights** file (found or downloaded into the weights folder as for the six hand-written entries), and the
  **classifier head** (the last `Linear`).

The six hand-written entries of `zoo.ZOO` keep their names, aliases and defaults; a name they have is never
derived. ViT and Swin are wrapped by `token_maps` (their blocks' tokens read as feature maps, ViT at any size);
MaxViT is refused.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torchvision
from torch import nn

from .errors import UnknownModelError
from .token_maps import DreamSwin, DreamViT, transformer_layers, wrapped
from .zoo import (
    DERIVERS,
    IMAGENET_CLASS_COUNT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ZOO,
    ModelSpec,
    fold_batchnorms,
    get_spec,
    linear_head_trainable,
    weights_entry_file,
)

TRANSFORMERS = ("vit_", "swin_")
"""torchvision families whose layers are token maps: wrapped by `token_maps` so they read as feature maps."""
REFUSED = ("maxvit_",)
"""torchvision families not dreamed yet."""
SKIPPED = (nn.BatchNorm2d, nn.Identity, nn.Dropout, nn.Dropout2d)
POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)
"""A trunk's closing pooling: a layer, but never what the trunk is."""
"""Trunk modules that are no layer of their own (they only rescale or pass on the one before)."""
PROBE = 224


def derivable() -> tuple[str, ...]:
    """The torchvision classification networks a spec can be derived for, by name."""
    names = torchvision.models.list_models(module=torchvision.models)
    return tuple(name for name in names if not name.startswith(REFUSED))


def torchvision_families() -> dict[str, list[str]]:
    """The derivable networks by family (`convnext`: convnext_tiny, ...), the zoo's own names left out."""
    families: dict[str, list[str]] = {}
    for name in derivable():
        if name in ZOO:
            continue
        family = re.match(r"(wide_)?[a-z]+", name)
        families.setdefault(family.group(0) if family else name, []).append(name)
    return families


@functools.cache
def network_parameters(name: str) -> int:
    """How many parameters the network `name` has (any the zoo knows; torchvision's own figure where it has one,
    else counted on the meta device)."""
    try:
        return int(torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"])
    except (ValueError, KeyError, AttributeError):
        with torch.device("meta"):
            net = get_spec(name).build(IMAGENET_CLASS_COUNT)
        return sum(parameter.numel() for parameter in net.parameters())


def _builder(name: str) -> Callable[[int], nn.Module]:
    finish = wrapped if name.startswith(TRANSFORMERS) else (lambda net: net)

    widths = _widths_on_cpu if name.startswith("regnet_") else contextlib.nullcontext

    def build(num_classes: int) -> nn.Module:
        with widths():
            return finish(torchvision.models.get_model(name, weights=None, num_classes=num_classes))

    return build


_PATCHING = threading.Lock()


@contextlib.contextmanager
def _widths_on_cpu() -> Iterator[None]:
    """RegNet works out its stages' widths with tensors and reads them back (`BlockParams.from_init_params`), which
    cannot be done on the meta device: meanwhile that one computation runs on the CPU (a few numbers), so a RegNet is
    built on the meta device like any other network (RegNetY-128GF's 644 M parameters never allocated)."""
    params = torchvision.models.regnet.BlockParams
    original = params.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    with _PATCHING:
        params.from_init_params = classmethod(on_cpu)
        try:
            yield
        finally:
            params.from_init_params = original


def _maps(net: nn.Module, side: int) -> tuple[list[str], dict[str, torch.Size], dict[str, torch.Tensor]]:
    """Every module's 4D output, in the order their forward passes finish, on the meta device: (paths, shapes,
    the output tensors themselves, to tell a container's output from its last child's)."""
    order: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for path, module in net.named_modules():

        def hook(_module, _inputs, output, path=path) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == 4 and path not in outputs:
                outputs[path] = output
                order.append(path)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, side, side, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return order, {path: out.shape for path, out in outputs.items()}, outputs


def _spatial(shapes: dict[str, torch.Size], path: str) -> bool:
    return path in shapes and min(shapes[path][-2:]) > 1


def _children(net: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    module = net.get_submodule(path) if path else net
    return [(f"{path}.{name}" if path else name, child) for name, child in module.named_children()]


def _trunk(net: nn.Module, shapes: dict[str, torch.Size]) -> list[str]:
    """The trunk modules' paths: descend while one child alone (a closing pooling aside) yields the feature maps."""
    path = ""
    while True:
        mapped = [(p, m) for p, m in _children(net, path) if _spatial(shapes, p) and not isinstance(m, SKIPPED)]
        body = [(p, m) for p, m in mapped if not isinstance(m, POOLS)]
        if len(body) == 1 and list(body[0][1].children()):
            path = body[0][0]
            continue
        return [p for p, _ in mapped]


def _layer_paths(net: nn.Module) -> tuple[list[str], dict[str, torch.Size], dict[str, str]]:
    """The dreamable layers' paths in forward order, the shapes, and {a stage's last block: the stage} (the same
    output, named once)."""
    order, shapes, outputs = _maps(net, PROBE)
    chosen: set[str] = set()
    same: dict[str, str] = {}
    for path in _trunk(net, shapes):
        chosen.add(path)
        blocks = [p for p, m in _children(net, path) if _spatial(shapes, p) and list(m.children())]
        if len(blocks) > 1:  # a stage of blocks: each block is a layer too
            chosen.update(blocks)
            if outputs[blocks[-1]] is outputs[path]:
                same[blocks[-1]] = path
    return [p for p in order if p in chosen and p not in same], shapes, same


def derived_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, module path, aliases) of a torchvision network's dreamable layers, in forward order; a stage whose
    output is its last block's answers to that block's name too."""
    paths, _, same = _layer_paths(net)
    aliases = {stage: (block,) for block, stage in same.items()}
    return [(path, path, aliases.get(path, ())) for path in paths]


def _stride(shapes: dict[str, torch.Size], path: str) -> int:
    return 2 ** round(math.log2(PROBE / shapes[path][-1]))


def _default_layer(net: nn.Module) -> str:
    """The deepest layer at stride 16 (else the middle one); a ViT's (all at 16): the block two thirds in."""
    if isinstance(net, DreamViT):
        return f"blocks.{len(net.maps) * 2 // 3 - 1}"
    if isinstance(net, DreamSwin):
        _, shapes, _ = _maps(net, PROBE)
        layers = transformer_layers(net)
        at_16 = [name for name, path, _ in layers if _stride(shapes, path) == 16]
        return at_16[-1]
    paths, shapes, _ = _layer_paths(net)
    at_16 = [p for p in paths if _stride(shapes, p) == 16]
    return at_16[-1] if at_16 else paths[len(paths) // 2]


def _min_size(net: nn.Module) -> int:
    for side in (32, 48, 64, 96, 128, 160, 224):
        try:
            with torch.no_grad():
                net(torch.empty(1, 3, side, side, device="meta"))
            return side
        except (RuntimeError, ValueError):
            continue
    return PROBE


def _head(net: nn.Module) -> str:
    """The classifier head's module path: the last Linear (SqueezeNet's last Conv2d)."""
    linear = [p for p, m in net.named_modules() if isinstance(m, nn.Linear)]
    conv = [p for p, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return (linear or conv)[-1]


def _weights(name: str) -> tuple[str | None, tuple[float, ...], tuple[float, ...]]:
    """(weights entry as 'Enum.ENTRY', mean, std) from torchvision's metadata (ImageNet's if it has none)."""
    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None, IMAGENET_MEAN, IMAGENET_STD
    entry = enum.DEFAULT
    transforms = entry.transforms()
    mean = tuple(getattr(transforms, "mean", IMAGENET_MEAN))
    std = tuple(getattr(transforms, "std", IMAGENET_STD))
    return f"{enum.__name__}.{entry.name}", mean, std


@functools.cache
def _stage_paths(name: str) -> tuple[str, ...]:
    """The trunk's module paths of torchvision's `name` (measured once on the meta device)."""
    with torch.device("meta"):
        net = _builder(name)(IMAGENET_CLASS_COUNT).eval()
    if isinstance(net, DreamViT):
        return tuple(f"encoder.layers.{child}" for child, _ in net.encoder.layers.named_children())
    if isinstance(net, DreamSwin):
        return tuple(f"features.{i}" for i in range(len(net.features)))
    _, shapes, _ = _maps(net, PROBE)
    return tuple(_trunk(net, shapes))


@functools.cache
def derived_spec(name: str) -> ModelSpec:
    """The spec of torchvision's classification network `name` (see the module's text)."""
    if name.startswith(REFUSED):
        raise UnknownModelError(
            f"{name} mixes convolutions and attention in a way this version does not dream yet. Use a "
            "convolutional network (e.g. convnext_tiny) or a ViT or Swin (vit_b_16, swin_t)."
        )
    if name not in derivable():
        raise UnknownModelError(f"Unknown model {name!r}.")
    build = _builder(name)
    with torch.device("meta"):
        net = build(IMAGENET_CLASS_COUNT).eval()
    fold_batchnorms(net)  # the same maps, and the probes below twice as fast (BatchNorm on meta is decomposed)
    entry, mean, std = _weights(name)
    head = _head(net)
    return ModelSpec(
        name=name,
        description=f"{name} (torchvision; layers derived from its structure)",
        build=build,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        layers=transformer_layers if name.startswith(TRANSFORMERS) else derived_layers,
        default_layers={_default_layer(net): 1.0},
        classifier_prefix=head,
        imagenet_weights=entry,
        min_size=_min_size(net),
        trainable=linear_head_trainable(name, head, lambda: _stage_paths(name))
        if isinstance(net.get_submodule(head), nn.Linear)
        else None,
    )


def _derive(name: str) -> ModelSpec | None:
    """`derived_spec` for torchvision's names (a transformer's: a clear refusal), None for any other."""
    if name.startswith(REFUSED) and name in torchvision.models.list_models(module=torchvision.models):
        return derived_spec(name)  # raises, saying why
    return derived_spec(name) if name in derivable() else None


DERIVERS.append(_derive)


def with_weights_in(files: list[str]) -> list[str]:
    """The derivable networks whose ImageNet weights file is among `files` (names in a weights folder)."""
    present = {Path(file).name for file in files}
    found = []
    for name in derivable():
        if name in ZOO:
            continue
        entry, _, _ = _weights(name)
        if entry is not None and weights_entry_file(entry)[0] in present:
            found.append(name)
    return found
