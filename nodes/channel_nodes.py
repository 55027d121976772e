"""What one channel sees: Channel Pictures, a picture grown from noise per channel of a layer, and their sheet."""

from __future__ import annotations

from ..dream_core import options as option_table
from ..dream_core.channels import channel_pictures, default_layer, dream_settings, top_channels
from ..dream_core.errors import DreamError
from ..dream_core.goals import channel_goals, goal_parts, parse_goals
from ..dream_core.objectives import Objective
from ..dream_core.options import ChannelSettings
from ..dream_core.sheet import contact_sheet
from . import comfy_bridge
from .base import NodeDream, model_input, output, to_bchw, to_bhwc, widgets
from .comfy_io import io
from .node import node_schema


class ChannelPictures(io.ComfyNode):
    """Feature visualisation: one picture per channel of a layer, grown from noise to make that channel fire."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "ChannelPictures",
            "Channel Pictures",
            "What one channel sees: for each chosen channel of a layer, a picture grown from noise so that the "
            "channel fires as hard as it can (lucid's feature visualisation), with random shifts, scales and turns at "
            "every step so that what grows is a pattern, not noise. Use it to pick channels for Layer Weights "
            "(`layer[3,17]`), or to see what a layer of your own trained network has learnt.",
            [
                model_input(),
                io.String.Input(
                    "layer",
                    default="",
                    tooltip="The layer whose channels to show, e.g. blocks.8 or mixed4 (see Layer Weights). Empty: "
                    "the middle one of the model's default layers.",
                ),
                io.String.Input(
                    "channels",
                    default="0-7",
                    tooltip="What each picture shows, comma-separated: channels '0-7' / '3,17'; a negative channel "
                    "'-5' (what turns 5 off); a neuron '5@centre' or '5@3:4' (channel 5 at row 3, column 4 of the "
                    "layer's grid); a diverse batch '5x4' (4 different pictures of channel 5); a direction "
                    "'3+0.5*17-40' (a mix of channels); a class 'class:jellyfish'; or 'top8' alone for the 8 "
                    "channels most active on the connected image.",
                ),
                io.Int.Input("columns", default=0, min=0, max=64, tooltip="Columns of the sheet; 0 = about square."),
                *widgets(option_table.CHANNEL_OPTIONS, essentials=("size", "steps")),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="With channels 'topN': the picture whose most active channels are shown (its first image).",
                ),
            ],
            [
                output(io.Image, "pictures", "The pictures as a batch, in the order of 'channels'."),
                output(io.Image, "sheet", "The pictures on one labelled sheet, each labelled with what it shows."),
            ],
            aliases=(
                "feature visualization",
                "feature visualisation",
                "neuron visualization",
                "lucid",
                "what a channel sees",
            ),
        )

    @classmethod
    def execute(cls, feature_model, layer, channels, columns, image=None, **options) -> io.NodeOutput:
        settings = ChannelSettings(**options).validate()
        chosen, top = parse_goals(channels)
        if top and image is None:
            raise DreamError(f"channels 'top{top}' picks the channels most active on a picture: connect an image.")
        layer = feature_model.resolve_layer(layer).name if layer.strip() else default_layer(feature_model)
        count = top or len(chosen)
        shape = (count, 3, settings.size, settings.size)
        goals = chosen or channel_goals(range(top))  # (for the memory check: top channels of the same layer)
        call = NodeDream(feature_model, [Objective(goal_parts(layer, goals))], dream_settings(settings))
        with call.on_device(shape) as device:
            if top:
                chosen = channel_goals(top_channels(feature_model, layer, to_bchw(image)[:1].to(device), top))
            progress = call.engine_options(total=settings.steps)
            del progress["mask"]  # every picture is grown whole
            result = channel_pictures(feature_model, layer, chosen, settings, device=device, **progress)
        sheet = contact_sheet(result.images, result.labels, columns)
        out = comfy_bridge.output_device()
        return io.NodeOutput(to_bhwc(result.images).to(out), to_bhwc(sheet).to(out))
