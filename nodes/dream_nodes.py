"""Nodes that dream: OctaveDream, and DetailReinject for chaining dreams with upscalers."""

from __future__ import annotations

import torch

from ..dream_core import DreamSettings, dream
from ..dream_core.engine import COLOR_MODES, NORMALIZATIONS, PRECISIONS, octave_shapes, reinject_detail, resize
from ..dream_core.errors import DreamError
from ..dream_core.objectives import LOSS_MODES
from . import comfy_bridge

CATEGORY = "DeepDream"
_DEFAULTS = DreamSettings()


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


def dream_layers(feature_model, layer_weights, regions=None) -> dict[str, float]:
    """What a dream node amplifies: the given weights; nothing more if regions say what to
    dream; else the model's default layers."""
    if layer_weights:
        return layer_weights
    return {} if regions else dict(feature_model.spec.default_layers)


def dream_terms(layers, regions=None) -> list[str]:
    """Every layer-weights term a dream uses: its own and its regions'."""
    return [*layers, *(term for _, weights in regions or () for term in weights)]


def dream_inputs(device: torch.device, mask=None, guide=None, regions=None) -> dict:
    """A dream node's optional inputs in the engine's terms; only those connected."""
    inputs = {}
    if mask is not None:
        inputs["mask"] = mask
    if guide is not None:
        inputs["guide"] = to_bchw(guide)[:1].to(device)
    if regions:
        inputs["regions"] = [(region_mask.to(device), weights) for region_mask, weights in regions]
    return inputs


def total_steps(images: torch.Tensor, model, settings: DreamSettings) -> int:
    """Ascent steps of one dream of `images` (octaves too small for the model are skipped)."""
    shapes = octave_shapes(*images.shape[-2:], settings.octaves, settings.octave_scale, model.spec.min_size)
    return len(shapes) * settings.iterations


def _octave_batch(octave_images: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """Per-octave images enlarged to the final size, image by image: [B * octaves, 3, H, W]."""
    stacked = torch.stack([resize(octave, shape) for octave in octave_images], dim=1)
    return stacked.flatten(0, 1)


class OctaveDream:
    """The DeepDream loop over several octaves, with optional mask."""

    DESCRIPTION = (
        "DeepDream: gradient ascent on the image so that the chosen layers fire harder, over several "
        "octaves (small to full size), re-injecting the detail lost by shrinking. Defaults are Keras' "
        "DeepDream example's numbers with Google's jitter. Every image of a batch is dreamed."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("image", "octave_images")
    OUTPUT_TOOLTIPS = (
        "The dreamed images, same size as the input.",
        "The image after each octave, enlarged to the final size: for each input image, one frame per "
        "octave (for previews and animations).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = _DEFAULTS
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to dream (a whole batch is dreamed)."}),
                "feature_model": ("FEATURE_MODEL", {"tooltip": "The network from LoadFeatureModel."}),
                "octaves": (
                    "INT",
                    {
                        "default": d.octaves,
                        "min": 1,
                        "max": 12,
                        "tooltip": "Number of scales, dreamed smallest first. More octaves give larger patterns.",
                    },
                ),
                "octave_scale": (
                    "FLOAT",
                    {
                        "default": d.octave_scale,
                        "min": 1.0,
                        "max": 4.0,
                        "step": 0.05,
                        "tooltip": "Size ratio between successive octaves.",
                    },
                ),
                "iterations": (
                    "INT",
                    {"default": d.iterations, "min": 0, "max": 1000, "tooltip": "Gradient-ascent steps per octave."},
                ),
                "step": (
                    "FLOAT",
                    {
                        "default": d.step,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Step size on Keras' [-1, 1] pixel scale (Keras: 0.01). Larger "
                        "steps dream harder and faster.",
                    },
                ),
                "max_loss": (
                    "FLOAT",
                    {
                        "default": d.max_loss,
                        "min": 0.0,
                        "max": 1e6,
                        "step": 0.5,
                        "tooltip": "An octave stops once its loss exceeds this; 0 = off. Keras "
                        "used 15 with InceptionV3 mixed4..mixed7.",
                    },
                ),
                "jitter": (
                    "INT",
                    {
                        "default": d.jitter,
                        "min": 0,
                        "max": 512,
                        "tooltip": "Largest random shift in pixels before each step; hides the "
                        "network's pixel grid. 0 = none (Keras).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d.seed,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "tooltip": "Seed of the jitter: the same seed gives the same image.",
                    },
                ),
                "loss": (
                    list(LOSS_MODES),
                    {
                        "default": d.loss,
                        "tooltip": "l2: Keras (sum of squares / size, border cropped); "
                        "mean: TensorFlow tutorial; mean_sq: mean of squares.",
                    },
                ),
                "normalize": (
                    list(NORMALIZATIONS),
                    {
                        "default": d.normalize,
                        "tooltip": "Gradient normalisation: mean_abs (Keras, Google) or std (TensorFlow tutorial).",
                    },
                ),
                "reinject_detail": (
                    "BOOLEAN",
                    {
                        "default": d.reinject_detail,
                        "tooltip": "Add back, after each octave, the photo's detail "
                        "that shrinking lost; keeps the photo crisp.",
                    },
                ),
                "tile_size": (
                    "INT",
                    {
                        "default": d.tile_size,
                        "min": 0,
                        "max": 16384,
                        "step": 32,
                        "tooltip": "Largest tile (px) for the gradient: large images are dreamed tile by "
                        "tile under a grid that moves every step, so memory stays bounded and no seams show. "
                        "0 = automatic (the largest that fits in memory).",
                    },
                ),
                "keep_colors": (
                    list(COLOR_MODES),
                    {
                        "default": d.keep_colors,
                        "tooltip": "Keep the photo's colours: 'luminance' dreams the brightness only; "
                        "'transfer' puts the original colours back on the dream. 'off': the network's colours.",
                    },
                ),
                "grad_blur": (
                    "FLOAT",
                    {
                        "default": d.grad_blur,
                        "min": 0.0,
                        "max": 20.0,
                        "step": 0.1,
                        "tooltip": "Blur (sigma, px) of each step's gradient: larger = softer, less noisy "
                        "patterns. 0 = off (classic).",
                    },
                ),
                "tv_weight": (
                    "FLOAT",
                    {
                        "default": d.tv_weight,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.5,
                        "tooltip": "Total-variation penalty: larger = smoother image, fewer speckles. 0 = off.",
                    },
                ),
                "guide_mix": (
                    "FLOAT",
                    {
                        "default": d.guide_mix,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "With a guide image: 1 = dream toward the guide's features only (Google's "
                        "guided dream), 0 = ignore the guide, between = a mix with the layer weights' dream.",
                    },
                ),
                "precision": (
                    ["auto", *PRECISIONS],
                    {
                        "default": d.precision,
                        "tooltip": "fp32 is exact. bf16/fp16 run the network in reduced precision: faster "
                        "on GPUs and CPUs with bf16 units; dreams look alike but are not pixel-equal. auto: "
                        "bf16 on CPUs with bf16 units, else fp32.",
                    },
                ),
            },
            "optional": {
                "layer_weights": (
                    "LAYER_WEIGHTS",
                    {
                        "tooltip": "Layers to amplify and their weights (from "
                        "LayerWeights). Not connected: the model's default "
                        "layers."
                    },
                ),
                "mask": (
                    "MASK",
                    {
                        "tooltip": "Dream strength per pixel: 0 leaves a pixel untouched, 1 dreams "
                        "it fully. Resized to the image; one mask or one per image."
                    },
                ),
                "guide": (
                    "IMAGE",
                    {
                        "tooltip": "A guide image: the dream moves toward what the network sees in it "
                        "(its features at the chosen layers). See guide_mix."
                    },
                ),
                "regions": (
                    "DREAM_REGIONS",
                    {
                        "tooltip": "Regions from DreamRegion nodes: each mask dreams its own layer weights, "
                        "all at once (added to layer_weights, which apply everywhere)."
                    },
                ),
            },
        }

    def run(self, image, feature_model, layer_weights=None, mask=None, guide=None, regions=None, **options):
        settings = DreamSettings().with_options(**options)
        images = to_bchw(image)
        layers = dream_layers(feature_model, layer_weights, regions)
        terms = dream_terms(layers, regions)
        with comfy_bridge.dream_device(feature_model, images.shape, terms, settings) as (device, settings):
            result = dream(
                images.to(device),
                feature_model,
                layers,
                settings,
                on_progress=comfy_bridge.progress_reporter(total_steps(images, feature_model, settings)),
                should_stop=comfy_bridge.raise_if_interrupted,
                **dream_inputs(device, mask, guide, regions),
            )
        out = comfy_bridge.output_device()
        frames = _octave_batch(result.octave_images, tuple(result.images.shape[-2:]))
        return (to_bhwc(result.images).to(out), to_bhwc(frames).to(out))


class DetailReinject:
    """Enlarges a dream and adds back the original's detail: put an upscaler between dreams."""

    DESCRIPTION = (
        "Enlarges a dream to a chosen size and adds back the detail of the original photo that the smaller "
        "dream lacks (the step between octaves, as a node). Connect an upscaler's output to 'upscaled' to "
        "use it instead of a plain bilinear enlargement; then dream again at the larger size."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
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
        result = reinject_detail(
            dreamed, original_bchw, shape=shape,
            upscaled=to_bchw(upscaled) if upscaled is not None else None, strength=strength,
        )  # fmt: skip
        return (to_bhwc(result).to(comfy_bridge.output_device()),)


class DreamRegion:
    """One region of a multi-region dream: a mask and the layer weights dreamed inside it."""

    DESCRIPTION = (
        "Defines a region for OctaveDream: inside this mask, the dream amplifies these layer weights. Chain "
        "several DreamRegion nodes (each takes the previous ones) to dream different layers in different parts "
        "of the picture at once, e.g. eyes on the left, buildings on the right."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
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
