"""Seamless tiles (issue 29): a picture made to wrap around, resized around the wrap, and dreamed around it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dream_core import dream
from dream_core.imageops import blur, gaussian_kernel, make_periodic, resize
from dream_core.options import DreamSettings
from dream_core.parser import parse


def border_ratio(tile: torch.Tensor) -> float:
    """The jump across the borders of `tile` `[3, H, W]` tiled, over the jump between neighbours elsewhere."""
    across = (tile[..., :, 0] - tile[..., :, -1]).abs().mean() + (tile[..., 0, :] - tile[..., -1, :]).abs().mean()
    elsewhere = (tile[..., :, 1:] - tile[..., :, :-1]).abs().mean() + (
        tile[..., 1:, :] - tile[..., :-1, :]
    ).abs().mean()
    return float(across / elsewhere)


def test_a_picture_made_periodic_runs_on_across_its_edges_and_keeps_its_middle():
    image = torch.rand(1, 3, 40, 64)
    tile = make_periodic(image)
    assert torch.allclose(tile[..., :, 0], tile[..., :, -1]) and torch.allclose(tile[..., 0, :], tile[..., -1, :])
    assert torch.equal(tile[..., 10:30, 16:48], image[..., 10:30, 16:48])  # past the band: untouched
    assert tile.min() >= 0 and tile.max() <= 1


def test_a_periodic_resize_commutes_with_a_roll_and_matches_bilinear_inside():
    image = torch.rand(1, 3, 64, 96)
    for shape in ((32, 48), (90, 130)):
        wrapped = resize(image, shape, periodic=True)
        plain = F.interpolate(image, size=shape, mode="bilinear", align_corners=False)
        assert torch.allclose(wrapped[..., 2:-2, 2:-2], plain[..., 2:-2, 2:-2], atol=1e-5)  # (float32 rounding)
    rolled_first = resize(torch.roll(image, (4, 6), dims=(-2, -1)), (32, 48), periodic=True)
    rolled_after = torch.roll(resize(image, (32, 48), periodic=True), (2, 3), dims=(-2, -1))
    assert torch.allclose(rolled_first, rolled_after, atol=1e-6)
    kernel = gaussian_kernel(2.0, "cpu")
    assert torch.allclose(
        blur(torch.roll(image, 5, dims=-1), kernel, periodic=True),
        torch.roll(blur(image, kernel, periodic=True), 5, dims=-1),
        atol=1e-6,
    )


def test_a_seamless_dream_tiles_without_a_seam(lite0, small_photo):
    image = small_photo[..., :96, :96]
    settings = DreamSettings(octaves=2, iterations=8, step=0.03, seed=2, precision="fp32")
    plain = dream(image, lite0, {"blocks.8": 1.0}, settings).images[0]
    tile = dream(image, lite0, {"blocks.8": 1.0}, settings.with_options(seamless=True)).images[0]
    assert border_ratio(plain) > 3.0  # the photo's own edges meet
    assert border_ratio(tile) < 1.2
    assert (tile - make_periodic(image)[0]).abs().mean() > 0.02  # and it is a dream


def test_seamless_is_a_dream_flag_and_octave_dreams_own_last_input():
    from conftest import pack_module

    assert parse(["dream", "in.png", "-o", "out.png", "--seamless"]).arguments["job"].settings.seamless is True
    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    inputs = nodes["OctaveDream"].GET_SCHEMA().inputs
    assert inputs[-1].id == "seamless" and inputs[-1].optional
    for name in ("DreamFrames", "DreamZoom", "DreamVideo", "LayerSweep"):
        assert "seamless" not in {i.id for i in nodes[name].GET_SCHEMA().inputs}


def test_a_vanishing_blur_is_a_copy_not_nan():
    # Found by the property test of any options: grad_blur 2e-184 made a 0/0 kernel and a NaN dream.
    for sigma in (2e-184, 1e-9, 0.3):
        kernel = gaussian_kernel(sigma, "cpu")
        assert bool(torch.isfinite(kernel).all()) and abs(float(kernel.sum()) - 1) < 1e-6
    assert torch.equal(gaussian_kernel(1e-300, "cpu"), torch.tensor([0.0, 1.0, 0.0]))
