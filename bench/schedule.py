"""Settings over time (issue 29): a zoom and a clip whose step follows a schedule dream harder frame by frame.

    python bench/schedule.py [--frames 24] [--size 160]

Dreams the sample photo as an infinite zoom with `step: 0=0, LAST=0.04` on EfficientNet-Lite0 (ImageNet weights,
offline) and prints each frame's dream strength: the mean |dream - frame before dreaming| (the previous frame
zoomed in), and its rank correlation with the frame number (must be at least 0.8). The same zoom without a
schedule is the control: its strength does not rise. Then the same schedule on a clip (a pan across the photo,
dreamed as `deepdream video` dreams it: carried along the flow, steady): each frame's mean |dream - frame|.
"""

from __future__ import annotations

import common  # noqa: F401  (threads, import path)
import torch

from dream_core.animation import dream_zoom, zoom_schedulable, zoom_transform
from dream_core.imageio import load_image
from dream_core.imageops import resize
from dream_core.options import OPTIONS, DreamSettings, VideoSettings
from dream_core.schedule import parse_schedules
from dream_core.video import dream_video

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
    args, model, image = common.zoom_bench(__doc__)
    settings = DreamSettings(octaves=1, iterations=6, step=0.02)
    text = f"step: 0=0, {args.frames - 1}=0.04"
    schedules = parse_schedules(text, zoom_schedulable())
    zoom = 1.05
    results = {}
    for name, timeline in (("scheduled", schedules), ("control", ())):
        frames = dream_zoom(image, model, {"blocks.8": 1.0}, settings, args.frames, zoom, schedules=timeline)
        results[name] = strengths(image, frames, zoom)
    report(
        f"zoom of {args.frames} frames, {args.size} px, --schedule '{text}' (control: step 0.02 throughout)", results
    )
    clip = pan(load_image(ROOT / "samples" / "astronaut.png"), args.frames, args.size)
    video = VideoSettings(flow="ilk")
    clips = {}
    for name, timeline in (("scheduled", parse_schedules(text, OPTIONS)), ("control", ())):
        dreams = dream_video(iter(clip), model, {"blocks.8": 1.0}, settings, video, schedules=timeline)
        clips[name] = [float((dream - frame).abs().mean()) for dream, frame in zip(dreams, clip, strict=True)]
    report(f"clip of {args.frames} frames (a pan, 3 px a frame), {args.size} px, the same schedule", clips)


def pan(photo: torch.Tensor, count: int, size: int, speed: int = 3) -> list[torch.Tensor]:
    wide = resize(photo, (size, size + speed * count))
    return [wide[..., speed * t : speed * t + size].contiguous() for t in range(count)]


def report(title: str, results: dict[str, list[float]]) -> None:
    index = [float(i) for i in range(len(results["scheduled"]))]
    print(title)
    print("frame    " + " ".join(f"{int(i):5d}" for i in index))
    for name, values in results.items():
        print(f"{name:10s}" + " ".join(f"{v:5.3f}" for v in values))
    for name, values in results.items():
        print(f"rank correlation of strength with frame, {name}: {spearman(values, index):.2f}")
    print(f"must hold: scheduled >= 0.8: {spearman(results['scheduled'], index) >= 0.8}\n")


if __name__ == "__main__":
    main()
