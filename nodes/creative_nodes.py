"""Nodes for exploring and animating dreams: LayerSweep, DreamFrames, DreamZoom.

Thin wrappers over `dream_core.sheet` and `dream_core.animation`. Their dream options
are widgets made from the option table, as OctaveDream's are, with a few defaults
changed where the node repeats the dream many times.
"""

from __future__ import annotations

from ..dream_core import DEFAULT_MODEL, ZOO
from ..dream_core.animation import ZOOM_OPTIONS, dream_frames, dream_zoom
from ..dream_core.options import OPTIONS
from ..dream_core.schedule import only_settings
from ..dream_core.sheet import contact_sheet, layer_sweep, parse_sweep
from . import comfy_bridge
from .base import (
    DREAM_SCHEDULE,
    NodeDream,
    dream_option_inputs,
    image_input,
    model_input,
    optional_inputs,
    output,
    run_engine,
    schedule_input,
    to_bchw,
    to_bhwc,
    widgets,
)
from .comfy_io import io
from .node import DREAM_ALIASES, node_schema


def _default_sweep_text() -> str:
    """One line per default layer of the default model, then one line with all of them."""
    layers = dict(ZOO[DEFAULT_MODEL].default_layers)
    lines = [f"{name}: 1" for name in layers]
    lines.append(", ".join(f"{name}: {weight:g}" for name, weight in layers.items()))
    return "\n".join(lines)


class LayerSweep(io.ComfyNode):
    """Dreams the same image once per layer choice and lays the results out on a labelled sheet."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "LayerSweep",
            "Layer Sweep",
            "Compares layers: dreams the input once per line of 'layers' (each line a 'layer: weight' list, e.g. "
            "'mixed4: 1' or 'mixed3: 1, mixed5: 0.5'), with the same settings and seed, and returns the dreams plus a "
            "contact sheet labelled with each line. Lower layers give strokes and textures, higher ones eyes, animals "
            "and buildings.",
            [
                image_input(),
                model_input(),
                io.String.Input(
                    "layers",
                    multiline=True,
                    default=_default_sweep_text(),
                    tooltip="One dream per line; each line is 'layer: weight', several joined by commas (e.g. "
                    "'mixed3: 1, mixed5: 0.5'). Lines starting with # are skipped. The default names "
                    "efficientnet_lite0's layers; list another model's with 'deepdream layers MODEL'.",
                ),
                *dream_option_inputs(),
                io.Int.Input(
                    "columns",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Columns of the contact sheet. 0: about square for one image; for a batch, one row per "
                    "input image.",
                ),
                *optional_inputs("mask", "guide", "networks"),
            ],
            [
                output(
                    io.Image,
                    "images",
                    "One dream per line, same size as the input; for a batch, all lines of the first image, then all "
                    "lines of the next.",
                ),
                output(io.Image, "contact_sheet", "All the dreams on one labelled grid (a single image)."),
            ],
            aliases=(*DREAM_ALIASES, "compare layers", "layer grid"),
        )

    @classmethod
    def execute(cls, image, feature_model, layers: str, columns: int = 0, **inputs) -> io.NodeOutput:
        entries = parse_sweep(layers)
        sweep = [weights for _, weights in entries]
        dreams = run_engine(layer_sweep, image, NodeDream.read(feature_model, None, inputs, sweep=sweep))
        batch = to_bchw(image).shape[0]
        dreams = dreams.to(comfy_bridge.output_device())
        labels = [label for _ in range(batch) for label, _ in entries]
        if not columns and batch > 1:
            columns = len(entries)  # a row per input image, a column per line
        sheet = contact_sheet(dreams, labels, columns)
        return io.NodeOutput(to_bhwc(dreams), to_bhwc(sheet))


class DreamFrames(io.ComfyNode):
    """OctaveDream that also returns the image every N ascent steps: the dream as it forms."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "DreamFrames",
            "Dream Frames",
            "Dreams like Octave Dream and also returns the image every 'every_n_steps' ascent steps, enlarged to the "
            "final size, ending with the final image: a batch of frames showing the dream as it forms, ready for an "
            "animated WEBP or GIF. Every image of a batch is dreamed.",
            [
                image_input(),
                model_input(),
                *dream_option_inputs(),
                io.Int.Input(
                    "every_n_steps",
                    default=5,
                    min=1,
                    max=10000,
                    tooltip="Keep the image every this many ascent steps (counted over all octaves).",
                ),
                *optional_inputs("layer_weights", "mask", "guide", "regions", "networks"),
                schedule_input("an image sequence (the batch): image k is dreamed alone with the values at k"),
            ],
            [
                output(io.Image, "image", "The dreamed images, same size as the input."),
                output(
                    io.Image,
                    "frames",
                    "The image every N steps and then the final one, at the final size: for each input image in turn, "
                    "ceil(octaves x iterations / N) frames.",
                ),
            ],
            aliases=(*DREAM_ALIASES, "dream animation", "timelapse"),
        )

    @classmethod
    def execute(
        cls, image, feature_model, every_n_steps: int = 5, layer_weights=None, schedule=None, **inputs
    ) -> io.NodeOutput:
        out = comfy_bridge.output_device()
        call = NodeDream.read(feature_model, layer_weights, inputs)
        schedules = only_settings(schedule or (), OPTIONS, "Dream Frames")
        # The frames wait off the GPU.
        result, frames = run_engine(dream_frames, image, call, every_n_steps, frames_device=out, schedules=schedules)
        return io.NodeOutput(to_bhwc(result.images).to(out), to_bhwc(frames).to(out))


class DreamZoom(io.ComfyNode):
    """The infinite zoom: dream, zoom in a little, dream again, for N frames."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "DreamZoom",
            "Dream Zoom",
            "The classic DeepDream zoom: dreams the image, zooms into the dream (optionally turning and shifting it), "
            "dreams again, and so on; each frame grows out of the previous one. Returns the frames as a batch for "
            "Save Animated WEBP. Every frame is a full dream, so keep octaves and iterations low. A batch gives one "
            "animation per image, one after the other.",
            [
                image_input(),
                model_input(),
                *dream_option_inputs(octaves=2, iterations=10),
                *widgets(ZOOM_OPTIONS, essentials=("frames", "zoom")),
                *optional_inputs("layer_weights", "mask", "guide", "regions", "networks"),
                DREAM_SCHEDULE.Input(  # last: saved workflows keep their links and widget values
                    "schedule",
                    optional=True,
                    tooltip="Settings that change over the frames, from Dream Schedule: frame k is moved and dreamed "
                    "with each scheduled value at k.",
                ),
                io.Boolean.Input(
                    "loop",
                    default=False,
                    optional=True,
                    tooltip="A perfect loop for a GIF/WEBP that plays forever: the last frame leads into the first as "
                    "any frame into the next (the zoom goes on a quarter longer, and its first frames fade from that "
                    "into themselves and are dreamed again lightly).",
                ),
            ],
            [
                output(
                    io.Image,
                    "frames",
                    "The animation's frames, same size as the input: all frames of the first input image, then those "
                    "of the next.",
                )
            ],
            aliases=(*DREAM_ALIASES, "infinite zoom", "zoom animation"),
        )

    @classmethod
    def execute(
        cls,
        image,
        feature_model,
        frames: int = 12,
        zoom: float = 1.05,
        angle: float = 0.0,
        shift_x: float = 0.0,
        shift_y: float = 0.0,
        layer_weights=None,
        schedule=None,
        loop=False,
        **inputs,
    ) -> io.NodeOutput:
        out = comfy_bridge.output_device()
        call = NodeDream.read(feature_model, layer_weights, inputs)
        timeline = schedule or ()
        animation = run_engine(
            dream_zoom,
            image,
            call,
            frames,
            zoom,
            angle,
            shift_x,
            shift_y,
            frames_device=out,
            schedules=timeline,
            loop=loop,
        )  # finished frames wait off the GPU
        return io.NodeOutput(to_bhwc(animation).to(out))
