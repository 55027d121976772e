"""Settings over time (issue 29): a zoom whose step follows a schedule dreams harder frame by frame.

    python bench/schedule.py [--frames 24] [--size 160]

Dreams the sample photo as an infinite zoom with `step: 0=0, LAST=0.04` on EfficientNet-Lite0 (ImageNet weights,
offline) and prints each frame's dream strength: the mean |dream - frame before dreaming| (the previous frame
zoomed in), and its rank correlation with the frame number (must be at least 0.8). The same zoom without a
schedule is the control: its strength does not rise.
"""

from __future__ import annotations

import argparse

import common  # noqa: F401  (threads, import path)
import torch

from dream_core import load_feature_model
from dream_core.animation import dream_zoom, zoom_schedulable, zoom_transform
from dream_core.imageio import load_image
from dream_core.imageops import resize
from dream_core.options import DreamSettings
from dream_core.schedule import parse_schedules

ROOT = common.ROOT


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, index in enumerate(order):
        out[index] = float(rank)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = torch.tensor(ranks(a)), torch.tensor(ranks(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def strengths(image: torch.Tensor, frames: torch.Tensor, zoom: float) -> list[float]:
    """Per frame: mean |frame - what it was dreamed from| (the input, then the previous frame zoomed in)."""
    before = [image[0], *(zoom_transform(frames[i - 1 : i], zoom, 0.0, 0.0, 0.0)[0] for i in range(1, len(frames)))]
    return [float((frame - start).abs().mean()) for frame, start in zip(frames, before, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    model = load_feature_model("efficientnet_lite0", "imagenet")
    image = resize(load_image(ROOT / "samples" / "astronaut.png"), (args.size, args.size))
    settings = DreamSettings(octaves=1, iterations=6, step=0.02)
    text = f"step: 0=0, {args.frames - 1}=0.04"
    schedules = parse_schedules(text, zoom_schedulable())
    zoom = 1.05
    results = {}
    for name, timeline in (("scheduled", schedules), ("control", ())):
        frames = dream_zoom(image, model, {"blocks.8": 1.0}, settings, args.frames, zoom, schedules=timeline)
        results[name] = strengths(image, frames, zoom)
    index = list(range(args.frames))
    print(f"zoom of {args.frames} frames, {args.size} px, --schedule '{text}' (control: step 0.02 throughout)")
    print("frame    " + " ".join(f"{i:5d}" for i in index))
    for name, values in results.items():
        print(f"{name:10s}" + " ".join(f"{v:5.3f}" for v in values))
    for name, values in results.items():
        print(f"rank correlation of strength with frame, {name}: {spearman(values, [float(i) for i in index]):.2f}")
    print(f"must hold: scheduled >= 0.8: {spearman(results['scheduled'], [float(i) for i in index]) >= 0.8}")


if __name__ == "__main__":
    main()
