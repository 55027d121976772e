"""What a dream maximises: a weighted sum of per-layer activation losses."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import DreamError


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
            raise DreamError(f"Channel selector of {layer}: {part[:24]} is beyond any layer's channels "
                             f"(at most {MAX_CHANNEL}); see the layer's channels with 'deepdream layers MODEL'.")
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
        raise DreamError(f"{where} has {channels} channels; '{str(term).partition('[')[2][:-1]}' asks for "
                         f"{abs(term.top)}.")  # fmt: skip


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


def dream_objective(
    features: Mapping[str, torch.Tensor],
    image: torch.Tensor,
    layer_weights: Mapping[Term, float],
    mode: str,
    *,
    keras_border: bool = True,
    regions: Sequence[tuple[torch.Tensor, Mapping[Term, float]]] = (),
    guide: Mapping[str, torch.Tensor] | None = None,
    guide_mix: float = 1.0,
    tv_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Everything a dream maximises, per image: (the objective's value, what the ascent climbs).

    The layer terms (with the guide's pull), each region's terms weighted by its mask
    `[B, 1, H, W]`, and the total-variation penalty on `image`, which the climbed value
    subtracts but the reported objective leaves out.
    """
    value = torch.zeros(image.shape[0], device=image.device)
    if layer_weights:
        value = value + weighted_loss(features, layer_weights, mode, keras_border, guide=guide,
                                      guide_mix=guide_mix).float()  # fmt: skip
    for mask, region_weights in regions:
        value = value + weighted_loss(features, region_weights, mode, keras_border=False, spatial=mask).float()
    climbed = value - tv_weight * total_variation(image) if tv_weight > 0 else value
    return value.detach(), climbed


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
    items, depth, current = [], 0, []
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
            raise DreamError(f"Layer weight {shown!r} is too large (at most {MAX_WEIGHT:g} either way); the "
                             "weights' sizes relative to each other are what matters, and step sets the strength.")
        try:
            term = parse_term(name)
        except DreamError as err:
            raise DreamError(f"Layer weight {shown!r}: {err}") from None
        weights[term] = weights.get(term, 0.0) + weight
    return weights
