"""Tiles: gradients of large images computed piece by piece, in bounded memory.

Each ascent step views the image as rolled by a random shift (the jitter, plus a
random offset of the tile grid when there are several tiles), cuts the rolled view
into a grid of near-equal tiles and differentiates each tile on its own. The shift
moves the tile borders every step, so no seam builds up. The roll is never made: a
tile is gathered straight from the image with wrap-around slices, and its gradient
is written back the same way, so no full-size copy of the image is needed.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)

Range = tuple[int, int, int]  # (source start, source stop, offset inside the tile)
Tile = tuple[int, int, int, int]  # (top, bottom, left, right) in the rolled view


def tile_grid(height: int, width: int, tile_size: int) -> list[Tile]:
    """Near-equal tiles of at most `tile_size` px covering a `height` x `width` view."""

    def cuts(length: int) -> list[tuple[int, int]]:
        count = max(1, math.ceil(length / tile_size))
        step = math.ceil(length / count)
        return [(start, min(start + step, length)) for start in range(0, length, step)]

    return [(top, bottom, left, right) for top, bottom in cuts(height) for left, right in cuts(width)]


def wrapped_ranges(start: int, stop: int, shift: int, size: int) -> list[Range]:
    """Where rows `start:stop` of an axis rolled by `shift` come from in the unrolled axis.

    One contiguous range, or two when the tile wraps around the edge.
    """
    length = stop - start
    source = (start - shift) % size
    if source + length <= size:
        return [(source, source + length, 0)]
    first = size - source
    return [(source, size, 0), (0, length - first, first)]


def gather(image: torch.Tensor, rows: list[Range], cols: list[Range]) -> torch.Tensor:
    """The tile of the rolled view, copied out of `image` `[B, C, H, W]`."""
    if len(rows) == 1 and len(cols) == 1:
        (y0, y1, _), (x0, x1, _) = rows[0], cols[0]
        return image[..., y0:y1, x0:x1]
    height = sum(r[1] - r[0] for r in rows)
    width = sum(c[1] - c[0] for c in cols)
    tile = image.new_empty(*image.shape[:-2], height, width)
    for y0, y1, ty in rows:
        for x0, x1, tx in cols:
            tile[..., ty : ty + y1 - y0, tx : tx + x1 - x0] = image[..., y0:y1, x0:x1]
    return tile


def scatter(target: torch.Tensor, tile: torch.Tensor, rows: list[Range], cols: list[Range]) -> None:
    """Write a tile of the rolled view into `target` at its unrolled place."""
    for y0, y1, ty in rows:
        for x0, x1, tx in cols:
            target[..., y0:y1, x0:x1] = tile[..., ty : ty + y1 - y0, tx : tx + x1 - x0]


OUT_OF_MEMORY_TEXTS = (
    "out of memory",
    "can't allocate memory",
    "not enough memory",
    # cuDNN and cuBLAS report a failed workspace or handle allocation in their own words.
    "cudnn_status_alloc_failed",
    "cublas_status_alloc_failed",
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is the device running out of memory (CUDA, cuDNN, cuBLAS or CPU)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in OUT_OF_MEMORY_TEXTS)
