"""How much device memory a dream needs, so a host can make room before it starts.

A host that shares the device with other models (ComfyUI) asks its memory manager for
`estimate_dream_memory(...).total` bytes before it moves the feature model there; the
manager then offloads other models first instead of the dream running out of memory.
The estimate follows what the engine keeps: the weights, autograd's activations for
the largest gradient tile (the same per-pixel figure the tiler uses), and the images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from . import tiling
from .engine import BACKWARD_FACTOR, DreamSettings, resolve_precision
from .models import FeatureModel, activation_bytes_per_pixel, get_spec, layer_catalogue

IMAGE_COPIES = 6
"""Full-size float32 images a dream keeps at once: the original, the dream, its
gradient, the previous octave's shrunk original and the mask/blur scratch."""
REDUCED_PRECISION_SHARE = 0.5
"""Activations under bf16/fp16 autocast take about half the float32 bytes."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a dream needs on its device, by what needs them."""

    weights: int
    activations: int
    images: int
    tile_size: int
    """The largest tile side the activations were sized for (px)."""

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.images

    def describe(self) -> str:
        """One line for a log: the total and its parts in MB."""
        mb = 1 << 20
        return (
            f"{self.total / mb:.0f} MB (weights {self.weights / mb:.0f} MB, activations {self.activations / mb:.0f} "
            f"MB for tiles up to {self.tile_size} px, images {self.images / mb:.0f} MB)"
        )


def model_bytes(model: FeatureModel) -> int:
    """Bytes of the network's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in model.net.state_dict().values())


def tile_side(settings: DreamSettings, device: torch.device, tile_cap: int | None = None) -> int:
    """The largest tile side a dream may use: the chosen `tile_size`, else the device's cap."""
    cap = tile_cap or (tiling.GPU_TILE_CAP if device.type == "cuda" else tiling.CPU_TILE_CAP)
    return min(settings.tile_size, cap) if settings.tile_size > 0 else cap


def estimate_dream_memory(
    model: FeatureModel,
    terms: Iterable[str],
    settings: DreamSettings,
    image_shape: tuple[int, ...],
    device: torch.device,
    tile_cap: int | None = None,
) -> MemoryEstimate:
    """Device bytes to dream images of `image_shape` (`[B, 3, H, W]`) with these terms.

    `terms` are layer-weight terms (`layer`, `layer[3,17]`, `class:NAME`); an unknown
    one raises the same error the dream would. Activations are sized for the largest
    tile (`tile_size`, or `tile_cap`, or the device's automatic cap) at the full size,
    the largest octave; the dream itself shrinks its tiles to the memory it finds.
    """
    batch, height, width = int(image_shape[0]), int(image_shape[-2]), int(image_shape[-1])
    side = max(tile_side(settings, device, tile_cap), model.spec.min_size)
    canonical = list(model.resolve_weights(dict.fromkeys(terms, 1.0)))  # class:NAME -> logits[i], aliases
    activations = 0
    if canonical:
        per_pixel = activation_bytes_per_pixel(model.name, model.deepest_layer(canonical)) * BACKWARD_FACTOR
        if resolve_precision(settings.precision, device) != "fp32":
            per_pixel *= REDUCED_PRECISION_SHARE
        activations = int(per_pixel * batch * min(height, side) * min(width, side))
    images = IMAGE_COPIES * batch * 3 * height * width * 4
    return MemoryEstimate(weights=model_bytes(model), activations=activations, images=images, tile_size=side)


OPTIMISER_COPIES = 4
"""A trained weight is held four times: the weight, its gradient and Adam's two moments."""


def estimate_training_memory(architecture: str, batch_size: int, image_size: int) -> int:
    """Device bytes to fine-tune `architecture` on batches of `batch_size` crops of `image_size` px.

    Counted as if every weight trained and every activation were kept (an upper
    bound: a frozen backbone keeps less); the parameters are counted on the meta
    device, so nothing is built or loaded.
    """
    spec = get_spec(architecture)
    with torch.device("meta"):
        net = spec.build(1000)
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    deepest = layer_catalogue(architecture)[-1].name
    per_pixel = activation_bytes_per_pixel(architecture, deepest) * BACKWARD_FACTOR
    return int(OPTIMISER_COPIES * weights + per_pixel * batch_size * image_size * image_size)
