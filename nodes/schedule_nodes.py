"""Settings over the frames: Dream Schedule, keyframed values for the animation nodes (toward issue 29)."""

from __future__ import annotations

from ..dream_core.animation import zoom_schedulable
from ..dream_core.errors import DreamError
from ..dream_core.schedule import parse_schedules, schedulable
from .base import DREAM_SCHEDULE, output
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
            "run with a message naming the key. zoom, angle and shift_x/shift_y are Dream Zoom's alone.",
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
    def execute(cls, schedule: str, schedules=None) -> io.NodeOutput:
        earlier = tuple(schedules or ())
        new = parse_schedules(schedule, zoom_schedulable())
        twice = {s.name for s in earlier} & {s.name for s in new}
        if twice:
            raise DreamError(f"{', '.join(sorted(twice))} already has a schedule from the chained Dream Schedule.")
        return io.NodeOutput((*earlier, *new))
