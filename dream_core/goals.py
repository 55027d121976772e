"""What each channel picture climbs: its goal, written in the channel list, and the objective parts that climb it.

The channel list (`deepdream channels --channels`, Channel Pictures' `channels`) is a comma-separated list of
items, each one or more pictures:

* ``5`` / ``40-47``: a channel (its mean over the positions), a picture per channel;
* ``-5``: a negative channel: what turns channel 5 off (its mean, climbed downwards);
* ``5@centre`` / ``5@3:4``: a neuron: channel 5 at one position of the layer's grid (row 3, column 4; the centre
  of what the network sees) only;
* ``5x4``: a diverse batch: 4 pictures of channel 5, each also pushed away from the others (lucid's diversity
  term: the cosine similarity of the layer's Gram matrices, subtracted);
* ``3+0.5*17-40``: a direction: the weighted mix of channels (3 + 0.5 x 17 - 40) climbed as one;
* ``class:jellyfish`` / ``class:107``: a class score (the logit) of the network's classifier;
* ``topN`` (alone): the N channels most active on a given image.

Each goal becomes a part of the dream's `Objective`: `Directions` (channels, negative channels, neurons and
directions: a weight per channel and picture), `ClassScores`, `Diversity`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from .errors import DreamError
from .objectives import CLASS_LAYER, MAX_CHANNEL, Part, ReadyContext, Term, _split_items, parse_term

MAX_PICTURES = 256
"""At most this many channel pictures in one batch."""
MAX_DIVERSE = 16
"""At most this many pictures in one diverse batch."""
DIVERSITY_WEIGHT = 2.0
"""How hard the pictures of a diverse batch push apart, in units of the layer's mean absolute activation on each
picture (so the push has the same share at any layer; measured: `bench/channels_versus.py --diversity`)."""


@dataclass(frozen=True)
class Goal:
    """One picture's goal. `mix`: (channel, weight) pairs of the layer (one channel at 1: a channel; at -1: a
    negative channel; several: a direction); `at`: a neuron's (row, column) on the layer's grid, (-1, -1) for the
    centre, None for the mean over positions; `class_name`: a class instead of channels; `group`: the diverse batch
    the picture belongs to (-1: none), `member` its place in it of `members`."""

    mix: tuple[tuple[int, float], ...] = ()
    at: tuple[int, int] | None = None
    class_name: str | None = None
    group: int = -1
    member: int = 0
    members: int = 1

    def label(self, layer: str) -> str:
        """What the picture shows, for the sheet: 'blocks.8[5]', 'blocks.8[5] negative', 'class:jellyfish'..."""
        if self.class_name is not None:
            return f"class:{self.class_name}"
        if len(self.mix) == 1 and abs(self.mix[0][1]) == 1:
            channel, weight = self.mix[0]
            text = f"{layer}[{channel}]" + (" negative" if weight < 0 else "")
        else:
            text = f"{layer}[{_mix_text(self.mix)}]"
        if self.at is not None:
            text += " @centre" if self.at == (-1, -1) else f" @{self.at[0]}:{self.at[1]}"
        if self.group >= 0:
            text += f" diverse {self.member + 1}/{self.members}"
        return text


def channel_goals(channels: Sequence[int]) -> tuple[Goal, ...]:
    """A plain channel goal per channel."""
    return tuple(Goal(((int(channel), 1.0),)) for channel in channels)


def _mix_text(mix: Sequence[tuple[int, float]]) -> str:
    text = ""
    for channel, weight in mix:
        sign = "-" if weight < 0 else ("+" if text else "")
        size = abs(weight)
        text += sign + (str(channel) if size == 1 else f"{size:g}*{channel}")
    return text


_NEURON = re.compile(r"^(\d+)@(centre|center|c|(\d+):(\d+))$")
_DIVERSE = re.compile(r"^(\d+)x(\d+)$")
_COMPONENT = re.compile(r"^(?:(\d+(?:\.\d+)?|\.\d+)\*)?(\d+)$")


def parse_goals(text: str) -> tuple[tuple[Goal, ...], int]:
    """(goals, top) of a channel list (see the module): the goals in order, or ((), N) for 'topN'."""
    items = _split_items(text.replace(" ", ""))
    if not items:
        raise DreamError("No channels given: list some, e.g. '0-7', or ask for the top N of an image ('top8').")
    if len(items) == 1 and re.fullmatch(r"top\d+", items[0].lower()):
        term = parse_term(f"layer[{items[0].lower()}]")
        if term.top > MAX_PICTURES:
            raise DreamError(f"channels {text!r}: at most {MAX_PICTURES} channel pictures at once.")
        return (), term.top
    goals: list[Goal] = []
    for item in items:
        goals += _item_goals(item, group=len({g.group for g in goals if g.group >= 0}))
        if len(goals) > MAX_PICTURES:
            raise DreamError(f"channels {text[:60]!r}: at most {MAX_PICTURES} channel pictures at once.")
    return tuple(goals), 0


def _item_goals(item: str, group: int) -> list[Goal]:
    """The goals of one item of the channel list."""
    lowered = item.lower()
    if lowered.startswith("class:"):
        if not item[6:]:
            raise DreamError(f"{item!r}: name the class, e.g. 'class:jellyfish' or 'class:107'.")
        return [Goal(class_name=item[6:])]
    if lowered.startswith(("top", "bottom")):
        raise DreamError(f"{item!r}: 'topN' picks channels from a picture and goes alone, not in a list.")
    neuron = _NEURON.match(lowered)
    if neuron:
        at = (-1, -1) if neuron[3] is None else (int(neuron[3]), int(neuron[4]))
        return [Goal(((_channel(neuron[1], item), 1.0),), at=at)]
    diverse = _DIVERSE.match(lowered)
    if diverse:
        count = int(diverse[2])
        if not 2 <= count <= MAX_DIVERSE:
            raise DreamError(f"{item!r}: a diverse batch has 2 to {MAX_DIVERSE} pictures.")
        channel = _channel(diverse[1], item)
        return [Goal(((channel, 1.0),), group=group, member=i, members=count) for i in range(count)]
    if item.startswith("-") and item[1:].isdigit():
        return [Goal(((_channel(item[1:], item), -1.0),))]
    if "+" in item or "*" in item or "-" in item[1:] and not re.fullmatch(r"\d+-\d+", item):
        return [Goal(_direction(item))]
    return list(channel_goals(parse_term(f"layer[{item}]").channels))


def _channel(digits: str, item: str) -> int:
    if len(digits) > 6 or int(digits) > MAX_CHANNEL:
        raise DreamError(f"{item!r}: channel {digits[:8]} is beyond any layer's channels (at most {MAX_CHANNEL}).")
    return int(digits)


def _direction(item: str) -> tuple[tuple[int, float], ...]:
    """'3+0.5*17-40' as ((3, 1.0), (17, 0.5), (40, -1.0)); a channel named twice gets the sum."""
    weights: dict[int, float] = {}
    for sign, component in re.findall(r"([+-]?)([^+-]+)", item):
        match = _COMPONENT.match(component)
        if match is None or not component:
            raise DreamError(
                f"Direction {item[:40]!r}: write it as channels with optional weights joined by + and -, "
                "e.g. '3+0.5*17-40'."
            )
        weight = float(match[1] or 1.0) * (-1.0 if sign == "-" else 1.0)
        channel = _channel(match[2], item)
        weights[channel] = weights.get(channel, 0.0) + weight
    mix = tuple((channel, weight) for channel, weight in weights.items() if weight != 0)
    if not mix:
        raise DreamError(f"Direction {item[:40]!r}: its weights cancel out; nothing is left to climb.")
    return mix


# --- The parts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Directions(Part):
    """Picture i climbs the mix of channels `goals[i].mix` of `layer`: its mean over the positions, or its value
    at one position (a neuron); pictures whose goal is a class add nothing here."""

    layer: str
    goals: tuple[Goal, ...]
    weights: torch.Tensor | None = None
    """`[B, C]` on the dream's device (see `readied`)."""

    def terms(self):
        channels = sorted({channel for goal in self.goals for channel, _ in goal.mix})
        return {Term(self.layer, channels=tuple(channels)): 1.0} if channels else {}

    def resolved(self, resolve_weights):
        terms = resolve_weights(self.terms())  # checks the layer and the channels against the network
        return replace(self, layer=next(iter(terms)).layer) if terms else None

    def readied(self, context: ReadyContext) -> Part:
        if context.images.shape[0] != len(self.goals):
            raise DreamError(f"{len(self.goals)} goals for {context.images.shape[0]} pictures: give one each.")
        channels = 1 + max(channel for goal in self.goals for channel, _ in goal.mix)
        weights = torch.zeros(len(self.goals), channels)
        for index, goal in enumerate(self.goals):
            for channel, weight in goal.mix:
                weights[index, channel] += weight
        return replace(self, weights=weights.to(context.images.device))

    def value(self, features, image, whole):
        assert self.weights is not None, "Directions.readied makes the weights"
        activation = features[self.layer][:, : self.weights.shape[1]].float()
        mixed = torch.einsum("bc,bchw->bhw", self.weights, activation)
        values = mixed.mean(dim=(1, 2))  # every picture's mean in one reduction; neurons (usually few) replace theirs
        neurons = [(index, goal.at) for index, goal in enumerate(self.goals) if goal.at is not None]
        if not neurons:
            return values
        at = torch.stack([_at(mixed[index], position, self.layer) for index, position in neurons])
        is_neuron = torch.zeros_like(values, dtype=torch.bool)
        is_neuron[[index for index, _ in neurons]] = True
        return values.masked_scatter(is_neuron, at)


def _at(mixed: torch.Tensor, at: tuple[int, int], layer: str) -> torch.Tensor:
    """A neuron's value: the mixed map at (row, column), (-1, -1) its centre."""
    height, width = mixed.shape
    row, col = (height // 2, width // 2) if at == (-1, -1) else at
    if row >= height or col >= width:
        raise DreamError(
            f"Neuron @{at[0]}:{at[1]} is outside {layer}'s grid of {height}x{width} positions at this picture "
            f"size; give a position within it, or @centre."
        )
    return mixed[row, col]


@dataclass(frozen=True)
class ClassScores(Part):
    """Picture i climbs the score (logit) of class `goals[i].class_name`; pictures whose goal is channels add
    nothing here."""

    goals: tuple[Goal, ...]
    classes: tuple[int, ...] = ()
    """Each picture's class index, -1 for none (see `resolved`)."""
    index: torch.Tensor | None = None
    has_class: torch.Tensor | None = None
    """`[B]`: 1 for the pictures that climb a class, else 0."""

    def terms(self):
        return {Term(CLASS_LAYER, class_index=i): 1.0 for i in self.classes if i >= 0} if self.classes else {}

    def resolved(self, resolve_weights):
        classes = []
        for goal in self.goals:
            if goal.class_name is None:
                classes.append(-1)
                continue
            (term,) = resolve_weights({parse_term(f"class:{goal.class_name}"): 1.0})
            classes.append(int(term.class_index))
        return replace(self, classes=tuple(classes)) if any(i >= 0 for i in classes) else None

    def readied(self, context: ReadyContext) -> Part:
        classes = torch.tensor(self.classes, device=context.images.device)
        return replace(self, index=classes.clamp_min(0)[:, None], has_class=(classes >= 0).float())

    def value(self, features, image, whole):
        assert self.index is not None and self.has_class is not None, "ClassScores.readied makes them"
        return features[CLASS_LAYER].float().gather(1, self.index)[:, 0] * self.has_class


@dataclass(frozen=True)
class Diversity(Part):
    """The pictures of each diverse batch pushed apart: picture i loses `weight` times the mean cosine similarity
    of its Gram matrix of `layer` with those of the other pictures of its batch (lucid's diversity term)."""

    layer: str
    groups: tuple[int, ...]
    weight: float = DIVERSITY_WEIGHT

    def terms(self):
        return {Term(self.layer): 0.0}

    def resolved(self, resolve_weights):
        if all(group < 0 for group in self.groups):
            return None
        return replace(self, layer=next(iter(resolve_weights({Term(self.layer): 1.0}))).layer)

    def value(self, features, image, whole):
        activation = features[self.layer].float().flatten(2)  # [B, C, HW]
        grams = activation @ activation.transpose(1, 2)
        grams = torch.nn.functional.normalize(grams.flatten(1), dim=1)
        similarity = grams @ grams.T  # [B, B]
        groups = torch.tensor(self.groups, device=similarity.device)
        same = (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)
        same.fill_diagonal_(False)
        others = same.sum(1).clamp_min(1)
        scale = activation.detach().abs().mean(dim=(1, 2))
        return -self.weight * scale * (similarity * same).sum(1) / others


def goal_parts(layer: str, goals: Sequence[Goal]) -> tuple[Part, ...]:
    """The objective parts that climb `goals` (one per picture) on `layer`."""
    goals = tuple(goals)
    parts: list[Part] = []
    if any(goal.mix for goal in goals):
        parts.append(Directions(layer, goals))
    if any(goal.class_name is not None for goal in goals):
        parts.append(ClassScores(goals))
    if any(goal.group >= 0 for goal in goals):
        parts.append(Diversity(layer, tuple(goal.group for goal in goals)))
    return tuple(parts)
