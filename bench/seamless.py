"""Seamless tiles (issue 29): a `--seamless` dream tiles 2x2 without a seam.

    python bench/seamless.py [--size 256] [--out DIR]

Dreams the sample photo (256 px) on EfficientNet-Lite0 (ImageNet weights, offline) with the classic settings,
with and without `seamless`, tiles each 2x2 and compares the pixel jump across the tile borders (the mean |a - b|
of the two columns, and of the two rows, that meet there) with the jump between neighbouring columns and rows
elsewhere (their mean over the picture). Must hold: within 1.2x with seamless. With --out it writes both tiled
pictures there, to look at.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common  # noqa: F401  (threads, import path)
import torch

from dream_core import dream, load_feature_model
from dream_core.imageio import load_image, save_image
from dream_core.imageops import resize
from dream_core.options import DreamSettings

ROOT = common.ROOT


def border_ratio(tile: torch.Tensor) -> tuple[float, float, float]:
    """(jump across the borders, jump between neighbours elsewhere, their ratio) of `tile` `[3, H, W]` tiled."""
    across = 0.5 * (
        float((tile[..., :, 0] - tile[..., :, -1]).abs().mean())
        + float((tile[..., 0, :] - tile[..., -1, :]).abs().mean())
    )
    elsewhere = 0.5 * (
        float((tile[..., :, 1:] - tile[..., :, :-1]).abs().mean())
        + float((tile[..., 1:, :] - tile[..., :-1, :]).abs().mean())
    )
    return across, elsewhere, across / elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_feature_model("efficientnet_lite0", "imagenet")
    image = resize(load_image(ROOT / "samples" / "astronaut.png"), (args.size, args.size))
    layers = {"blocks.6": 1.0, "blocks.8": 1.5, "blocks.10": 1.0}
    print(f"the photo at {args.size} px; octaves 3, iterations 20, step 0.01 (classic)")
    across, elsewhere, ratio = border_ratio(image[0])
    print(f"the photo itself:   across the borders {across:.4f}, elsewhere {elsewhere:.4f}, ratio {ratio:.2f}")
    for seamless in (False, True):
        dreamed = dream(image, model, layers, DreamSettings(seamless=seamless, seed=1)).images[0]
        across, elsewhere, ratio = border_ratio(dreamed)
        print(f"seamless={seamless!s:5}: across the borders {across:.4f}, elsewhere {elsewhere:.4f}, ratio {ratio:.2f}")
        if seamless:
            print(f"must hold: ratio <= 1.2: {ratio <= 1.2}")
        if args.out:
            tiled = dreamed.repeat(1, 2, 2)
            print(f"  wrote {save_image(tiled, args.out / f'tiled_2x2_seamless_{seamless}.png')}")


if __name__ == "__main__":
    main()
