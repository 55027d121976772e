"""Image files to tensors and back (Pillow), and folder expansion for the CLI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import DreamError
from .outputs import written_whole

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@contextlib.contextmanager
def _opened(path: str | os.PathLike) -> Iterator[Image.Image]:
    """An image file opened with EXIF rotation applied; an unreadable one raises a `DreamError` naming it."""
    try:
        with Image.open(path) as im:
            yield ImageOps.exif_transpose(im)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DreamError(f"Cannot read the image {Path(path).name}: {reason}") from error


WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
"""Pillow's single-band modes wider than 8 bits, and the value that is full white in each: a
16-bit PNG opens as I;16 or I (0..65535); `convert("RGB")` would clip it at 255, nearly all white."""


def pil_to_array(im: Image.Image) -> np.ndarray:
    """An opened picture as `[H, W, 3]` float32 in 0..1, whatever its mode (16-bit grey with its real range)."""
    if im.mode in WIDE_MODES:
        grey = np.asarray(im, dtype=np.float32) / WIDE_MODES[im.mode]
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def rgb_picture(im: Image.Image) -> Image.Image:
    """An opened picture as 8-bit RGB, 16-bit grey scaled by its real range rather than clipped."""
    if im.mode in WIDE_MODES:
        return Image.fromarray((pil_to_array(im) * 255.0).round().astype(np.uint8), "RGB")
    return im.convert("RGB")


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as an RGB tensor `[1, 3, H, W]` in 0..1 (EXIF rotation applied; 16-bit grey kept whole)."""
    with _opened(path) as im:
        array = pil_to_array(im)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0)


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask file as `[1, H, W]` in 0..1: its alpha channel if it has one, else its grey."""
    with _opened(path) as im:
        if "A" in im.getbands():
            array = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        elif im.mode in WIDE_MODES:
            array = pil_to_array(im)[..., 0]
        else:
            array = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A `[3, H, W]` (or `[1, 3, H, W]`) tensor in 0..1 as a Pillow RGB image."""
    if image.ndim == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save a `[3, H, W]` tensor in 0..1, whole or not at all (see `outputs.written_whole`); returns the path."""
    return save_pixels(pixels(image), path)


def pixels(image: torch.Tensor) -> np.ndarray:
    """The 8-bit pixels `[H, W, 3]` a `[3, H, W]` tensor in 0..1 is saved as: what a worker sends back for the
    driver to save (`save_pixels`), exactly as `save_image` would have saved the tensor."""
    return np.asarray(to_pil(image))


def save_pixels(array: np.ndarray, path: str | os.PathLike, quick: bool = False) -> Path:
    """Save 8-bit RGB pixels `[H, W, 3]`, whole or not at all; returns the path. `quick`: a PNG compressed
    lightly (a video's frames on their way into the video: 5x faster at 1080p, the same pixels)."""
    path = Path(path)
    picture = Image.fromarray(np.ascontiguousarray(array), "RGB")
    with written_whole(path) as partial:
        if quick and path.suffix.lower() == ".png":
            picture.save(partial, format="PNG", compress_level=1)
        else:
            picture.save(partial)
    return path


def save_animation(frames: torch.Tensor, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Save `[N, 3, H, W]` frames as an animated WEBP that loops; returns the path."""
    path = Path(path)
    images = [to_pil(frame) for frame in frames]
    with written_whole(path) as partial:
        images[0].save(partial, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, quality=85)
    return path


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files as given, folders replaced by the images inside them (sorted)."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(c for c in p.iterdir() if c.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    return paths
