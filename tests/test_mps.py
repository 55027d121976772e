"""Apple GPUs (`mps`, issue 30): the device's facts (precision, memory, default), and no float64 ever crossing to the
device. No Apple GPU here: `torch.mps`'s memory figures are stood in for, and the crossing is emulated as the
device-copy emulation of conftest emulates a CUDA host (every move onto a device checked, as Metal would)."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from dream_core import dream, load_feature_model
from dream_core.devices import compute_dtype, default_device, free_memory, resolve_precision, total_memory
from dream_core.errors import DreamError
from dream_core.memory import check_memory, plan_tile_side, tile_budget
from dream_core.options import DreamSettings

MPS = torch.device("mps")
GB = 1 << 30


def test_auto_is_fp32_on_an_apple_gpu_fp16_is_a_choice_and_bf16_is_refused_with_what_to_use():
    assert resolve_precision("auto", MPS) == "fp32" and compute_dtype("fp16", MPS) == torch.float16
    with pytest.raises(DreamError, match="choose fp16 .* or fp32"):
        compute_dtype("bf16", MPS)
    assert compute_dtype("bf16", torch.device("cpu")) == torch.bfloat16  # elsewhere unchanged


@pytest.fixture
def apple_gpu(monkeypatch):
    """torch.mps's memory figures of a 32 GB Mac whose process holds 4 GB, and an Apple GPU as the only one."""
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 21 * GB)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 4 * GB)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    default_device.cache_clear()
    yield
    default_device.cache_clear()


def test_an_apple_gpus_memory_comes_from_torch_mps_and_is_sized_as_a_gpus(apple_gpu):
    assert default_device() == "mps"
    assert total_memory(MPS) == 21 * GB and free_memory(MPS) == 17 * GB
    assert tile_budget(MPS, planning=True) == 0.25 * 21 * GB  # a GPU's share, not a CPU's half of what is free
    assert plan_tile_side(1000.0, 1, MPS, 32) == 2368  # above a CPU's 1024 px cap, a GPU's 4096 cap allows it
    from dream_core.memory import MemoryEstimate

    with pytest.raises(DreamError, match="on mps .* it has 21.0 GB"):
        check_memory(MemoryEstimate(30 * GB, 0, 0, 1024), MPS, "Dreaming", "Use a smaller size.")


class _NoFloat64OnDevice(TorchFunctionMode):
    """Metal has no float64: any move onto a device (`.to(device)`, a factory given `device=`) that gives a float64
    tensor raises, as it would on an Apple GPU. On this CPU the host and the device are one, so the moves are
    what is checked, as conftest's emulation checks the copies a CUDA host makes."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.Tensor.to:
            device = torch._C._nn._parse_to(*args[1:], **kwargs)[0]
        else:
            device = kwargs.get("device")
        if device is not None and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_leaves(out)
        ):
            raise TypeError(f"{getattr(func, '__name__', func)}: float64 onto the device (Metal has none)")
        return out


def test_the_emulation_catches_float64_moved_onto_the_device():
    with _NoFloat64OnDevice(), pytest.raises(TypeError, match="Metal"):
        torch.arange(4, dtype=torch.float64).to("cpu")
    with _NoFloat64OnDevice():
        torch.arange(4, dtype=torch.float64).float().to("cpu")  # cast on the host first: fine


def test_dreams_zooms_seamless_tiles_and_masks_move_no_float64_onto_the_device(small_photo):
    from dream_core.animation import dream_zoom

    model = load_feature_model("efficientnet_lite0", "random")
    image = small_photo[..., :72, :104]
    mask = torch.zeros(1, 1, 72, 104)
    mask[..., :, 40:] = 1
    settings = DreamSettings(octaves=2, iterations=2, precision="fp32", seamless=True)
    with _NoFloat64OnDevice():
        dreamed = dream(image, model, {"blocks.6": 1.0}, settings, mask=mask).images
        frames = dream_zoom(image, model, {"blocks.6": 1.0}, DreamSettings(octaves=1, iterations=1), 3, angle=5.0)
    assert dreamed.shape == image.shape and frames.shape[0] == 3
