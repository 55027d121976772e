"""What every dream node shares: the common inputs (made from the engine's option tables: the ComfyUI widget
format lives here, not in the engine), ComfyUI's image layout to the engine's and back, and `NodeDream`, the one
path from a dream node's inputs to an engine call on ComfyUI's device, with its progress bar, preview, Cancel
and memory handling. Octave Dream, the sweeps, zooms and frames, both video nodes and Channel Pictures all go
through it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..dream_core import DreamSettings
from ..dream_core import options as option_table
from ..dream_core.errors import DreamError
from ..dream_core.feature_model import FeatureModel
from ..dream_core.objectives import Objective
from ..dream_core.options import Option
from ..dream_core.outputs import file_identity
from . import comfy_bridge
from .comfy_io import folded, io

# The pack's own socket types.
FEATURE_MODEL = io.Custom("FEATURE_MODEL")
LAYER_WEIGHTS = io.Custom("LAYER_WEIGHTS")
DREAM_REGIONS = io.Custom("DREAM_REGIONS")
DREAM_NETWORKS = io.Custom("DREAM_NETWORKS")
DREAM_SCHEDULE = io.Custom("DREAM_SCHEDULE")

ESSENTIALS = frozenset({"octaves", "octave_scale", "iterations", "step", "seed"})
"""The dream options a dream node shows unfolded (the ones people turn first); the rest fold under its advanced
inputs where the core folds (`comfy_io.folded`)."""


def widget(opt: Option, optional: bool = False, advanced: bool = False, default: Any = None) -> io.Input:
    """An option of the engine's tables as a ComfyUI widget: typed, with its default, range and tooltip."""
    common: dict[str, Any] = {
        "default": opt.default if default is None else default,
        "tooltip": opt.help,
        "optional": optional,
        **folded(advanced),
    }
    if opt.choices:
        return io.Combo.Input(opt.name, options=list(opt.choices), **common)
    if opt.kind is bool:
        return io.Boolean.Input(opt.name, **common)
    limits = {key: value for key, value in (("min", opt.minimum), ("max", opt.maximum), ("step", opt.step))}
    limits = {key: value for key, value in limits.items() if value is not None}
    return (io.Int if opt.kind is int else io.Float).Input(opt.name, **limits, **common)


def widgets(table: Iterable[Option], essentials: Iterable[str] = ()) -> list[io.Input]:
    """A widget per option of a table, in the table's order; those not among `essentials` fold."""
    shown = set(essentials)
    return [widget(opt, advanced=opt.name not in shown) for opt in table]


def image_input(name: str = "image", tooltip: str = "The images to dream (a whole batch is dreamed).") -> io.Input:
    return io.Image.Input(name, tooltip=tooltip)


def model_input(tooltip: str = "The network from LoadFeatureModel.") -> io.Input:
    return FEATURE_MODEL.Input("feature_model", tooltip=tooltip)


OPTIONAL_INPUTS: dict[str, tuple[Any, str]] = {
    "layer_weights": (
        LAYER_WEIGHTS,
        "Layers to amplify and their weights (from LayerWeights). Not connected: the model's default layers.",
    ),
    "mask": (
        io.Mask,
        "Dream strength per pixel: 0 leaves a pixel untouched, 1 dreams it fully. Resized to the image; one mask or "
        "one per image.",
    ),
    "guide": (
        io.Image,
        "A guide image: the dream moves toward what the network sees in it (its features at the chosen layers). See "
        "guide_mix.",
    ),
    "regions": (
        DREAM_REGIONS,
        "Regions from DreamRegion nodes: each mask dreams its own layer weights, all at once (added to "
        "layer_weights, which apply everywhere).",
    ),
    "networks": (
        DREAM_NETWORKS,
        "More networks from Dream Network nodes, each with its own layer weights, dreaming the same picture at once "
        "(their objectives added to this node's).",
    ),
}


def dream_option_inputs(**defaults) -> list[io.Input]:
    """A widget for every dream option, made from the option table (the essentials unfolded); `defaults` changes
    some defaults. Options added after the first release are left out here: `optional_inputs` puts them after
    every other input."""
    unknown = set(defaults) - {opt.name for opt in option_table.OPTIONS}
    if unknown:
        raise KeyError(f"No dream option named {sorted(unknown)}")
    return [  # the table read at call time: it is the one source
        widget(opt, advanced=opt.name not in ESSENTIALS, default=defaults.get(opt.name))
        for opt in option_table.OPTIONS
        if not opt.appended and not opt.nodes
    ]


def optional_inputs(*names: str, tooltips: dict[str, str] | None = None) -> list[io.Input]:
    """The optional sockets a dream node takes, from the shared list (`tooltips` gives some their node's own),
    and then the widgets of the dream options added after the first release (last, so a saved workflow's widget
    values keep their places; folded)."""
    tips = {name: tip for name, (_, tip) in OPTIONAL_INPUTS.items()} | (tooltips or {})
    sockets = [OPTIONAL_INPUTS[name][0].Input(name, tooltip=tips[name], optional=True) for name in names]
    appended = [widget(opt, optional=True, advanced=True) for opt in option_table.OPTIONS if opt.appended]
    return [*sockets, *appended]


def own_option_inputs(node_id: str) -> list[io.Input]:
    """The widgets of the dream options that only `node_id` shows (`Option.nodes`): its last inputs."""
    return [widget(opt, optional=True, advanced=True) for opt in option_table.OPTIONS if node_id in opt.nodes]


def output(kind: Any, name: str, tooltip: str) -> io.Output:
    """An output shown as `name` (its id is `name_out`: a V3 node's input and output ids all differ, and Octave
    Dream takes an 'image' and gives one)."""
    return kind.Output(f"{name}_out", display_name=name, tooltip=tooltip)


def to_bchw(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE `[B, H, W, C]` (C = 1, 3 or 4) to RGB `[B, 3, H, W]`."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise DreamError(f"Expected an IMAGE [B, H, W, C] with 1, 3 or 4 channels; got {tuple(image.shape)}.")
    image = image[..., :3] if image.shape[-1] == 4 else image.expand(*image.shape[:3], 3)
    return image.permute(0, 3, 1, 2).float()


def to_bhwc(image: torch.Tensor) -> torch.Tensor:
    """RGB `[B, 3, H, W]` to ComfyUI IMAGE `[B, H, W, 3]`, contiguous."""
    return image.permute(0, 2, 3, 1).contiguous()


def dream_layers(feature_model, layer_weights, others=None) -> dict[str, float]:
    """What a dream node amplifies on its own network: the given weights; nothing more if regions or other
    networks say what to dream; else the model's default layers."""
    if layer_weights:
        return layer_weights
    return {} if others else dict(feature_model.spec.default_layers)


@dataclass
class NodeDream:
    """A dream node's inputs in the engine's terms, read once: the one path from any dream node (images, sweeps,
    zooms, clips, streamed videos) to an engine call on ComfyUI's device, with its progress bar, Cancel and
    memory handling."""

    model: FeatureModel
    objectives: list[Objective]
    """Resolved against the model: one, or one per line of a sweep."""
    settings: DreamSettings
    mask: torch.Tensor | None = None
    sweep: bool = False
    """One dream per objective (`layer_sweep` takes them all)."""

    @classmethod
    def read(cls, feature_model, layer_weights, inputs: dict, sweep: list | None = None) -> NodeDream:
        """From the node's model, layer weights (or a sweep's lines), widgets and connected mask/guide/regions."""
        inputs = dict(inputs)
        mask, guide, regions, networks = (inputs.pop(name, None) for name in ("mask", "guide", "regions", "networks"))
        if guide is not None:
            if guide.shape[0] == 0:
                raise DreamError("The guide input holds no image (an empty batch); connect an image or leave it out.")
            guide = to_bchw(guide)[:1]
        lines = sweep if sweep is not None else [dream_layers(feature_model, layer_weights, regions or networks)]
        objectives = [
            Objective.of(line, regions=regions or (), guide=guide, networks=networks or ()).resolved(feature_model)
            for line in lines
        ]
        return cls(feature_model, objectives, DreamSettings().with_options(**inputs), mask, sweep is not None)

    @property
    def objective(self) -> Objective:
        return self.objectives[0]

    @contextlib.contextmanager
    def on_device(self, image_shape: tuple[int, ...]) -> Iterator[torch.device]:
        """The model on ComfyUI's device with room for images of `image_shape`; `settings` then hold the host's
        tile cap."""
        terms = [term for objective in self.objectives for term in objective.terms()]
        others = self.objective.networks()
        with comfy_bridge.dream_device(self.model, image_shape, terms, self.settings, others) as (device, settings):
            self.settings = settings
            yield device

    def progress(self, total: int) -> Callable[..., None]:
        """ComfyUI's progress bar (with a preview) for work counted by the caller, e.g. a clip's frames."""
        return comfy_bridge.progress_reporter(total)

    def engine_options(self, total: int | None = 1) -> dict:
        """The engine call's mask, progress bar with preview (the engine reports its own total from its plan,
        `engine.plan`, unless `total` is given; None: no bar, the caller counts) and Cancel."""
        progress = comfy_bridge.progress_reporter(total) if total is not None else None
        return {"mask": self.mask, "on_progress": progress, "should_stop": comfy_bridge.raise_if_interrupted}


def schedule_input(frames: str) -> io.Input:
    """The optional `schedule` input of a node whose `frames` follow Dream Schedule (put last: saved workflows keep
    their links and widget values)."""
    return DREAM_SCHEDULE.Input(
        "schedule",
        optional=True,
        tooltip=f"Settings that change over {frames}, from Dream Schedule: frame k is dreamed with each scheduled "
        "value at k (frames count from 0).",
    )


def run_engine(function, image, call: NodeDream, *args, **kwargs):
    """`function(images, model, objective, settings, *args, ...)`, `dream` or one of its relatives (`layer_sweep`
    is given the sweep's objectives, the others the one), on ComfyUI's device."""
    images = to_bchw(image)
    objective = call.objectives if call.sweep else call.objective
    with call.on_device(images.shape) as device:
        return function(
            images.to(device), call.model, objective, call.settings, *args, **call.engine_options(), **kwargs
        )


def fingerprint(value: Any) -> str:
    """A node's inputs as text that is the same exactly when the inputs are: tensors by content, a feature model
    by its architecture, weights (a file by content) and learning phase. What a stopped render is known by."""
    return json.dumps(_plain(value), sort_keys=True)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu", torch.float32).contiguous()
        digest = hashlib.blake2b(tensor.numpy().tobytes(), digest_size=16).hexdigest()
        return ["tensor", list(tensor.shape), str(value.dtype), digest]
    if isinstance(value, FeatureModel):
        weights = str(value.weights)
        on_disk = file_identity(weights)[1:] if os.path.isfile(weights) else weights
        return ["model", value.name, on_disk, value.learning_phase]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
