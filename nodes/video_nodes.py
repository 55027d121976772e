"""DreamVideo: a clip (an IMAGE batch of frames) dreamed so that its patterns follow the motion."""

from __future__ import annotations

import torch

from ..dream_core.errors import DreamError
from ..dream_core.options import VIDEO_OPTIONS, DreamSettings, VideoSettings
from ..dream_core.video import dream_video, stream_batch
from . import comfy_bridge
from .dream_nodes import (
    FEATURE_MODEL_INPUT,
    dream_inputs,
    dream_layers,
    dream_option_inputs,
    dream_terms,
    optional_inputs,
    to_bchw,
    to_bhwc,
)

CATEGORY = "DeepDream"


class DreamVideo:
    """Dreams the frames of a clip one after the other, each starting from the previous dream moved along the
    optical flow, so the patterns stay on the things they grew on instead of boiling."""

    DESCRIPTION = (
        "Dreams a video without flicker. Frames come in as an IMAGE batch (Load Video -> Get Video Components, or "
        "any video pack) and go out the same way. The first frame gets the full dream; every next one starts from "
        "the previous dream carried along the optical flow, and gets a few more steps, so the patterns move with the "
        "picture instead of boiling; what the motion uncovers is dreamed fresh. Set carry to 0 to dream each frame "
        "alone and see the difference."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The dreamed frames, as many and as large as the input's.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip's frames in order, as one IMAGE batch."}),
                "feature_model": FEATURE_MODEL_INPUT,
                **dream_option_inputs(),
                **{opt.name: opt.widget() for opt in VIDEO_OPTIONS},
            },
            "optional": {
                **optional_inputs("layer_weights"),
                "mask": ("MASK", {"tooltip": "Dream strength per pixel: one mask for every frame, or one per frame "
                                  "(a shorter batch is used in turn)."}),  # fmt: skip
                **optional_inputs("guide", "regions"),
            },
        }

    def run(self, frames, feature_model, layer_weights=None, mask=None, guide=None, regions=None, **inputs):
        video = VideoSettings(**{opt.name: inputs.pop(opt.name) for opt in VIDEO_OPTIONS if opt.name in inputs})
        settings = DreamSettings().with_options(**inputs)
        layers = dream_layers(feature_model, layer_weights, regions)
        count = frames.shape[0]
        if count == 0:
            raise DreamError("The clip holds no frames (an empty IMAGE batch): check the video that was loaded.")
        first = to_bchw(frames[:1])
        out_device = comfy_bridge.output_device()
        result = None  # filled frame by frame: the clip is never copied whole
        with comfy_bridge.dream_device(feature_model, first.shape, dream_terms(layers, regions), settings) as (
            device,
            settings,
        ):
            progress = comfy_bridge.progress_reporter(count)  # dream_video reports the clip's total steps
            source = stream_batch(frames, lambda frame: to_bchw(frame).to(device))
            dreams = dream_video(
                source, feature_model, layers, settings, video, frame_count=count,
                mask=mask,  # each frame's mask goes to the device with that frame only
                **dream_inputs(device, guide=guide, regions=regions), on_progress=progress,
                should_stop=comfy_bridge.raise_if_interrupted, weights_dir=comfy_bridge.model_folders() or None,
            )  # fmt: skip
            for index, dreamed in enumerate(dreams):
                frame = to_bhwc(dreamed).to(out_device)
                if result is None:
                    result = torch.empty((count, *frame.shape[1:]), dtype=frame.dtype, device=out_device)
                result[index] = frame[0]
        return (result,)
