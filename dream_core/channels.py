"""What one channel sees: a picture grown from noise so that one channel of a layer fires (feature visualisation,
as in lucid / lucent), and a labelled sheet of a layer's channels.

Each picture of the batch climbs its own channel's mean activation (`EachChannel`, an objective part), through
the same ascent as a dream: the gradient shaped by a preconditioning (decorrelated colours and a 1/frequency
spectrum by default), and taken under a random roll, scale and rotation, so that what grows is a pattern the
channel answers to at any small shift, size and angle, not adversarial noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from . import tiling
from .engine import ProgressCallback, StopCallback, check_room, dream
from .errors import DreamError
from .feature_model import FeatureModel
from .imageops import resize
from .memory import MEANS_TILE, channel_means_memory, check_memory
from .objectives import Objective, Part, ReadyContext, Term, parse_term
from .options import ChannelSettings, DreamSettings

START_CONTRAST = 0.1
"""The starting noise: grey with uniform noise of this amplitude either way."""
MAX_PICTURES = 256
"""At most this many channel pictures in one batch."""


@dataclass(frozen=True)
class EachChannel(Part):
    """Picture i of the batch climbs channel `channels[i]` of `layer`: its mean over the positions."""

    layer: str
    channels: tuple[int, ...]
    index: torch.Tensor | None = None
    """`[B, 1, 1, 1]` on the dream's device (see `readied`)."""

    def terms(self):
        return {Term(self.layer, channels=tuple(sorted(set(self.channels)))): 1.0}

    def resolved(self, resolve_weights):
        (term,) = resolve_weights(self.terms())  # checks the layer and the channels against the network
        return replace(self, layer=term.layer)

    def readied(self, context: ReadyContext) -> Part:
        if context.images.shape[0] != len(self.channels):
            raise DreamError(f"{len(self.channels)} channels for {context.images.shape[0]} pictures: give one each.")
        index = torch.tensor(self.channels, device=context.images.device).view(-1, 1, 1, 1)
        return replace(self, index=index)

    def value(self, features, image, whole):
        activation = features[self.layer]
        assert self.index is not None, "EachChannel.readied makes the index"
        own = activation.gather(1, self.index.expand(-1, 1, *activation.shape[-2:]))
        return own.float().flatten(1).mean(1)


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


def parse_channels(text: str) -> tuple[tuple[int, ...], int]:
    """(channels, top) of a channel list: '0-7' / '3,17,40-47' (those channels) or 'top8' (the 8 most active on an
    image)."""
    term = parse_term(f"layer[{text.strip()}]")
    if term.top < 0:
        raise DreamError(f"channels {text!r}: 'bottom' channels are the least active ones; ask for 'topN' or a list.")
    if len(term.channels) > MAX_PICTURES or term.top > MAX_PICTURES:
        raise DreamError(f"channels {text!r}: at most {MAX_PICTURES} channel pictures at once.")
    return term.channels, term.top


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
    """The pictures (`[N, 3, size, size]`, 0..1), the channels they show, and each one's activation before and
    after (`start[i]`, `end[i]`: the mean of its own channel on the noise it grew from and on the picture)."""

    images: torch.Tensor
    layer: str
    channels: tuple[int, ...]
    start: torch.Tensor
    end: torch.Tensor

    @property
    def labels(self) -> list[str]:
        return [f"{self.layer}[{channel}]" for channel in self.channels]


def channel_pictures(
    model: FeatureModel,
    layer: str,
    channels: Sequence[int],
    settings: ChannelSettings | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    device: Any = None,
    first: int = 0,
) -> ChannelPictures:
    """A picture per channel of `layer`, each grown from seeded noise to excite its channel (see the module).

    `first`: these pictures are pictures `first`.. of a larger set (a cluster's worker grows a part of it): each
    grows from the noise it has in the whole set, so the parts put together are the set grown at once."""
    settings = (settings or ChannelSettings()).validate()
    channels = tuple(int(c) for c in channels)
    if not channels:
        raise DreamError("No channels given: list some, e.g. '0-7', or ask for the top N of an image.")
    if len(channels) > MAX_PICTURES:
        raise DreamError(f"{len(channels)} channels: at most {MAX_PICTURES} channel pictures at once.")
    objective = Objective((EachChannel(layer, channels),)).resolved(model)
    part = objective.parts[0]
    assert isinstance(part, EachChannel)
    layer = part.layer
    # Before the noise is made: 256 pictures of 2048 px are 13 GB of noise alone.
    check_room(
        model,
        objective,
        dream_settings(settings),
        (len(channels), 3, settings.size, settings.size),
        f"{len(channels)} channel pictures of {settings.size} px",
        "Ask for fewer channels or a smaller size.",
    )
    noise = starting_noise(first + len(channels), settings.size, settings.seed)[first:]
    noise = noise.to(device or model.device)
    result = dream(noise, model, objective, dream_settings(settings), on_progress=on_progress, should_stop=should_stop)
    index = torch.arange(len(channels))
    start = channel_means(model, layer, noise)[index, list(channels)]
    end = channel_means(model, layer, result.images)[index, list(channels)]
    return ChannelPictures(result.images, layer, channels, start, end)


def dream_settings(settings: ChannelSettings) -> DreamSettings:
    """The dream that grows channel pictures: one octave of `steps` steps from noise, nothing re-injected."""
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
    ).validate()
