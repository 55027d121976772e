"""What a dream maximises: a weighted sum of per-layer activation losses."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .errors import DreamError
from .imageops import resize
from .tiling import gather


@dataclass(frozen=True)
class LossMode:
    """How one layer's activation becomes a loss: a value per position, summed over the
    positions (each weighted by a region's mask, if any) and divided by the activation's
    size. The plain and the region path both use exactly this."""

    name: str
    per_position: Callable[[torch.Tensor], torch.Tensor]
    keras_border: bool
    """Whether the plain loss leaves out a 2-px border (Keras), still dividing by the full size."""
    help: str


LOSSES: dict[str, LossMode] = {
    mode.name: mode
    for mode in (
        LossMode("l2", torch.square, True, "Keras' DeepDream loss: sum of squares, 2-px border left out, / size"),
        LossMode("mean", lambda activation: activation, False, "the TensorFlow tutorial's mean activation"),
        LossMode("mean_sq", torch.square, False, "mean of squares, border kept"),
    )
}
LOSS_MODES = tuple(LOSSES)

_KERAS_BORDER = 2


def layer_loss(
    activation: torch.Tensor, mode: str = "l2", keras_border: bool = True, weight_map: torch.Tensor | None = None
) -> torch.Tensor:
    """Loss of one layer's activation `[B, C, H, W]`, one value per image `[B]`.

    `weight_map` `[B, 1, h, w]` (a region's mask, any size) weighs every position;
    `keras_border=False` keeps the border (inside a tile it is no image border).
    """
    if mode not in LOSSES:
        raise DreamError(f"Unknown loss mode {mode!r}; choose one of {', '.join(LOSS_MODES)}.")
    loss_mode = LOSSES[mode]
    size = activation[0].numel()
    values = loss_mode.per_position(activation)
    if weight_map is not None:
        values = values * F.interpolate(weight_map.to(values.dtype), size=values.shape[-2:], mode="area")
    elif loss_mode.keras_border and keras_border and min(values.shape[-2:]) > 2 * _KERAS_BORDER:
        # Keras crops the border so that padding artefacts are not amplified, but divides
        # by the uncropped size; tiny maps keep their border.
        b = _KERAS_BORDER
        values = values[..., b:-b, b:-b]
    return values.flatten(1).sum(1) / size


@dataclass(frozen=True)
class Term:
    """One objective term, parsed once from its text: a layer, some of its channels, or a class.

    ``mixed4`` (all channels), ``mixed4[3,17,40-47]`` (those channels), ``mixed4[top8]`` /
    ``mixed4[bottom8]`` (the 8 most / least active on the current image), ``class:jellyfish``
    or ``class:107`` (a class score). `FeatureModel.resolve_term` checks it against a
    network and gives the canonical term (stable layer name, class index).
    """

    layer: str
    channels: tuple[int, ...] = ()
    top: int = 0
    """N > 0: the N most active channels; N < 0: the -N least active."""
    class_name: str | None = None
    class_index: int | None = None

    @property
    def is_class(self) -> bool:
        return self.class_name is not None or self.class_index is not None

    def __str__(self) -> str:
        if self.is_class:
            return f"class:{self.class_name if self.class_index is None else self.class_index}"
        if self.channels:
            return f"{self.layer}[{_ranges_text(self.channels)}]"
        if self.top:
            return f"{self.layer}[{'top' if self.top > 0 else 'bottom'}{abs(self.top)}]"
        return self.layer

    __repr__ = __str__


def _ranges_text(indices: Sequence[int]) -> str:
    """Sorted channel indices as short text: (3, 17, 40, 41, ..., 47) -> '3,17,40-47'."""
    parts, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts)


MAX_CHANNEL = 65535
"""No layer has more channels than this: a channel beyond it is refused before any range is expanded
(a shared workflow's [0-99999999999] would otherwise fill the memory of the machine)."""

MAX_WEIGHT = 1e6
"""Larger layer weights overflow the loss to infinity (1e38 gave an all-black picture)."""

CLASS_LAYER = "logits"
"""The pseudo-layer whose activations are the class scores."""
_SELECTOR = re.compile(r"^(?P<name>[^\[\]]+?)\s*\[(?P<selector>[^\]]*)\]$")


@functools.lru_cache(maxsize=1024)
def parse_term(text: str | Term) -> Term:
    """The `Term` a piece of layer-weights text names (a `Term` passes through)."""
    if isinstance(text, Term):
        return text
    text = text.strip()
    if text.lower().startswith("class:"):
        name = text[len("class:") :].strip()
        if not name:
            raise DreamError(f"{text!r}: name the class, e.g. 'class:jellyfish' or 'class:107'.")
        return Term(CLASS_LAYER, class_index=int(name)) if name.isdigit() else Term(CLASS_LAYER, class_name=name)
    match = _SELECTOR.match(text)
    if match is None:
        if "[" in text or "]" in text:
            raise DreamError(f"{text!r}: write channels as layer[3,17,40-47] or layer[top8] / layer[bottom8].")
        return Term(text)
    layer, selector = match["name"].strip(), match["selector"].replace(" ", "").lower()
    shown = selector if len(selector) <= 40 else selector[:37] + "..."  # messages stay one short line
    counted = re.fullmatch(r"(top|bottom)(\d+)", selector)
    if counted:
        count = int(counted[2])
        if count < 1:
            raise DreamError(f"{text[:60]!r}: [{shown}] selects no channel.")
        return Term(layer, top=count if counted[1] == "top" else -count)
    indices: set[int] = set()
    for part in filter(None, selector.split(",")):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise DreamError(
                f"Channel selector [{shown}] of {layer}: write indices and ranges like [3,17,40-47], "
                "or [top8] / [bottom8]."
            )
        if len(low) > 6 or len(high) > 6 or max(int(low), int(high or 0)) > MAX_CHANNEL:
            raise DreamError(
                f"Channel selector of {layer}: {part[:24]} is beyond any layer's channels "
                f"(at most {MAX_CHANNEL}); see the layer's channels with 'deepdream layers MODEL'."
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise DreamError(f"Channel selector [{shown}] of {layer}: {part[:24]} runs backwards.")
        indices.update(range(first, last + 1))
    if not indices:
        raise DreamError(f"Channel selector [{shown}] of {layer} selects no channel.")
    return Term(layer, channels=tuple(sorted(indices)))


def check_channels(term: Term, channels: int, where: str) -> None:
    """Raise a `DreamError` if `term` asks for channels that a layer of `channels` lacks."""
    if term.channels and term.channels[-1] >= channels:
        raise DreamError(f"{where} has channels 0..{channels - 1}; [{str(term).partition('[')[2]} is outside that.")
    if abs(term.top) > channels:
        raise DreamError(
            f"{where} has {channels} channels; '{str(term).partition('[')[2][:-1]}' asks for {abs(term.top)}."
        )


@functools.lru_cache(maxsize=256)
def _channel_index(channels: tuple[int, ...], device: torch.device) -> torch.Tensor:
    # Made once per channel list and device: a tensor built from a Python list each step
    # would be a host-to-device copy every step.
    return torch.tensor(channels, dtype=torch.long, device=device)


def _select(activation: torch.Tensor, term: Term) -> torch.Tensor:
    if term.channels:
        return activation.index_select(1, _channel_index(term.channels, activation.device))
    # The strongest / weakest channels on the current image, chosen afresh each step.
    strength = activation.detach().flatten(2).mean(2)
    index = strength.topk(abs(term.top), dim=1, largest=term.top > 0).indices
    return activation.gather(1, index[:, :, None, None].expand(-1, -1, *activation.shape[-2:]))


def guide_similarity(activation: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Google's guide objective, per image `[B]`: each position's best match in the guide.

    For every position of `activation` `[B, C, h, w]`, the largest dot product with any
    feature vector of the guide `[C, M]`, averaged over positions and divided by C so
    that it is on the scale of a mean of squares.
    """
    x = activation.flatten(2).transpose(1, 2)  # [B, N, C]
    return (x @ guide.to(x.dtype)).amax(dim=2).mean(dim=1) / activation.shape[1]


def guide_features(features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The guide's feature vectors `[C, M]` per layer (first image of the batch)."""
    return {name: f[0].flatten(1).detach().float() for name, f in features.items() if f.ndim == 4}


def weighted_loss(
    features: Mapping[str, torch.Tensor],
    layer_weights: Mapping[Term, float],
    mode: str = "l2",
    keras_border: bool = True,
    spatial: torch.Tensor | None = None,
    guide: Mapping[str, torch.Tensor] | None = None,
    guide_mix: float = 1.0,
) -> torch.Tensor:
    """Weighted sum of the terms' losses, per image `[B]`.

    Terms are resolved (see `FeatureModel.resolve_weights`): a layer, a layer's
    channels, or a class (its score, maximised as it is). `spatial` `[B, 1, H, W]`
    weighs every position (a region's mask). `keras_border=False` inside a tile. With
    `guide` (per-layer guide features), a plain layer's loss becomes
    ``(1 - guide_mix) * loss + guide_mix * guide_similarity``.
    """
    total = None
    for term, weight in layer_weights.items():
        # Summed in float32 whatever the network computes in: fp16 squares overflow past 256.
        activation = features[term.layer].float()
        if term.is_class:
            term_loss = activation[:, term.class_index].float()
        else:
            if term.channels or term.top:
                activation = _select(activation, term)
            term_loss = layer_loss(activation, mode, keras_border=keras_border, weight_map=spatial)
            if guide is not None and not (term.channels or term.top) and term.layer in guide:
                similarity = guide_similarity(activation, guide[term.layer])
                term_loss = (1.0 - guide_mix) * term_loss + guide_mix * similarity
        term_loss = weight * term_loss
        total = term_loss if total is None else total + term_loss
    if total is None:
        raise DreamError("No layers to dream with: give at least one layer and its weight.")
    return total


def gradient_scale(features: Mapping[str, torch.Tensor], layer_weights: Mapping[Term, float]) -> float:
    """A factor for the climbed objective that brings the gradient entering the network to the
    activations' own size: 1 / the largest per-element coefficient (weight / elements averaged over).

    A term's loss is a mean over its activation, so its gradient is the activation divided
    by its size: 1e-5 of it for a mid layer of a 512 px picture, under fp16's normal range.
    Computed from shapes only (no device value is read).
    """
    largest = 0.0
    for term, weight in layer_weights.items():
        # Summed in float32 whatever the network computes in: fp16 squares overflow past 256.
        activation = features[term.layer].float()
        if term.is_class:
            size = 1
        else:
            channels = len(term.channels) or abs(term.top) or activation.shape[1]
            size = channels * activation[0, 0].numel()
        largest = max(largest, abs(weight) / size)
    return 1.0 / largest if largest > 0 else 1.0


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image `[B]`."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().flatten(1).mean(1)
    return dx + dy


def _split_items(text: str) -> list[str]:
    """Split on commas, semicolons and new lines that are not inside [...]."""
    items: list[str] = []
    depth, current = 0, list[str]()
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        if char in ",;\n" and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


LayerWeights = Mapping[str, float] | Mapping[Term, float] | Mapping[str | Term, float]
"""Layer weights as given: text keys ('blocks.8[3]', 'class:dog'), parsed `Term`s, or both."""


def parse_layer_weights(text: str) -> dict[Term, float]:
    """Parse ``"mixed4:1.0, mixed5[top8]:1.5, class:jellyfish: 2"`` into a dict.

    A bare name means weight 1. Separators may be commas, semicolons or new lines
    (commas inside ``[...]`` belong to a channel list); a term named twice gets the
    sum of its weights. Each term is parsed here, once, into a `Term`.
    """
    weights: dict[Term, float] = {}
    for item in _split_items(text):
        shown = item if len(item) <= 60 else item[:57] + "..."  # messages stay one short line
        name, sep, value = item.rpartition(":")
        if not sep or "]" in value or "[" in value:
            name, sep, value = item, "", ""
        if sep and name.strip().lower() == "class":  # 'class:NAME' without a weight
            name, sep, value = item, "", ""
        if not sep and "=" in item:
            name, sep, value = item.rpartition("=")
        name = name.strip()
        if not name:
            raise DreamError(f"Layer weight {shown!r} has no layer name; write it as 'layer:weight'.")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            if name.lower().startswith("class:") or ":" in name:
                raise DreamError(f"Layer weight {shown!r}: {value.strip()[:20]!r} is not a number.") from None
            raise DreamError(
                f"Layer weight {shown!r}: {value.strip()[:20]!r} is not a number; write it as 'layer:weight', "
                "e.g. 'mixed4:1.5'."
            ) from None
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise DreamError(f"Layer weight {shown!r} is not a finite number.")
        if abs(weight) > MAX_WEIGHT:
            raise DreamError(
                f"Layer weight {shown!r} is too large (at most {MAX_WEIGHT:g} either way); the "
                "weights' sizes relative to each other are what matters, and step sets the strength."
            )
        try:
            term = parse_term(name)
        except DreamError as err:
            raise DreamError(f"Layer weight {shown!r}: {err}") from None
        weights[term] = weights.get(term, 0.0) + weight
    return weights


# --- The objective as one value ------------------------------------------------------------------------------
#
# What a dream climbs is one `Objective`: a sum of parts (the layer terms with the guide's pull, each region's
# terms, the total-variation penalty). It is made from what the user gave, resolved once against the network,
# readied once per dream (masks and guide on the device), and asked for its value at each step. A new kind of
# term is a new `Part` subclass in one file: it says which terms it reads and what it adds.


class Part:
    """One piece of what a dream climbs. Subclasses override what they need; the defaults do nothing."""

    def terms(self) -> Mapping[Term, float]:
        """The layer-weight terms this part reads (their layers are tapped; the fp16 loss scale reads them)."""
        return {}

    @property
    def climbs(self) -> bool:
        """Whether this part gives the ascent something to climb (layer terms with weights do)."""
        return bool(self.terms())

    def resolved(self, resolve_weights: Callable[[Mapping], dict[Term, float]]) -> Part | None:
        """This part with its terms checked against the network (`FeatureModel.resolve_weights`); None if empty."""
        return self

    def readied(self, context: ReadyContext) -> Part:
        """This part ready for one dream: its tensors on the dream's device, at the dream's size."""
        return self

    def at_size(self, shape: tuple[int, int]) -> Part:
        """This part for an octave of `shape` (a region's mask resized to it)."""
        return self

    def cropped(self, rows: Any, cols: Any) -> Part:
        """This part for one tile of the octave (see `tiling.gather`)."""
        return self

    def value(self, features: Mapping[str, torch.Tensor], image: torch.Tensor, whole: bool) -> torch.Tensor | None:
        """What this part adds to the objective, per image `[B]` (float32), or None."""
        return None

    def penalty(self, image: torch.Tensor) -> torch.Tensor | None:
        """What the ascent subtracts but the reported objective leaves out, per image `[B]`, or None."""
        return None

    def networks(self) -> tuple:
        """(feature model, its terms) of each network besides the dream's own that this part runs (put on the
        device and cast with the dream's; its activations count in the tile side and the memory asked for)."""
        return ()

    def close(self) -> None:
        """Release what `readied` made (hooks on another network)."""


class PartSettings(Protocol):
    """What the parts read of a dream's settings (`options.DreamSettings` has it)."""

    @property
    def loss(self) -> str: ...

    @property
    def guide_mix(self) -> float: ...

    @property
    def tv_weight(self) -> float: ...


class Tap(Protocol):
    """A network's activations on some layers, as `FeatureModel.tap` gives them."""

    def __call__(self, image: torch.Tensor) -> Mapping[str, torch.Tensor]: ...

    def close(self) -> None: ...


class TappableNetwork(Protocol):
    """What an objective needs of a network (`feature_model.FeatureModel` has it; that module imports this one,
    so the objective names the network by what it does): its name, its spec (the smallest picture it takes),
    term resolution and a tap on some layers."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> Any: ...

    def resolve_weights(self, layer_weights: LayerWeights) -> dict[Term, float]: ...

    def tap(self, weights: Any) -> Tap: ...


@dataclass(frozen=True)
class ReadyContext:
    """What a part may need to ready itself for a dream: the original images on the device and the network."""

    images: torch.Tensor
    settings: PartSettings
    """The dream's `DreamSettings` (loss mode, guide mix, total-variation weight)."""
    features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
    """The tapped activations of an image batch, in the network's compute dtype (no gradient)."""
    prepare_mask: Callable[[torch.Tensor], torch.Tensor]
    """A mask in any of the accepted shapes made `[B, 1, H, W]` on the device, at the images' size."""


class _Weighted(Part):
    """A part made of layer-weight terms (`self.weights`); dropped when none is left after resolution."""

    weights: Mapping[Any, float]

    def terms(self) -> Mapping[Term, float]:
        return self.weights

    def resolved(self, resolve_weights):
        weights = resolve_weights(self.weights)
        return replace(self, weights=weights) if weights else None  # type: ignore[type-var]


@dataclass(frozen=True)
class Layers(_Weighted):
    """Layer terms (layers, channels, classes) counted everywhere; with a guide, Google's guided dream."""

    weights: Mapping[Any, float]
    guide: torch.Tensor | None = None
    """An RGB image `[1, 3, h, w]`; readied into its feature vectors per layer."""
    loss: str = "l2"
    guide_mix: float = 1.0
    guide_features: Mapping[str, torch.Tensor] | None = None

    def readied(self, context: ReadyContext) -> Part:
        settings = context.settings
        ready = replace(self, loss=settings.loss, guide_mix=settings.guide_mix)
        if self.guide is None:
            return ready
        # Computed once, with the guide no larger than 512 px: the match is per feature vector, so the
        # guide's size only sets how many vectors there are.
        guide = self.guide.to(context.images.device, torch.float32)
        scale = min(1.0, GUIDE_MAX_SIDE / max(guide.shape[-2:]))
        if scale < 1.0:
            guide = F.interpolate(guide, scale_factor=scale, mode="area")
        with torch.no_grad():
            return replace(ready, guide_features=guide_features(context.features(guide[:1])))

    def value(self, features, image, whole):
        if not self.weights:
            return None
        return weighted_loss(
            features, self.weights, self.loss, whole, guide=self.guide_features, guide_mix=self.guide_mix
        ).float()


GUIDE_MAX_SIDE = 512


@dataclass(frozen=True)
class Region(_Weighted):
    """Layer terms counted only where a mask is (each position weighted by it)."""

    mask: torch.Tensor
    weights: Mapping[Any, float]
    loss: str = "l2"

    def readied(self, context: ReadyContext) -> Part:
        return replace(self, mask=context.prepare_mask(self.mask), loss=context.settings.loss)

    def at_size(self, shape):
        return replace(self, mask=resize(self.mask, shape))

    def cropped(self, rows, cols):
        return replace(self, mask=gather(self.mask, rows, cols))

    def value(self, features, image, whole):
        return weighted_loss(features, self.weights, self.loss, keras_border=False, spatial=self.mask).float()


@dataclass(frozen=True)
class TotalVariation(Part):
    """The total-variation penalty (settings.tv_weight): smoother pictures, fewer speckles."""

    weight: float = 0.0

    def readied(self, context: ReadyContext) -> Part:
        return replace(self, weight=context.settings.tv_weight)

    def penalty(self, image):
        return self.weight * total_variation(image) if self.weight > 0 else None


@dataclass(frozen=True)
class Network(Part):
    """Another network's layer terms on the same picture (torch-dreams' model bunch): e.g. an ImageNet network's
    eyes with a fine-tuned network's textures. It runs its own forward pass on what the dream's network sees
    (the same jitter, scale and rotation) and adds its weighted terms; the gradient flows back to the one
    picture through both networks."""

    model: TappableNetwork
    """On the dream's device; `dream` casts it to the dream's precision."""
    weights: Mapping[Any, float]
    loss: str = "l2"
    tap: Tap | None = None

    def terms(self) -> Mapping[Term, float]:
        return {}  # none of the dream's own network's layers: this part taps its own

    @property
    def climbs(self) -> bool:
        return bool(self.weights)

    def networks(self) -> tuple:
        return ((self.model, self.weights),)

    def resolved(self, resolve_weights):
        if not self.weights:
            raise DreamError(f"The extra network {self.model.name} has no layer weights: give it at least one layer.")
        weights = self.model.resolve_weights(self.weights)  # against its own network, not the dream's
        return replace(self, weights=weights) if weights else None

    def readied(self, context: ReadyContext) -> Part:
        return replace(self, loss=context.settings.loss, tap=self.model.tap(self.weights))

    def value(self, features, image, whole):
        assert self.tap is not None, "Network.readied makes the tap"
        smallest = self.model.spec.min_size
        if min(image.shape[-2:]) < smallest:  # a small tile or octave: enlarged to what this network takes
            scale = smallest / min(image.shape[-2:])
            size = (math.ceil(image.shape[-2] * scale), math.ceil(image.shape[-1] * scale))
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        return weighted_loss(self.tap(image), self.weights, self.loss, whole).float()

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


@dataclass(frozen=True)
class Objective:
    """Everything a dream maximises, as one value: a sum of parts.

    ``Objective.of(layer_weights, regions=..., guide=...)`` makes it from what a user
    gives; objectives add up (``a + b``, the parts side by side). `resolved(model)` checks
    every term against the network once; `readied(...)` (done by the dream) puts masks
    and the guide on the device; then `__call__` gives (value, climbed) per image.
    """

    parts: tuple[Part, ...] = ()
    resolved_for: TappableNetwork | None = None
    """The network whose names the terms were resolved against (None: not yet)."""

    @classmethod
    def of(
        cls,
        layer_weights: Mapping | Objective | None = None,
        *,
        regions: Sequence = (),
        guide: torch.Tensor | None = None,
        networks: Sequence = (),
    ) -> Objective:
        """The objective of layer weights (text keys or `Term`s), (mask, layer weights) regions, a guide image
        and (feature model, layer weights) pairs of other networks dreaming the same picture."""
        if isinstance(layer_weights, Objective):
            if not regions and guide is None and not networks:
                return layer_weights
            return layer_weights + cls.of(None, regions=regions, guide=guide, networks=networks)
        parts: list[Part] = []
        if layer_weights:  # the guide pulls the plain layers only
            parts.append(Layers(dict(layer_weights), _checked_guide(guide)))
        parts += [Region(mask, dict(weights)) for mask, weights in regions]
        parts += [Network(model, dict(weights)) for model, weights in networks]
        return cls((*parts, TotalVariation()))

    def __add__(self, other: Objective) -> Objective:
        parts = [*self.parts, *other.parts]
        # One total-variation part, at the end: its weight is the dream's setting.
        tv = [part for part in parts if isinstance(part, TotalVariation)]
        parts = [part for part in parts if not isinstance(part, TotalVariation)] + list[Part](tv[:1])
        return Objective(tuple(parts))

    def terms(self) -> dict[Term, float]:
        """Every term of every part (a term in two parts: the later part's weight)."""
        merged: dict[Term, float] = {}
        for part in self.parts:
            merged.update(part.terms())
        return merged

    @property
    def climbs(self) -> bool:
        """Whether there is anything to climb (no terms, or only zero weights: the image stays as it is)."""
        return any(part.climbs for part in self.parts)

    def resolved(self, model: TappableNetwork) -> Objective:
        """Every term checked against `model` (`FeatureModel`) once; parts left empty dropped."""
        if self.resolved_for is model:
            return self
        if all(isinstance(part, TotalVariation) for part in self.parts):
            raise DreamError("No layers to dream with: give at least one layer and its weight.")
        parts = [part.resolved(model.resolve_weights) for part in self.parts]
        return Objective(tuple(part for part in parts if part is not None), resolved_for=model)

    def readied(self, context: ReadyContext) -> Objective:
        return replace(self, parts=tuple(part.readied(context) for part in self.parts))

    def networks(self) -> tuple:
        """(feature model, its terms) of every network other than the dream's own that the parts run."""
        return tuple(pair for part in self.parts for pair in part.networks() if pair[0] is not self.resolved_for)

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def at_size(self, shape: tuple[int, int]) -> Objective:
        return replace(self, parts=tuple(part.at_size(shape) for part in self.parts))

    def cropped(self, rows: Any, cols: Any) -> Objective:
        return replace(self, parts=tuple(part.cropped(rows, cols) for part in self.parts))

    def __call__(
        self,
        features: Mapping[str, torch.Tensor],
        image: torch.Tensor,
        whole: bool = True,
        seen: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the objective's value, what the ascent climbs), per image `[B]`; the value has no gradient.

        `whole`: the image is the whole picture (Keras' loss leaves its border out), not a tile. `seen`: the
        image as the network saw it (randomly scaled and rotated), for parts that look at it themselves;
        penalties read `image`.
        """
        value = torch.zeros(image.shape[0], device=image.device)
        for part in self.parts:
            added = part.value(features, image if seen is None else seen, whole)
            if added is not None:
                value = value + added
        climbed = value
        for part in self.parts:
            penalty = part.penalty(image)
            if penalty is not None:
                climbed = climbed - penalty
        return value.detach(), climbed


def _checked_guide(guide: torch.Tensor | None) -> torch.Tensor | None:
    if guide is None:
        return None
    if guide.ndim == 3:
        guide = guide.unsqueeze(0)
    if guide.ndim != 4 or guide.shape[1] != 3 or 0 in guide.shape:
        raise DreamError(f"The guide must be an RGB image [1, 3, H, W]; got shape {tuple(guide.shape)}.")
    return guide.detach()
