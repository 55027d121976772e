"""Train a classifier on your own pictures, then dream with it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..dream_core.memory import estimate_training_memory
from ..dream_core.options import TRAIN_OPTIONS, TrainSettings
from ..dream_core.outputs import check_outputs
from ..dream_core.report import per_class_text
from ..dream_core.training import train_classifier, training_size
from ..dream_core.zoo import trainable_models
from . import comfy_bridge
from .base import FEATURE_MODEL, output, widgets
from .comfy_io import io
from .node import node_schema

log = logging.getLogger(__name__)


def pil_to_tensor(picture) -> torch.Tensor:
    """A PIL picture as `[1, 3, H, W]` in 0..1."""
    return torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


class TrainFeatureModel(io.ComfyNode):
    """Fine-tunes a zoo network on a folder of pictures (one sub-folder per class)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "TrainFeatureModel",
            "Train Feature Model",
            "Teaches a network your own subject: a folder inside ComfyUI's input folder with one sub-folder per class "
            "(e.g. input/my_flowers/rose, input/my_flowers/tulip). Fine-tunes a new classifier head (and, if asked, "
            "the last blocks), reports the held-out accuracy, saves the model to models/deepdream, and returns it "
            "ready to dream: use 'class: NAME' in LayerWeights to dream a class.",
            [
                io.String.Input(
                    "folder",
                    default="deepdream_samples/shapes",
                    tooltip="Folder inside ComfyUI's input folder, with one sub-folder of pictures per class (any "
                    "size or format Pillow reads). The default is the pack's sample set (stripes, dots, checkers), "
                    "copied there when queued.",
                ),
                io.Combo.Input(
                    "architecture",
                    options=list(trainable_models()),
                    default=trainable_models()[0],
                    tooltip="The network to fine-tune. efficientnet_lite0 starts from weights that work offline.",
                ),
                io.Combo.Input(
                    "weights",
                    options=["imagenet", *comfy_bridge.model_files()],
                    default="imagenet",
                    tooltip="Starting weights: ImageNet, or a checkpoint from models/deepdream of this architecture.",
                ),
                *widgets((opt for opt in TRAIN_OPTIONS if opt.in_node), essentials=("epochs",)),
                io.String.Input(
                    "save_as",
                    default="my_classifier",
                    tooltip="File name (without .safetensors) in models/deepdream. An existing file of that name is "
                    "replaced, but only once the new model is complete; the checkpoint you start from never is.",
                ),
            ],
            [
                output(
                    FEATURE_MODEL,
                    "feature_model",
                    "The trained network, ready for OctaveDream (its class names work in LayerWeights as "
                    "'class: NAME').",
                ),
                output(
                    io.String,
                    "model_file",
                    "The saved file's name in models/deepdream, with the held-out accuracy, overall and per class.",
                ),
                output(
                    io.Image,
                    "report",
                    "How training went: loss and held-out accuracy per epoch, and which classes were taken for which "
                    "(also saved next to the model as NAME.curve.png and NAME.confusion.png).",
                ),
            ],
            aliases=("fine-tune", "train classifier", "deep dream my subject"),
        )

    @classmethod
    def fingerprint_inputs(cls, folder, **_inputs):
        # Pictures added to or removed from the folder mean training again.
        try:
            root = comfy_bridge.input_subfolder(folder)
            return sorted(
                (os.path.relpath(os.path.join(d, f), root), os.path.getmtime(os.path.join(d, f)))
                for d, _, files in os.walk(root)
                for f in files
            ).__repr__()
        except (OSError, ValueError):
            return float("nan")

    @classmethod
    def execute(cls, folder, architecture, weights, save_as, **options) -> io.NodeOutput:
        path = comfy_bridge.input_subfolder(folder)
        target = comfy_bridge.model_save_path(save_as)
        start = "imagenet" if weights == "imagenet" else comfy_bridge.model_file_path(weights)
        if start != "imagenet":
            check_outputs([Path(target)], [Path(start)], overwrite=True)  # never over the model it continues from
        settings = TrainSettings(**options).validate()
        device = comfy_bridge.compute_device()
        need = estimate_training_memory(architecture, settings.batch_size, training_size(architecture, settings))
        comfy_bridge.make_room(need, device, f"{need / 2**20:.0f} MB to train {architecture}")
        bar = comfy_bridge.progress_reporter(1)

        def progress(step: int, total: int, figures: dict) -> None:
            # The curve so far is the preview: loss and held-out accuracy, epoch by epoch.
            curve = figures.get("curve")
            bar(step, total, pil_to_tensor(curve) if curve is not None else None)
            if curve is not None:
                log.info(
                    "epoch %d/%d: loss %.3f, held-out accuracy %.1f%%",
                    figures["epoch"],
                    figures["epochs"],
                    figures["loss"],
                    100 * figures["accuracy"],
                )

        result = train_classifier(
            path,
            architecture,
            start,
            settings,
            target,
            weights_dir=comfy_bridge.model_folders() or None,
            device=device,
            on_progress=progress,
            should_stop=comfy_bridge.raise_if_interrupted,
        )
        comfy_bridge.park(result.model)  # a dream loads it again through model management
        per_class = per_class_text(result.per_class)
        summary = (
            f"{os.path.basename(target)}: classes {', '.join(result.class_names)}; held-out accuracy "
            f"{result.accuracy:.1%} on {result.holdout_count} pictures (epoch {result.best_epoch} of "
            f"{len(result.history)} kept; per class: {per_class})"
        )
        if result.skipped:
            summary += f"; skipped: {'; '.join(result.skipped)}"
        report = pil_to_tensor(result.report).permute(0, 2, 3, 1).to(comfy_bridge.output_device())
        return io.NodeOutput(result.model, summary, report)
