"""Settings over the frames: Dream Schedule, keyframed values for the animation nodes (toward issue 29)."""

from __future__ import annotations

import torch

from ..dream_core.animation import zoom_schedulable
from ..dream_core.audio import BANDS, envelope, react
from ..dream_core.errors import DreamError
from ..dream_core.schedule import Schedule, joined, parse_schedules, schedulable
from ..dream_core.videoio import VideoSource, read_audio
from . import comfy_bridge
from .base import DREAM_SCHEDULE, LAYER_WEIGHTS, output
from .comfy_io import io
from .node import node_schema

EXAMPLE = "step: 0=0.005, 23=0.03\nzoom~: 0=1.0, 23=1.08"


class DreamSchedule(io.ComfyNode):
    """Keyframed settings, as text, for the frames of an animation."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        names = ", ".join(sorted(schedulable(zoom_schedulable())))
        return node_schema(
            "DreamSchedule",
            "Dream Schedule",
            "Settings that change over the frames of Dream Zoom, Dream Video, Dream Video File and Dream Frames (its "
            "batch as a sequence): one line per setting, 'NAME: FRAME=VALUE, "
            "FRAME=VALUE, ...' (frames from 0). Between two keys the value moves in a straight line ('NAME~:' eases "
            "in and out); before the first key and after the last it holds. Chain several (each takes the previous "
            "ones). Every key is checked here: a wrong name, frames out of order or a value out of range stop the "
            "run with a message naming the key. zoom, angle and shift_x/shift_y are Dream Zoom's alone. A layer's "
            "weight follows 'weight(LAYER): ...' (e.g. weight(mixed4)); 'blend: 0=0, 23=1' moves all the layer "
            "weights toward those connected to blend_to.",
            [
                io.String.Input(
                    "schedule",
                    multiline=True,
                    default=EXAMPLE,
                    tooltip=f"One setting per line, 'NAME: FRAME=VALUE, ...'. Settings: {names}.",
                ),
                DREAM_SCHEDULE.Input(
                    "schedules", optional=True, tooltip="Schedules from another Dream Schedule, to add to."
                ),
                LAYER_WEIGHTS.Input(
                    "blend_to",
                    optional=True,
                    tooltip="The layer weights a 'blend: FRAME=VALUE, ...' line moves toward (0: the dream's own "
                    "layer weights, 1: these).",
                ),
            ],
            [
                output(
                    DREAM_SCHEDULE,
                    "schedules",
                    "The schedules so far, for the 'schedule' input of Dream Zoom, Dream Video, Dream Video File or "
                    "Dream Frames.",
                )
            ],
            aliases=("keyframes", "schedule", "animate settings", "deforum", "deep dream animation"),
        )

    @classmethod
    def execute(cls, schedule: str, schedules=None, blend_to=None) -> io.NodeOutput:
        return io.NodeOutput(chained(schedules, parse_schedules(schedule, zoom_schedulable(), blend_to)))


def chained(earlier, new) -> tuple[Schedule, ...]:
    """The chained node's schedules and this node's; a setting in both is an error naming it."""
    return joined(tuple(earlier or ()), new, "already has a schedule from the chained node.")


def _seconds(name: str, default: float, tooltip: str) -> io.Input:
    return io.Float.Input(name, default=default, min=0.0, max=10.0, step=0.01, tooltip=tooltip)


def _envelope_inputs() -> list[io.Input]:
    names = sorted(schedulable(zoom_schedulable()))
    return [
        io.Combo.Input("setting", options=names, default="step", tooltip="The setting that follows the audio."),
        *(
            io.Float.Input(name, default=default, min=-1024.0, max=1024.0, step=0.001, tooltip=tooltip)
            for name, default, tooltip in (
                ("low", 0.002, "The setting's value in silence (checked against its range)."),
                ("high", 0.03, "The setting's value on the loudest frame (checked against its range)."),
            )
        ),
        io.Combo.Input(
            "band",
            options=list(BANDS),
            default="full",
            tooltip="The frequencies heard: full, bass (20-250 Hz: kicks), mids (250-4000 Hz), highs (4 kHz up: hats).",
        ),
        _seconds("attack", 0.02, "Seconds the level takes to rise to a louder frame (0: at once)."),
        _seconds("release", 0.25, "Seconds the level takes to fall after a loud frame: longer, smoother."),
        io.Float.Input(
            "fps",
            default=12.0,
            min=0.1,
            max=240.0,
            step=0.1,
            tooltip="Frames per second, frame i hearing the audio from i/fps s; a connected "
            "video's own rate replaces it.",
        ),
        io.Int.Input(
            "frames",
            default=0,
            min=0,
            max=100000,
            tooltip="How many frames; 0: the connected video's count, else as long as the audio lasts at fps.",
        ),
        io.Audio.Input("audio", optional=True, tooltip="The sound to follow (else the video's own)."),
        io.Video.Input(
            "video",
            optional=True,
            tooltip="The clip being dreamed: its frame rate and count, and its soundtrack "
            "unless an audio is connected.",
        ),
        DREAM_SCHEDULE.Input(
            "schedules",
            optional=True,
            tooltip="Schedules from Dream Schedule or another Audio Envelope, to add to.",
        ),
    ]


class AudioEnvelope(io.ComfyNode):
    """A soundtrack's loudness per frame, as a schedule for one setting: dreams that follow the music."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "AudioEnvelope",
            "Audio Envelope",
            "Makes a setting follow the music: measures how loud the audio is during each frame (optionally in one "
            "frequency band), smooths it with attack and release, and maps it onto 'low' (silence) .. 'high' (the "
            "loudest frame) as a schedule for Dream Video, Dream Video File, Dream Zoom or Dream Frames. Connect the "
            "clip's VIDEO to hear its own soundtrack at its own frame rate, or an AUDIO (Load Audio) with a frame "
            "rate. Chain several for several settings.",
            _envelope_inputs(),
            [output(DREAM_SCHEDULE, "schedules", "The schedules so far, this setting's included.")],
            aliases=("audio reactive", "music", "beat", "sound", "envelope", "deep dream music"),
        )

    @classmethod
    def execute(
        cls, setting, low, high, band, attack, release, fps, frames, audio=None, video=None, schedules=None
    ) -> io.NodeOutput:
        option = schedulable(zoom_schedulable()).get(setting)
        if option is None:
            raise DreamError(f"setting {setting!r} cannot follow the audio.")
        for end in (low, high):
            problem = option.problem(round(end) if option.kind is int else end)
            if problem:
                raise DreamError(f"Audio Envelope, {setting}: {problem}.")
        samples, rate, fps, frames = _heard(audio, video, fps, frames)
        levels = envelope(samples, rate, frames, fps, band, attack, release)
        return io.NodeOutput(chained(schedules, (react(option, low, high, levels),)))


def _heard(audio, video, fps: float, frames: int) -> tuple[torch.Tensor, int, float, int]:
    """The samples, their rate, the frame rate and the frame count an envelope is made of."""
    if audio is None and video is None:
        raise DreamError("Audio Envelope hears nothing: connect an AUDIO (Load Audio) or the clip's VIDEO.")
    if video is not None:
        source = VideoSource(comfy_bridge.video_path(video))
        fps = float(source.rate)
        frames = frames or source.count or 0
        if audio is None:
            samples, rate = read_audio(source.path)
    if audio is not None:
        waveform = audio.get("waveform") if isinstance(audio, dict) else None
        if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or 0 in waveform.shape:
            raise DreamError("The AUDIO holds no samples: check the file Load Audio read, or connect another.")
        samples, rate = waveform[0], int(audio.get("sample_rate") or 0)
    if rate <= 0:
        raise DreamError(f"The audio's sample rate is {rate} Hz: it needs a positive rate; check the audio node.")
    if not frames:
        frames = max(1, round(samples.shape[-1] / rate * fps))
    return samples, rate, fps, frames
