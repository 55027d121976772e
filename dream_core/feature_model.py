"""The feature model: a frozen network with its preprocessing and layer catalogue, and the tap that reads the
activations of some of its layers."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import replace

import torch
from torch import nn

from .errors import UnknownLayerError
from .objectives import LayerWeights, Term, check_channels, parse_term
from .zoo import LOGITS, LayerInfo, ModelSpec, StopForward, head_classes, layer_catalogue

LEARNING_PHASES = ("inference", "training")
LEARNING_PHASE_HELP = (
    "How BatchNorm normalises while dreaming (Keras' learning phase). inference: with the statistics learnt "
    "on ImageNet, the classic look: eyes, faces and objects grow out of the picture. training: with the "
    "dreamed picture's own statistics (the R DeepDream recipe), every channel is rescaled to this picture, "
    "so the dream spreads as fine, even grain over the whole image with muted colours instead of objects. "
    "Networks without BatchNorm (VGG) refuse it."
)


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
        *,
        learning_phase: str = "inference",
        training_report: dict | None = None,
    ) -> None:
        self.spec = spec
        self.net = net
        self.weights = weights
        self.class_names = class_names
        self.learning_phase = learning_phase
        """'training': BatchNorm uses each dreamed image's statistics (see `load_feature_model`)."""
        self.training_report = training_report
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

    def resolve_weights(self, layer_weights: LayerWeights) -> dict[Term, float]:
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
            limit = len(classes) or head_classes(self.net, self.spec)
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
        close = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.5)
        if matches:
            hint = f"; it matches several: {', '.join(classes[i] for i in matches[:8])}"
        elif close:
            hint = f"; did you mean: {', '.join(close)}"
        elif len(classes) <= 40:  # a fine-tuned model's few classes: all of them
            hint = f"; its classes: {', '.join(classes)}"
        else:
            hint = f" (its {len(classes)} classes include {', '.join(classes[:5])}, ...)"
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
                            table[name] = nn.Parameter(cast, requires_grad=False) if is_parameter else cast  # type: ignore[assignment]
            self.compute_dtype = dtype
            yield self
        finally:
            for table, name, tensor in originals:
                table[name] = tensor  # type: ignore[assignment]
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
                        module._parameters[name] = nn.Parameter(
                            param.detach().clone(), requires_grad=param.requires_grad
                        )
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
    raises `StopForward`, so the layers after the deepest one never run. Use it as a
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
                raise StopForward

        return hook

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations `{layer: [B, C, h, w]}` of a `[B, 3, H, W]` image in 0..1."""
        x = ((image - self._mean) / self._std).to(self.model.compute_dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        self._out = {}
        self._active = True
        try:
            self.model.net(x)
        except StopForward:
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
