"""What a command line asks for, as a call of a command with plain values (`Call`): the dream flags read once
into a `job.Job`, the other flags into the command's own arguments and settings. Made from the parsed flags'
values (`parser`); nothing here knows how they were parsed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import commands
from . import options as option_table
from .animation import ZOOM_OPTIONS
from .audio import Reaction
from .cluster import RayRequest
from .errors import DreamError
from .job import Job, NetworkSpec, RegionSpec
from .objectives import parse_layer_weights
from .options import ChannelSettings, Option, VideoSettings
from .presets import default_preset, get_preset
from .schedule import Schedules
from .training import TrainSettings
from .zoo import DEFAULT_MODEL, get_spec

Values = Mapping[str, Any]
"""The flags' values by name (their `dest`)."""


@dataclass
class Call:
    """What a command line asks for: a command and its arguments, and whether to log more."""

    command: Callable[..., int]
    arguments: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def __call__(self) -> int:
        return self.command(**self.arguments)


def job_from_values(values: Values) -> Job:
    """The job the dream flags ask for: the preset's model, layers and settings unless flags say otherwise."""
    preset = get_preset(values["preset"]) if values["preset"] else None
    model = get_spec(values["model"] or (preset.model if preset else DEFAULT_MODEL)).name
    if preset is None or preset.model != model:
        preset = default_preset(model)
    settings = preset.settings if preset else option_table.DreamSettings()
    given = {opt.name: values[opt.name] for opt in option_table.OPTIONS if values[opt.name] is not None}
    settings = settings.with_options(**given).validate()
    layers = (
        parse_layer_weights(values["layers"])
        if values["layers"]
        else dict(preset.layers if preset else get_spec(model).default_layers)
    )
    if values["guide"] is None and values["guide_mix"] is not None:
        raise DreamError("--guide-mix only matters with --guide IMAGE; give a guide image or leave it out.")
    if values["weights_dir"] is not None and (
        values["weights"] != "imagenet" or get_spec(model).imagenet_weights is None
    ):
        # Only torchvision's downloaded weights are looked for there.
        raise DreamError(
            f"--weights-dir is where torchvision's ImageNet weights are looked for; {model} with "
            f"--weights {values['weights']} does not use it. Leave it out."
        )
    return Job(
        model=model,
        layers=tuple(layers.items()),
        settings=settings,
        weights=values["weights"],
        weights_dir=str(values["weights_dir"]) if values["weights_dir"] is not None else None,
        layers_given=bool(values["layers"]),
        learning_phase=values["learning_phase"] or "inference",
        mask=str(values["mask"]) if values["mask"] else None,
        guide=str(values["guide"]) if values["guide"] else None,
        regions=tuple(RegionSpec.parse(text) for text in values["region"]),
        networks=tuple(NetworkSpec.parse(text) for text in values["network"]),
        device=values["device"],
    )


def ray_request(values: Values) -> RayRequest | None:
    if values["ray"] is None:
        if values.get("workers", 0) or values.get("worker_threads", 0):
            raise DreamError("--workers and --worker-threads only matter with --ray; add --ray or leave them out.")
        return None
    return RayRequest(values["ray"] or None, values["workers"], values["worker_threads"])


def dream_call(values: Values) -> Call:
    ray = ray_request(values)
    return Call(
        commands.dream,
        dict(
            job=job_from_values(values),
            given=values["inputs"],
            output=Path(values["output"]),
            frames_every=values["frames_every"],
            save_octaves=values["save_octaves"],
            overwrite=values["overwrite"],
            ray=ray,
        ),
    )


def sweep_call(values: Values) -> Call:
    ray = ray_request(values)
    return Call(
        commands.sweep,
        dict(
            job=job_from_values(values),
            given=Path(values["input"]),
            output=Path(values["output"]),
            lines=values["line"],
            columns=values["columns"],
            overwrite=values["overwrite"],
            ray=ray,
        ),
    )


def zoom_call(values: Values) -> Call:
    motion = {opt.name: values[opt.name] for opt in ZOOM_OPTIONS}
    return Call(
        commands.zoom,
        dict(
            job=job_from_values(values),
            given=Path(values["input"]),
            output=Path(values["output"]),
            motion=motion,
            fps=values["fps"],
            schedules=schedule_text(values),
            overwrite=values["overwrite"],
            reaction=reaction(values),
            audio=Path(values["audio"]) if values["audio"] else None,
            loop=values["loop"],
        ),
    )


def schedule_text(values: Values) -> Schedules:
    """--schedule's texts, one per line, with --blend-to's layer weights."""
    blend_to = parse_layer_weights(values["blend_to"]) if values["blend_to"] else None
    return Schedules("\n".join(values["schedule"]), blend_to)


def reaction(values: Values) -> Reaction:
    """--react and its band and smoothing."""
    return Reaction(tuple(values["react"]), values["band"], values["attack"], values["release"]).check()


def video_call(values: Values) -> Call:
    ray = ray_request(values)
    given = {opt.name: values[opt.name] for opt in option_table.VIDEO_OPTIONS if values[opt.name] is not None}
    settings = VideoSettings(**given).validate()
    return Call(
        commands.video,
        dict(
            job=job_from_values(values),
            given=Path(values["input"]),
            output=Path(values["output"]),
            settings=settings,
            fps=values["fps"],
            schedules=schedule_text(values),
            reaction=reaction(values),
            overwrite=values["overwrite"],
            ray=ray,
        ),
    )


def _table_settings(values: Values, table: Sequence[Option]) -> dict[str, Any]:
    return {opt.name: values[opt.name] for opt in table if values[opt.name] is not None}


def channels_call(values: Values) -> Call:
    settings = ChannelSettings(**_table_settings(values, option_table.CHANNEL_OPTIONS))
    return Call(
        commands.channels,
        dict(
            output=Path(values["output"]),
            settings=settings,
            model=values["model"],
            weights=values["weights"],
            weights_dir=values["weights_dir"],
            device=values["device"],
            layer=values["layer"],
            chosen_text=values["channels"],
            image=Path(values["image"]) if values["image"] else None,
            pictures=Path(values["pictures"]) if values["pictures"] else None,
            columns=values["columns"],
            overwrite=values["overwrite"],
            ray=ray_request(values),
        ),
    )


def train_call(values: Values) -> Call:
    settings = TrainSettings(**_table_settings(values, option_table.TRAIN_OPTIONS))
    return Call(
        commands.train,
        dict(
            folder=Path(values["folder"]),
            output=Path(values["output"]),
            settings=settings,
            model=values["model"],
            weights=values["weights"],
            weights_dir=values["weights_dir"],
            device=values["device"],
            overwrite=values["overwrite"],
        ),
    )


def models_call(values: Values) -> Call:
    return Call(commands.models, {"weights_dir": values["weights_dir"]})


def layers_call(values: Values) -> Call:
    return Call(commands.layers, {"model": values["model"]})


def presets_call(_values: Values) -> Call:
    return Call(commands.presets)
