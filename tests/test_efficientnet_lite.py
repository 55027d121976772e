"""Tests for dream_core.efficientnet_lite (CPU only, no network)."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# The repo is a ComfyUI node pack, not an installed package: make it importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

effl = importlib.import_module("dream_core.efficientnet_lite")

DATA = Path(__file__).parent / "data"
ESPRESSO = 967
CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return effl.load_efficientnet_lite0()


def _to_input(img: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)
    x = x.permute(2, 0, 1)[None]
    mean = torch.tensor(effl.PREPROCESS_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(effl.PREPROCESS_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _center_crop_224(img: Image.Image) -> Image.Image:
    w, h = img.size
    scale = 224 / min(w, h)
    img = img.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return img.crop((left, top, left + 224, top + 224))


def _probs(model: torch.nn.Module, img: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        return model(_to_input(img)).softmax(1)[0]


def test_checkpoint_loads_strict() -> None:
    sd = torch.load(effl.default_weights_path(), map_location="cpu", weights_only=True)
    assert len(sd) == 296
    net = effl.EfficientNetLite0()
    net.load_state_dict(sd, strict=True)
    assert net.state_dict().keys() == sd.keys()
    assert f"{effl.CLASSIFIER_PREFIX}.weight" in sd
    assert sum(v.numel() for k, v in sd.items() if "num_batches" not in k) == pytest.approx(4.65e6, rel=0.01)


def test_classifies_sample_photos(model: torch.nn.Module) -> None:
    coffee = Image.open(DATA.parent.parent / "samples" / "coffee.jpg")
    chelsea = Image.open(DATA / "chelsea.jpg")
    p = _probs(model, _center_crop_224(coffee))
    assert int(p.argmax()) == ESPRESSO and float(p[ESPRESSO]) > 0.8
    assert int(_probs(model, _center_crop_224(chelsea)).argmax()) in CAT_CLASSES
    # Full images at their own (non-224) size exercise the dynamic SAME padding.
    assert int(_probs(model, coffee).argmax()) == ESPRESSO
    assert int(_probs(model, chelsea).argmax()) in CAT_CLASSES


def test_same_padding_output_sizes() -> None:
    net = effl.EfficientNetLite0().eval()
    modules = dict(net.named_modules())
    names = ["_stem_act"] + [f"_blocks.{i}" for i in range(16)] + ["_head_act"]
    shapes: dict[str, list[torch.Size]] = {n: [] for n in names}
    for n in names:
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: shapes[n].append(out.shape))
    h, w = 225, 193
    with torch.no_grad():
        logits = net(torch.randn(1, 3, h, w))
    assert logits.shape == (1, 1000)
    strides = [2, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    for n, total in zip(names, strides, strict=True):
        assert len(shapes[n]) == 1, f"{n} hooked {len(shapes[n])} times"
        assert tuple(shapes[n][0][-2:]) == (
            _same_size(h, total),
            _same_size(w, total),
        ), n


def _same_size(size: int, total_stride: int) -> int:
    """Size after SAME-padded stride-2 layers: ceil(size / 2) at each one."""
    while total_stride > 1:
        size = math.ceil(size / 2)
        total_stride //= 2
    return size


def test_input_gradient_channels_last(model: torch.nn.Module) -> None:
    net = model.to(memory_format=torch.channels_last)
    try:
        x = torch.rand(1, 3, 97, 130).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        net(x)[0, ESPRESSO].backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert float(x.grad.abs().sum()) > 0
        assert all(p.grad is not None for p in net.parameters())
    finally:
        net.zero_grad(set_to_none=True)
        net.to(memory_format=torch.contiguous_format)
