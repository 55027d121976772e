"""Nodes that dream: OctaveDream, and DetailReinject for chaining dreams with upscalers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..dream_core import DreamSettings, dream
from ..dream_core import options as option_table
from ..dream_core.errors import DreamError
from ..dream_core.imageops import reinject_detail, reinject_detail_bytes, resize
from ..dream_core.memory import MemoryEstimate, check_memory
from ..dream_core.objectives import Objective
from . import comfy_bridge
from .node import node

IMAGE_INPUT = ("IMAGE", {"tooltip": "The images to dream (a whole batch is dreamed)."})
FEATURE_MODEL_INPUT = ("FEATURE_MODEL", {"tooltip": "The network from LoadFeatureModel."})
OPTIONAL_INPUTS = {
    "layer_weights": (
        "LAYER_WEIGHTS",
        {"tooltip": "Layers to amplify and their weights (from LayerWeights). Not connected: the model's default "
         "layers."},
    ),
    "mask": (
        "MASK",
        {"tooltip": "Dream strength per pixel: 0 leaves a pixel untouched, 1 dreams it fully. Resized to the image; "
         "one mask or one per image."},
    ),
    "guide": (
        "IMAGE",
        {"tooltip": "A guide image: the dream moves toward what the network sees in it (its features at the chosen "
         "layers). See guide_mix."},
    ),
    "regions": (
        "DREAM_REGIONS",
        {"tooltip": "Regions from DreamRegion nodes: each mask dreams its own layer weights, all at once (added to "
         "layer_weights, which apply everywhere)."},
    ),
    "networks": (
        "DREAM_NETWORKS",
        {"tooltip": "More networks from Dream Network nodes, each with its own layer weights, dreaming the same "
         "picture at once (their objectives added to this node's)."},
    ),
}  # fmt: skip


def dream_option_inputs(**defaults) -> dict[str, tuple]:
    """A widget for every dream option, made from the option table; `defaults` changes some defaults. Options
    added after the first release are left out here: `optional_inputs` puts them after every other input."""
    unknown = set(defaults) - {opt.name for opt in option_table.OPTIONS}
    if unknown:
        raise KeyError(f"No dream option named {sorted(unknown)}")
    specs = {}
    for opt in option_table.OPTIONS:  # read at call time: the table is the one source
        if opt.appended:
            continue
        kind, options = opt.widget()
        if opt.name in defaults:
            options["default"] = defaults[opt.name]
        specs[opt.name] = (kind, options)
    return specs


def optional_inputs(*names: str) -> dict[str, tuple]:
    """The optional inputs a dream node takes, from the shared list, and then the widgets of the dream options
    added after the first release (last, so a saved workflow's widget values keep their places)."""
    appended = {opt.name: opt.widget() for opt in option_table.OPTIONS if opt.appended}
    return {**{name: OPTIONAL_INPUTS[name] for name in names}, **appended}


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

    model: Any
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
        objectives = [Objective.of(line, regions=regions or (), guide=guide, networks=networks or ()).resolved(
            feature_model) for line in lines]  # fmt: skip
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

    def engine_options(self, total: int | None = 1) -> dict:
        """The engine call's mask, progress bar with preview (the engine reports its own total from its plan,
        `engine.plan`, unless `total` is given; None: no bar, the caller counts) and Cancel."""
        progress = comfy_bridge.progress_reporter(total) if total is not None else None
        return {"mask": self.mask, "on_progress": progress, "should_stop": comfy_bridge.raise_if_interrupted}


def run_engine(function, image, call: NodeDream, *args, **kwargs):
    """`function(images, model, objective, settings, *args, ...)`, `dream` or one of its relatives (`layer_sweep`
    is given the sweep's objectives, the others the one), on ComfyUI's device."""
    images = to_bchw(image)
    objective = call.objectives if call.sweep else call.objective
    with call.on_device(images.shape) as device:
        return function(images.to(device), call.model, objective, call.settings, *args, **call.engine_options(),
                        **kwargs)  # fmt: skip


def _octave_batch(octave_images: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """Per-octave images enlarged to the final size, image by image: [B * octaves, 3, H, W]."""
    stacked = torch.stack([resize(octave, shape) for octave in octave_images], dim=1)
    return stacked.flatten(0, 1)


@node("Octave Dream")
class OctaveDream:
    """The DeepDream loop over several octaves, with optional mask."""

    DESCRIPTION = (
        "DeepDream: gradient ascent on the image so that the chosen layers fire harder, over several "
        "octaves (small to full size), re-injecting the detail lost by shrinking. Defaults are Keras' "
        "DeepDream example's numbers with Google's jitter. Every image of a batch is dreamed."
    )
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("image", "octave_images")
    OUTPUT_TOOLTIPS = (
        "The dreamed images, same size as the input.",
        "The image after each octave, enlarged to the final size: for each input image, one frame per "
        "octave (for previews and animations).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"image": IMAGE_INPUT, "feature_model": FEATURE_MODEL_INPUT, **dream_option_inputs()},
            "optional": optional_inputs("layer_weights", "mask", "guide", "regions", "networks"),
        }

    def run(self, image, feature_model, layer_weights=None, **inputs):
        result = run_engine(dream, image, NodeDream.read(feature_model, layer_weights, inputs))
        out = comfy_bridge.output_device()
        frames = _octave_batch(result.octave_images, tuple(result.images.shape[-2:]))
        return (to_bhwc(result.images).to(out), to_bhwc(frames).to(out))


@node("Detail Reinject")
class DetailReinject:
    """Enlarges a dream and adds back the original's detail: put an upscaler between dreams."""

    DESCRIPTION = (
        "Enlarges a dream to a chosen size and adds back the detail of the original photo that the smaller "
        "dream lacks (the step between octaves, as a node). Connect an upscaler's output to 'upscaled' to "
        "use it instead of a plain bilinear enlargement; then dream again at the larger size."
    )
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The enlarged dream with the original's detail re-injected.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dream": ("IMAGE", {"tooltip": "The dreamed images, at the size they were dreamed."}),
                "original": ("IMAGE", {"tooltip": "The original photo (any size; its detail is re-injected)."}),
                "width": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "Output width; 0 = the original's. Ignored when 'upscaled' is connected.",
                    },
                ),
                "height": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "Output height; 0 = the original's. Ignored when 'upscaled' is connected.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 2.0,
                        "step": 0.05,
                        "tooltip": "How much of the lost detail to add back (1 = all).",
                    },
                ),
            },
            "optional": {
                "upscaled": ("IMAGE", {"tooltip": "The dream enlarged by an upscaler; sets the output size."}),
            },
        }

    def run(self, dream, original, width, height, strength, upscaled=None):
        dreamed, original_bchw = to_bchw(dream), to_bchw(original)
        shape = (height or original_bchw.shape[-2], width or original_bchw.shape[-1])
        if upscaled is None:  # an upscaler's output is already in memory: only a size asked for here can be huge
            batch = max(dreamed.shape[0], original_bchw.shape[0])
            check_memory(MemoryEstimate(0, 0, reinject_detail_bytes(batch, shape), 0), dreamed.device,
                         f"Enlarging {batch} picture(s) to {shape[1]}x{shape[0]} px", "Ask for a smaller size.")
        result = reinject_detail(
            dreamed, original_bchw, shape=shape,
            upscaled=to_bchw(upscaled) if upscaled is not None else None, strength=strength,
        )  # fmt: skip
        return (to_bhwc(result).to(comfy_bridge.output_device()),)


@node("Dream Region")
class DreamRegion:
    """One region of a multi-region dream: a mask and the layer weights dreamed inside it."""

    DESCRIPTION = (
        "Defines a region for OctaveDream: inside this mask, the dream amplifies these layer weights. Chain "
        "several DreamRegion nodes (each takes the previous ones) to dream different layers in different parts "
        "of the picture at once, e.g. eyes on the left, buildings on the right."
    )
    RETURN_TYPES = ("DREAM_REGIONS",)
    RETURN_NAMES = ("regions",)
    OUTPUT_TOOLTIPS = ("The regions so far, for OctaveDream's 'regions' input or another DreamRegion.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "mask": ("MASK", {"tooltip": "Where this region is (1 = fully in it); resized to the image."}),
                "layer_weights": ("LAYER_WEIGHTS", {"tooltip": "What to dream inside this region."}),
            },
            "optional": {
                "regions": ("DREAM_REGIONS", {"tooltip": "Regions defined before this one, to add to."}),
            },
        }

    def run(self, mask, layer_weights, regions=None):
        # A new list: the incoming one is shared with other nodes and cached.
        return ([*(regions or ()), (mask, dict(layer_weights))],)


@node("Dream Network")
class DreamNetwork:
    """One more network for a dream: a feature model and the layer weights it dreams, on the same picture."""

    DESCRIPTION = (
        "Adds a network to a dream: this feature model, with its own layer weights, climbs the same picture as "
        "the dream node's own network, at every step (the two objectives add up; the gradient flows through "
        "both). E.g. an ImageNet network's eyes with a fine-tuned network's textures. Chain several (each takes "
        "the previous ones) and connect the last to a dream node's 'networks' input. Each network costs its "
        "own forward and backward pass per step."
    )
    RETURN_TYPES = ("DREAM_NETWORKS",)
    RETURN_NAMES = ("networks",)
    OUTPUT_TOOLTIPS = ("The networks so far, for a dream node's 'networks' input or another Dream Network.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "feature_model": ("FEATURE_MODEL", {"tooltip": "The extra network (from Load Feature Model)."}),
                "layer_weights": ("LAYER_WEIGHTS", {"tooltip": "What this network dreams: its layers, channels "
                                  "or classes and their weights, added to the dream node's own. A class score "
                                  "pulls about ten times less than a layer: give it a weight near 10."}),
            },
            "optional": {
                "networks": ("DREAM_NETWORKS", {"tooltip": "Networks added before this one, to add to."}),
            },
        }  # fmt: skip

    def run(self, feature_model, layer_weights, networks=None):
        feature_model.resolve_weights(layer_weights)  # a bad layer fails on this node, naming it
        return ([*(networks or ()), (feature_model, dict(layer_weights))],)
