"""Dreams as animations: the classic infinite zoom, and a dream's frames as it forms.

* `zoom_transform` enlarges, turns and shifts an image about its centre, mirroring
  the edges instead of leaving black borders;
* `dream_zoom` dreams, zooms into the dream, dreams again, ...: each frame grows out
  of the previous one (Google's "infinite zoom");
* `FrameCollector` / `dream_frames` keep the image every N ascent steps of one dream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .engine import DreamResult, DreamSettings, ProgressCallback, StopCallback, dream, offset_progress, plan
from .errors import DreamError
from .feature_model import FeatureModel
from .imageops import resize
from .objectives import Objective
from .options import OPTIONS, Option
from .schedule import Schedule, objective_at

FrameCallback = Callable[[int, torch.Tensor], None]
"""`on_frame(index, frame)`: called with each finished frame `[B, 3, H, W]` of an animation."""

SEED_RANGE = 2**64
"""Seeds wrap around here (the largest seed ComfyUI offers is 2**64 - 1)."""


ZOOM_OPTIONS = (
    Option("frames", 12, "Number of frames; each is one dream.", minimum=1, maximum=1000),
    Option(
        "zoom",
        1.05,
        "Zoom per frame about the centre: above 1 flies in, below 1 backs out (the edges are mirrored in).",
        minimum=0.5,
        maximum=2.0,
        step=0.005,
    ),
    Option("angle", 0.0, "Turn per frame in degrees, counter-clockwise.", minimum=-180.0, maximum=180.0, step=0.5),
    Option(
        "shift_x",
        0.0,
        "Move the picture right by this many pixels per frame (negative: left).",
        minimum=-1024.0,
        maximum=1024.0,
        step=0.5,
    ),
    Option(
        "shift_y",
        0.0,
        "Move the picture down by this many pixels per frame (negative: up).",
        minimum=-1024.0,
        maximum=1024.0,
        step=0.5,
    ),
)
"""The zoom's own options (beyond the dream's): one table for the DreamZoom node and the zoom command."""


def zoom_transform(
    image: torch.Tensor, zoom: float, angle_deg: float = 0.0, shift_x: float = 0.0, shift_y: float = 0.0
) -> torch.Tensor:
    """Zoom `image` `[B, C, H, W]` about its centre, turn it, and shift it; same shape out.

    `zoom` > 1 enlarges (zooms in), < 1 shrinks; `angle_deg` turns the picture
    counter-clockwise (as Pillow's `rotate`); `shift_x`/`shift_y` move it right/down
    by that many pixels of the output. Bilinear sampling; whatever comes into view
    from outside the image is the image mirrored at its edges, so no black borders.
    """
    if image.ndim != 4:
        raise DreamError(f"zoom_transform expects images [B, C, H, W]; got shape {tuple(image.shape)}.")
    if not (math.isfinite(zoom) and zoom > 0):
        raise DreamError(f"zoom must be a positive number; got {zoom}.")
    height, width = image.shape[-2:]
    # The picture moves by out = zoom * R(angle) @ in + shift (centre-relative pixels);
    # grid_sample needs the inverse, in = R(-angle) @ (out - shift) / zoom, in
    # normalised coordinates (x_n = 2 x / W for align_corners=False), so the pixel
    # scale D goes in and out around the rotation: a turn stays a turn on non-square images.
    radians = math.radians(angle_deg)
    cos, sin = math.cos(radians), math.sin(radians)
    # Inverse of a counter-clockwise turn on screen (y points down): rows of R(-angle).
    inverse_rotation = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    linear = inverse_rotation * scale.view(1, 2) / scale.view(2, 1) / zoom  # D^-1 R^-1 D / zoom
    offset = -(inverse_rotation @ torch.tensor([shift_x, shift_y], dtype=torch.float64)) / scale / zoom
    theta = torch.cat([linear, offset.view(2, 1)], dim=1).float().to(image.device)  # float64 stays on the host
    theta = theta.unsqueeze(0).expand(image.shape[0], 2, 3)
    source = image if image.is_floating_point() else image.float()
    grid = F.affine_grid(theta, list(source.shape), align_corners=False)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _frame_seed(settings: DreamSettings, index: int) -> DreamSettings:
    return settings.with_options(seed=(settings.seed + index) % SEED_RANGE)


def zoom_schedulable() -> tuple[Option, ...]:
    """What a zoom's schedules may name: the dream's numeric options and the motion (not the frame count)."""
    return (*OPTIONS, *(opt for opt in ZOOM_OPTIONS if opt.name != "frames"))


def _scheduled(
    settings: DreamSettings, motion: dict[str, float], schedules: Sequence[Schedule], index: int, period: int
) -> tuple[DreamSettings, dict[str, float]]:
    """Frame `index`'s dream settings (its seed included) and motion, with the schedules' values at `index` modulo
    `period` in place."""
    values = {schedule.name: schedule.at(index % period) for schedule in schedules if not schedule.weighting}
    moved = {name: values.get(name, value) for name, value in motion.items()}
    dreamed = {name: value for name, value in values.items() if name not in motion}
    return _frame_seed(settings.with_options(**dreamed).validate(), index), moved


def _zoom_frames(model, image, settings, motion, schedules, count, period):
    """Each frame's dream settings and motion (a schedule read at the frame's index modulo `period`), and its
    ascent steps (for one progress count over all)."""
    per_frame = [_scheduled(settings, motion, schedules, index, period) for index in range(count)]
    return per_frame, [plan(model, image.shape[-2], image.shape[-1], each).steps for each, _ in per_frame]


def loop_overlap(frames: int) -> int:
    """How many frames a looping zoom of `frames` dreams beyond its end and fades into its beginning."""
    return max(2, frames // 4)


def dream_zoom(
    image: torch.Tensor,
    model: FeatureModel,
    objective: Objective | Mapping[str, float],
    settings: DreamSettings | None = None,
    frames: int = 12,
    zoom: float = 1.05,
    angle: float = 0.0,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    *,
    mask: torch.Tensor | None = None,
    on_frame: FrameCallback | None = None,
    should_stop: StopCallback | None = None,
    on_progress: ProgressCallback | None = None,
    frames_device: torch.device | str | None = None,
    schedules: Sequence[Schedule] = (),
    loop: bool = False,
) -> torch.Tensor:
    """The infinite zoom: `frames` dreams, each of the previous one zoomed in; `[B * frames, 3, H, W]`.

    Frame 0 is `dream(image)`; frame k is `dream(zoom_transform(frame k-1, zoom, angle, shift_x, shift_y))` with
    the seed ``settings.seed + k``, so the same arguments give the same animation. The transform is per frame
    (degrees and pixels per frame). A batch is dreamed together; the output is image-major: all frames of the first
    image, then those of the next. `on_frame(k, frame)` gets each dreamed frame; `on_progress(step, total, current)`
    counts over all frames; `should_stop`, `mask` and the objective (its guide and regions: fixed on the screen, not
    zoomed) go to every dream. Finished frames are kept on `frames_device` (default: the input's), so a long
    animation need not fill the GPU. With `schedules` (over `zoom_schedulable()`, and layer weights:
    `schedule.objective_at`) frame k is moved and dreamed with each scheduled value at k.

    `loop`: the last frame leads into the first as any frame into the next: the zoom goes on for K =
    `loop_overlap(frames)` frames (schedules read again from 0); frame i < K is (1 - w) x frame (frames + i) + w x
    frame i, w from 1/(K+1) to K/(K+1), dreamed again lightly (`seam_settings`) so the fade is one dream.
    """
    settings = (settings or DreamSettings()).validate()
    if frames < 1:
        raise DreamError(f"frames must be at least 1; got {frames}.")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    motion = {"zoom": zoom, "angle": angle, "shift_x": shift_x, "shift_y": shift_y}
    count = frames + (loop_overlap(frames) if loop and frames > 1 else 0)
    per_frame, steps = _zoom_frames(model, image, settings, motion, schedules, count, frames)
    seams = [seam_settings(each, count) for each, _ in per_frame[: count - frames]]
    seam_steps = [plan(model, image.shape[-2], image.shape[-1], each).steps for each in seams]
    run = _ZoomDream(model, Objective.of(objective).resolved(model), schedules, mask, should_stop, on_progress)
    run.total = sum(steps) + sum(seam_steps)
    results: list[torch.Tensor] = []
    current = image
    for index, (frame_settings, moved) in enumerate(per_frame):
        if index:
            current = zoom_transform(current, moved["zoom"], moved["angle"], moved["shift_x"], moved["shift_y"])
        current = run.dream(current, frame_settings, index % frames, sum(steps[:index]))
        results.append(current.to(frames_device or image.device))
        if on_frame is not None:
            on_frame(index, current)
    for i, each in enumerate(seams):  # the loop's seam: faded from the continuation into the start, one dream
        weight = (i + 1) / (len(seams) + 1)
        faded = results[frames + i] * (1 - weight) + results[i] * weight
        results[i] = run.dream(faded, each, i, sum(steps) + sum(seam_steps[:i])).to(frames_device or image.device)
    return torch.stack(results[:frames], dim=1).flatten(0, 1)


def seam_settings(settings: DreamSettings, offset: int) -> DreamSettings:
    """How a looping zoom's faded frame (dreamed with `settings`) is dreamed again: at full size only, half its
    steps (at least one), its seed moved on by `offset` (the zoom's dreamed frames: no seed used twice)."""
    light = settings.with_options(octaves=1, iterations=max(1, settings.iterations // 2))
    return _frame_seed(light, offset)


@dataclass
class _ZoomDream:
    """What every dream of a zoom shares; `dream` gives one frame's dream, its progress counted over the zoom."""

    model: FeatureModel
    objective: Objective
    schedules: Sequence[Schedule]
    mask: torch.Tensor | None
    should_stop: StopCallback | None
    on_progress: ProgressCallback | None
    total: int = 0

    def dream(self, image: torch.Tensor, settings: DreamSettings, frame: int, done: int) -> torch.Tensor:
        """`image` dreamed with `settings` and the layer weights at `frame`, after `done` of the zoom's steps."""
        report = offset_progress(self.on_progress, done, self.total) if self.on_progress else None
        objective = objective_at(self.objective, self.schedules, frame, self.model)
        return dream(
            image, self.model, objective, settings, mask=self.mask, on_progress=report, should_stop=self.should_stop
        ).images


class FrameCollector:
    """An `on_progress` callback that keeps the image every `every` ascent steps.

    The engine reports the current octave's image, which grows from octave to
    octave; `frames(final)` enlarges every kept image to the final size and stacks
    them. A copy is kept (the engine steps its image in place), on `device` if given
    (e.g. the CPU, to spare GPU memory), else where the engine's image is. `forward`,
    if given, is called with every report too (a progress bar).
    """

    def __init__(
        self, every: int, forward: ProgressCallback | None = None, device: torch.device | str | None = None
    ) -> None:
        if every < 1:
            raise DreamError(f"every must be at least 1 step; got {every}.")
        self.every = every
        self.forward = forward
        self.device = device
        self.kept: list[torch.Tensor] = []
        self._next = every

    def __call__(self, step: int, total: int, image: torch.Tensor) -> None:
        # `step` can jump (an octave that stops at max_loss reports all its steps at
        # once): keep one image per multiple crossed. The step == total image is not
        # kept: `frames` appends the final result instead, which also has the last
        # octave's detail re-injected.
        if step >= self._next and step < total:
            self.kept.append(image.detach().to(self.device or image.device, copy=True))
            self._next = (step // self.every + 1) * self.every
        if self.forward is not None:
            self.forward(step, total, image)

    def frames(self, final: torch.Tensor) -> torch.Tensor:
        """The kept images and then `final` `[B, 3, H, W]`, at its size: `[B * frames, 3, H, W]`, image-major."""
        shape = (final.shape[-2], final.shape[-1])
        device = self.device or final.device
        stacked = [resize(image.to(device), shape) for image in self.kept] + [final.to(device)]
        return torch.stack(stacked, dim=1).flatten(0, 1)


def dream_frames(
    images: torch.Tensor,
    model: FeatureModel,
    objective: Objective | Mapping[str, float],
    settings: DreamSettings | None = None,
    every: int = 5,
    *,
    mask: torch.Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    frames_device: torch.device | str | None = None,
    schedules: Sequence[Schedule] = (),
) -> tuple[DreamResult, torch.Tensor]:
    """Dream `images` and keep the image every `every` steps: `(result, frames)`.

    `frames` is `[B * n, 3, H, W]`, image-major, with ``n = ceil(total_steps / every)``
    (fewer if an octave stops early at `max_loss`; at least 1): the image after
    steps every, 2 every, ..., enlarged to the final size, and last the final image.
    Frames are kept on `frames_device` (default: the input's device). `objective`
    and `mask` are `dream`'s.

    With `schedules` (over the dream options) the batch is a sequence: image k is dreamed alone with each
    scheduled value at k, and its frames follow image k-1's (a scheduled `iterations` changes how many it has).
    """
    if schedules:
        return _scheduled_frames(
            images, model, objective, settings, every, schedules, mask, on_progress, should_stop, frames_device
        )
    collector = FrameCollector(every, forward=on_progress, device=frames_device or images.device)
    result = dream(images, model, objective, settings, mask=mask, on_progress=collector, should_stop=should_stop)
    return result, collector.frames(result.images)


def _scheduled_frames(images, model, objective, settings, every, schedules, mask, on_progress, should_stop, device):
    """`dream_frames` of a sequence whose settings follow `schedules` by the batch index."""
    base = (settings or DreamSettings()).validate()
    per_image = [
        base.with_options(**{s.name: s.at(k) for s in schedules if not s.weighting}).validate()
        for k in range(images.shape[0])
    ]
    steps = [plan(model, images.shape[-2], images.shape[-1], each).steps for each in per_image]
    objective = Objective.of(objective).resolved(model)
    finals, frames = [], []
    for k, each in enumerate(per_image):
        report = offset_progress(on_progress, sum(steps[:k]), sum(steps)) if on_progress else None
        image_mask = mask[k : k + 1] if mask is not None and mask.ndim == 3 and mask.shape[0] > 1 else mask
        collector = FrameCollector(every, forward=report, device=device or images.device)
        weighted = objective_at(objective, schedules, k, model)
        result = dream(
            images[k : k + 1], model, weighted, each, mask=image_mask, on_progress=collector, should_stop=should_stop
        )
        finals.append(result.images)
        frames.append(collector.frames(result.images))
    return DreamResult(torch.cat(finals), steps_done=sum(steps)), torch.cat(frames)
