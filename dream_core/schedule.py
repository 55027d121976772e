"""Settings that change over the frames of an animation or a clip: keyframed schedules (toward issue 29).

One schedule per setting, in text: `NAME: FRAME=VALUE, FRAME=VALUE, ...` (e.g. `step: 0=0.005, 48=0.03`). Between
two keys the value moves in a straight line; `NAME~:` eases in and out instead (a cubic, smoothstep, so it never
overshoots its keys). Before the first key the first value holds, after the last the last. Several schedules go
one per line (or separated by `;`). A whole-number setting is rounded at each frame.

Every key is checked when the text is read, against the setting's own option (its name, its range), so a bad
schedule is one message naming the key before any work.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import DreamError
from .feature_model import FeatureModel
from .objectives import Layers, Objective, parse_layer_weights
from .options import Option

_HEAD = re.compile(r"^\s*(weight\(.+?\)|[A-Za-z_][A-Za-z0-9_]*)\s*(~?)\s*:(.*)$", re.S)
WEIGHT_RANGE = 1000.0
"""A scheduled layer weight's bound either way."""
BLEND = Option(
    "blend",
    0.0,
    "How far the layer weights have moved toward the blend's target: 0 = the dream's own, 1 = the target's.",
    minimum=0.0,
    maximum=1.0,
)
_KEY = re.compile(r"^\s*(-?\d+)\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class Schedule:
    """One setting's keys over the frames: (frame, value) in rising frame order."""

    option: Option
    keys: tuple[tuple[int, float], ...]
    smooth: bool = False
    target: tuple[tuple[str, float], ...] = ()
    """For `blend`: the layer weights (text, weight) it moves toward."""

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def layer(self) -> str | None:
        """For `weight(TERM)`: the term whose weight it sets; else None."""
        return self.name[len("weight(") : -1] if self.name.startswith("weight(") else None

    @property
    def weighting(self) -> bool:
        """Whether it changes the layer weights (`weight(TERM)`, `blend`) rather than a setting."""
        return self.layer is not None or self.name == BLEND.name

    def at(self, frame: int) -> float | int:
        """The setting's value at `frame` (0 is the first frame)."""
        frames = [key[0] for key in self.keys]
        index = bisect.bisect_right(frames, frame)
        if index == 0:
            value = self.keys[0][1]
        elif index == len(self.keys):
            value = self.keys[-1][1]
        else:
            (f0, v0), (f1, v1) = self.keys[index - 1], self.keys[index]
            t = (frame - f0) / (f1 - f0)
            if self.smooth:
                t = t * t * (3 - 2 * t)
            value = v0 + (v1 - v0) * t
        return round(value) if self.option.kind is int else value

    def values(self, count: int) -> list[float | int]:
        """The value at each of `count` frames."""
        return [self.at(frame) for frame in range(count)]


@dataclass(frozen=True)
class Schedules:
    """Schedules as a command is given them: their text, and the layer weights a `blend` moves toward."""

    text: str = ""
    blend_to: Mapping[Any, float] | None = None

    def parsed(self, options: Iterable[Option]) -> tuple[Schedule, ...]:
        return parse_schedules(self.text, options, self.blend_to)


def read_schedules(given: str | Schedules, options: Iterable[Option]) -> tuple[Schedule, ...]:
    """`given` (text, or text with a blend's target) read as schedules over `options`."""
    return (given if isinstance(given, Schedules) else Schedules(given)).parsed(options)


def joined(first: Sequence[Schedule], second: Sequence[Schedule], clash: str) -> tuple[Schedule, ...]:
    """Two sets of schedules as one; a setting in both is a DreamError: its names, then `clash`."""
    both = {s.name for s in first} & {s.name for s in second}
    if both:
        raise DreamError(f"{', '.join(sorted(both))} {clash}")
    return (*first, *second)


def schedulable(options: Iterable[Option]) -> dict[str, Option]:
    """The options a schedule may name: the numeric ones (not choices, not switches)."""
    return {opt.name: opt for opt in options if opt.kind in (int, float) and not opt.choices}


def parse_schedules(
    text: str, options: Iterable[Option], blend_to: Mapping[str, float] | None = None
) -> tuple[Schedule, ...]:
    """The schedules of `text`, each for one of `options`, a layer's weight (`weight(TERM)`, e.g. `weight(mixed4)`)
    or `blend` (toward the layer weights `blend_to`); DreamError naming the first bad key."""
    known = schedulable(options)
    schedules: dict[str, Schedule] = {}
    for part in (p for line in text.splitlines() for p in line.split(";")):
        if not part.strip() or part.strip().startswith("#"):
            continue
        schedule = _parse_one(part.strip(), known)
        if schedule.name in schedules:
            raise DreamError(f"Schedule '{part.strip()}': {schedule.name} already has a schedule; give it one line.")
        if schedule.name == BLEND.name:
            if not blend_to:
                raise DreamError(
                    f"Schedule '{part.strip()}': blend moves the layer weights toward a second weighting; give it "
                    "(--blend-to LAYERS on the command line, Dream Schedule's blend_to input in ComfyUI)."
                )
            schedule = replace(schedule, target=tuple((str(term), float(w)) for term, w in blend_to.items()))
        schedules[schedule.name] = schedule
    return tuple(schedules.values())


def _parse_one(text: str, known: dict[str, Option]) -> Schedule:
    head = _HEAD.match(text)
    if head is None:
        raise DreamError(
            f"Schedule '{text}': write it as 'NAME: FRAME=VALUE, FRAME=VALUE' (e.g. 'step: 0=0.005, 48=0.03')."
        )
    name, tilde, body = head.groups()
    option = known.get(name) or _weighting_option(name)
    if option is None:
        raise DreamError(
            f"Schedule '{text}': no setting named {name!r} can follow a schedule; these can: "
            f"{', '.join(sorted(known))}, a layer's weight as weight(LAYER) (e.g. weight(mixed4)), and blend."
        )
    keys: list[tuple[int, float]] = []
    for raw in body.split(","):
        key = _KEY.match(raw)
        if key is None:
            raise DreamError(f"Schedule for {name}, key '{raw.strip()}': write a key as FRAME=VALUE, e.g. 0=0.005.")
        frame, value = int(key.group(1)), _number(key.group(2), option)
        if value is None:
            raise DreamError(f"Schedule for {name}, key '{raw.strip()}': {key.group(2)!r} is not a number.")
        if frame < 0:
            raise DreamError(f"Schedule for {name}, key '{raw.strip()}': frames count from 0.")
        if keys and frame <= keys[-1][0]:
            raise DreamError(
                f"Schedule for {name}, key '{raw.strip()}': frame {frame} comes after frame {keys[-1][0]}; give the "
                "keys in rising frame order."
            )
        problem = option.problem(value)
        if problem:
            raise DreamError(f"Schedule for {name}, key '{raw.strip()}': {problem}.")
        keys.append((frame, value))
    return Schedule(option, tuple(keys), smooth=bool(tilde))


def _weighting_option(name: str) -> Option | None:
    """The option of a layer-weight schedule (`weight(TERM)`, the term checked as layer weights are) or of `blend`."""
    if name == BLEND.name:
        return BLEND
    if not name.startswith("weight("):
        return None
    term = name[len("weight(") : -1].strip()
    try:
        parse_layer_weights(f"{term}: 1")
    except DreamError as error:
        raise DreamError(f"Schedule for {name}: {error}") from None
    return Option(f"weight({term})", 1.0, f"The weight of {term}.", minimum=-WEIGHT_RANGE, maximum=WEIGHT_RANGE)


def objective_at(objective: Objective, schedules: Sequence[Schedule], frame: int, model: FeatureModel) -> Objective:
    """`objective` (resolved against `model`) with its layer weights at `frame`: blended toward `blend`'s target,
    then each `weight(TERM)` schedule's value for its term. Unchanged (the same object) without such schedules."""
    weighting = [schedule for schedule in schedules if schedule.weighting]
    if not weighting:
        return objective
    layers = [part for part in objective.parts if isinstance(part, Layers)]
    if not layers:
        raise DreamError("A layer-weight schedule changes the dream's layers, and this dream has none (only regions).")
    weights = dict(layers[0].weights)
    for schedule in weighting:
        value = float(schedule.at(frame))
        if schedule.layer is None:  # blend
            target = model.resolve_weights(dict(schedule.target))
            weights = {
                term: (1 - value) * weights.get(term, 0.0) + value * target.get(term, 0.0)
                for term in {**weights, **target}
            }
    for schedule in weighting:
        if schedule.layer is not None:
            (term,) = model.resolve_weights({schedule.layer: 1.0})
            weights[term] = float(schedule.at(frame))
    parts = tuple(replace(part, weights=weights) if part is layers[0] else part for part in objective.parts)
    return replace(objective, parts=parts).resolved(model)


def _number(text: str, option: Option) -> float | int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if option.kind is int and value.is_integer() else value


def only_settings(schedules: Iterable[Schedule], options: Iterable[Option], where: str) -> tuple[Schedule, ...]:
    """`schedules` if each names one of `options`; else a DreamError naming the ones `where` cannot follow."""
    schedules = tuple(schedules)
    known = schedulable(options)
    foreign = [schedule.name for schedule in schedules if schedule.name not in known and not schedule.weighting]
    if foreign:
        raise DreamError(
            f"{where} cannot follow a schedule for {', '.join(foreign)} (a Dream Zoom setting); it follows these: "
            f"{', '.join(sorted(known))}. Take that line out of the Dream Schedule."
        )
    return schedules
