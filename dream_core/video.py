"""Dreaming a clip so the patterns stay put: the previous dream carried along the optical flow.

Each next frame starts from the previous dream's change (dream minus frame) warped along
the motion onto it (Ruder et al., "Artistic style transfer for videos", 2016, as the
optical-flow DeepDream video scripts do); pixels the motion uncovered or hid, found by a
forward-backward flow check, start from the plain frame and are dreamed afresh. The
first frame gets the full dream, the others a few steps. Frames stream through one at a
time: memory does not grow with the clip.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .engine import DreamResult, ProgressCallback, StopCallback, dream, offset_progress, plan
from .errors import DreamCancelled, DreamError
from .feature_model import FeatureModel
from .flow import FlowFunction, flow_function
from .imageops import LUMA
from .objectives import Objective
from .options import SEED_MAX, DreamSettings, VideoSettings
from .outputs import written_whole
from .schedule import Schedule, objective_at


def _pixel_coordinates(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices `[H, 1]`, `[1, W]` as floats, made on `device` (broadcast, never a full grid)."""
    ys = torch.arange(height, dtype=torch.float32, device=device).view(-1, 1)
    xs = torch.arange(width, dtype=torch.float32, device=device).view(1, -1)
    return ys, xs


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` `[B, C, H, W]` sampled at x + flow(x): what lands on each pixel (`flow` `[2, H, W]`, pixels).

    Runs on the image's device (the flow is moved there once); nothing goes through the host.
    """
    height, width = image.shape[-2:]
    flow = flow.to(image.device, torch.float32)
    ys, xs = _pixel_coordinates(height, width, image.device)
    grid_x = (xs + flow[0]) * (2 / max(width - 1, 1)) - 1
    grid_y = (ys + flow[1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0).to(image.dtype)
    grid = grid.expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def reliable(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """`[1, 1, H, W]`: 1 where the backward flow (new -> old frame) and the forward flow (old -> new)
    agree, 0 where a pixel was uncovered or hidden (Ruder et al.'s forward-backward check) or
    came into the picture from outside it. On the backward flow's device."""
    height, width = backward.shape[-2:]
    backward = backward.float()
    forward = forward.to(backward.device, torch.float32)
    there = warp(forward.unsqueeze(0), backward)[0]  # the forward flow where each new pixel came from
    mismatch = (backward + there).square().sum(0)
    bound = 0.01 * (backward.square().sum(0) + there.square().sum(0)) + 0.5
    ys, xs = _pixel_coordinates(height, width, backward.device)
    source_x, source_y = xs + backward[0], ys + backward[1]
    # A pixel that came from outside the old frame (it entered the picture) has nothing to carry.
    inside = (source_x >= 0) & (source_x <= width - 1) & (source_y >= 0) & (source_y <= height - 1)
    return ((mismatch <= bound) & inside).to(torch.float32).view(1, 1, height, width)


SHOT_SIDE = 64
"""Frames are compared for a cut at this size: structure, not noise or grain."""
FLAT = 0.02
"""A grey frame flatter than this (its standard deviation) is a fade through black or white, never a cut."""
STEADY_LIMITS = (0.5, 2.0)
"""How far one frame may rescale its dream to hold the shot's strength."""


def _structure(image: torch.Tensor) -> torch.Tensor:
    grey = (image.float() * LUMA.to(image.device)).sum(1, True)
    scale = SHOT_SIDE / max(image.shape[-2:])
    if scale < 1.0:
        grey = F.interpolate(grey, scale_factor=scale, mode="area")
    return grey.flatten()


def shot_match(frame: torch.Tensor, previous: torch.Tensor) -> float:
    """How well `frame` continues `previous`: the correlation of their grey pictures at 64 px, 1 = the same
    structure. A correlation ignores brightness and contrast, so a fade or a flash keeps it high; a flat
    frame (the black of a fade) counts as continuing. Fast motion lowers it too (0.25 for a pan of 13% of
    the width per frame), so a cut also needs the flow check to fail (`RELIABLE_SHARE`).
    """
    a, b = _structure(frame), _structure(previous.to(frame.device))
    sa, sb = a.std(), b.std()
    if float(torch.minimum(sa, sb)) < FLAT:
        return 1.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def push(settings: DreamSettings) -> float:
    """How hard a full dream with `settings` dreams, for holding a scheduled clip's strength: its ascent moves
    about `step` a step (the gradient is normalised), so its change grows with step x iterations x octaves."""
    return settings.step * settings.iterations * settings.octaves


RELIABLE_SHARE = 0.5
"""A cut leaves almost no pixel whose forward and backward flows agree (2% measured across a hard cut,
85-97% in pans, zooms and a pan of 30 px a frame)."""


@dataclass
class CarriedState:
    """What the frames after `index` need from the ones before: enough to go on after an interruption
    and dream exactly what an uninterrupted run would have."""

    index: int
    """The last frame dreamed."""
    change: torch.Tensor
    """Its dream minus the frame: what the next frame carries along the motion."""
    shot_strength: float
    """The strength of the current shot's first frame (see `VideoSettings.steady`)."""
    shot_push: float = 0.0
    """How hard the shot's first frame was dreamed (`push`): what a schedule's later frames are held relative to."""

    def save(self, path: str | os.PathLike) -> None:
        """Write it whole (a kill leaves the previous state)."""
        data = io.BytesIO()  # serialised first: a full disk then fails as a plain OSError, named as such
        torch.save(
            {
                "index": self.index,
                "change": self.change.detach().cpu(),
                "shot_strength": self.shot_strength,
                "shot_push": self.shot_push,
            },
            data,
        )
        with written_whole(path) as partial:
            partial.write_bytes(data.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CarriedState:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return cls(int(data["index"]), data["change"], float(data["shot_strength"]), float(data.get("shot_push", 0)))


def is_cut(frame: torch.Tensor, previous: torch.Tensor, agreed: torch.Tensor | None, video: VideoSettings) -> bool:
    """Whether `frame` starts a new shot after `previous`: its picture does not continue the previous one
    (`shot_match` under `video.cut_threshold`) and, where the flow check ran (`agreed`: its map of pixels whose
    flows agree), too few pixels moved consistently. Depends on the original frames only, never on a dream."""
    return (
        video.cut_threshold > 0
        and shot_match(frame, previous) < video.cut_threshold
        and (agreed is None or float(agreed.mean()) < RELIABLE_SHARE)
    )


def shot_ranges(
    frames: Iterable[torch.Tensor],
    video: VideoSettings,
    flow: FlowFunction | None = None,
    device: torch.device | str = "cpu",
    weights_dir=None,
) -> list[tuple[int, int]]:
    """Each shot's frames as (first, after last), in order, as `dream_video` would find them dreaming the clip:
    the same flows, the same check. A shot dreamed on its own from its first frame (`dream_video(..., start=)`)
    then gives exactly the frames the whole clip's dream gives there."""
    video = video.validate()
    estimate = _flow_estimate(flow, video, torch.device(device), weights_dir)
    starts: list[int] = []
    last, count = None, 0
    with _FlowAhead(frames, estimate, video.occlusion_check) as frames_and_flows:
        for index, (frame, flows) in enumerate(frames_and_flows):
            backward, forward = flows.result() if flows is not None else (None, None)
            agreed = reliable(backward, forward) if forward is not None and last is not None else None
            if last is None or is_cut(frame, last, agreed, video):
                starts.append(index)
            last, count = frame, index + 1
    return list(zip(starts, [*starts[1:], count], strict=True))


def _flow_estimate(
    flow: FlowFunction | None, video: VideoSettings, device: torch.device, weights_dir
) -> FlowFunction | None:
    """The flow a clip's frames are compared with: the given one, else the settings' method (none without carry)."""
    return flow or (flow_function(video.flow, device, weights_dir) if video.carry > 0 else None)


def frame_seed(seed: int, index: int) -> int:
    """The jitter seed of frame `index`: a fresh jitter every frame (one seed for all would put the
    same shifts under every frame), the same clip and seed giving the same frames."""
    return (seed + index) % (SEED_MAX + 1)


def dream_video(
    frames: Iterable[torch.Tensor],
    model: FeatureModel,
    objective: Objective | Mapping[str, float],
    settings: DreamSettings | None = None,
    video: VideoSettings | None = None,
    *,
    frame_count: int | None = None,
    mask: torch.Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    flow: FlowFunction | None = None,
    weights_dir=None,
    on_new_shot: Callable[[int], None] | None = None,
    resume: CarriedState | None = None,
    on_state: Callable[[CarriedState], None] | None = None,
    start: int = 0,
    schedules: Sequence[Schedule] = (),
) -> Iterator[torch.Tensor]:
    """Dream `frames` (each `[1, 3, H, W]` in 0..1, all one size) into frames that hold still.

    A generator: one dreamed frame out (on the frame's device) for each frame in. The first frame gets `settings`;
    every later one starts from the previous dream carried along the flow (`video.carry`) and gets
    `video.next_iterations` steps over `video.next_octaves` octaves; with `carry` 0 every frame is dreamed alone
    with `settings`. `objective`: layer weights or an `Objective` (see `engine.dream`). `mask` `[M, H, W]` gives
    frame i the mask i mod M (one for all, or one per frame). `on_progress(step, total, preview)` counts steps over
    the whole clip (`frame_count` frames, if given); `should_stop` is checked within every frame.

    Shots: a frame that does not continue the previous one (`shot_match` under `video.cut_threshold`: a cut) starts
    a new shot with a full dream and nothing carried; `on_new_shot(index)` hears of each shot's first frame. With
    `video.steady` every later frame's dream is rescaled to the strength (mean |dream - frame|) of its shot's first.

    To go on after an interruption: `on_state(state)` hears, after each dreamed frame has been taken, what the next
    frames need; given back as `resume` with `frames` starting at frame `resume.index` (which is read, not dreamed
    again), the frames after it come out exactly as in an uninterrupted run.

    `start`: the clip's index of the first frame given (its seed and mask follow it); a shot dreamed alone from its
    first frame (see `shot_ranges`) comes out as in the whole clip's dream.

    `schedules` (over the dream options): frame i is dreamed with each scheduled value at i (a scheduled
    `iterations` or `octaves` replaces `video.next_...` too); `video.steady` holds frame i at the shot's strength
    times how much harder the schedules dream at i than at the shot's first frame (`push`).
    """
    settings = (settings or DreamSettings()).validate()
    video = (video or VideoSettings()).validate()
    resolved = Objective.of(objective).resolved(model)
    clip = _Clip(model, resolved, settings, video, frame_count, mask, on_progress, should_stop, on_new_shot, schedules)
    estimate = _flow_estimate(flow, video, model.device, weights_dir)
    first = resume.index if resume is not None else start
    with _FlowAhead(frames, estimate, video.occlusion_check) as frames_and_flows:
        for index, (frame, flows) in enumerate(frames_and_flows, start=first):
            if resume is not None and index == resume.index:  # dreamed before the interruption: only read
                clip.resume(resume, frame)
                continue
            if should_stop is not None and should_stop():
                raise DreamCancelled("The dream was cancelled.")
            yield clip.dream_frame(index, frame, flows)
            if on_state is not None:  # after the caller took the frame: a state never runs ahead of the output
                assert clip.previous is not None  # set by the frame just dreamed
                on_state(CarriedState(index, clip.previous, clip.shot_strength, clip.shot_push))


class _Clip:
    """What dreaming a clip carries from frame to frame: the previous dream's change, the shot's strength,
    the steps done and the clip's total (for the progress), and the frame settings."""

    def __init__(
        self, model, objective, settings, video, frame_count, mask, on_progress, should_stop, on_new_shot, schedules=()
    ) -> None:
        self.model, self.objective, self.settings, self.video = model, objective, settings, video
        self.later = (
            settings
            if video.carry == 0
            else settings.with_options(iterations=video.next_iterations, octaves=video.next_octaves)
        )
        self.frame_count, self.mask = frame_count, mask
        self.on_progress, self.should_stop, self.on_new_shot = on_progress, should_stop, on_new_shot
        self.previous: torch.Tensor | None = None  # the previous frame's dream minus the frame
        self.last_frame: torch.Tensor | None = None
        self.shot_strength = 0.0  # the dream's strength on the shot's first frame
        self.shot_push = 0.0  # how hard that frame was dreamed (`push`)
        self.done = 0
        self.total: int | None = None
        self.schedules: tuple[Schedule, ...] = tuple(schedules)

    def resume(self, state: CarriedState, frame: torch.Tensor) -> None:
        self.previous, self.last_frame = state.change.to(frame.device), frame
        self.shot_strength, self.shot_push = state.shot_strength, state.shot_push

    def _is_new_shot(self, frame: torch.Tensor, agreed: torch.Tensor | None) -> bool:
        if self.previous is None or self.last_frame is None:
            return True
        return is_cut(frame, self.last_frame, agreed, self.video)

    def frame_settings(self, index: int, new_shot: bool) -> DreamSettings:
        """Frame `index`'s dream settings: the full dream on a shot's first frame, else the later frames' few
        steps; the scheduled values at `index` on top; its own seed."""
        values = {schedule.name: schedule.at(index) for schedule in self.schedules if not schedule.weighting}
        base = self.settings if new_shot else self.later
        return base.with_options(**values, seed=frame_seed(self.settings.seed, index)).validate()

    def _steps(self, frame: torch.Tensor, settings: DreamSettings) -> int:
        return plan(self.model, frame.shape[-2], frame.shape[-1], settings).steps

    def _count(self, index: int, frame: torch.Tensor, frame_settings: DreamSettings, new_shot: bool) -> int:
        """This frame's steps; the clip's total worked out on the first frame, corrected at every cut."""
        steps = self._steps(frame, frame_settings)
        if index == 0 and self.frame_count is not None:  # all frames share the first one's size
            later = [self._steps(frame, self.frame_settings(i, False)) for i in range(1, self.frame_count)]
            self.total = steps + sum(later)
        elif new_shot and self.total is not None:  # a cut: this frame gets a full dream, not the later steps
            self.total += steps - self._steps(frame, self.frame_settings(index, False))
        return steps

    def dream_frame(self, index: int, frame: torch.Tensor, flows) -> torch.Tensor:
        backward, forward = flows.result() if flows is not None else (None, None)  # computed ahead
        agreed = None
        if backward is not None and forward is not None and self.previous is not None:
            agreed = reliable(backward, forward)
        new_shot = self._is_new_shot(frame, agreed)
        if new_shot and self.on_new_shot is not None:
            self.on_new_shot(index)
        start, frame_settings = frame, self.frame_settings(index, new_shot)
        if not new_shot and backward is not None and self.previous is not None:
            carried = warp(self.previous, backward)
            if agreed is not None:
                carried = carried * agreed.to(carried.device)
            start = (frame + self.video.carry * carried).clamp(0.0, 1.0)
        steps = self._count(index, frame, frame_settings, new_shot)
        report = None
        if self.on_progress is not None:
            total = self.total if self.total is not None else self.done + steps
            report = offset_progress(self.on_progress, self.done, total)
        mask = self.mask
        frame_mask = mask[index % mask.shape[0]] if mask is not None and mask.ndim == 3 else mask
        result: DreamResult = dream(
            start,
            self.model,
            objective_at(self.objective, self.schedules, index, self.model),
            frame_settings,
            mask=frame_mask,
            on_progress=report,
            should_stop=self.should_stop,
        )
        self.done += steps
        return self._held(index, frame, result.images, new_shot)

    def _target(self, index: int) -> float:
        """The strength frame `index` is held at: the shot's first frame's, and with schedules, that scaled by how
        much harder (or softer) the schedules dream this frame than they dreamed the shot's first."""
        if not self.schedules or self.shot_push <= 0:
            return self.shot_strength
        return self.shot_strength * push(self.frame_settings(index, True)) / self.shot_push

    def _held(self, index: int, frame: torch.Tensor, dreamed: torch.Tensor, new_shot: bool) -> torch.Tensor:
        """The dream with its strength held at the shot's (`video.steady`); remembered for the next frame."""
        change = (dreamed - frame.to(dreamed.device)).detach()
        strength = float(change.abs().mean())
        if new_shot or self.shot_strength < 1e-4:  # (a masked-out first frame sets no strength to hold)
            self.shot_strength, self.shot_push = strength, push(self.frame_settings(index, True))
        elif self.video.steady and self.video.carry > 0 and strength > 0:
            # Every frame adds its steps on top of what it carried: without this a still shot
            # builds up without end (2.6x by its 14th frame), and a fading one would not recover.
            factor = min(max(self._target(index) / strength, STEADY_LIMITS[0]), STEADY_LIMITS[1])
            dreamed = (frame.to(dreamed.device) + change * factor).clamp(0.0, 1.0)
            change = (dreamed - frame.to(dreamed.device)).detach()
        self.previous, self.last_frame = change, frame
        return dreamed


class _FlowAhead:
    """The clip's frames, each with its flows to the frame before, computed one frame ahead.

    Reading a frame starts its flows (backward, and forward for the occlusion check) in
    a worker thread, and the clip is read one frame ahead, so the next frame's flows are
    computed while the current frame dreams (DIS and ILK run on the CPU and release the
    GIL; RAFT queues its work on the device). Frames come out as float `[1, 3, H, W]`.
    """

    def __init__(self, frames: Iterable[torch.Tensor], estimate: FlowFunction | None, check: bool) -> None:
        self.frames = iter(frames)
        self.estimate = estimate
        self.check = check
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepdream-flow") if estimate else None

    def _flows(self, frame: torch.Tensor, old_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        estimate = self.estimate
        assert estimate is not None  # flows are asked for only with an estimate
        return estimate(frame, old_frame), (estimate(old_frame, frame) if self.check else None)

    def _read(self) -> Iterator[tuple[torch.Tensor, Future | None]]:
        previous = None
        for index, frame in enumerate(self.frames):
            if frame.ndim == 3:
                frame = frame.unsqueeze(0)
            frame = frame.float()
            if previous is not None and frame.shape != previous.shape:
                raise DreamError(
                    f"Frame {index} is {tuple(frame.shape[-2:])}, the clip's first was "
                    f"{tuple(previous.shape[-2:])}: every frame must have the same size."
                )
            flows = self.pool.submit(self._flows, frame, previous) if self.pool and previous is not None else None
            yield frame, flows
            previous = frame

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Future | None]]:
        reader = self._read()
        ahead = next(reader, None)
        while ahead is not None:
            current, ahead = ahead, next(reader, None)  # reading the next frame starts its flows
            yield current

    def __enter__(self) -> _FlowAhead:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def stream_batch(images: torch.Tensor, convert: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[torch.Tensor]:
    """The frames of a batch one at a time, each converted on its own (no second copy of the clip)."""
    for index in range(images.shape[0]):
        yield convert(images[index : index + 1])
