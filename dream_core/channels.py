"""What one channel sees: a picture grown from noise so that one channel of a layer fires (feature visualisation,
as in lucid / lucent), and a labelled sheet of a layer's channels.

Each picture of the batch climbs its own goal (a channel's mean activation, or a negative channel, a neuron, a
direction, a class, a diverse batch: `goals`), through the same ascent as a dream, grown as lucid grows them
(`dream(..., grow=True)`): the picture is the sigmoid of a latent picture that the steps move, so it never clips;
the gradient is shaped by a preconditioning (decorrelated colours and a 1/frequency spectrum by default) and
taken under a random roll, scale and rotation, so that what grows is a pattern the channel answers to at any
small shift, size and angle, not adversarial noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from . import tiling
from .engine import ProgressCallback, StopCallback, check_room, dream
from .errors import DreamError
from .feature_model import FeatureModel
from .goals import MAX_PICTURES, Diversity, Goal, goal_parts
from .imageops import resize
from .memory import MEANS_TILE, channel_means_memory, check_memory
from .objectives import Objective, ReadyContext
from .options import ChannelSettings, DreamSettings

START_CONTRAST = 0.01
"""The starting noise: grey with uniform noise of this amplitude either way (just enough to tell pictures apart:
the whitened step never smooths noise away, so more stays in the picture as grain)."""


def default_layer(model: FeatureModel) -> str:
    """The layer channel pictures show when none is named: the middle one of the model's default dream layers."""
    order = {info.name: i for i, info in enumerate(model.layers)}
    layers = sorted((model.resolve_layer(name).name for name in model.spec.default_layers), key=order.__getitem__)
    return layers[len(layers) // 2]


def starting_noise(count: int, size: int, seed: int) -> torch.Tensor:
    """The seeded noise `[count, 3, size, size]` the pictures grow from (the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    # 0.5 + contrast * (2 * r - 1), computed in place: one picture-sized tensor, not four.
    return torch.rand(count, 3, size, size, generator=generator).mul_(2).sub_(1).mul_(START_CONTRAST).add_(0.5)


def top_channels(model: FeatureModel, layer: str, image: torch.Tensor, count: int) -> tuple[int, ...]:
    """The `count` channels of `layer` most active on `image` `[1, 3, H, W]` (mean over positions), strongest first."""
    info = model.resolve_layer(layer)
    if image.ndim != 4 or image.shape[0] == 0 or 0 in image.shape[-2:]:
        raise DreamError(
            f"top{count} reads the channels most active on a picture, and the picture given is empty "
            f"(shape {tuple(image.shape)}); connect or give a picture."
        )
    if count > info.channels:
        raise DreamError(f"{info.name} of {model.name} has {info.channels} channels; top{count} asks for more.")
    means = channel_means(model, info.name, image[:1])[0]
    return tuple(int(i) for i in means.topk(count).indices)


def channel_means(model: FeatureModel, layer: str, images: torch.Tensor) -> torch.Tensor:
    """Every channel's mean activation of `layer` on each image: `[B, C]` (float32, on the CPU).

    Read a tile of at most `memory.MEANS_TILE` px at a time (a 4096 px photo at once held 5 GB), each tile's means
    weighed by its area; checked against the device's memory first."""
    name = model.resolve_layer(layer).name
    check_memory(
        channel_means_memory(model, name, images.shape),
        model.device,
        f"Reading {name} on {images.shape[0]} picture(s) of {images.shape[-1]}x{images.shape[-2]} px",
        "Give a smaller picture.",
    )
    height, width = images.shape[-2:]
    total: torch.Tensor | None = None
    with torch.inference_mode(False), torch.no_grad(), model.tap([name]) as tap:
        model.make_autograd_safe()
        for top, bottom, left, right in tiling.tile_grid(height, width, MEANS_TILE):
            tile = images[:, :, top:bottom, left:right].to(model.device, torch.float32)
            if min(tile.shape[-2:]) < model.spec.min_size:  # a sliver too small for the network: read it larger
                tile = resize(tile, (max(bottom - top, model.spec.min_size), max(right - left, model.spec.min_size)))
            means = tap(tile)[name].float().flatten(2).mean(2) * ((bottom - top) * (right - left))
            total = means if total is None else total + means
    assert total is not None  # the grid has a tile at least
    return (total / (height * width)).cpu()


@dataclass
class ChannelPictures:
    """The pictures (`[N, 3, size, size]`, 0..1), the goal each one climbed, and each goal's value before and
    after (`start[i]`, `end[i]`: on the noise it grew from and on the picture; a channel's is its mean activation)."""

    images: torch.Tensor
    layer: str
    goals: tuple[Goal, ...]
    start: torch.Tensor
    end: torch.Tensor

    @property
    def labels(self) -> list[str]:
        return [goal.label(self.layer) for goal in self.goals]


def channel_pictures(
    model: FeatureModel,
    layer: str,
    goals: Sequence[int | Goal],
    settings: ChannelSettings | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    device: Any = None,
    first: int = 0,
) -> ChannelPictures:
    """A picture per goal (a channel number is that channel's goal) on `layer`, each grown from seeded noise (see
    the module).

    `first`: these pictures are pictures `first`.. of a larger set (a cluster's worker grows a part of it): each
    grows from the noise it has in the whole set, so the parts put together are the set grown at once."""
    settings = (settings or ChannelSettings()).validate()
    wanted = tuple(goal if isinstance(goal, Goal) else Goal(((int(goal), 1.0),)) for goal in goals)
    if not wanted:
        raise DreamError("No channels given: list some, e.g. '0-7', or ask for the top N of an image.")
    if len(wanted) > MAX_PICTURES:
        raise DreamError(f"{len(wanted)} channel pictures: at most {MAX_PICTURES} at once.")
    layer = model.resolve_layer(layer).name
    objective = Objective(goal_parts(layer, wanted)).resolved(model)
    dreaming = dream_settings(settings, neurons=any(goal.at is not None for goal in wanted))
    # Before the noise is made: 256 pictures of 2048 px are 13 GB of noise alone.
    check_room(
        model,
        objective,
        dreaming,
        (len(wanted), 3, settings.size, settings.size),
        f"{len(wanted)} channel pictures of {settings.size} px",
        "Ask for fewer channels or a smaller size.",
    )
    noise = starting_noise(first + len(wanted), settings.size, settings.seed)[first:]
    noise = noise.to(device or model.device)
    result = dream(noise, model, objective, dreaming, on_progress=on_progress, should_stop=should_stop, grow=True)
    start, end = (goal_values(model, layer, wanted, images) for images in (noise, result.images))
    return ChannelPictures(result.images, layer, wanted, start, end)


GOAL_CHUNK = 8
"""Pictures read at once by `goal_values`."""


def goal_values(model: FeatureModel, layer: str, goals: Sequence[Goal], images: torch.Tensor) -> torch.Tensor:
    """Each picture's goal value `[B]` on `images` (float32, on the CPU): a channel's mean activation, a negative
    channel's minus that, a neuron's value at its position, a direction's, a class's score (diversity left out)."""
    name = model.resolve_layer(layer).name
    values = []
    with torch.inference_mode(False), torch.no_grad():
        model.make_autograd_safe()
        for begin in range(0, len(goals), GOAL_CHUNK):
            chunk = images[begin : begin + GOAL_CHUNK].to(model.device, torch.float32)
            check_memory(
                channel_means_memory(model, name, chunk.shape),
                model.device,
                f"Reading {name} on {chunk.shape[0]} picture(s) of {chunk.shape[-1]} px",
                "Ask for a smaller size.",
            )
            parts = goal_parts(name, goals[begin : begin + GOAL_CHUNK])
            parts = tuple(part for part in parts if not isinstance(part, Diversity))
            objective = Objective(parts).resolved(model)
            with model.tap(dict.fromkeys(term.layer for term in objective.terms())) as tap:
                readied = objective.readied(ReadyContext(chunk, DreamSettings(), tap, lambda mask: mask))
                values.append(readied(tap(chunk), chunk)[0].float().cpu())
    return torch.cat(values)


def dream_settings(settings: ChannelSettings, neurons: bool = False) -> DreamSettings:
    """The dream that grows channel pictures: one octave of `steps` steps from noise, nothing re-injected; with
    `neurons`, in one tile (a neuron's position is on the whole picture's grid)."""
    return DreamSettings(
        octaves=1,
        iterations=settings.steps,
        step=settings.step,
        jitter=settings.jitter,
        seed=settings.seed,
        reinject_detail=False,
        precondition=settings.precondition,
        scale_jitter=settings.scale_jitter,
        rotate_jitter=settings.rotate_jitter,
        precision=settings.precision,
        tile_size=settings.size if neurons else 0,
    ).validate()
