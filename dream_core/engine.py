"""The DeepDream loop: octave pyramid, gradient-ascent steps, detail re-injection.

This follows Keras' DeepDream example (F. Chollet) step for step:

* octave shapes are ``int(side / octave_scale**i)`` for ``i < octaves``, smallest first;
* each octave runs `iterations` ascent steps on the image resized to its shape; an
  octave ends early as soon as its loss exceeds `max_loss` (checked before the step);
* after each octave the detail that shrinking lost is added back:
  ``img += resize(original, s) - resize(resize(original, s_prev), s)``.

A step differentiates the weighted layer loss with respect to the image, divides the
gradient by its mean absolute value (or its standard deviation) and moves the image
by `step` along it. `step` is measured on Keras' [-1, 1] pixel scale, so the Keras
numbers carry over unchanged; images here live in 0..1, so the image moves by
``step / 2`` times the normalised gradient. A seeded random roll (`jitter`) shifts
the image before each gradient, as in Google's notebook, so that no fixed pixel grid
builds up.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import tiling
from .devices import compute_dtype, cudnn_benchmark, release_cached_memory
from .errors import DreamCancelled, DreamError
from .imageops import LUMA, blur, gaussian_kernel, prepare_mask, resize, transfer_colors
from .memory import plan_tile_side, step_bytes_per_pixel
from .models import FeatureModel
from .objectives import Term, dream_objective, gradient_scale, guide_features, weighted_loss
from .options import DreamSettings

log = logging.getLogger(__name__)

GUIDE_MAX_SIDE = 512
# Keras steps on images scaled to [-1, 1]; ours are in 0..1, half that range.
STEP_SCALE = 0.5

ProgressCallback = Callable[[int, int, torch.Tensor], None]
StopCallback = Callable[[], bool]


@dataclass
class DreamResult:
    """The dreamed images `[B, 3, H, W]` in 0..1 and the image after each octave."""

    images: torch.Tensor
    octave_images: list[torch.Tensor] = field(default_factory=list)
    steps_done: int = 0


def octave_shapes(
    height: int, width: int, octaves: int, octave_scale: float, min_size: int = 1
) -> list[tuple[int, int]]:
    """The octave sizes, smallest first, as Keras computes them.

    Octaves whose shorter side would fall below `min_size` are left out (the
    network cannot take them); the image's own size is always kept.
    """
    shapes = []
    for i in range(octaves - 1, -1, -1):
        shape = (int(height / octave_scale**i), int(width / octave_scale**i))
        if i == 0 or min(shape) >= min_size:
            shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class DreamPlan:
    """What one dream of an image will do, worked out once, here: progress bars, the nodes, sweeps,
    zooms and videos read it instead of deriving octaves and steps themselves."""

    size: tuple[int, int]
    """(height, width) dreamed at: the image's own, or enlarged to the least the network takes."""
    shapes: tuple[tuple[int, int], ...]
    """The octaves' sizes, smallest first."""
    iterations: int
    skipped: int
    """Octaves left out because they would be smaller than the network takes."""

    @property
    def steps(self) -> int:
        """Ascent steps of the dream, at most (an octave past max_loss ends early)."""
        return len(self.shapes) * self.iterations


def plan(model: FeatureModel, height: int, width: int, settings: DreamSettings) -> DreamPlan:
    """The plan of a dream of a `height` x `width` image with `settings` on `model`."""
    size = (height, width)
    if min(height, width) < model.spec.min_size:
        scale = model.spec.min_size / min(height, width)
        size = (math.ceil(height * scale), math.ceil(width * scale))
    shapes = tuple(octave_shapes(*size, settings.octaves, settings.octave_scale, model.spec.min_size))
    return DreamPlan(size, shapes, settings.iterations, settings.octaves - len(shapes))


def objective(
    model: FeatureModel, images: torch.Tensor, layer_weights: Mapping[str, float], loss: str = "l2"
) -> torch.Tensor:
    """The dream objective of each image `[B]` (no gradient)."""
    weights = model.resolve_weights(layer_weights)
    with torch.inference_mode(False), torch.no_grad(), model.tap(weights) as tap:
        model.make_autograd_safe()
        return weighted_loss(tap(images.to(model.device)), weights, loss).cpu()


class _Ascent:
    """The state made once per dream and used by every step."""

    def __init__(
        self,
        model: FeatureModel,
        weights: dict[Term, float],
        settings: DreamSettings,
        batch: int,
        regions: list[tuple[torch.Tensor, dict[Term, float]]] | None = None,
        guide: torch.Tensor | None = None,
        should_stop: StopCallback | None = None,
    ) -> None:
        self.model = model
        self.weights = weights
        self.regions = regions or []
        layers = [*weights, *(term for _, region_weights in self.regions for term in region_weights)]
        self.tap = model.tap(dict.fromkeys(term.layer for term in layers))
        self.settings = settings
        self.guide = self._guide_features(guide) if guide is not None else None
        self.region_masks: list[torch.Tensor] = []  # the regions' masks at the current octave's size
        self.should_stop = should_stop
        self.active: torch.Tensor | None = None  # per image, with max_loss: 1 until its loss passed it
        self._climbing = _HostFlag(model.device)
        self.blur = gaussian_kernel(settings.grad_blur, model.device) if settings.grad_blur > 0 else None
        # Python's generator, not torch's: drawing a shift must not build or read a tensor (a
        # device sync on a GPU), and the same seed gives the same shifts on every device.
        self.rng = random.Random(settings.seed)
        self.luma = LUMA.to(model.device)
        device = model.device
        # fp16 has too little range below 1 for the gradient of a mean over a big activation
        # (49% of a Lite0 layer's gradient below fp16's normal range at 512 px): the climbed objective is scaled
        # up, by one factor per step, which the gradient's normalisation then divides out.
        self.scale_loss = model.compute_dtype == torch.float16
        self._all_terms = {**weights, **{t: w for _, region_weights in self.regions for t, w in region_weights.items()}}
        self._step_scale: float | None = None
        if settings.tile_size > 0:
            self.tile_size = max(settings.tile_size, model.spec.min_size)
        else:
            per_pixel = step_bytes_per_pixel(model.name, model.deepest_layer(layers), model.compute_dtype,
                                             model.learning_phase)  # fmt: skip
            self.tile_size = plan_tile_side(per_pixel, batch, device, model.spec.min_size)
        self._warned_oom = False

    def _randint(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def _guide_features(self, guide: torch.Tensor) -> dict[str, torch.Tensor]:
        # Computed once, with the guide no larger than 512 px: the match is per
        # feature vector, so the guide's size only sets how many vectors there are.
        guide = guide.to(self.model.device, torch.float32)
        scale = min(1.0, GUIDE_MAX_SIDE / max(guide.shape[-2:]))
        if scale < 1.0:
            guide = F.interpolate(guide, scale_factor=scale, mode="area")
        with torch.no_grad():
            return guide_features(self.tap(guide[:1]))

    def _tile_loss(self, tile: torch.Tensor, whole: bool, region_tiles=()) -> tuple[torch.Tensor, torch.Tensor]:
        tile = tile.detach().requires_grad_(True)
        settings = self.settings
        features = self.tap(tile)  # in the model's compute dtype (see FeatureModel.computing_in)
        value, climbed = dream_objective(
            features, tile, self.weights, settings.loss, keras_border=whole,
            regions=[(mask, weights) for mask, (_, weights) in zip(region_tiles, self.regions, strict=True)],
            guide=self.guide, guide_mix=settings.guide_mix, tv_weight=settings.tv_weight,
        )  # fmt: skip
        climbed = climbed.sum()
        if self.scale_loss:
            if self._step_scale is None:  # the step's first tile sets it, so every tile's gradient matches
                self._step_scale = gradient_scale(features, self._all_terms)
            climbed = climbed * self._step_scale
        (grad,) = torch.autograd.grad(climbed, tile)
        return value, grad

    def gradient(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss per image, normalised gradient) at `image`, tile by tile if it is large."""
        j = self.settings.jitter
        dy, dx = (self._randint(-j, j), self._randint(-j, j)) if j else (0, 0)
        height, width = image.shape[-2:]
        while True:
            tiles = tiling.tile_grid(height, width, self.tile_size)
            shift_y, shift_x = dy, dx
            if len(tiles) > 1:
                # A fresh grid offset every step, so tile borders never stay put.
                shift_y += self._randint(0, tiles[0][1] - 1)
                shift_x += self._randint(0, tiles[0][3] - 1)
            try:
                return self._tiled_gradient(image, tiles, shift_y, shift_x)
            except Exception as error:  # only out-of-memory is handled here
                if not tiling.is_out_of_memory(error) or self.tile_size <= 2 * self.model.spec.min_size:
                    raise
            # Outside the except block: the failed step's tensors, which its traceback held,
            # are gone now, so the cache can hand their memory back before the retry.
            self.tile_size = max(self.tile_size // 2 // 32 * 32, self.model.spec.min_size)
            if not self._warned_oom:
                log.warning("Out of memory: retrying with %d px tiles.", self.tile_size)
                self._warned_oom = True
            release_cached_memory(self.model.device)

    def _tiled_gradient(
        self, image: torch.Tensor, tiles: list[tiling.Tile], shift_y: int, shift_x: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The network runs in its compute dtype; the gradient arrives in the image's float32.
        self._step_scale = None
        loss, grad = self._tiles(image, tiles, shift_y, shift_x)
        if self.blur is not None:
            grad = blur(grad, self.blur)
        if self.settings.normalize == "mean_abs":
            # vector_norm reduces without a full-size temporary (which matters at 8K).
            scale = torch.linalg.vector_norm(grad, ord=1, dim=(1, 2, 3)) / grad[0].numel()
            grad.div_(scale.clamp_min(1e-7).view(-1, 1, 1, 1))
        else:
            grad.div_(grad.std(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return loss, grad

    def _tiles(
        self, image: torch.Tensor, tiles: list[tiling.Tile], shift_y: int, shift_x: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, raw gradient) of the rolled view, tile by tile."""
        height, width = image.shape[-2:]
        if len(tiles) == 1 and not (shift_y or shift_x):
            return self._tile_loss(image, True, self.region_masks)
        grad = torch.zeros_like(image)
        loss = torch.zeros(image.shape[0], device=image.device)
        for top, bottom, left, right in tiles:
            if self.should_stop is not None and self.should_stop():  # a big step takes long: stop inside it
                raise DreamCancelled("The dream was cancelled.")
            rows = tiling.wrapped_ranges(top, bottom, shift_y, height)
            cols = tiling.wrapped_ranges(left, right, shift_x, width)
            region_tiles = [tiling.gather(mask, rows, cols) for mask in self.region_masks]
            tile_loss, tile_grad = self._tile_loss(tiling.gather(image, rows, cols), False, region_tiles)
            tiling.scatter(grad, tile_grad, rows, cols)
            # Each tile's loss is a mean over the tile: weigh it by the tile's area.
            loss += tile_loss * ((bottom - top) * (right - left) / (height * width))
        return loss, grad

    def start_octave(self, shape: tuple[int, int]) -> None:
        """Ready the ascent for an octave of `shape`: the regions' masks at that size, every image climbing."""
        self.region_masks = [resize(region_mask, shape) for region_mask, _ in self.regions]
        self.active = None
        self._climbing.reset()

    def within_max_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """`[B, 1, 1, 1]`: 1 for the images whose loss has stayed within max_loss this octave, else 0.

        Keras ends an octave once its loss passes max_loss; per image here (so a batch gives
        what each image would alone), and an image that passed it stays stopped. Whether
        any image still climbs is copied to the host without waiting (`octave_over`).
        """
        within = (loss <= self.settings.max_loss).view(-1, 1, 1, 1).to(loss.dtype)
        self.active = within if self.active is None else self.active * within
        self._climbing.record(self.active.amax() > 0)
        return self.active

    def octave_over(self) -> bool:
        """True once every image of the batch passed max_loss (on a GPU known a step late: never waited for)."""
        return self._climbing.is_false()

    def close(self) -> None:
        self.tap.close()


class _HostFlag:
    """A boolean the device computes and the host reads when it has arrived, never waiting for it.

    On a GPU the value is copied into pinned memory without blocking, and read only once
    its copy is done (an event query does not wait); until then it reads as its last
    value. On the CPU the copy is immediate. Reading host memory through numpy is no
    device operation at all.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host = torch.ones((), dtype=torch.bool, pin_memory=self.cuda)
        self.event = torch.cuda.Event() if self.cuda else None
        self.last = True

    def reset(self) -> None:
        self.host.fill_(True)
        self.last = True

    def record(self, value: torch.Tensor) -> None:
        self.host.copy_(value, non_blocking=self.cuda)
        if self.event is not None:
            self.event.record()

    def is_false(self) -> bool:
        if self.event is None or self.event.query():
            self.last = bool(self.host.numpy())
        return not self.last


def dream(
    images: torch.Tensor,
    model: FeatureModel,
    layer_weights: Mapping[str, float],
    settings: DreamSettings | None = None,
    *,
    mask: torch.Tensor | None = None,
    guide: torch.Tensor | None = None,
    regions: Sequence[tuple[torch.Tensor, Mapping[str, float]]] = (),
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> DreamResult:
    """Dream a batch of images `[B, 3, H, W]` (or one `[3, H, W]`) in 0..1.

    Every image of the batch is dreamed as it would be alone (losses, gradient
    normalisation and `max_loss` are per image), up to float rounding: batched
    convolutions round differently, and later steps amplify that, so the same seed
    gives the same image for the same batch on the same machine. Runs on the model's
    device; results come back on the input's device.

    `layer_weights` terms: layers, channels of layers and classes (see
    `FeatureModel.resolve_weights`). `mask` (`[B or 1, H, W]` or `[H, W]`, 0..1, any
    size) scales every step per pixel: 0 leaves a pixel as it was, 1 dreams it fully.
    `guide` (an image `[1, 3, h, w]`) steers the plain layers toward its features
    (`settings.guide_mix`). `regions`: (mask, layer weights) pairs, each region's
    terms counted only where its mask is, all dreamed at once.
    `on_progress(step, total, current)` is called after every step; `should_stop()`
    before every step, and a true answer raises `DreamCancelled`.
    """
    settings = (settings or DreamSettings()).validate()
    images = _sanitised(images)
    weights, region_terms = _resolved_objective(model, layer_weights, regions)
    height, width = images.shape[-2:]
    the_plan = plan(model, height, width, settings)
    if the_plan.size != (height, width):
        return _dream_enlarged(images, the_plan.size, model, layer_weights, settings, mask, guide, regions,
                               on_progress, should_stop)  # fmt: skip
    if the_plan.skipped:
        log.warning(
            "%d of %d octaves would be smaller than %d px, the least %s accepts; they were skipped.",
            the_plan.skipped, settings.octaves, model.spec.min_size, model.name,
        )  # fmt: skip
    shapes = list(the_plan.shapes)
    iterations = settings.iterations if weights or region_terms else 0
    # ComfyUI calls nodes under inference mode; the ascent needs autograd and
    # tensors that were created outside it.
    dtype = compute_dtype(settings.precision, model.device)
    with torch.inference_mode(False), torch.enable_grad(), cudnn_benchmark(model.device):
        model.make_autograd_safe()  # whoever last moved it may have done so under inference mode
        # No copy when the images are already float32 on the device: `original` is
        # only read, and the dreamed image is a copy made below.
        # Contiguous, so that a permuted view (ComfyUI's [B, H, W, C]) dreams exactly as
        # a plain tensor would: the memory layout picks the convolution kernels.
        original = images.detach().to(model.device, torch.float32).contiguous()
        full_mask = prepare_mask(mask, original) if mask is not None else None
        full_regions = [(prepare_mask(region_mask, original), terms) for region_mask, terms in region_terms]
        guide_image = _guide_tensor(guide) if guide is not None else None
        with model.computing_in(dtype):
            ascent = (
                _Ascent(model, weights, settings, original.shape[0], full_regions, guide_image, should_stop)
                if iterations
                else None
            )
            try:
                octave_images, done = _octaves(original, shapes, iterations, ascent, settings, full_mask,
                                               on_progress, should_stop, images.device)  # fmt: skip
            finally:
                if ascent is not None:
                    ascent.close()
    return DreamResult(images=octave_images[-1], octave_images=octave_images, steps_done=done)


def _sanitised(images: torch.Tensor) -> torch.Tensor:
    """The input as a checked float batch `[B, 3, H, W]` in 0..1: NaN/inf replaced (and reported)."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0 or 0 in images.shape[-2:]:
        raise DreamError(f"Expected RGB images [B, 3, H, W] with B, H, W > 0; got shape {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise DreamError(f"Expected float images in 0..1; got {images.dtype}. Convert with image.float() / 255.")
    # Two reductions instead of full-size masks or copies: at 8K each copy is 0.8 GB.
    low, high = torch.aminmax(images)
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        bad = int((~torch.isfinite(images)).sum())
        log.warning("The image has %d NaN or infinite values; they were replaced (NaN -> 0, inf -> 1).", bad)
        return torch.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    if low < 0 or high > 1:
        return images.clamp(0.0, 1.0)
    return images


def _resolved_objective(model: FeatureModel, layer_weights, regions) -> tuple[dict, list]:
    """The layer weights and the regions' weights checked against the model; empty regions dropped."""
    if not layer_weights and not regions:
        raise DreamError("No layers to dream with: give at least one layer and its weight.")
    weights = model.resolve_weights(layer_weights)
    region_terms = [(region_mask, model.resolve_weights(region_weights)) for region_mask, region_weights in regions]
    region_terms = [(region_mask, terms) for region_mask, terms in region_terms if terms]
    if not weights and not region_terms:
        log.warning("All layer weights are zero: the image is returned unchanged.")
    return weights, region_terms


def _octaves(
    original: torch.Tensor,
    shapes: list[tuple[int, int]],
    iterations: int,
    ascent: _Ascent | None,
    settings: DreamSettings,
    full_mask: torch.Tensor | None,
    on_progress: ProgressCallback | None,
    should_stop: StopCallback | None,
    out_device: torch.device,
) -> tuple[list[torch.Tensor], int]:
    """The octave loop: ascend at each size, smallest first, re-injecting the lost detail between sizes.

    Returns the image after each octave (on `out_device`) and the steps done.
    """
    total = len(shapes) * iterations
    shrunk_original = resize(original, shapes[0])
    image = shrunk_original.clone()  # stepped in place from here on
    octave_images: list[torch.Tensor] = []
    done = 0
    for index, shape in enumerate(shapes):
        image = resize(image, shape)
        octave_mask = resize(full_mask, shape) if full_mask is not None else None
        if ascent is not None:
            ascent.start_octave(shape)
        for i in range(iterations):
            if should_stop is not None and should_stop():
                raise DreamCancelled("The dream was cancelled.")
            _step(image, ascent, settings, octave_mask)
            octave_over = settings.max_loss > 0 and ascent.octave_over()  # every image past max_loss
            done += iterations - i if octave_over else 1
            if on_progress is not None:
                on_progress(done, total, image)
            if octave_over:
                break
        if ascent is not None:
            _check_finite(image)
        if settings.reinject_detail and tuple(shrunk_original.shape[-2:]) != tuple(shape):
            same_size_original = resize(original, shape)
            image.add_(same_size_original).sub_(resize(shrunk_original, shape)).clamp_(0.0, 1.0)
            shrunk_original = same_size_original
        last = index == len(shapes) - 1
        if settings.keep_colors == "transfer":
            octave_image = transfer_colors(image, resize(original, shape))
        else:  # earlier octaves are copied: the next octave may step the same tensor
            octave_image = image.detach() if last else image.detach().clone()
        octave_images.append(octave_image.to(out_device))
    return octave_images, done


def _check_finite(image: torch.Tensor) -> None:
    """Stop a dream whose picture became NaN or infinite (once per octave: it is a wait for the device)."""
    if not bool(torch.isfinite(image).all()):
        raise DreamError(
            "The dream's gradient became NaN or infinite, which would write a black picture: a layer weight far "
            "too large, or a checkpoint with broken weights. Lower the weights, or load another checkpoint."
        )


def _step(image: torch.Tensor, ascent: _Ascent, settings: DreamSettings, mask: torch.Tensor | None) -> None:
    """One ascent step on `image`, in place; images past max_loss (checked before stepping, as Keras) stay."""
    loss, grad = ascent.gradient(image)
    # In place: at 8K every full-size temporary costs most of a gigabyte.
    grad.mul_(settings.step * STEP_SCALE)
    if settings.max_loss > 0:
        grad.mul_(ascent.within_max_loss(loss))
    if mask is not None:
        grad.mul_(mask)
    if settings.keep_colors == "luminance":
        # The same change on R, G and B moves the brightness only.
        grad.copy_((grad * ascent.luma).sum(dim=1, keepdim=True).expand_as(grad))
    image.add_(grad).clamp_(0.0, 1.0)


MAX_ENLARGED_SIDE = 16384


def _dream_enlarged(images, shape, model, layer_weights, settings, mask, guide, regions, on_progress, should_stop):
    """Dream an image smaller than the network accepts at `shape`, the least size it takes, then shrink back."""
    height, width = images.shape[-2:]
    if max(shape) > MAX_ENLARGED_SIDE:
        raise DreamError(
            f"The image is {width}x{height} px: too thin to dream ({model.name} needs {model.spec.min_size} px on "
            "its shorter side, and enlarging it that far would be too big). Crop or pad it first."
        )
    log.warning(
        "The image is %dx%d px, smaller than the %d px %s needs: dreamed at %dx%d and scaled back down.",
        width, height, model.spec.min_size, model.name, shape[1], shape[0],
    )  # fmt: skip
    enlarged = F.interpolate(images.float(), size=shape, mode="bilinear", align_corners=False)
    result = dream(enlarged, model, layer_weights, settings, mask=mask, guide=guide, regions=regions,
                   on_progress=on_progress, should_stop=should_stop)  # fmt: skip
    back = (height, width)

    def shrink(image: torch.Tensor) -> torch.Tensor:
        return F.interpolate(image, size=back, mode="area").clamp(0.0, 1.0)

    return DreamResult(shrink(result.images), [shrink(o) for o in result.octave_images], result.steps_done)


def _guide_tensor(guide: torch.Tensor) -> torch.Tensor:
    if guide.ndim == 3:
        guide = guide.unsqueeze(0)
    if guide.ndim != 4 or guide.shape[1] != 3 or 0 in guide.shape:
        raise DreamError(f"The guide must be an RGB image [1, 3, H, W]; got shape {tuple(guide.shape)}.")
    return guide.detach()
