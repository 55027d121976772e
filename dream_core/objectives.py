"""What a dream maximises: a weighted sum of per-layer activation losses."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import torch

from .errors import DreamError

LOSS_MODES = ("l2", "mean", "mean_sq")
"""`l2`: Keras' DeepDream loss, sum of squares over the activation with a 2-px border
cropped, divided by the activation's number of elements. `mean`: the TensorFlow
tutorial's mean activation. `mean_sq`: mean of squares, border kept."""

_KERAS_BORDER = 2


def layer_loss(activation: torch.Tensor, mode: str = "l2", keras_border: bool = True) -> torch.Tensor:
    """Loss of one layer's activation `[B, C, H, W]`, one value per image `[B]`.

    `keras_border=False` keeps the border (for the inside of a tile, where it is
    not an image border) and makes `l2` a plain mean of squares.
    """
    if mode == "l2":
        # Keras crops the border so that padding artefacts are not amplified, but
        # divides by the uncropped size; tiny maps keep their border.
        h, w = activation.shape[-2:]
        size = activation[0].numel()
        if keras_border and h > 2 * _KERAS_BORDER and w > 2 * _KERAS_BORDER:
            b = _KERAS_BORDER
            activation = activation[..., b:-b, b:-b]
        return activation.square().flatten(1).sum(1) / size
    if mode == "mean":
        return activation.flatten(1).mean(1)
    if mode == "mean_sq":
        return activation.square().flatten(1).mean(1)
    raise DreamError(f"Unknown loss mode {mode!r}; choose one of {', '.join(LOSS_MODES)}.")


Margins = tuple[float, float, float, float]
"""Fractions of a tile's height/width that are context only: (top, bottom, left, right)."""

_SELECTOR = re.compile(r"^(?P<name>[^\[\]]+?)\s*\[(?P<selector>[^\]]*)\]$")


def split_term(text: str) -> tuple[str, str | None]:
    """``"mixed4[top8]"`` -> ``("mixed4", "top8")``; ``"mixed4"`` -> ``("mixed4", None)``."""
    match = _SELECTOR.match(text.strip())
    if match is None:
        return text.strip(), None
    return match["name"].strip(), match["selector"].strip()


def canonical_selector(selector: str, channels: int, where: str) -> str:
    """Check a channel selector against a layer's channel count; return its canonical text.

    ``top8`` / ``bottom8``: the 8 channels most / least active on the current image;
    ``3,17,40-47``: those channel indices.
    """
    text = selector.replace(" ", "").lower()
    match = re.fullmatch(r"(top|bottom)(\d+)", text)
    if match:
        count = int(match[2])
        if not 1 <= count <= channels:
            raise DreamError(f"{where} has {channels} channels; '{selector}' asks for {count}.")
        return f"{match[1]}{count}"
    indices: set[int] = set()
    for part in filter(None, text.split(",")):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise DreamError(
                f"Channel selector [{selector}] of {where}: write indices and ranges like [3,17,40-47], "
                "or [top8] / [bottom8]."
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last >= channels:
            raise DreamError(f"{where} has channels 0..{channels - 1}; [{selector}] is outside that.")
        indices.update(range(first, last + 1))
    if not indices:
        raise DreamError(f"Channel selector [{selector}] of {where} selects no channel.")
    return ",".join(str(i) for i in sorted(indices))


@functools.cache
def _parse_canonical(term: str) -> tuple[str, str, tuple[int, ...] | int]:
    """(layer, kind, value) of a canonical term: kind 'all', 'channels', 'top', 'bottom', 'class'."""
    layer, selector = split_term(term)
    if selector is None:
        return layer, "all", ()
    if layer == "logits":
        return layer, "class", int(selector)
    match = re.fullmatch(r"(top|bottom)(\d+)", selector)
    if match:
        return layer, match[1], int(match[2])
    return layer, "channels", tuple(int(i) for i in selector.split(","))


def _select(activation: torch.Tensor, kind: str, value) -> torch.Tensor:
    if kind == "channels":
        return activation[:, list(value)]
    # The strongest / weakest channels on the current image, chosen afresh each step.
    strength = activation.detach().flatten(2).mean(2)
    index = strength.topk(value, dim=1, largest=kind == "top").indices
    return activation.gather(1, index[:, :, None, None].expand(-1, -1, *activation.shape[-2:]))


def _crop(tensor: torch.Tensor, margins: Margins) -> torch.Tensor:
    h, w = tensor.shape[-2:]
    top, bottom = round(margins[0] * h), h - round(margins[1] * h)
    left, right = round(margins[2] * w), w - round(margins[3] * w)
    return tensor[..., top : max(bottom, top + 1), left : max(right, left + 1)]


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
    layer_weights: Mapping[str, float],
    mode: str = "l2",
    margins: Margins | None = None,
    spatial: torch.Tensor | None = None,
    guide: Mapping[str, torch.Tensor] | None = None,
    guide_mix: float = 1.0,
) -> torch.Tensor:
    """Weighted sum of the terms' losses, per image `[B]`.

    Terms are canonical (see `FeatureModel.resolve_weights`): a layer, a layer's
    channels, or ``logits[i]`` (a class score, maximised as it is). With `margins` (a
    tile with context around it) each activation is cut to the tile's core, so that
    overlapping tiles count each place once. `spatial` `[B, 1, H, W]` weighs every
    position (a region's mask). With `guide` (per-layer guide features), a plain
    layer's loss becomes ``(1 - guide_mix) * loss + guide_mix * guide_similarity``.
    """
    total = None
    for term, weight in layer_weights.items():
        layer, kind, value = _parse_canonical(term)
        activation = features[layer]
        if kind == "class":
            term_loss = activation[:, value].float()
        else:
            if kind != "all":
                activation = _select(activation, kind, value)
            plain = margins is None and spatial is None
            if margins is not None:
                activation = _crop(activation, margins)
            if spatial is not None:
                term_loss = _spatial_loss(activation, spatial, mode)
            else:
                term_loss = layer_loss(activation, mode, keras_border=plain)
            if guide is not None and kind == "all" and layer in guide:
                similarity = guide_similarity(activation, guide[layer])
                term_loss = (1.0 - guide_mix) * term_loss + guide_mix * similarity
        term = weight * term_loss
        total = term if total is None else total + term
    if total is None:
        raise DreamError("No layers to dream with: give at least one layer and its weight.")
    return total


def _spatial_loss(activation: torch.Tensor, weight_map: torch.Tensor, mode: str) -> torch.Tensor:
    """Loss with every position weighted by a map resized to the activation (0 = ignored)."""
    weight_map = torch.nn.functional.interpolate(weight_map.to(activation.dtype), size=activation.shape[-2:],
                                                 mode="area")  # fmt: skip
    values = activation if mode == "mean" else activation.square()
    return (values * weight_map).flatten(1).sum(1) / activation[0].numel()


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


def parse_layer_weights(text: str) -> dict[str, float]:
    """Parse ``"mixed4:1.0, mixed5[top8]:1.5, class:jellyfish: 2"`` into a dict.

    A bare name means weight 1. Separators may be commas, semicolons or new lines
    (commas inside ``[...]`` belong to a channel list); a term named twice gets the
    sum of its weights.
    """
    weights: dict[str, float] = {}
    for item in _split_items(text):
        name, sep, value = item.rpartition(":")
        if not sep or "]" in value or "[" in value:
            name, sep, value = item, "", ""
        if sep and name.strip().lower() == "class":  # 'class:NAME' without a weight
            name, sep, value = item, "", ""
        if not sep and "=" in item:
            name, sep, value = item.rpartition("=")
        name = name.strip()
        if not name:
            raise DreamError(f"Layer weight {item!r} has no layer name; write it as 'layer:weight'.")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            if name.lower().startswith("class:") or ":" in name:
                raise DreamError(f"Layer weight {item!r}: {value.strip()!r} is not a number.") from None
            raise DreamError(
                f"Layer weight {item!r}: {value.strip()!r} is not a number; write it as 'layer:weight', "
                "e.g. 'mixed4:1.5'."
            ) from None
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise DreamError(f"Layer weight {item!r} is not a finite number.")
        weights[name] = weights.get(name, 0.0) + weight
    return weights
