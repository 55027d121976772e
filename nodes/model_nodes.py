"""Nodes that choose what dreams: the feature network and its layer weights."""

from __future__ import annotations

import os

from ..dream_core import DEFAULT_MODEL, ZOO, load_feature_model, parse_layer_weights
from ..dream_core.feature_model import LEARNING_PHASE_HELP, LEARNING_PHASES
from . import comfy_bridge
from .node import node

IMAGENET = "imagenet"


def _layers_text(layers: dict[str, float]) -> str:
    return "\n".join(f"{name}: {weight:g}" for name, weight in layers.items())


@node("Load Feature Model", function="load")
class LoadFeatureModel:
    """Loads a zoo network with ImageNet weights or a checkpoint from models/deepdream."""

    DESCRIPTION = (
        "Loads the network whose layers the dream amplifies. 'imagenet' uses the ImageNet weights: "
        "efficientnet_lite0's come with this pack and work offline; the torchvision models download "
        "theirs once into models/deepdream. Or pick your own checkpoint (.safetensors, or .pt/.pth read "
        "safely) from models/deepdream, e.g. a classifier fine-tuned on your pictures."
    )
    RETURN_TYPES = ("FEATURE_MODEL",)
    RETURN_NAMES = ("feature_model",)
    OUTPUT_TOOLTIPS = ("The frozen network, ready for OctaveDream.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "architecture": (
                    list(ZOO),
                    {
                        "default": DEFAULT_MODEL,
                        "tooltip": "The network. efficientnet_lite0 works offline; inception_v3 is Keras' "
                        "DeepDream network (layers mixed0..mixed10); googlenet is Google's original.",
                    },
                ),
                "weights": (
                    [IMAGENET, *comfy_bridge.model_files()],
                    {
                        "default": IMAGENET,
                        "tooltip": "'imagenet' for the standard pretrained weights, or a checkpoint file from "
                        "models/deepdream trained as this architecture (any number of classes).",
                    },
                ),
            },
            # Optional, so that workflows saved before it existed still load and run unchanged.
            "optional": {
                "learning_phase": (
                    list(LEARNING_PHASES),
                    {"default": LEARNING_PHASES[0], "tooltip": LEARNING_PHASE_HELP},
                ),
            },
        }

    @classmethod
    def IS_CHANGED(cls, architecture: str, weights: str, **_inputs):
        # A checkpoint replaced under the same name must be loaded again.
        if weights == IMAGENET:
            return weights
        try:
            return os.path.getmtime(comfy_bridge.model_file_path(weights))
        except (OSError, FileNotFoundError):
            return float("nan")  # never equal to itself: ComfyUI re-runs and reports the error

    def load(self, architecture: str, weights: str, learning_phase: str = "inference"):
        comfy_bridge.raise_if_interrupted()  # a Cancel pressed while queued: do not start loading
        if weights == IMAGENET:
            folders = comfy_bridge.model_folders() or None
            model = load_feature_model(architecture, IMAGENET, weights_dir=folders, learning_phase=learning_phase)
        else:
            model = load_feature_model(
                architecture, comfy_bridge.model_file_path(weights), learning_phase=learning_phase
            )
        return (model,)


@node("Layer Weights", function="build")
class LayerWeights:
    """Builds the layer weights of a dream; chains to merge several."""

    DESCRIPTION = (
        "Chooses which layers the dream amplifies and how strongly. One 'layer: weight' per line "
        "(names, torchvision module paths and aliases such as Keras' mixed4 all work; a negative weight "
        "suppresses a layer). Connect another LayerWeights to add its weights to these. Names are checked "
        "against the model when dreaming."
    )
    RETURN_TYPES = ("LAYER_WEIGHTS",)
    RETURN_NAMES = ("layer_weights",)
    OUTPUT_TOOLTIPS = ("Layer names and their weights, for OctaveDream or another LayerWeights.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "layers": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": _layers_text(dict(ZOO[DEFAULT_MODEL].default_layers)),
                        "tooltip": "One 'layer: weight' per line (or comma-separated). See the model's "
                        "layers with 'deepdream layers MODEL'; e.g. for inception_v3: mixed4: 1.0.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": -100.0,
                        "max": 100.0,
                        "step": 0.05,
                        "tooltip": "Multiplies every weight written in this node (not the merged ones); "
                        "convert it to an input to drive it from other nodes.",
                    },
                ),
            },
            "optional": {
                "layer_weights": (
                    "LAYER_WEIGHTS",
                    {"tooltip": "Weights to merge with: a layer named in both gets the sum."},
                ),
            },
        }

    def build(self, layers: str, strength: float, layer_weights: dict[str, float] | None = None):
        merged = dict(layer_weights or {})  # a new dict: the incoming one is shared and cached
        for name, weight in parse_layer_weights(layers).items():
            merged[name] = merged.get(name, 0.0) + weight * strength
        return (merged,)
