"""Dreams side by side: a labelled contact sheet, and the layer sweep that fills one.

The labels are drawn with Pillow's built-in default font (`ImageFont.load_default`),
so nothing depends on a font file being installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .engine import DreamSettings, ProgressCallback, StopCallback, dream, offset_progress, plan
from .errors import DreamError
from .feature_model import FeatureModel
from .objectives import Objective, Term, parse_layer_weights

BACKGROUND = 0.12
"""Grey level of the gaps and label strips (dark, so that dreams stand out)."""
TEXT = 0.93
"""Grey level of the label text."""
MAX_LABEL_LINES = 4
"""A label longer than this many wrapped lines is cut, ending in '...'."""


def _font(cell_width: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font, scaled with the cell where this Pillow can (10.1+ with FreeType)."""
    size = max(10, min(40, cell_width // 24))
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # older Pillow, or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, draw: ImageDraw.ImageDraw, font, width: int) -> list[str]:
    """`text` broken into lines no wider than `width` px: at spaces, inside words only when one is too long."""

    def fits(line: str) -> bool:
        return draw.textlength(line, font=font) <= width

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if fits(candidate):
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and not fits(word):
                cut = max(1, max((n for n in range(1, len(word)) if fits(word[:n])), default=1))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    if len(lines) > MAX_LABEL_LINES:
        last = lines[MAX_LABEL_LINES - 1]
        while last and not fits(last + "..."):
            last = last[:-1]
        lines = [*lines[: MAX_LABEL_LINES - 1], last + "..."]
    return lines


def _label_strips(labels: Sequence[str], width: int) -> torch.Tensor:
    """Text coverage `[N, 1, strip_height, width]` in 0..1, one strip per label, all as tall as the tallest."""
    font = _font(width)
    scratch = ImageDraw.Draw(Image.new("L", (1, 1)))
    pad = max(2, width // 64)
    wrapped = [_wrap(label, scratch, font, width - 2 * pad) for label in labels]
    left, top, right, bottom = scratch.textbbox((0, 0), "Ag|", font=font)
    line_height = bottom + max(1, (bottom - top) // 4)
    height = max(len(lines) for lines in wrapped) * line_height + 2 * pad
    strips = []
    for lines in wrapped:
        strip = Image.new("L", (width, int(height)), 0)
        draw = ImageDraw.Draw(strip)
        for row, line in enumerate(lines):
            draw.text((pad, pad + row * line_height), line, fill=255, font=font)
        strips.append(torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255.0))
    return torch.stack(strips).unsqueeze(1)


def sheet_columns(count: int, cell_height: int, cell_width: int, gap: int = 0) -> int:
    """The number of columns that makes a sheet of `count` cells (with `gap` px between) closest to square."""

    def squareness(columns: int) -> float:
        rows = math.ceil(count / columns)
        width = columns * cell_width + (columns + 1) * gap
        height = rows * cell_height + (rows + 1) * gap
        return abs(math.log(width / height))

    # Only counts that fill their rows as evenly as possible: 4 cells go 2 x 2, never 3 + 1.
    candidates = {math.ceil(count / rows) for rows in range(1, count + 1)}
    return min(sorted(candidates), key=squareness)


def contact_sheet(images: torch.Tensor, labels: Sequence[str], columns: int = 0) -> torch.Tensor:
    """A labelled grid of `images` `[N, 3, H, W]` in 0..1, as one image `[1, 3, H', W']`.

    Each image keeps its pixels exactly and gets a strip under it with its label
    (wrapped to the image's width). Cells fill the rows left to right; `columns=0`
    picks the count that makes the sheet about square. The sheet is on the images'
    device, float32.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise DreamError(f"A contact sheet needs RGB images [N, 3, H, W], N >= 1; got shape {tuple(images.shape)}.")
    count, _, height, width = images.shape
    if len(labels) != count:
        raise DreamError(f"A contact sheet got {count} images but {len(labels)} labels; give one label per image.")
    if columns < 0:
        raise DreamError(f"columns must be 0 (about square) or more; got {columns}.")
    strips = _label_strips([str(label) for label in labels], width).to(images.device)
    cell_height = height + strips.shape[-2]
    gap = max(2, width // 64)
    columns = min(columns, count) if columns else sheet_columns(count, cell_height, width, gap)
    rows = math.ceil(count / columns)
    sheet = torch.full(
        (3, rows * cell_height + (rows + 1) * gap, columns * width + (columns + 1) * gap),
        BACKGROUND,
        dtype=torch.float32,
        device=images.device,
    )
    for index in range(count):
        top = gap + (index // columns) * (cell_height + gap)
        left = gap + (index % columns) * (width + gap)
        sheet[:, top : top + height, left : left + width] = images[index].float()
        coverage = strips[index]
        sheet[:, top + height : top + cell_height, left : left + width] = BACKGROUND + (TEXT - BACKGROUND) * coverage
    return sheet.unsqueeze(0)


def parse_sweep(text: str) -> list[tuple[str, dict[Term, float]]]:
    """One `(label, layer_weights)` per non-empty line of `text`, e.g. ``"mixed3: 1, mixed5: 0.5"``.

    The label is the line as written (trimmed); each line is parsed with
    `parse_layer_weights`, so a line may combine several layers.
    """
    entries = []
    for line in text.splitlines():
        label = line.strip()
        if label and not label.startswith("#"):  # '#' lines let users keep notes or switch lines off
            entries.append((label, parse_layer_weights(label)))
    if not entries:
        raise DreamError("The layer sweep has no lines: write one 'layer: weight' entry per line.")
    return entries


def layer_sweep(
    images: torch.Tensor,
    model: FeatureModel,
    sweep: Sequence[Objective | Mapping[str, float]],
    settings: DreamSettings | None = None,
    *,
    mask: torch.Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> torch.Tensor:
    """Dream `images` `[B, 3, H, W]` once per entry of `sweep` (layer weights); `[B * len(sweep), 3, H, W]`.

    The output is image-major: all entries for the first image, then for the next.
    Every entry uses the same settings and seed, so the differences are the layers'
    alone. Every entry's layer names are checked before the first dream starts.
    Entries are layer weights or `Objective`s (with a guide, regions: `Objective.of`);
    `on_progress(step, total, current)` counts over all entries; `mask` goes to every
    `dream`.
    """
    settings = (settings or DreamSettings()).validate()
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if not sweep:
        raise DreamError("The layer sweep has no entries.")
    # Every entry resolved before the first dream: a typo in the last line fails now, not after the others.
    objectives = [Objective.of(entry).resolved(model) for entry in sweep]
    per_dream = plan(model, images.shape[-2], images.shape[-1], settings).steps
    results = []
    for index, objective in enumerate(objectives):
        report = offset_progress(on_progress, index * per_dream, per_dream * len(sweep)) if on_progress else None
        result = dream(images, model, objective, settings, on_progress=report, should_stop=should_stop, mask=mask)
        results.append(result.images)
    return torch.stack(results, dim=1).flatten(0, 1)
