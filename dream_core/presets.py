"""Named settings from the classic DeepDream write-ups, shared by the CLI and the nodes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import DreamError
from .options import DreamSettings
from .zoo import get_spec

_KERAS = DreamSettings(octaves=3, octave_scale=1.4, iterations=20, step=0.01, max_loss=15.0, jitter=0)


@dataclass(frozen=True)
class Preset:
    """A model, its layer weights and the dream settings that go with them."""

    model: str
    layers: Mapping[str, float]
    settings: DreamSettings
    description: str = ""


PRESETS: dict[str, Preset] = {
    "lite0": Preset(
        "efficientnet_lite0",
        get_spec("efficientnet_lite0").default_layers,
        DreamSettings(step=0.015),
        "The offline default: EfficientNet-Lite0 middle blocks, Keras' octaves, step 0.015, jitter 32.",
    ),
    "keras": Preset(
        "inception_v3",
        get_spec("inception_v3").default_layers,  # mixed4..mixed7: 1.0, 1.5, 2.0, 2.5
        _KERAS,
        "Keras' DeepDream example: InceptionV3 mixed4..mixed7 weighted 1.0/1.5/2.0/2.5, "
        "step 0.01, 3 octaves x 1.4, 20 iterations, max_loss 15.",
    ),
    "keras-lower": Preset(
        "inception_v3",
        {"mixed2": 0.2, "mixed3": 0.5, "mixed4": 2.0, "mixed5": 1.5},
        _KERAS.with_options(max_loss=10.0),
        "The first Keras example's lower layers (mixed2..mixed5 weighted 0.2/0.5/2.0/1.5, "
        "max_loss 10): strokes and eyes rather than objects.",
    ),
    "keras-upper": Preset(
        "inception_v3",
        {"mixed7": 1.0, "mixed8": 1.5, "mixed9": 2.0, "mixed10": 2.5},
        _KERAS,
        "Upper layers mixed7..mixed10: whole objects and animals.",
    ),
    "google": Preset(
        "googlenet",
        get_spec("googlenet").default_layers,  # inception4c
        DreamSettings(octaves=4, octave_scale=1.4, iterations=10, step=0.012, max_loss=0.0, jitter=32, loss="mean_sq"),
        "Google's original notebook: GoogLeNet inception_4c/output, 4 octaves x 1.4, 10 iterations, jitter 32.",
    ),
}


def default_preset(model: str) -> Preset | None:
    """The first preset made for `model`: what a dream with that model uses by default."""
    return next((preset for preset in PRESETS.values() if preset.model == model), None)


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a `DreamError` listing them."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise DreamError(f"Unknown preset {name!r}; presets: {', '.join(PRESETS)}.")
    return PRESETS[key]
