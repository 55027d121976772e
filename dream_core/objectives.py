"""What a dream maximises: a weighted sum of per-layer activation losses."""

from __future__ import annotations

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


def weighted_loss(
    features: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    mode: str = "l2",
    margins: Margins | None = None,
) -> torch.Tensor:
    """Weighted sum of `layer_loss` over the layers in `layer_weights`, per image `[B]`.

    With `margins` (a tile with context around it), each activation is cut to the
    part that belongs to the tile's core, so overlapping tiles count each place once.
    """
    total = None
    for name, weight in layer_weights.items():
        activation = features[name]
        if margins is not None:
            h, w = activation.shape[-2:]
            top, bottom = round(margins[0] * h), h - round(margins[1] * h)
            left, right = round(margins[2] * w), w - round(margins[3] * w)
            activation = activation[..., top : max(bottom, top + 1), left : max(right, left + 1)]
            term = weight * layer_loss(activation, mode, keras_border=False)
        else:
            term = weight * layer_loss(activation, mode)
        total = term if total is None else total + term
    if total is None:
        raise DreamError("No layers to dream with: give at least one layer and its weight.")
    return total


def parse_layer_weights(text: str) -> dict[str, float]:
    """Parse ``"mixed4:1.0, mixed5:1.5"`` (a bare name means weight 1) into a dict.

    Separators may be commas, semicolons or new lines; a layer named twice gets the
    sum of its weights.
    """
    weights: dict[str, float] = {}
    for raw in text.replace(";", ",").replace("\n", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition(":")
        if not sep:
            name, sep, value = item.partition("=")
        name = name.strip()
        if not name:
            raise DreamError(f"Layer weight {item!r} has no layer name; write it as 'layer:weight'.")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise DreamError(
                f"Layer weight {item!r}: {value.strip()!r} is not a number; write it as 'layer:weight', "
                "e.g. 'mixed4:1.5'."
            ) from None
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise DreamError(f"Layer weight {item!r} is not a finite number.")
        weights[name] = weights.get(name, 0.0) + weight
    return weights
