"""Nodes that dream: OctaveDream, and DetailReinject for chaining dreams with upscalers."""

from __future__ import annotations

import torch

from ..dream_core import dream
from ..dream_core.imageops import reinject_detail, reinject_detail_bytes, resize
from ..dream_core.memory import MemoryEstimate, check_memory
from . import comfy_bridge
from .base import (
    DREAM_NETWORKS,
    DREAM_REGIONS,
    LAYER_WEIGHTS,
    NodeDream,
    dream_option_inputs,
    image_input,
    model_input,
    optional_inputs,
    output,
    own_option_inputs,
    run_engine,
    to_bchw,
    to_bhwc,
)
from .comfy_io import io
from .node import node_schema


def _octave_batch(octave_images: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """Per-octave images enlarged to the final size, image by image: [B * octaves, 3, H, W]."""
    stacked = torch.stack([resize(octave, shape) for octave in octave_images], dim=1)
    return stacked.flatten(0, 1)


class OctaveDream(io.ComfyNode):
    """The DeepDream loop over several octaves, with optional mask."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "OctaveDream",
            "Octave Dream",
            "DeepDream: gradient ascent on the image so that the chosen layers fire harder, over several octaves "
            "(small to full size), re-injecting the detail lost by shrinking. Defaults are Keras' DeepDream "
            "example's numbers with Google's jitter. Every image of a batch is dreamed.",
            [
                image_input(),
                model_input(),
                *dream_option_inputs(),
                *optional_inputs("layer_weights", "mask", "guide", "regions", "networks"),
                *own_option_inputs("OctaveDream"),  # last: saved workflows keep their widget values
            ],
            [
                output(io.Image, "image", "The dreamed images, same size as the input."),
                output(
                    io.Image,
                    "octave_images",
                    "The image after each octave, enlarged to the final size: for each input image, one frame per "
                    "octave (for previews and animations).",
                ),
            ],
        )

    @classmethod
    def execute(cls, image, feature_model, layer_weights=None, **inputs) -> io.NodeOutput:
        result = run_engine(dream, image, NodeDream.read(feature_model, layer_weights, inputs))
        out = comfy_bridge.output_device()
        frames = _octave_batch(result.octave_images, tuple(result.images.shape[-2:]))
        return io.NodeOutput(to_bhwc(result.images).to(out), to_bhwc(frames).to(out))


class DetailReinject(io.ComfyNode):
    """Enlarges a dream and adds back the original's detail: put an upscaler between dreams."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        size = {"default": 0, "min": 0, "max": 16384, "step": 8}
        return node_schema(
            "DetailReinject",
            "Detail Reinject",
            "Enlarges a dream to a chosen size and adds back the detail of the original photo that the smaller "
            "dream lacks (the step between octaves, as a node). Connect an upscaler's output to 'upscaled' to use it "
            "instead of a plain bilinear enlargement; then dream again at the larger size.",
            [
                image_input("dream", "The dreamed images, at the size they were dreamed."),
                image_input("original", "The original photo (any size; its detail is re-injected)."),
                io.Int.Input(
                    "width", **size, tooltip="Output width; 0 = the original's. Ignored when 'upscaled' is connected."
                ),
                io.Int.Input(
                    "height", **size, tooltip="Output height; 0 = the original's. Ignored when 'upscaled' is connected."
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=2.0,
                    step=0.05,
                    tooltip="How much of the lost detail to add back (1 = all).",
                ),
                io.Image.Input(
                    "upscaled", optional=True, tooltip="The dream enlarged by an upscaler; sets the output size."
                ),
            ],
            [output(io.Image, "image", "The enlarged dream with the original's detail re-injected.")],
            aliases=("upscale dream", "detail", "deep dream"),
        )

    @classmethod
    def execute(cls, dream, original, width, height, strength, upscaled=None) -> io.NodeOutput:
        dreamed, original_bchw = to_bchw(dream), to_bchw(original)
        shape = (height or original_bchw.shape[-2], width or original_bchw.shape[-1])
        if upscaled is None:  # an upscaler's output is already in memory: only a size asked for here can be huge
            batch = max(dreamed.shape[0], original_bchw.shape[0])
            check_memory(
                MemoryEstimate(0, 0, reinject_detail_bytes(batch, shape), 0),
                dreamed.device,
                f"Enlarging {batch} picture(s) to {shape[1]}x{shape[0]} px",
                "Ask for a smaller size.",
            )
        result = reinject_detail(
            dreamed,
            original_bchw,
            shape=shape,
            upscaled=to_bchw(upscaled) if upscaled is not None else None,
            strength=strength,
        )
        return io.NodeOutput(to_bhwc(result).to(comfy_bridge.output_device()))


class DreamRegion(io.ComfyNode):
    """One region of a multi-region dream: a mask and the layer weights dreamed inside it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "DreamRegion",
            "Dream Region",
            "Defines a region for OctaveDream: inside this mask, the dream amplifies these layer weights. Chain "
            "several DreamRegion nodes (each takes the previous ones) to dream different layers in different parts "
            "of the picture at once, e.g. eyes on the left, buildings on the right.",
            [
                io.Mask.Input("mask", tooltip="Where this region is (1 = fully in it); resized to the image."),
                LAYER_WEIGHTS.Input("layer_weights", tooltip="What to dream inside this region."),
                DREAM_REGIONS.Input("regions", optional=True, tooltip="Regions defined before this one, to add to."),
            ],
            [
                output(
                    DREAM_REGIONS,
                    "regions",
                    "The regions so far, for OctaveDream's 'regions' input or another DreamRegion.",
                )
            ],
            aliases=("deep dream mask", "regional dream"),
        )

    @classmethod
    def execute(cls, mask, layer_weights, regions=None) -> io.NodeOutput:
        # A new list: the incoming one is shared with other nodes and cached.
        return io.NodeOutput([*(regions or ()), (mask, dict(layer_weights))])


class DreamNetwork(io.ComfyNode):
    """One more network for a dream: a feature model and the layer weights it dreams, on the same picture."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "DreamNetwork",
            "Dream Network",
            "Adds a network to a dream: this feature model, with its own layer weights, climbs the same picture as "
            "the dream node's own network, at every step (the two objectives add up; the gradient flows through "
            "both). E.g. an ImageNet network's eyes with a fine-tuned network's textures. Chain several (each takes "
            "the previous ones) and connect the last to a dream node's 'networks' input. Each network costs its own "
            "forward and backward pass per step.",
            [
                model_input("The extra network (from Load Feature Model)."),
                LAYER_WEIGHTS.Input(
                    "layer_weights",
                    tooltip="What this network dreams: its layers, channels or classes and their weights, added to the "
                    "dream node's own. A class score pulls about ten times less than a layer: give it a weight near "
                    "10.",
                ),
                DREAM_NETWORKS.Input("networks", optional=True, tooltip="Networks added before this one, to add to."),
            ],
            [
                output(
                    DREAM_NETWORKS,
                    "networks",
                    "The networks so far, for a dream node's 'networks' input or another Dream Network.",
                )
            ],
            aliases=("deep dream ensemble", "two networks"),
        )

    @classmethod
    def execute(cls, feature_model, layer_weights, networks=None) -> io.NodeOutput:
        feature_model.resolve_weights(layer_weights)  # a bad layer fails on this node, naming it
        return io.NodeOutput([*(networks or ()), (feature_model, dict(layer_weights))])
