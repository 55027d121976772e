"""Looks beyond the classic step: how a step's gradient is shaped before it moves the picture, and the random
scale and rotation it is taken under.

* ``lapnorm`` (the original TensorFlow DeepDream notebook): the gradient is split into a
  Laplacian pyramid, each band is divided by its own size (root mean square), and the
  bands are added back together. Coarse bands, otherwise drowned by the fine grain, get
  as much say as fine ones: large, smooth, colourful structures.
* ``whitened`` (lucid / lucent's decorrelated colour and Fourier parametrisation, as a
  preconditioning of the step): the step a gradient ascent would take on a picture
  parametrised by decorrelated colours and a spectrum scaled by 1/frequency. Colours move
  together as in natural pictures, and low frequencies are not drowned by high ones.
* ``decorrelated`` (lucid's colour decorrelation alone): the step taken in decorrelated colours, its spectrum
  left as it is: colours move together as in photos while the fine detail of the classic step stays.
* Robust steps: each gradient is taken on the picture scaled and turned by a random
  amount (besides the roll), so that only patterns that survive small changes of scale
  and angle grow.

All are functions of tensors on the device: no host reads, deterministic for a seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
LAPNORM_LEVELS = 4
"""Bands of the pyramid (the notebook's scale_n)."""


def _kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    return _kernel_on(channels, like.device, like.dtype)


@functools.lru_cache(maxsize=32)
def _kernel_on(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Made once per device: a tensor copied to the device every step would be a host-to-device copy each time.
    k = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0
    return k.to(device, dtype).expand(channels, 1, 5, 5).contiguous()


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), _kernel(x.shape[1], x), stride=2, groups=x.shape[1])


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    extra = (size[0] - (2 * x.shape[-2] - 1), size[1] - (2 * x.shape[-1] - 1))
    up = F.conv_transpose2d(x, _kernel(x.shape[1], x) * 4, stride=2, padding=2, output_padding=extra, groups=x.shape[1])
    return up


def laplacian_bands(x: torch.Tensor, levels: int = LAPNORM_LEVELS) -> list[torch.Tensor]:
    """`x` `[B, C, H, W]` as Laplacian bands, coarsest first; `merge_bands` adds them back exactly."""
    bands = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 4:  # too small to halve again
            break
        low = _down(x)
        bands.append(x - _up(low, (x.shape[-2], x.shape[-1])))
        x = low
    bands.append(x)
    return bands[::-1]


def merge_bands(bands: list[torch.Tensor]) -> torch.Tensor:
    x = bands[0]
    for band in bands[1:]:
        x = _up(x, (band.shape[-2], band.shape[-1])) + band
    return x


def lapnorm(grad: torch.Tensor, levels: int = LAPNORM_LEVELS) -> torch.Tensor:
    """The gradient with each Laplacian band divided by its root mean square, per image."""
    bands = [
        band / band.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-10)
        for band in laplacian_bands(grad, levels)
    ]
    return merge_bands(bands)


# lucid's colour correlation of ImageNet pictures (its square root, from an SVD), columns scaled so the largest
# has norm 1. A plain gradient step taken in decorrelated colours would move the RGB picture by C C^T times the
# gradient, which keeps the two colour directions at 7.6% and 1.8% of brightness's share: greyish pictures. lucid
# climbs with Adam, which evens out the decorrelated channels' steps; the square root (C C^T)^(1/2) keeps them at
# 28% and 13% and is what both looks use.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


@functools.lru_cache(maxsize=64)
def _spectrum_scale(height: int, width: int, device: torch.device) -> torch.Tensor:
    """1 / frequency over the rfft2 grid (the lowest frequency's weight at 0), largest 1."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    frequency = torch.sqrt(fx * fx + fy * fy).clamp_min(1.0 / max(height, width))
    return (1.0 / frequency) / max(height, width)


def whitened(grad: torch.Tensor) -> torch.Tensor:
    """The step in decorrelated colours and a 1/frequency-scaled spectrum, brought back to RGB pixels."""
    grad = torch.einsum("ij,bjhw->bihw", _colour_root(grad.device, grad.dtype), grad)
    height, width = grad.shape[-2:]
    spectrum = torch.fft.rfft2(grad.float()) * _spectrum_scale(height, width, grad.device)
    return torch.fft.irfft2(spectrum, s=(height, width)).to(grad.dtype)


def decorrelated(grad: torch.Tensor) -> torch.Tensor:
    """The step in decorrelated colours only: the gradient moved by (C C^T)^(1/2), the colour step `whitened` takes
    too, so colour moves with brightness without being damped as hard."""
    return torch.einsum("ij,bjhw->bihw", _colour_root(grad.device, grad.dtype), grad)


@functools.lru_cache(maxsize=8)
def _colour_root(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(_COLOR_SQRT @ _COLOR_SQRT.T)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    return (root / root.diagonal().max()).to(device, dtype)


@dataclass(frozen=True)
class Look:
    """A way to shape each step's gradient (`shape`, None for the classic step) and what it gives, in a line."""

    shape: Callable[[torch.Tensor], torch.Tensor] | None
    help: str


LOOKS = {
    "off": Look(None, "the classic step"),
    "lapnorm": Look(
        lapnorm,
        "split into a Laplacian pyramid, each band normalised on its own (the TensorFlow DeepDream notebook): "
        "large, smooth, colourful structures instead of fine grain",
    ),
    "whitened": Look(
        whitened,
        "the step taken in decorrelated colours and a 1/frequency-scaled spectrum (lucid's parametrisation): less "
        "noise, richer colour",
    ),
    "decorrelated": Look(
        decorrelated,
        "the step taken in decorrelated colours only (lucid's colour correlation, the spectrum kept): colours "
        "move together as in photos, the classic step's detail stays",
    ),
}
"""Every look, by the name the `precondition` option takes; a new one is a function and an entry here."""
PRECONDITIONS = tuple(LOOKS)


def looks_help() -> str:
    """The looks in a user's words, for the option's help: 'off: the classic step. lapnorm: ...'."""
    return " ".join(f"{name}: {look.help}." for name, look in LOOKS.items())


def precondition(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The gradient shaping a `precondition` setting names (None for 'off')."""
    return LOOKS[name].shape


def random_affine(rng, scale_jitter: float, rotate_jitter: float) -> tuple[float, float] | None:
    """(scale, angle in degrees) drawn from `rng` (Python's, no device read), or None when both are off."""
    if scale_jitter <= 0 and rotate_jitter <= 0:
        return None
    scale = 1.0 + rng.uniform(-scale_jitter, scale_jitter) if scale_jitter > 0 else 1.0
    angle = rng.uniform(-rotate_jitter, rotate_jitter) if rotate_jitter > 0 else 0.0
    return scale, angle


def transformed(image: torch.Tensor, scale: float, angle: float) -> torch.Tensor:
    """`image` scaled by `scale` and turned by `angle` degrees about its centre, borders reflected; differentiable,
    so a gradient taken on it comes back to the untransformed pixels. The sampling grid is the identity grid
    (made once per size) combined with Python numbers: nothing is copied to the device per step."""
    radians = math.radians(angle)
    cos, sin = math.cos(radians) / scale, math.sin(radians) / scale
    height, width = image.shape[-2:]
    aspect = width / height
    x, y = _identity_grid(height, width, image.device, image.dtype).unbind(-1)
    grid = torch.stack((cos * x - (sin / aspect) * y, (sin * aspect) * x + cos * y), dim=-1)
    grid = grid.expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@functools.lru_cache(maxsize=32)
def _identity_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=dtype, device=device)
    return F.affine_grid(theta, [1, 1, height, width], align_corners=False)
