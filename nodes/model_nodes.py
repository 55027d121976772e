"""Nodes that choose what dreams: the feature network and its layer weights."""

from __future__ import annotations

import os

from ..dream_core import DEFAULT_MODEL, ZOO, load_feature_model, parse_layer_weights
from ..dream_core.feature_model import LEARNING_PHASE_HELP, LEARNING_PHASES
from ..dream_core.timm_zoo import cached_timm_models, timm_installed
from ..dream_core.torchvision_zoo import with_weights_in
from . import comfy_bridge
from .base import FEATURE_MODEL, LAYER_WEIGHTS, output
from .comfy_io import folded, io
from .node import node_schema

IMAGENET = "imagenet"
RANDOM = "random"


def _layers_text(layers: dict[str, float]) -> str:
    return "\n".join(f"{name}: {weight:g}" for name, weight in layers.items())


class LoadFeatureModel(io.ComfyNode):
    """Loads a zoo network with ImageNet weights or a checkpoint from models/deepdream."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "LoadFeatureModel",
            "Load Feature Model",
            "Loads the network whose layers the dream amplifies. 'imagenet' uses the ImageNet weights: "
            "efficientnet_lite0's come with this pack and work offline; the torchvision models download theirs once "
            "into models/deepdream. Or pick your own checkpoint (.safetensors, or .pt/.pth read safely) from "
            "models/deepdream, e.g. a classifier fine-tuned on your pictures.",
            [
                io.Combo.Input(
                    "architecture",
                    options=[
                        *ZOO,
                        *with_weights_in(comfy_bridge.model_files()),
                        *(cached_timm_models() if timm_installed() else []),
                    ],
                    default=DEFAULT_MODEL,
                    tooltip="The network. efficientnet_lite0 works offline; inception_v3 is Keras' DeepDream network "
                    "(layers mixed0..mixed10); googlenet is Google's original. Other torchvision networks appear "
                    "here once their ImageNet weights are in models/deepdream, timm networks (timm:NAME) once their "
                    "weights are in the Hugging Face cache; any of them by name in 'other_architecture'.",
                ),
                io.Combo.Input(
                    "weights",
                    options=[IMAGENET, *comfy_bridge.model_files(), RANDOM],
                    default=IMAGENET,
                    tooltip="'imagenet' for the standard pretrained weights, a checkpoint file from models/deepdream "
                    "trained as this architecture (any number of classes), or 'random' (no download: for trying a "
                    "network's layers; set learning_phase to training on networks with BatchNorm).",
                ),
                # Optional, so that workflows saved before it existed still load and run unchanged.
                io.Combo.Input(
                    "learning_phase",
                    options=list(LEARNING_PHASES),
                    default=LEARNING_PHASES[0],
                    tooltip=LEARNING_PHASE_HELP,
                    optional=True,
                    **folded(True),
                ),
                io.String.Input(  # last: saved workflows keep their widget values
                    "other_architecture",
                    default="",
                    optional=True,
                    tooltip="Any torchvision classification network by name (convnext_tiny, densenet121, "
                    "mobilenet_v3_large, regnet_y_800mf, vit_b_16, swin_t, ...: 'deepdream models' lists them), or "
                    "where timm is installed any timm network as timm:NAME (timm:convnext_tiny, "
                    "timm:vit_small_patch16_224); used instead of 'architecture' when filled in.",
                    **folded(True),
                ),
            ],
            [output(FEATURE_MODEL, "feature_model", "The frozen network, ready for OctaveDream.")],
            aliases=("deep dream model", "classifier", "inception", "googlenet", "cnn"),
        )

    @classmethod
    def fingerprint_inputs(cls, architecture: str, weights: str, **_inputs):
        # A checkpoint replaced under the same name must be loaded again.
        if weights in (IMAGENET, RANDOM):
            return weights
        try:
            return os.path.getmtime(comfy_bridge.model_file_path(weights))
        except (OSError, FileNotFoundError):
            return float("nan")  # never equal to itself: ComfyUI re-runs and reports the error

    @classmethod
    def execute(
        cls, architecture: str, weights: str, learning_phase: str = "inference", other_architecture: str = ""
    ) -> io.NodeOutput:
        comfy_bridge.raise_if_interrupted()  # a Cancel pressed while queued: do not start loading
        architecture = other_architecture.strip() or architecture
        if weights == RANDOM:
            model = load_feature_model(architecture, RANDOM, learning_phase=learning_phase)
        elif weights == IMAGENET:
            folders = comfy_bridge.model_folders() or None
            model = load_feature_model(architecture, IMAGENET, weights_dir=folders, learning_phase=learning_phase)
        else:
            model = load_feature_model(
                architecture, comfy_bridge.model_file_path(weights), learning_phase=learning_phase
            )
        return io.NodeOutput(model)


class LayerWeights(io.ComfyNode):
    """Builds the layer weights of a dream; chains to merge several."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "LayerWeights",
            "Layer Weights",
            "Chooses which layers the dream amplifies and how strongly. One 'layer: weight' per line (names, "
            "torchvision module paths and aliases such as Keras' mixed4 all work; a negative weight suppresses a "
            "layer). Connect another LayerWeights to add its weights to these. Names are checked against the model "
            "when dreaming.",
            [
                io.String.Input(
                    "layers",
                    multiline=True,
                    default=_layers_text(dict(ZOO[DEFAULT_MODEL].default_layers)),
                    tooltip="One 'layer: weight' per line (or comma-separated). See the model's layers with "
                    "'deepdream layers MODEL'; e.g. for inception_v3: mixed4: 1.0.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-100.0,
                    max=100.0,
                    step=0.05,
                    tooltip="Multiplies every weight written in this node (not the merged ones); convert it to an "
                    "input to drive it from other nodes.",
                ),
                LAYER_WEIGHTS.Input(
                    "layer_weights", optional=True, tooltip="Weights to merge with: a layer named in both gets the sum."
                ),
            ],
            [
                output(
                    LAYER_WEIGHTS,
                    "layer_weights",
                    "Layer names and their weights, for OctaveDream or another LayerWeights.",
                )
            ],
            aliases=("deep dream layers", "mixed4", "layer mix"),
        )

    @classmethod
    def execute(cls, layers: str, strength: float, layer_weights: dict[str, float] | None = None) -> io.NodeOutput:
        merged = dict(layer_weights or {})  # a new dict: the incoming one is shared and cached
        for name, weight in parse_layer_weights(layers).items():
            merged[name] = merged.get(name, 0.0) + weight * strength
        return io.NodeOutput(merged)
