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
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import DreamError
from .options import Option

_HEAD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(~?)\s*:(.*)$", re.S)
_KEY = re.compile(r"^\s*(-?\d+)\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class Schedule:
    """One setting's keys over the frames: (frame, value) in rising frame order."""

    option: Option
    keys: tuple[tuple[int, float], ...]
    smooth: bool = False

    @property
    def name(self) -> str:
        return self.option.name

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


def schedulable(options: Iterable[Option]) -> dict[str, Option]:
    """The options a schedule may name: the numeric ones (not choices, not switches)."""
    return {opt.name: opt for opt in options if opt.kind in (int, float) and not opt.choices}


def parse_schedules(text: str, options: Iterable[Option]) -> tuple[Schedule, ...]:
    """The schedules of `text`, each for one of `options`; DreamError naming the first bad key."""
    known = schedulable(options)
    schedules: dict[str, Schedule] = {}
    for part in (p for line in text.splitlines() for p in line.split(";")):
        if not part.strip() or part.strip().startswith("#"):
            continue
        schedule = _parse_one(part.strip(), known)
        if schedule.name in schedules:
            raise DreamError(f"Schedule '{part.strip()}': {schedule.name} already has a schedule; give it one line.")
        schedules[schedule.name] = schedule
    return tuple(schedules.values())


def _parse_one(text: str, known: dict[str, Option]) -> Schedule:
    head = _HEAD.match(text)
    if head is None:
        raise DreamError(
            f"Schedule '{text}': write it as 'NAME: FRAME=VALUE, FRAME=VALUE' (e.g. 'step: 0=0.005, 48=0.03')."
        )
    name, tilde, body = head.groups()
    option = known.get(name)
    if option is None:
        raise DreamError(
            f"Schedule '{text}': no setting named {name!r} can follow a schedule; these can: "
            f"{', '.join(sorted(known))}."
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
    foreign = [schedule.name for schedule in schedules if schedule.name not in known]
    if foreign:
        raise DreamError(
            f"{where} cannot follow a schedule for {', '.join(foreign)} (a Dream Zoom setting); it follows these: "
            f"{', '.join(sorted(known))}. Take that line out of the Dream Schedule."
        )
    return schedules
