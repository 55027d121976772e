"""Dreams that follow the music: a soundtrack's loudness per frame, as a schedule for one setting.

`envelope` measures the loudness of each frame's slice of the audio (the RMS of the samples shown while the frame
is on screen, optionally of one frequency band only), smooths it with an attack and a release as a compressor or
a VU meter does, and scales it to 0..1 (the loudest frame 1). `react` maps that onto a setting's range as a
`schedule.Schedule` with a key on every frame: silence dreams at LOW, the loudest frame at HIGH. What reads the
text `NAME=LOW:HIGH` (`parse_react`) checks the name and both ends against the setting's own option first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from .errors import DreamError
from .options import Option
from .schedule import Schedule, joined, schedulable

BANDS: dict[str, tuple[float, float | None]] = {
    "full": (0.0, None),
    "bass": (20.0, 250.0),
    "mids": (250.0, 4000.0),
    "highs": (4000.0, None),
}
"""The frequency bands an envelope can follow (Hz, None: up to the top)."""

_REACT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+?)\s*:\s*(\S+)\s*$")


@dataclass(frozen=True)
class Reaction:
    """How a setting follows the audio: `NAME=LOW:HIGH` texts, the band and the smoothing (seconds)."""

    texts: tuple[str, ...] = ()
    band: str = "full"
    attack: float = 0.02
    release: float = 0.25

    def check(self) -> Reaction:
        if self.band not in BANDS:
            raise DreamError(f"band {self.band!r}: one of {', '.join(BANDS)}.")
        for name, value in (("attack", self.attack), ("release", self.release)):
            if not (math.isfinite(value) and 0 <= value <= 10):
                raise DreamError(f"{name} {value}: give seconds from 0 to 10.")
        return self


NO_REACTION = Reaction()
"""Nothing follows the audio."""


def envelope(
    samples: torch.Tensor,
    rate: int,
    frames: int,
    fps: float,
    band: str = "full",
    attack: float = 0.0,
    release: float = 0.0,
) -> list[float]:
    """The loudness of each of `frames` frames at `fps` of `samples` (`[S]` or `[C, S]`, any scale) at `rate` Hz,
    0..1 with the loudest frame at 1 (all 0 for silence). Frame i hears the samples from i/fps to (i+1)/fps (after
    the audio ends: silence). `band` one of `BANDS`; `attack`/`release`: seconds the level takes to rise/fall by
    about two thirds of a jump (0: at once)."""
    if band not in BANDS:
        raise DreamError(f"band {band!r}: one of {', '.join(BANDS)}.")
    if frames < 1 or not (math.isfinite(fps) and fps > 0) or rate <= 0:
        raise DreamError(f"An envelope needs at least one frame at a positive rate; got {frames} at {fps} fps.")
    mono = torch.nan_to_num(samples.detach().to("cpu", torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    mono = mono.mean(0) if mono.ndim == 2 else mono.reshape(-1)
    mono = _band(mono, rate, *BANDS[band])
    levels = []
    for index in range(frames):
        start, stop = round(index * rate / fps), round((index + 1) * rate / fps)
        window = mono[start : max(stop, start + 1)]
        levels.append(float(window.square().mean().sqrt()) if window.numel() else 0.0)
    levels = _smoothed(levels, 1.0 / fps, attack, release)
    loudest = max(levels)
    return [level / loudest if loudest > 1e-9 else 0.0 for level in levels]


def _band(mono: torch.Tensor, rate: int, low: float, high: float | None) -> torch.Tensor:
    """`mono` with only the frequencies from `low` to `high` Hz (the whole signal's spectrum, cut square)."""
    if low <= 0 and high is None:
        return mono
    spectrum = torch.fft.rfft(mono)
    frequencies = torch.fft.rfftfreq(mono.numel(), 1.0 / rate)
    keep = (frequencies >= low) & (frequencies < (high if high is not None else math.inf))
    return torch.fft.irfft(spectrum * keep, n=mono.numel())


def _smoothed(levels: list[float], dt: float, attack: float, release: float) -> list[float]:
    """One-pole smoothing: towards a louder level with the attack's time constant, a quieter one the release's."""
    out, current = [], levels[0]
    for level in levels:
        constant = attack if level > current else release
        current += (level - current) * (1.0 - math.exp(-dt / constant) if constant > 0 else 1.0)
        out.append(current)
    return out


def parse_react(text: str, options: Iterable[Option]) -> tuple[Option, float, float]:
    """`NAME=LOW:HIGH` as (the setting's option, low, high), each end checked against its range."""
    known = schedulable(options)
    match = _REACT.match(text)
    if match is None:
        raise DreamError(f"--react {text!r}: write it as NAME=LOW:HIGH, e.g. 'step=0.002:0.03'.")
    name, low_text, high_text = match.groups()
    option = known.get(name)
    if option is None:
        raise DreamError(
            f"--react {text!r}: no setting named {name!r} can follow the audio; these can: {', '.join(sorted(known))}."
        )
    ends = []
    for end in (low_text, high_text):
        try:
            value = float(end)
        except ValueError:
            raise DreamError(f"--react {text!r}: {end!r} is not a number.") from None
        problem = option.problem(int(value) if option.kind is int and value.is_integer() else value)
        if problem:
            raise DreamError(f"--react {text!r}: {problem}.")
        ends.append(value)
    return option, ends[0], ends[1]


def react(option: Option, low: float, high: float, levels: Sequence[float]) -> Schedule:
    """A schedule with a key on every frame: `low` where `levels` is 0, `high` where it is 1."""
    if not levels:
        raise DreamError("An envelope with no frames cannot drive a setting.")
    return Schedule(option, tuple((index, low + (high - low) * level) for index, level in enumerate(levels)))


def react_schedules(
    reaction: Reaction, sound: tuple[torch.Tensor, int], frames: int, fps: float, options: Iterable[Option]
) -> tuple[Schedule, ...]:
    """The schedules of `reaction`'s texts (checked first) over `frames` frames at `fps`, from `sound` (samples,
    rate): one envelope for all of them."""
    parsed = [parse_react(text, options) for text in reaction.texts]
    named = [option.name for option, _, _ in parsed]
    if len(set(named)) < len(named):
        raise DreamError(f"--react names {', '.join(sorted(n for n in set(named) if named.count(n) > 1))} twice.")
    levels = envelope(*sound, frames, fps, reaction.band, reaction.attack, reaction.release)
    return tuple(react(option, low, high, levels) for option, low, high in parsed)


def merged(schedules: Sequence[Schedule], reactions: Sequence[Schedule]) -> tuple[Schedule, ...]:
    """Keyframed schedules and audio-driven ones together; a setting in both is an error naming it."""
    return joined(schedules, reactions, "has a --schedule and follows the audio (--react): give it one of the two.")
