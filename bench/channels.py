"""Channel pictures of the default model: does each picture excite its own channel, and only its own?

    python bench/channels.py [--layer blocks.8] [--channels 0-7] [--size 224] [--steps 256] [--out sheet.png]

Grows one picture per channel with the default channel settings (whitened steps, roll, scale and rotation) and
prints, per channel, its mean activation on the noise it started from and on its picture (the gain: picture
over the larger of the noise's activation either way), then the matrix of every channel's mean activation on
every picture: the diagonal check holds when each channel is strongest on its own picture.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import time

import common  # noqa: F401

import torch

from dream_core import load_feature_model
from dream_core.channels import channel_means, channel_pictures
from dream_core.goals import parse_goals
from dream_core.imageio import save_image
from dream_core.options import ChannelSettings
from dream_core.sheet import contact_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.8")
    parser.add_argument("--channels", default="0-7")
    parser.add_argument("--size", type=int, default=ChannelSettings.size)
    parser.add_argument("--steps", type=int, default=ChannelSettings.steps)
    parser.add_argument("--out", help="write the labelled sheet here")
    args = parser.parse_args()
    model = load_feature_model("efficientnet_lite0", "imagenet")
    chosen = tuple(goal.mix[0][0] for goal in parse_goals(args.channels)[0])
    began = time.perf_counter()
    result = channel_pictures(model, args.layer, chosen, ChannelSettings(size=args.size, steps=args.steps))
    seconds = time.perf_counter() - began
    print(
        f"{len(chosen)} pictures of {result.layer} of {model.name}, {args.size} px, {args.steps} steps: {seconds:.1f} s"
    )
    gains = result.end / result.start.abs()
    for label, start, end, gain in zip(result.labels, result.start, result.end, gains, strict=True):
        print(f"  {label:14s} noise {start:7.2f} -> picture {end:6.2f}   gain {gain:6.1f}x")
    means = channel_means(model, result.layer, result.images)[:, list(chosen)]  # [picture, channel]
    print("mean activation of each channel (column) on each picture (row):")
    for row, label in zip(means, result.labels, strict=True):
        print(f"  {label:14s} " + " ".join(f"{value:6.1f}" for value in row.tolist()))
    own_strongest = (means.argmax(dim=0) == torch.arange(len(chosen))).tolist()
    runner_up = [float(means[:, j].sort(descending=True).values[1]) for j in range(len(chosen))]
    print(
        f"smallest gain {float(gains.min()):.1f}x (needs >= 5x); own picture strongest for "
        f"{sum(own_strongest)}/{len(chosen)} channels; own over the best other picture: "
        f"{min(float(means[j, j]) / max(runner_up[j], 1e-6) for j in range(len(chosen))):.2f}x at least"
    )
    if args.out:
        print(f"wrote {save_image(contact_sheet(result.images, result.labels)[0], args.out)}")


if __name__ == "__main__":
    main()
