"""dream_core: a pure-torch DeepDream engine (no ComfyUI imports).

Typical use::

    from dream_core import load_feature_model, dream, DreamSettings
    model = load_feature_model("efficientnet_lite0")
    result = dream(image, model, {"blocks.6": 1.0, "blocks.8": 1.5}, DreamSettings())
"""

from . import (
    timm_zoo,  # noqa: F401,E402  (adds timm:NAME to get_spec where timm is installed)
    torchvision_zoo,  # noqa: F401,E402  (adds every torchvision network to get_spec)
)
from .engine import DreamResult, DreamSettings, dream, objective_value, octave_shapes
from .errors import (
    DreamCancelled,
    DreamError,
    UnknownLayerError,
    UnknownModelError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from .feature_model import FeatureModel
from .loading import load_feature_model
from .objectives import parse_layer_weights
from .presets import PRESETS, get_preset
from .zoo import DEFAULT_MODEL, ZOO, LayerInfo, get_spec, layer_catalogue

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "ZOO",
    "DreamCancelled",
    "DreamError",
    "DreamResult",
    "DreamSettings",
    "FeatureModel",
    "LayerInfo",
    "UnknownLayerError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "dream",
    "get_preset",
    "get_spec",
    "layer_catalogue",
    "load_feature_model",
    "objective_value",
    "octave_shapes",
    "parse_layer_weights",
]
