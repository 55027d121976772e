"""The new looks: lapnorm and whitened steps, random scale and rotation (dream_core/looks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dream_core import DreamSettings, dream, objective_value
from dream_core.looks import (
    _COLOR_SQRT,
    LOOKS,
    decorrelated,
    laplacian_bands,
    lapnorm,
    merge_bands,
    transformed,
    whitened,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from looks import high_frequency_share  # noqa: E402  (the benchmark's own measure)

LAYERS = {"blocks.6": 1.0, "blocks.8": 1.5}
FAST = DreamSettings(octaves=2, iterations=6, seed=1)


def test_the_laplacian_pyramid_adds_back_exactly_and_lapnorm_evens_its_bands():
    x = torch.randn(2, 3, 37, 50)
    bands = laplacian_bands(x)
    assert len(bands) == 5 and bands[0].shape[-2:] == (3, 4)
    assert torch.allclose(merge_bands(bands), x, atol=1e-5)
    # A gradient that is mostly fine grain: lapnorm gives its coarse bands far more weight against the fine ones.
    rough = torch.randn(1, 3, 64, 64)

    def coarse_to_fine(x):
        sizes = [band.square().mean().sqrt().item() for band in laplacian_bands(x)]
        return sizes[0] / sizes[-1]

    assert coarse_to_fine(lapnorm(rough)) > 3 * coarse_to_fine(rough)


def test_whitened_moves_the_energy_of_a_white_gradient_to_low_frequencies():
    noise = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    # White noise keeps 80% of its energy above half Nyquist; a 1/frequency step about a quarter of that.
    assert high_frequency_share(whitened(noise)) < 0.4 * high_frequency_share(noise)


def test_the_decorrelated_step_moves_colours_together_and_whitened_takes_the_same_colour_step():
    grad = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def channel_correlation(x: torch.Tensor) -> float:
        flat = x.transpose(0, 1).reshape(3, -1)
        return float(torch.corrcoef(flat).triu(1).sum() / 3)

    def colour_share(x: torch.Tensor) -> float:  # what is left beside the grey (mean over channels) part
        return float((x - x.mean(1, keepdim=True)).square().mean() / x.square().mean())

    step = decorrelated(grad)
    assert step.shape == grad.shape and channel_correlation(grad) < 0.05 < 0.5 < channel_correlation(step)
    # The square root of lucid's colour step: colour keeps about an eighth of the step (C C^T kept a fiftieth).
    colour_step = _COLOR_SQRT @ _COLOR_SQRT.T
    plain = torch.einsum("ij,bjhw->bihw", colour_step, grad)
    assert 4 * colour_share(plain) < colour_share(step) < colour_share(grad)
    assert 4 * colour_share(plain) < colour_share(whitened(grad))
    # On a flat gradient (one frequency) whitened is decorrelated's colour step, scaled.
    flat = torch.randn(1, 3, 1, 1, generator=torch.Generator().manual_seed(1)).expand(1, 3, 16, 16)
    ratio = whitened(flat) / decorrelated(flat)
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4)
    assert LOOKS["decorrelated"].shape is decorrelated  # the option, the flag and the widget offer it


def test_a_turn_and_scale_of_zero_is_the_identity_and_gradients_come_back_to_the_pixels():
    image = torch.rand(1, 3, 40, 60, requires_grad=True)
    assert torch.allclose(transformed(image, 1.0, 0.0), image, atol=1e-5)
    turned = transformed(image, 1.1, 10.0)
    assert turned.shape == image.shape and not torch.allclose(turned, image, atol=1e-2)
    (grad,) = torch.autograd.grad(turned.square().sum(), image)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize(
    "options",
    [
        {"precondition": "lapnorm"},
        {"precondition": "whitened"},
        {"precondition": "decorrelated"},
        {"scale_jitter": 0.15},
        {"rotate_jitter": 10.0},
    ],
)
@pytest.mark.slow
def test_each_look_changes_the_picture_and_a_seed_gives_it_again(lite0, small_photo, options):
    classic = dream(small_photo, lite0, LAYERS, FAST).images
    settings = FAST.with_options(**options)
    first = dream(small_photo, lite0, LAYERS, settings).images
    assert (first - classic).abs().max() > 0.05
    assert torch.equal(first, dream(small_photo, lite0, LAYERS, settings).images)
    gain = objective_value(lite0, first, LAYERS) / objective_value(lite0, small_photo, LAYERS)
    assert (gain > 1.2).all()  # it still dreams


@pytest.mark.parametrize("look", ["lapnorm", "whitened"])
def test_new_steps_move_the_change_toward_low_frequencies_and_still_dream(lite0, small_photo, look):
    settings = DreamSettings(octaves=2, iterations=10, seed=0)
    before = objective_value(lite0, small_photo, LAYERS)
    classic = dream(small_photo, lite0, LAYERS, settings).images
    new = dream(small_photo, lite0, LAYERS, settings.with_options(precondition=look)).images
    assert high_frequency_share(new - small_photo) < 0.5 * high_frequency_share(classic - small_photo)
    classic_gain = objective_value(lite0, classic, LAYERS) / before
    assert (objective_value(lite0, new, LAYERS) / before >= 0.7 * classic_gain).all()


def test_the_looks_respect_the_mask_and_the_tiles(lite0, small_photo):
    mask = torch.zeros(1, 128, 121)
    mask[..., :56] = 1.0
    settings = FAST.with_options(precondition="lapnorm", rotate_jitter=5.0, tile_size=64)
    out = dream(small_photo, lite0, LAYERS, settings, mask=mask).images
    assert (out - small_photo)[..., 64:].abs().max().item() < 1 / 255  # right of the soft edge: untouched
    assert (out - small_photo)[..., :50].abs().mean().item() > 0.005
