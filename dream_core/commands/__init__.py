"""The `deepdream` commands, each a function of plain values (a `job.Job` for the dreaming ones): the job
loaded, the engine called, the outputs written. `parser` turns the command line into these calls."""

from .clip import video, video_identity
from .images import dream, dream_identity, plan_text, sweep, zoom
from .tools import channels, layers, models, presets, train

__all__ = [
    "channels",
    "dream",
    "dream_identity",
    "layers",
    "models",
    "plan_text",
    "presets",
    "sweep",
    "train",
    "video",
    "video_identity",
    "zoom",
]
