"""Image arithmetic the dream uses: resizing, masks, colours, blur and detail re-injection.

Plain functions on `[B, C, H, W]` tensors in 0..1; nothing here knows about networks.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .errors import DreamError

log = logging.getLogger(__name__)


def resize(image: torch.Tensor, shape: tuple[int, int], periodic: bool = False) -> torch.Tensor:
    """Bilinear resize of `[B, C, H, W]` to `shape` (no antialiasing, as Keras). `periodic`: the picture wraps
    around (a tile), so the samples past an edge come from the other edge instead of the edge pixel."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    if periodic:
        return _wrapped_axis(_wrapped_axis(image, shape[0], -2), shape[1], -1)
    return F.interpolate(image, size=shape, mode="bilinear", align_corners=False)


def _wrapped_axis(image: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Linear resampling of one axis to `size` samples as `F.interpolate` places them (align_corners False),
    reading across the edge to the other side."""
    length = image.shape[dim]
    if length == size:
        return image
    where = (torch.arange(size, dtype=torch.float64) + 0.5) * (length / size) - 0.5
    below = torch.floor(where)
    t = (where - below).to(image.dtype).to(image.device)
    first = below.long().remainder(length).to(image.device)
    second = (first + 1).remainder(length)
    view = [1] * image.ndim
    view[dim] = size
    t = t.view(view)
    return image.index_select(dim, first) * (1 - t) + image.index_select(dim, second) * t


def make_periodic(image: torch.Tensor, band: float = 0.25) -> torch.Tensor:
    """`[B, C, H, W]` made to wrap around: within `band` of its length from each edge, each axis is cross-faded
    with its mirror image (column x with column W-1-x), half and half at the edge and the picture alone past the
    band, so the last column equals the first and the picture runs on across the wrap as across a mirror; the
    middle is left as it was."""
    out = image
    for dim in (-1, -2):
        length = out.shape[dim]
        reach = max(1.0, band * length)
        distance = torch.minimum(torch.arange(length, dtype=torch.float64), torch.arange(length - 1, -1, -1.0))
        ramp = (1 - distance / reach).clamp(0, 1)
        mirrored = 0.5 * ramp * ramp * (3 - 2 * ramp)  # smoothstep: 0.5 at the edge, 0 from `reach` on
        view = [1] * out.ndim
        view[dim] = length
        weight = mirrored.to(out.dtype).to(out.device).view(view)
        out = out * (1 - weight) + out.flip(dim) * weight
    return out


LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
"""ITU-R BT.601 luma weights: Y = 0.299 R + 0.587 G + 0.114 B."""


def transfer_colors(image: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """The brightness (Y) of `image` with the colour (Cb, Cr) of `original`, clamped to 0..1.

    In YCbCr, Cb and Cr are B - Y and R - Y scaled; keeping the original's differences
    and the dream's Y gives the dream's patterns in the photo's colours.
    """
    luma = LUMA.to(image)
    y_dream = (image * luma).sum(dim=1, keepdim=True)
    y_original = (original * luma).sum(dim=1, keepdim=True)
    return (original - y_original + y_dream).clamp(0.0, 1.0)


def prepare_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """A mask as `[B, 1, H, W]` on the images' device and size, values in 0..1."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise DreamError(f"A mask must be [H, W] or [B, H, W]; got shape {tuple(mask.shape)}.")
    if 0 in mask.shape:
        raise DreamError(
            f"The mask is empty (shape {tuple(mask.shape)}): give at least one mask with pixels, or leave the mask out."
        )
    batch = images.shape[0]
    if mask.shape[0] not in (1, batch):
        # ComfyUI's own nodes repeat a short mask batch; do the same, and say so.
        log.warning("%d masks for %d images: the masks are used in turn.", mask.shape[0], batch)
        mask = mask[torch.arange(batch) % mask.shape[0]]
    mask = mask.to(images.device, torch.float32).unsqueeze(1)
    mask = torch.nan_to_num(mask, nan=0.0).clamp(0.0, 1.0)
    mask = (
        F.interpolate(mask, size=images.shape[-2:], mode="bilinear", align_corners=False)
        if tuple(mask.shape[-2:]) != tuple(images.shape[-2:])
        else mask
    )
    return mask.expand(batch, 1, *images.shape[-2:]).contiguous()


def reinject_detail(
    dreamed: torch.Tensor,
    original: torch.Tensor,
    shape: tuple[int, int] | None = None,
    upscaled: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Enlarge a dream and add back the original's detail that its size lacks.

    The step between octaves, usable on its own: with `dreamed` made at size ``s``,
    the result at size ``S`` is ``resize(dreamed, S) + strength * (resize(original, S)
    - resize(resize(original, s), S))``. With `upscaled` (the dream enlarged by an
    upscaler), that image replaces the bilinear ``resize(dreamed, S)`` and sets ``S``.
    `shape` defaults to the original's size. Batches of 1 broadcast; images
    `[B, 3, H, W]` in 0..1.
    """
    if upscaled is not None:
        shape = (upscaled.shape[-2], upscaled.shape[-1])
        base = upscaled
    else:
        shape = shape or (original.shape[-2], original.shape[-1])
        base = resize(dreamed, shape)
    batch = max(dreamed.shape[0], original.shape[0], base.shape[0])
    for name, tensor in (("dream", dreamed), ("original", original), ("upscaled", base)):
        if tensor.shape[0] not in (1, batch):
            raise DreamError(
                f"The {name} batch has {tensor.shape[0]} images but another input has {batch}; "
                "give batches of the same length, or a single image."
            )
    original = original.to(base.device, base.dtype)
    dreamed_size = (dreamed.shape[-2], dreamed.shape[-1])
    # A new tensor (resize hands back its input at the same size: the caller's original, never to be written),
    # then in place: at most REINJECT_COPIES images of the output's size at once (16K px: 3.2 GB each).
    lost = torch.sub(resize(original, shape), resize(resize(original, dreamed_size), shape))
    return lost.mul_(strength).add_(base).clamp_(0.0, 1.0)


REINJECT_COPIES = 3
"""Output-sized images `reinject_detail` holds at its peak: the enlarged dream, the detail, and a resized copy."""


def reinject_detail_bytes(batch: int, shape: tuple[int, int]) -> int:
    """Bytes `reinject_detail` holds at its peak for `batch` float32 images enlarged to `shape`."""
    return REINJECT_COPIES * batch * 3 * shape[0] * shape[1] * 4


def gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """A normalised 1-D Gaussian `[K]` for a separable blur (made once per dream)."""
    radius = max(1, math.ceil(3 * sigma))
    if sigma < 1e-3:  # a plain copy (its neighbours' weight exp(-500000) is 0 in float32), never 0 / 0 (2e-184)
        return torch.tensor([0.0, 1.0, 0.0], device=device)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def blur(image: torch.Tensor, kernel: torch.Tensor, periodic: bool = False) -> torch.Tensor:
    """Separable Gaussian blur of `[B, C, H, W]`, reflecting at the borders (`periodic`: wrapping around)."""
    channels, radius = image.shape[1], kernel.numel() // 2
    radius_h, radius_w = min(radius, image.shape[-2] - 1), min(radius, image.shape[-1] - 1)
    k = kernel.to(image.dtype)
    mode = "circular" if periodic else "reflect"
    x = F.pad(image, (0, 0, radius_h, radius_h), mode=mode)
    x = F.conv2d(
        x, k[radius - radius_h : radius + radius_h + 1].view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels
    )
    x = F.pad(x, (radius_w, radius_w, 0, 0), mode=mode)
    return F.conv2d(
        x, k[radius - radius_w : radius + radius_w + 1].view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels
    )
