"""Make a folder of real photographs for fine-tuning tests and benchmarks: one class per photo.

    python tools/make_photo_set.py [OUT] [--per-class 40] [--size 64]   (default OUT: bench/photos10)
    python tools/make_photo_set.py bench/digits10 --digits                (needs scikit-learn)

Each class is one public-domain photograph (the pack's samples and scikit-image's
`skimage.data` photos; scikit-image is needed to run this script, not to use its
output); each picture is a random crop of that photo (a quarter to two thirds of its
shorter side, anywhere, sometimes mirrored) scaled to `size` px. Crops of one photo
show different things (a face, a flag, a suit), so a classifier has to learn the
photo's look, not one object. Seeded: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
SKIMAGE_PHOTOS = ("camera", "rocket", "coins", "page", "brick", "grass", "hubble_deep_field")
BUNDLED = {
    "astronaut": ROOT / "samples" / "astronaut.png",
    "coffee": ROOT / "samples" / "coffee.jpg",
    "chelsea": ROOT / "tests" / "data" / "chelsea.jpg",
}


def photos() -> dict[str, Image.Image]:
    """The source photographs, RGB."""
    from skimage import data

    out = {name: Image.open(path).convert("RGB") for name, path in BUNDLED.items()}
    for name in SKIMAGE_PHOTOS:
        out[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
    return out


def write_digits(out: Path, per_class: int, size: int, rng: random.Random) -> None:
    """Scanned handwritten digits, `per_class` of each, as `size` px pictures in out/digit_N/."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    for digit in range(10):
        scans = [image for image, label in zip(digits.images, digits.target, strict=True) if label == digit]
        folder = out / f"digit_{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, scan in enumerate(rng.sample(scans, per_class)):
            ink = (255 - scan / 16 * 255).astype(np.uint8)
            picture = Image.fromarray(ink).resize((size, size), Image.BICUBIC).convert("RGB")
            picture.save(folder / f"{digit}_{index:02d}.png")
    print(f"wrote {per_class} scanned digits of {size} px for each of 10 classes into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "bench" / "photos10")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--crop",
        type=float,
        nargs=2,
        default=(0.25, 0.67),
        metavar=("MIN", "MAX"),
        help="crop side as a share of the photo's shorter side",
    )
    parser.add_argument("--grey", action="store_true", help="grey pictures: the classes differ in texture only")
    parser.add_argument(
        "--digits",
        action="store_true",
        help="instead: scikit-learn's scanned handwritten digits (UCI optdigits, 8x8 scans), "
        "one class per digit, dark ink on white, enlarged to SIZE",
    )
    args = parser.parse_args()
    rng = random.Random(0)
    if args.digits:
        write_digits(args.out, args.per_class, args.size, rng)
        return
    for name, photo in photos().items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        short = min(photo.size)
        for index in range(args.per_class):
            side = int(short * rng.uniform(*args.crop))
            left, top = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
            crop = photo.crop((left, top, left + side, top + side)).resize((args.size, args.size), Image.LANCZOS)
            if rng.random() < 0.5:
                crop = ImageOps.mirror(crop)
            if args.grey:
                crop = crop.convert("L").convert("RGB")
            crop.save(folder / f"{name}_{index:02d}.jpg", quality=90)
    print(
        f"wrote {args.per_class} pictures of {args.size} px for each of {len(BUNDLED) + len(SKIMAGE_PHOTOS)} "
        f"classes into {args.out}"
    )


if __name__ == "__main__":
    main()
