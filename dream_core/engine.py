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
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F

from . import looks, tiling
from .devices import compute_dtype, cudnn_benchmark, release_cached_memory
from .errors import DreamCancelled, DreamError
from .feature_model import FeatureModel
from .imageops import LUMA, blur, gaussian_kernel, make_periodic, prepare_mask, resize, transfer_colors
from .memory import check_memory, estimate_objective_memory, plan_tile_side, step_bytes_per_pixel
from .objectives import Objective, ReadyContext, gradient_scale, weighted_loss
from .options import DreamSettings
from .relus import redirected_relus

log = logging.getLogger(__name__)

# Keras steps on images scaled to [-1, 1]; ours are in 0..1, half that range.
STEP_SCALE = 0.5

ProgressCallback = Callable[[int, int, torch.Tensor], None]
StopCallback = Callable[[], bool]


def offset_progress(on_progress: ProgressCallback, offset: int, total: int) -> ProgressCallback:
    """One dream's progress reported as part of a longer job (a sweep, a zoom, a clip): its steps counted
    from `offset`, out of the job's `total`."""

    def report(step: int, _total: int, image: torch.Tensor) -> None:
        on_progress(offset + step, total, image)

    return report


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


def objective_value(
    model: FeatureModel, images: torch.Tensor, layer_weights: Mapping[str, float], loss: str = "l2"
) -> torch.Tensor:
    """How strongly each image `[B]` makes the layer weights fire: the dream's objective, without gradient."""
    weights = model.resolve_weights(layer_weights)
    with torch.inference_mode(False), torch.no_grad(), model.tap(weights) as tap:
        model.make_autograd_safe()
        return weighted_loss(tap(images.to(model.device)), weights, loss).cpu()


class _Ascent:
    """Everything a dream's steps share, made once per dream from what it is given and never written from outside:
    the tap, the objective readied on the device, the tile side, the jitter's generator, the stop check; per
    octave (`start_octave`), the objective at that size and the max_loss state."""

    def __init__(
        self,
        model: FeatureModel,
        objective: Objective,
        settings: DreamSettings,
        original: torch.Tensor,
        should_stop: StopCallback | None = None,
        grow: bool = False,
    ) -> None:
        self.model = model
        self.settings = settings
        self.should_stop = should_stop
        self.grow = grow
        # Keras' floor under the gradient's size keeps a dream from amplifying a vanishing gradient; a picture
        # grown from noise through a random network has only tiny ones (1e-10 at a GoogLeNet's inception4c).
        self.floor = 1e-30 if grow else 1e-7
        terms = objective.terms()
        # No tap when only other networks' parts climb.
        self.tap = model.tap(dict.fromkeys(term.layer for term in terms)) if terms else None
        context = ReadyContext(original, settings, self._features, lambda mask: prepare_mask(mask, original))
        self.objective = objective.readied(context)
        self._terms = terms
        self._octave = self.objective  # the objective at the current octave's size (see start_octave)
        self.active: torch.Tensor | None = None  # per image, with max_loss: 1 until its loss passed it
        self._climbing = _HostFlag(model.device)
        self.blur = gaussian_kernel(settings.grad_blur, model.device) if settings.grad_blur > 0 else None
        self.precondition = looks.precondition(settings.precondition)
        self._affine: tuple[float, float] | None = None  # this step's random (scale, angle), if any
        # Python's generator, not torch's: drawing a shift must not build or read a tensor (a
        # device sync on a GPU), and the same seed gives the same shifts on every device.
        self.rng = random.Random(settings.seed)
        self.luma = LUMA.to(model.device)
        # fp16 has too little range below 1 for the gradient of a mean over a big activation
        # (49% of a Lite0 layer's gradient below fp16's normal range at 512 px): the climbed objective is scaled
        # up, by one factor per step, which the gradient's normalisation then divides out.
        self.scale_loss = model.compute_dtype == torch.float16
        self._step_scale: float | None = None
        self.tile_size = self._tile_side(settings, original.shape[0], terms)
        self._warned_oom = False

    def _tile_side(self, settings: DreamSettings, batch: int, terms) -> int:
        model = self.model
        if settings.tile_size > 0:
            return max(settings.tile_size, model.spec.min_size)
        # Every network a step runs holds its activations at once: their bytes per pixel add up.
        per_pixel = sum(
            step_bytes_per_pixel(net.name, net.deepest_layer(net_terms), net.compute_dtype, net.learning_phase)
            for net, net_terms in ((model, terms), *self.objective.networks())
            if net_terms
        )
        return plan_tile_side(per_pixel, batch, model.device, model.spec.min_size)

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.tap(image) if self.tap is not None else {}

    def _randint(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def _tile_loss(self, tile: torch.Tensor, objective: Objective, whole: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tile = tile.detach().requires_grad_(True)
        seen = looks.transformed(tile, *self._affine) if self._affine is not None else tile
        features = self._features(seen)  # in the model's compute dtype (see FeatureModel.computing_in)
        value, climbed = objective(features, tile, whole=whole, seen=seen)
        climbed = climbed.sum()
        if self.scale_loss:
            if self._step_scale is None:  # the step's first tile sets it, so every tile's gradient matches
                self._step_scale = gradient_scale(features, self._terms)
            climbed = climbed * self._step_scale
        (grad,) = torch.autograd.grad(climbed, tile)
        return value, grad

    def gradient(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss per image, normalised gradient) at `image`, tile by tile if it is large."""
        j = self.settings.jitter
        height, width = image.shape[-2:]
        if self.settings.seamless:  # a tile has no edges: the view's own borders go anywhere, never stay put
            dy, dx = self._randint(0, height - 1), self._randint(0, width - 1)
        else:
            dy, dx = (self._randint(-j, j), self._randint(-j, j)) if j else (0, 0)
        self._affine = looks.random_affine(self.rng, self.settings.scale_jitter, self.settings.rotate_jitter)
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
        if self.grow:
            grad = self._unblocked(grad, image, tiles)
            grad.mul_(image * (1 - image))  # the gradient with respect to the latent picture `image` is the sigmoid of
        if self.blur is not None:
            grad = blur(grad, self.blur, periodic=self.settings.seamless)
        if self.precondition is not None:
            grad = self.precondition(grad)
        if self.settings.normalize == "mean_abs":
            # vector_norm reduces without a full-size temporary (which matters at 8K).
            scale = torch.linalg.vector_norm(grad, ord=1, dim=(1, 2, 3)) / grad[0].numel()
            grad.div_(scale.clamp_min(self.floor).view(-1, 1, 1, 1))
        else:
            grad.div_(grad.std(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return loss, grad

    def _unblocked(self, grad: torch.Tensor, image: torch.Tensor, tiles: list[tiling.Tile]) -> torch.Tensor:
        """`grad`, with each picture's all-zero gradient (its channel shut everywhere behind a ReLU) taken again
        through redirected ReLUs (`relus`): one check a step, the second gradient only when one is shut.

        The second gradient is taken on the picture as it is, not shifted, scaled or turned: a shut channel pushed
        on moved views sank on the picture itself (GoogLeNet inception4c[1] with random weights: its best input
        -1.8e-5 to -4e-5 in 225 steps; on the unmoved picture it opened within 13). Once open, a channel grows
        through the moved views as the others do."""
        shut = grad.flatten(1).abs().amax(1) == 0
        if not bool(shut.any()):
            return grad
        affine, self._affine = self._affine, None
        try:
            with redirected_relus():
                _, redirected = self._tiles(image, tiles, 0, 0)
        finally:
            self._affine = affine
        return torch.where(shut.view(-1, 1, 1, 1), redirected, grad)

    def _tiles(
        self, image: torch.Tensor, tiles: list[tiling.Tile], shift_y: int, shift_x: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, raw gradient) of the rolled view, tile by tile."""
        height, width = image.shape[-2:]
        if len(tiles) == 1 and not (shift_y or shift_x):
            return self._tile_loss(image, self._octave, whole=True)
        grad = torch.zeros_like(image)
        loss = torch.zeros(image.shape[0], device=image.device)
        for top, bottom, left, right in tiles:
            if self.should_stop is not None and self.should_stop():  # a big step takes long: stop inside it
                raise DreamCancelled("The dream was cancelled.")
            rows = tiling.wrapped_ranges(top, bottom, shift_y, height)
            cols = tiling.wrapped_ranges(left, right, shift_x, width)
            tile = tiling.gather(image, rows, cols)
            tile_loss, tile_grad = self._tile_loss(tile, self._octave.cropped(rows, cols), whole=False)
            tiling.scatter(grad, tile_grad, rows, cols)
            # Each tile's loss is a mean over the tile: weigh it by the tile's area.
            loss += tile_loss * ((bottom - top) * (right - left) / (height * width))
        return loss, grad

    def start_octave(self, shape: tuple[int, int]) -> None:
        """Ready the ascent for an octave of `shape`: the objective at that size (regions' masks), every image
        climbing."""
        self._octave = self.objective.at_size(shape)
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
        if self.tap is not None:
            self.tap.close()
        self.objective.close()


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
    objective: Objective | Mapping[str, float],
    settings: DreamSettings | None = None,
    *,
    mask: torch.Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    grow: bool = False,
) -> DreamResult:
    """Dream a batch of images `[B, 3, H, W]` (or one `[3, H, W]`) in 0..1.

    Every image of the batch is dreamed as it would be alone (losses, gradient
    normalisation and `max_loss` are per image), up to float rounding: batched
    convolutions round differently, and later steps amplify that, so the same seed
    gives the same image for the same batch on the same machine. Runs on the model's
    device; results come back on the input's device.

    `objective`: layer weights (layers, channels of layers and classes, see
    `FeatureModel.resolve_weights`), or an `Objective` (layer weights with a guide
    image, regions: see `Objective.of`). `mask` (`[B or 1, H, W]` or `[H, W]`, 0..1,
    any size) scales every step per pixel: 0 leaves a pixel as it was, 1 dreams it
    fully. `on_progress(step, total, current)` is called after every step;
    `should_stop()` before every step, and a true answer raises `DreamCancelled`.
    `grow`: grow pictures from noise (feature visualisation, as lucid): each step moves a latent picture that the
    image is the sigmoid of (no pixel ever clips; pulled a little towards grey, `LATENT_DECAY`); no floor under the
    gradient's size; a picture whose whole gradient ReLUs block takes the redirected gradient (`relus`).
    """
    settings = (settings or DreamSettings()).validate()
    images = _sanitised(images)
    objective = Objective.of(objective).resolved(model)
    the_plan = plan(model, images.shape[-2], images.shape[-1], settings)
    if the_plan.size != tuple(images.shape[-2:]):
        return _dream_enlarged(images, the_plan.size, model, objective, settings, mask, on_progress, should_stop, grow)
    check_room(model, objective, settings, (images.shape[0], 3, *the_plan.size))
    _warn(the_plan, model, objective, settings)
    # ComfyUI calls nodes under inference mode; the ascent needs autograd and
    # tensors that were created outside it.
    with torch.inference_mode(False), torch.enable_grad(), cudnn_benchmark(model.device), ExitStack() as cast:
        # No copy when the images are already float32 on the device: `original` is
        # only read, and the dreamed image is a copy made below.
        # Contiguous, so that a permuted view (ComfyUI's [B, H, W, C]) dreams exactly as
        # a plain tensor would: the memory layout picks the convolution kernels.
        original = images.detach().to(model.device, torch.float32).contiguous()
        if settings.seamless:
            original = make_periodic(original)
        full_mask = prepare_mask(mask, original) if mask is not None else None
        others = {id(network): network for network, _ in objective.networks()}  # each once
        _ready_networks((model, *others.values()), settings, cast)
        climbing = objective.climbs and settings.iterations > 0
        ascent = _Ascent(model, objective, settings, original, should_stop, grow) if climbing else None
        try:
            octave_images, done = _octaves(
                original, the_plan, ascent, settings, full_mask, on_progress, should_stop, images.device
            )
        finally:
            if ascent is not None:
                ascent.close()
    return DreamResult(images=octave_images[-1], octave_images=octave_images, steps_done=done)


def _warn(the_plan: DreamPlan, model: FeatureModel, objective: Objective, settings: DreamSettings) -> None:
    """What the user should know before a dream that does less than asked."""
    if the_plan.skipped:
        log.warning(
            "%d of %d octaves would be smaller than %d px, the least %s accepts; they were skipped.",
            the_plan.skipped,
            settings.octaves,
            model.spec.min_size,
            model.name,
        )
    if not objective.climbs:
        log.warning("All layer weights are zero: the image is returned unchanged.")


def check_room(
    model: FeatureModel,
    objective: Objective,
    settings: DreamSettings,
    shape: tuple[int, ...],
    what: str = "",
    fix: str = "Dream a smaller picture or fewer at once, or fewer networks.",
) -> None:
    """Refuse before any work a dream of `shape` (`[B, 3, H, W]`) that would not fit the device
    (`memory.check_memory`); `what` and `fix` say it in the caller's words (a caller that makes large inputs
    itself, such as channel pictures' noise, asks before making them)."""
    batch, height, width = shape[0], shape[-2], shape[-1]
    estimate = estimate_objective_memory(model, objective, settings, tuple(shape))
    check_memory(estimate, model.device, what or f"Dreaming {batch} picture(s) of {width}x{height} px", fix)


def _ready_networks(networks: Sequence[FeatureModel], settings: DreamSettings, stack: ExitStack) -> None:
    """Every network a dream runs (its own and any others of the objective) made safe for autograd and cast to
    the dream's precision until `stack` closes; they must share one device."""
    if len({str(network.device) for network in networks}) > 1:
        where = ", ".join(f"{network.name} on {network.device}" for network in networks)
        raise DreamError(
            f"The networks of one dream must be on one device; they are not ({where}). Load them with the same device."
        )
    for network in networks:
        network.make_autograd_safe()  # whoever last moved it may have done so under inference mode
        stack.enter_context(network.computing_in(compute_dtype(settings.precision, networks[0].device)))


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


def _octaves(
    original: torch.Tensor,
    the_plan: DreamPlan,
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
    shapes = the_plan.shapes
    iterations = the_plan.iterations if ascent is not None else 0
    total = len(shapes) * iterations
    sized = partial(resize, periodic=settings.seamless)  # a seamless picture wraps around at every size
    shrunk_original = sized(original, shapes[0])
    image = shrunk_original.clone()  # stepped in place from here on
    octave_images: list[torch.Tensor] = []
    done = 0
    for index, shape in enumerate(shapes):
        image = sized(image, shape)
        octave_mask = sized(full_mask, shape) if full_mask is not None else None
        if ascent is not None:
            ascent.start_octave(shape)
        latent = _latent(image) if ascent is not None and ascent.grow else None
        for i in range(iterations):
            if should_stop is not None and should_stop():
                raise DreamCancelled("The dream was cancelled.")
            assert ascent is not None  # iterations are 0 without an ascent
            _step(image, ascent, settings, octave_mask, latent)
            octave_over = settings.max_loss > 0 and ascent.octave_over()  # every image past max_loss
            done += iterations - i if octave_over else 1
            if on_progress is not None:
                on_progress(done, total, image)
            if octave_over:
                break
        if ascent is not None:
            _check_finite(image)
        if settings.reinject_detail and tuple(shrunk_original.shape[-2:]) != tuple(shape):
            same_size_original = sized(original, shape)
            image.add_(same_size_original).sub_(sized(shrunk_original, shape)).clamp_(0.0, 1.0)
            shrunk_original = same_size_original
        last = index == len(shapes) - 1
        if settings.keep_colors == "transfer":
            octave_image = transfer_colors(image, sized(original, shape))
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


LATENT_MARGIN = 1e-3
"""A grown picture's latent starts from the image kept this far inside 0..1 (a pixel at 0 has no finite latent)."""

LATENT_DECAY = 1e-3
"""Each step of a grown picture takes this share of its latent back towards 0 (grey): without it, the pixels a random
network's gradient keeps pushing the same way saturate (GoogLeNet inception4c[4-6], random weights, 384 steps: 0.71%
of values at 0 or 255; 0.14% with 1e-3; 0.01% with 2e-3, 6 points less colourful still). Lite0's activations stay
as they were, its colourfulness 8 points lower at 384 steps (at the default 512 still 12 above lucent's)."""


def _latent(image: torch.Tensor) -> torch.Tensor:
    """The latent picture whose sigmoid is `image` (made once an octave); the image is then its sigmoid."""
    latent = torch.logit(image.clamp(LATENT_MARGIN, 1 - LATENT_MARGIN))
    torch.sigmoid(latent, out=image)
    return latent


def _step(
    image: torch.Tensor,
    ascent: _Ascent,
    settings: DreamSettings,
    mask: torch.Tensor | None,
    latent: torch.Tensor | None = None,
) -> None:
    """One ascent step on `image`, in place (with `latent`, on the latent picture, and `image` becomes its
    sigmoid); images past max_loss (checked before stepping, as Keras) stay."""
    loss, grad = ascent.gradient(image)
    # In place: at 8K every full-size temporary costs most of a gigabyte.
    grad.mul_(settings.step * STEP_SCALE)
    if latent is not None:  # a pull towards grey, strongest on the pixels that are nearly black or white
        grad.sub_(latent, alpha=LATENT_DECAY)
    if settings.max_loss > 0:
        grad.mul_(ascent.within_max_loss(loss))
    if mask is not None:
        grad.mul_(mask)
    if settings.keep_colors == "luminance":
        # The same change on R, G and B moves the brightness only.
        grad.copy_((grad * ascent.luma).sum(dim=1, keepdim=True).expand_as(grad))
    if latent is None:
        image.add_(grad).clamp_(0.0, 1.0)
    else:
        torch.sigmoid(latent.add_(grad), out=image)


MAX_ENLARGED_SIDE = 16384


def _dream_enlarged(images, shape, model, objective, settings, mask, on_progress, should_stop, grow=False):
    """Dream an image smaller than the network accepts at `shape`, the least size it takes, then shrink back."""
    height, width = images.shape[-2:]
    if max(shape) > MAX_ENLARGED_SIDE:
        raise DreamError(
            f"The image is {width}x{height} px: too thin to dream ({model.name} needs {model.spec.min_size} px on "
            "its shorter side, and enlarging it that far would be too big). Crop or pad it first."
        )
    log.warning(
        "The image is %dx%d px, smaller than the %d px %s needs: dreamed at %dx%d and scaled back down.",
        width,
        height,
        model.spec.min_size,
        model.name,
        shape[1],
        shape[0],
    )
    enlarged = F.interpolate(images.float(), size=shape, mode="bilinear", align_corners=False)
    result = dream(
        enlarged, model, objective, settings, mask=mask, on_progress=on_progress, should_stop=should_stop, grow=grow
    )
    back = (height, width)

    def shrink(image: torch.Tensor) -> torch.Tensor:
        return F.interpolate(image, size=back, mode="area").clamp(0.0, 1.0)

    return DreamResult(shrink(result.images), [shrink(o) for o in result.octave_images], result.steps_done)
