"""Image files to tensors and back (Pillow), and folder expansion for the CLI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import DreamError

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


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as an RGB tensor `[1, 3, H, W]` in 0..1 (EXIF rotation applied)."""
    with _opened(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask file as `[1, H, W]` in 0..1: its alpha channel if it has one, else its grey."""
    with _opened(path) as im:
        band = im.getchannel("A") if "A" in im.getbands() else im.convert("L")
        array = np.asarray(band, dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A `[3, H, W]` (or `[1, 3, H, W]`) tensor in 0..1 as a Pillow RGB image."""
    if image.ndim == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save a `[3, H, W]` tensor in 0..1; the folder is created; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(path)
    return path


def save_animation(frames: torch.Tensor, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Save `[N, 3, H, W]` frames as an animated WEBP that loops; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [to_pil(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, quality=85)
    return path


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders replaced by the images inside them (sorted)."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(c for c in p.iterdir() if c.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    return paths
