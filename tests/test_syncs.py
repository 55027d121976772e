"""No host sync in the ascent loop: on a GPU every `.item()` / `bool(t)` waits for the device,
and every tensor built from Python data is a host-to-device copy."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dream_core import DreamSettings, dream
from dream_core.objectives import Objective

SYNCING = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.lift_fresh.default,
    torch.ops.aten.lift_fresh_copy.default,
}


class SyncCounter(TorchDispatchMode):
    """Counts the aten calls that read a tensor's value on the host or make a tensor from Python data."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNCING:
            self.count += 1
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def syncs_per_step(model, image, layers, settings, **inputs) -> list[int]:
    """Syncs between one step's progress report and the next (the first step, with the dream's setup, left out)."""
    marks = []
    counter = SyncCounter()

    def progress(step, total, current):
        marks.append(counter.count)

    with counter:
        dream(image, model, Objective.of(layers, **inputs), settings, on_progress=progress)
    return [after - before for before, after in zip(marks, marks[1:], strict=False)]


BASE = DreamSettings(octaves=1, iterations=4, jitter=8, seed=3, precision="fp32")


@pytest.mark.parametrize(
    ("case", "layers", "settings", "extra"),
    [
        ("default", {"blocks.6": 1.0}, BASE, {}),
        ("max_loss", {"blocks.6": 1.0}, BASE.with_options(max_loss=1e6), {}),
        ("luminance", {"blocks.6": 1.0}, BASE.with_options(keep_colors="luminance"), {}),
        ("channel list", {"blocks.6[3,17,20-23]": 1.0, "blocks.8[top4]": 0.5}, BASE, {}),
        ("tiles", {"blocks.6": 1.0}, BASE.with_options(tile_size=64), {}),
        ("regions", {}, BASE, {"regions": "left-right"}),
        ("guide", {"blocks.6": 1.0}, BASE.with_options(guide_mix=0.5), {"guide": "flipped"}),
        ("bf16", {"blocks.6": 1.0}, BASE.with_options(precision="bf16", grad_blur=1.0, tv_weight=0.1), {}),
    ],
)
def test_no_step_of_the_ascent_waits_for_the_device_or_copies_from_the_host(
    lite0, small_photo, case, layers, settings, extra
):
    inputs = {}
    if extra.get("regions"):
        left = torch.zeros(1, *small_photo.shape[-2:])
        left[..., : small_photo.shape[-1] // 2] = 1
        inputs["regions"] = [(left, {"blocks.6": 1.0}), (1 - left, {"blocks.8[5]": 1.0})]
    if extra.get("guide"):
        inputs["guide"] = small_photo.flip(-1)
    counts = syncs_per_step(lite0, small_photo, layers, settings, **inputs)
    assert len(counts) == settings.iterations - 1
    assert counts == [0] * len(counts), case
