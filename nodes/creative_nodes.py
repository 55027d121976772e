"""Nodes for exploring and animating dreams: LayerSweep, DreamFrames, DreamZoom.

Thin wrappers over `dream_core.sheet` and `dream_core.animation`. Their dream options
are OctaveDream's own input specs (the same defaults and tooltips, one source of
truth), with a few defaults changed where the node repeats the dream many times.
"""

from __future__ import annotations

import copy
from dataclasses import fields

from ..dream_core import DEFAULT_MODEL, ZOO, DreamSettings
from ..dream_core.animation import dream_frames, dream_zoom
from ..dream_core.sheet import contact_sheet, layer_sweep, parse_sweep
from . import comfy_bridge
from .dream_nodes import OctaveDream, dream_inputs, dream_layers, dream_terms, to_bchw, to_bhwc, total_steps

CATEGORY = "DeepDream"
_SETTING_NAMES = {f.name for f in fields(DreamSettings)}


def dream_option_inputs(**defaults) -> dict[str, tuple]:
    """OctaveDream's inputs that are `DreamSettings` options, copied, with some defaults changed.

    Copies, so that changing a default here never changes OctaveDream's.
    """
    specs = {}
    octave_inputs = OctaveDream.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in octave_inputs.get(section, {}).items():
            if name in _SETTING_NAMES:
                kind, options = spec[0], copy.deepcopy(spec[1])
                if name in defaults:
                    options["default"] = defaults[name]
                specs[name] = (kind, options)
    unknown = set(defaults) - set(specs)
    if unknown:
        raise KeyError(f"No OctaveDream option named {sorted(unknown)}")
    return specs


def _settings(options: dict) -> DreamSettings:
    return DreamSettings().with_options(**{k: v for k, v in options.items() if k in _SETTING_NAMES})


def _octave_optional(*names: str) -> dict[str, tuple]:
    """Copies of OctaveDream's optional inputs (layer_weights, mask, guide, regions) that it has."""
    optional = OctaveDream.INPUT_TYPES().get("optional", {})
    return {name: copy.deepcopy(optional[name]) for name in names if name in optional}


_IMAGE = ("IMAGE", {"tooltip": "The images to dream (a whole batch is dreamed)."})
_FEATURE_MODEL = ("FEATURE_MODEL", {"tooltip": "The network from LoadFeatureModel."})


def _default_sweep_text() -> str:
    """One line per default layer of the default model, then one line with all of them."""
    layers = dict(ZOO[DEFAULT_MODEL].default_layers)
    lines = [f"{name}: 1" for name in layers]
    lines.append(", ".join(f"{name}: {weight:g}" for name, weight in layers.items()))
    return "\n".join(lines)


class LayerSweep:
    """Dreams the same image once per layer choice and lays the results out on a labelled sheet."""

    DESCRIPTION = (
        "Compares layers: dreams the input once per line of 'layers' (each line a 'layer: weight' list, "
        "e.g. 'mixed4: 1' or 'mixed3: 1, mixed5: 0.5'), with the same settings and seed, and returns the "
        "dreams plus a contact sheet labelled with each line. Lower layers give strokes and textures, "
        "higher ones eyes, animals and buildings."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("images", "contact_sheet")
    OUTPUT_TOOLTIPS = (
        "One dream per line, same size as the input; for a batch, all lines of the first image, then all "
        "lines of the next.",
        "All the dreams on one labelled grid (a single image).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": _IMAGE,
                "feature_model": _FEATURE_MODEL,
                "layers": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": _default_sweep_text(),
                        "tooltip": "One dream per line; each line is 'layer: weight', several joined by commas "
                        "(e.g. 'mixed3: 1, mixed5: 0.5'). Lines starting with # are skipped. The default names "
                        "efficientnet_lite0's layers; list another model's with 'deepdream layers MODEL'.",
                    },
                ),
                **dream_option_inputs(),
                "columns": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 256,
                        "tooltip": "Columns of the contact sheet. 0: about square for one image; for a batch, "
                        "one row per input image.",
                    },
                ),
            },
            "optional": _octave_optional("mask", "guide"),
        }

    def run(self, image, feature_model, layers: str, columns: int = 0, mask=None, guide=None, **options):
        settings = _settings(options)
        entries = parse_sweep(layers)
        images = to_bchw(image)
        total = total_steps(images, feature_model, settings) * len(entries)
        terms = [term for _, weights in entries for term in weights]
        with comfy_bridge.dream_device(feature_model, images.shape, terms, settings) as (device, settings):
            dreams = layer_sweep(
                images.to(device),
                feature_model,
                [weights for _, weights in entries],
                settings,
                on_progress=comfy_bridge.progress_reporter(total),
                should_stop=comfy_bridge.raise_if_interrupted,
                **dream_inputs(device, mask, guide),
            )
        out = comfy_bridge.output_device()
        dreams = dreams.to(out)
        labels = [label for _ in range(images.shape[0]) for label, _ in entries]
        if not columns and images.shape[0] > 1:
            columns = len(entries)  # a row per input image, a column per line
        sheet = contact_sheet(dreams, labels, columns)
        return (to_bhwc(dreams), to_bhwc(sheet))


class DreamFrames:
    """OctaveDream that also returns the image every N ascent steps: the dream as it forms."""

    DESCRIPTION = (
        "Dreams like Octave Dream and also returns the image every 'every_n_steps' ascent steps, enlarged to "
        "the final size, ending with the final image: a batch of frames showing the dream as it forms, ready "
        "for an animated WEBP or GIF. Every image of a batch is dreamed."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("image", "frames")
    OUTPUT_TOOLTIPS = (
        "The dreamed images, same size as the input.",
        "The image every N steps and then the final one, at the final size: for each input image in turn, "
        "ceil(octaves x iterations / N) frames.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": _IMAGE,
                "feature_model": _FEATURE_MODEL,
                **dream_option_inputs(),
                "every_n_steps": (
                    "INT",
                    {
                        "default": 5,
                        "min": 1,
                        "max": 10000,
                        "tooltip": "Keep the image every this many ascent steps (counted over all octaves).",
                    },
                ),
            },
            "optional": _octave_optional("layer_weights", "mask", "guide", "regions"),
        }

    def run(
        self,
        image,
        feature_model,
        every_n_steps: int = 5,
        layer_weights=None,
        mask=None,
        guide=None,
        regions=None,
        **options,
    ):
        settings = _settings(options)
        images = to_bchw(image)
        out = comfy_bridge.output_device()
        layers = dream_layers(feature_model, layer_weights, regions)
        terms = dream_terms(layers, regions)
        with comfy_bridge.dream_device(feature_model, images.shape, terms, settings) as (device, settings):
            result, frames = dream_frames(
                images.to(device),
                feature_model,
                layers,
                settings,
                every_n_steps,
                on_progress=comfy_bridge.progress_reporter(total_steps(images, feature_model, settings)),
                should_stop=comfy_bridge.raise_if_interrupted,
                frames_device=out,  # frames wait off the GPU
                **dream_inputs(device, mask, guide, regions),
            )
        return (to_bhwc(result.images).to(out), to_bhwc(frames).to(out))


class DreamZoom:
    """The infinite zoom: dream, zoom in a little, dream again, for N frames."""

    DESCRIPTION = (
        "The classic DeepDream zoom: dreams the image, zooms into the dream (optionally turning and shifting "
        "it), dreams again, and so on; each frame grows out of the previous one. Returns the frames as a "
        "batch for Save Animated WEBP. Every frame is a full dream, so keep octaves and iterations low. A batch "
        "gives one animation per image, one after the other."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = (
        "The animation's frames, same size as the input: all frames of the first input image, then those of the next.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": _IMAGE,
                "feature_model": _FEATURE_MODEL,
                **dream_option_inputs(octaves=2, iterations=10),
                "frames": (
                    "INT",
                    {"default": 12, "min": 1, "max": 1000, "tooltip": "Number of frames; each is one dream."},
                ),
                "zoom": (
                    "FLOAT",
                    {
                        "default": 1.05,
                        "min": 0.5,
                        "max": 2.0,
                        "step": 0.005,
                        "tooltip": "Zoom per frame about the centre: above 1 flies in, below 1 backs out "
                        "(the edges are mirrored in).",
                    },
                ),
                "angle": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -180.0,
                        "max": 180.0,
                        "step": 0.5,
                        "tooltip": "Turn per frame in degrees, counter-clockwise.",
                    },
                ),
                "shift_x": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -1024.0,
                        "max": 1024.0,
                        "step": 0.5,
                        "tooltip": "Move the picture right by this many pixels per frame (negative: left).",
                    },
                ),
                "shift_y": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -1024.0,
                        "max": 1024.0,
                        "step": 0.5,
                        "tooltip": "Move the picture down by this many pixels per frame (negative: up).",
                    },
                ),
            },
            "optional": _octave_optional("layer_weights", "mask", "guide", "regions"),
        }

    def run(
        self,
        image,
        feature_model,
        frames: int = 12,
        zoom: float = 1.05,
        angle: float = 0.0,
        shift_x: float = 0.0,
        shift_y: float = 0.0,
        layer_weights=None,
        mask=None,
        guide=None,
        regions=None,
        **options,
    ):
        settings = _settings(options)
        images = to_bchw(image)
        out = comfy_bridge.output_device()
        total = total_steps(images, feature_model, settings) * frames
        layers = dream_layers(feature_model, layer_weights, regions)
        terms = dream_terms(layers, regions)
        with comfy_bridge.dream_device(feature_model, images.shape, terms, settings) as (device, settings):
            animation = dream_zoom(
                images.to(device),
                feature_model,
                layers,
                settings,
                frames,
                zoom,
                angle,
                shift_x,
                shift_y,
                on_progress=comfy_bridge.progress_reporter(total),
                should_stop=comfy_bridge.raise_if_interrupted,
                frames_device=out,  # finished frames wait off the GPU
                **dream_inputs(device, mask, guide, regions),
            )
        return (to_bhwc(animation).to(out),)
