"""Generate the small training folder used by the fine-tuning example and tests.

    python tools/make_training_set.py [OUT]   (default: samples/shapes)

Three classes of generated pictures (so there is no licence question), clearly
different to a network: `stripes` (parallel bands at any angle), `dots` (scattered
discs), `checkers` (rotated chequerboards). Random colours, scales and angles, seeded.
The classes are unbalanced on purpose (24 / 24 / 12), as real folders are.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SIZE = 160
COUNTS = {"stripes": 24, "dots": 24, "checkers": 12}


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 255) for _ in range(3))


def _two_colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    while True:
        a, b = _colour(rng), _colour(rng)
        if sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 200:
            return a, b


def stripes(rng: random.Random) -> Image.Image:
    a, b = _two_colours(rng)
    big = Image.new("RGB", (SIZE * 2, SIZE * 2), a)
    draw = ImageDraw.Draw(big)
    period = rng.randint(10, 36)
    for x in range(0, SIZE * 2, period):
        draw.rectangle([x, 0, x + period // 2, SIZE * 2], fill=b)
    return big.rotate(rng.uniform(0, 180), resample=Image.BILINEAR).crop(
        (SIZE // 2, SIZE // 2, SIZE * 3 // 2, SIZE * 3 // 2)
    )


def dots(rng: random.Random) -> Image.Image:
    a, b = _two_colours(rng)
    image = Image.new("RGB", (SIZE, SIZE), a)
    draw = ImageDraw.Draw(image)
    radius = rng.randint(4, 12)
    for _ in range(rng.randint(25, 70)):
        x, y = rng.uniform(0, SIZE), rng.uniform(0, SIZE)
        r = radius * rng.uniform(0.7, 1.3)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=b)
    return image


def checkers(rng: random.Random) -> Image.Image:
    a, b = _two_colours(rng)
    big = Image.new("RGB", (SIZE * 2, SIZE * 2), a)
    draw = ImageDraw.Draw(big)
    cell = rng.randint(10, 30)
    for i in range(0, SIZE * 2, cell):
        for j in range(0, SIZE * 2, cell):
            if (i // cell + j // cell) % 2:
                draw.rectangle([i, j, i + cell, j + cell], fill=b)
    return big.rotate(rng.uniform(0, 90), resample=Image.BILINEAR).crop(
        (SIZE // 2, SIZE // 2, SIZE * 3 // 2, SIZE * 3 // 2)
    )


MAKERS = {"stripes": stripes, "dots": dots, "checkers": checkers}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "samples" / "shapes"
    rng = random.Random(1234)
    for name, count in COUNTS.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = MAKERS[name](rng).filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
            image.save(folder / f"{name}_{i:02d}.jpg", quality=88)
    print(f"wrote {sum(COUNTS.values())} images into {out}")


if __name__ == "__main__":
    main()
