"""How much device memory a dream needs, measured, so a host can make room before it starts.

A host that shares the device with other models (ComfyUI) asks its memory manager for
`estimate_dream_memory(...).total` bytes; the manager then offloads other models first
instead of the dream running out of memory. The figures are measured, not guessed:
one ascent step of the network is run on the meta device (no weights, no memory,
milliseconds) while `LiveTensorBytes` follows every tensor it makes and frees, and the
peak per input pixel is what a step of that network holds, at any size (activations
grow with the area). The same figure sizes the engine's tiles (`plan_tile_side`), so
the estimate and the dream agree.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .devices import GPU_TYPES, compute_dtype, free_memory, total_memory
from .errors import DreamError
from .feature_model import FeatureModel
from .objectives import Term, parse_term, weighted_loss
from .options import DreamSettings
from .zoo import activation_bytes_per_pixel, get_spec, layer_catalogue

IMAGE_COPIES = 5
"""Full-size float32 images a dream of several octaves holds at its peak besides a step's own tensors: the
input on the device, the original, the dream, its gradient and the octaves' shrunk
originals and results (measured with `LiveTensorBytes`: 4.0 with one octave to 5.3 with
three octaves and a mask, the input counted)."""
ONE_OCTAVE_IMAGE_COPIES = 4
"""The same for a dream of one octave (no shrunk originals): with 5, small networks' whole-dream estimates were
1.33-1.36x their tracked peak (AlexNet, RegNetX-400MF in bf16, 1024 px); with 4, 1.11-1.26x (bench/memory_check.py)."""

STEP_MARGIN = 1.1
"""Added to a step's measured bytes: padding costs a little more per pixel at small sizes (1.5% for
Lite0 at 192 px against 224), and a GPU's allocator rounds blocks up and lends cuDNN workspaces."""

CPU_TILE_CAP = 1024
"""Largest automatic tile on a CPU: larger tiles make steps no faster (bench/), only bigger."""
GPU_TILE_CAP = 4096
GPU_TILE_SHARE = 0.25
"""Share of a GPU's memory a tile's step may hold: 2048 px tiles run as fast as larger ones,
and an 8K dream must not ask the host to empty the card."""
CPU_FREE_SHARE = 0.5
GPU_FREE_SHARE = 0.8
"""Share of the memory free at dream time a tile may use (a GPU host has just made room)."""


class LiveTensorBytes(TorchDispatchMode):
    """Follows the bytes of every tensor made on `device` while it is active, until each is freed: `peak`.

    Works on any device, the meta device included (where nothing is allocated, so a
    network's footprint is measured for free). Views share their storage and count once;
    tensors made before it started (weights, inputs) are not counted.
    """

    def __init__(self, device: torch.device | str) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.now = 0
        self.peak = 0
        self._live: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.now -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(result.alias_info is not None for result in func._schema.returns):
            return out  # a view or an in-place result: no new memory
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device == self.device:
                storage = tensor.untyped_storage()
                key = id(storage)
                if key not in self._live:
                    self._live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, key)
        return out


@functools.cache
def step_bytes_per_pixel(
    model_name: str, deepest_layer: str, dtype: torch.dtype = torch.float32, learning_phase: str = "inference"
) -> float:
    """Bytes one input pixel costs at the peak of one ascent step through `deepest_layer`.

    Measured by running the step (tap, loss, gradient to the input) on the meta device
    with the network as a dream runs it (BatchNorm folded, or on the batch's statistics
    in the 'training' learning phase; computing in `dtype`), at the network's probe size,
    plus `STEP_MARGIN`.
    """
    spec = get_spec(model_name)
    with torch.inference_mode(False):  # hosts call this under inference mode: the meta net must take a backward
        return _measure_step(spec, deepest_layer, dtype, learning_phase)


def _measure_step(spec, deepest_layer: str, dtype: torch.dtype, learning_phase: str, backward: bool = True) -> float:
    with torch.device("meta"):
        net = spec.build(1000).eval().requires_grad_(False)
    if learning_phase == "training":
        for norm in (m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
            norm.train()
            norm.track_running_stats = False
    else:
        spec.fold(net)
    model = FeatureModel(spec, net, "meta")
    size = spec.probe_size
    term = Term(deepest_layer)
    with (
        _fused_attention_on_meta(),
        torch.set_grad_enabled(backward),
        model.computing_in(dtype),
        model.tap([term]) as tap,
    ):
        tracker = LiveTensorBytes("meta")
        with tracker:
            tile = torch.zeros(1, 3, size, size, device="meta", requires_grad=backward)
            loss = weighted_loss(tap(tile), {term: 1.0}).sum()
            if backward:
                torch.autograd.grad(loss, tile)
    return STEP_MARGIN * tracker.peak / (size * size)


_MEASURING = threading.Lock()


@contextlib.contextmanager
def _fused_attention_on_meta():
    """Attention on the meta device as a real device computes it, while a step is measured.

    `scaled_dot_product_attention` runs a fused kernel on CPUs and GPUs (flash or memory-efficient: it keeps a
    row's log-sum-exp for the backward pass, not the tokens x tokens weights), but on the meta device it falls back
    to the plain formula, which keeps the whole weights matrix: ViT-B/16's step measured 1.46x its real peak at
    224 px and its whole dream 1.50x at 1024 px. Meanwhile torch's `scaled_dot_product_attention` (which
    `multi_head_attention_forward` calls by that name) runs the CPU's fused kernel for meta tensors, whose meta
    form allocates what the real one does; any other tensor goes to torch's own function, unchanged.
    """
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if query.device.type != "meta" or enable_gqa:
            return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        fused = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        return fused(query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]

    with _MEASURING:
        functional.scaled_dot_product_attention = attention
        try:
            yield
        finally:
            functional.scaled_dot_product_attention = original


@functools.cache
def forward_bytes_per_pixel(model_name: str, deepest_layer: str) -> float:
    """Bytes one input pixel costs at the peak of a forward pass without gradients (float32, BatchNorm folded):
    what reading a layer's activations (`channels.channel_means`) holds."""
    with torch.inference_mode(False):
        return _measure_step(get_spec(model_name), deepest_layer, torch.float32, "inference", backward=False)


def tile_budget(device: torch.device, planning: bool = False) -> float:
    """Bytes a tile's step may hold on `device`.

    GPU: a quarter of the card, and at dream time no more than 80% of what is free
    (`planning`: before the host made room, the card's share alone). CPU: half of what
    is free.
    """
    if device.type in GPU_TYPES:
        share = GPU_TILE_SHARE * total_memory(device)
        return share if planning else min(share, GPU_FREE_SHARE * free_memory(device))
    return CPU_FREE_SHARE * free_memory(device)


def plan_tile_side(
    per_pixel: float,
    batch: int,
    device: torch.device,
    minimum: int,
    tile_cap: int | None = None,
    planning: bool = False,
) -> int:
    """The largest tile side (a multiple of 32, at least `minimum`) whose step fits `tile_budget`.

    Capped where larger tiles stop paying off (`tile_cap`, else 1024 px on a CPU and
    4096 px on a GPU). The engine and the memory estimate both size tiles here.
    """
    side = int(math.sqrt(tile_budget(device, planning) / max(per_pixel * batch, 1.0)))
    cap = tile_cap or (GPU_TILE_CAP if device.type in GPU_TYPES else CPU_TILE_CAP)
    return max(min(side, cap) // 32 * 32, minimum)


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


def estimate_dream_memory(
    model: FeatureModel,
    terms: Iterable[str],
    settings: DreamSettings,
    image_shape: tuple[int, ...],
    device: torch.device,
    tile_cap: int | None = None,
) -> MemoryEstimate:
    """Device bytes to dream images of `image_shape` (`[B, 3, H, W]`) with these terms.

    `terms` are layer-weight terms (`layer`, `layer[3,17]`, `class:NAME`), as text or
    resolved by the dream's `Objective`; a term on an unknown layer raises. Activations are a step's measured bytes
    per pixel (`step_bytes_per_pixel`, in the dream's precision) for the largest tile
    the dream will use at the full size: `tile_size`, else what `plan_tile_side`
    allows on this device. Reduced precisions add the weights' cast copy.
    """
    batch, height, width = int(image_shape[0]), int(image_shape[-2]), int(image_shape[-1])
    dtype = compute_dtype(settings.precision, device)
    canonical = [parse_term(term) for term in terms]  # only their layers matter here (the objective resolved them)
    weights = model_bytes(model)
    if dtype != torch.float32:
        weights += weights * torch.finfo(dtype).bits // 32  # the copy cast once per dream
    activations, side = 0, settings.tile_size or tile_cap or 0
    if canonical:
        per_pixel = step_bytes_per_pixel(model.name, model.deepest_layer(canonical), dtype, model.learning_phase)
        if not settings.tile_size:
            side = plan_tile_side(per_pixel, batch, device, model.spec.min_size, tile_cap, planning=True)
        side = max(side, model.spec.min_size)
        activations = int(per_pixel * batch * min(height, side) * min(width, side))
    copies = IMAGE_COPIES if settings.octaves > 1 else ONE_OCTAVE_IMAGE_COPIES
    images = copies * batch * 3 * height * width * 4
    return MemoryEstimate(weights=weights, activations=activations, images=images, tile_size=side)


OPTIMISER_COPIES = 4
"""A trained weight is held four times: the weight, its gradient and Adam's two moments."""
TRAINING_BACKWARD_FACTOR = 2.0
"""Training keeps every activation for the weights' gradients, and their gradients too."""


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
    per_pixel = activation_bytes_per_pixel(architecture, deepest) * TRAINING_BACKWARD_FACTOR
    return int(OPTIMISER_COPIES * weights + per_pixel * batch_size * image_size * image_size)


def estimate_objective_memory(
    model: FeatureModel,
    objective,
    settings: DreamSettings,
    image_shape: tuple[int, ...],
    device: torch.device | None = None,
    tile_cap: int | None = None,
) -> MemoryEstimate:
    """`estimate_dream_memory` for a resolved `Objective`: its own terms, and every other network it runs (their
    weights, and their activations, held at once with the dream network's in each step)."""
    device = torch.device(device or model.device)
    terms = objective.terms()
    estimate = estimate_dream_memory(model, terms, settings, image_shape, device, tile_cap)
    weights, activations, counted = estimate.weights, estimate.activations, {id(model)}
    for network, network_terms in objective.networks():  # a network named twice: its weights once
        other = estimate_dream_memory(
            network, network_terms, settings, image_shape, device, tile_cap or estimate.tile_size
        )
        weights += other.weights if id(network) not in counted else 0
        counted.add(id(network))
        activations += other.activations
    return MemoryEstimate(weights, activations, estimate.images, estimate.tile_size)


def channel_means_memory(
    model: FeatureModel, layer: str, image_shape: tuple[int, ...], tile_side: int | None = None
) -> MemoryEstimate:
    """Device bytes to read every channel's mean of `layer` on images of `image_shape`, tile by tile."""
    batch, height, width = int(image_shape[0]), int(image_shape[-2]), int(image_shape[-1])
    side = tile_side or MEANS_TILE
    per_pixel = forward_bytes_per_pixel(model.name, model.resolve_layer(layer).name)
    activations = int(per_pixel * batch * min(height, side) * min(width, side))
    images = batch * 3 * min(height, side) * min(width, side) * 4  # only a tile at a time goes to the device
    return MemoryEstimate(model_bytes(model), activations, images, side)


MEANS_TILE = 1024
"""Tile side of `channels.channel_means`: a 4096 px photo's means are read a 1024 px tile at a time."""


def check_memory(estimate: MemoryEstimate, device: torch.device | str, what: str, fix: str) -> None:
    """Refuse, in one line and before any work, a job whose estimate exceeds what `device` has (a GPU: the card,
    whose other models a host can offload; a CPU: the memory available now)."""
    device = torch.device(device)
    have = total_memory(device)
    if estimate.total > have:
        gb = 1 << 30
        raise DreamError(
            f"{what} needs about {estimate.total / gb:.1f} GB on {device} ({estimate.describe()}); "
            f"{'it has' if device.type in GPU_TYPES else 'there is'} {have / gb:.1f} GB"
            f"{'' if device.type in GPU_TYPES else ' available'}. {fix}"
        )
