"""Perfect loops (issue 29): a looping zoom's last frame leads into its first as any frame into the next.

    python bench/loop.py [--frames 24] [--size 160]

Dreams the sample photo as a 24-frame infinite zoom on EfficientNet-Lite0 (ImageNet weights, offline), with and
without `loop`, and prints the jump between consecutive frames (mean |frame k+1 - frame k|) all the way round,
the wrap-around jump (last frame -> first) and its ratio to the median jump (must be at most 1.5 with loop).
"""

from __future__ import annotations

import statistics

import common  # noqa: F401  (threads, import path)
import torch

from dream_core.animation import dream_zoom, loop_overlap
from dream_core.options import DreamSettings

ROOT = common.ROOT


def jumps(frames: torch.Tensor) -> tuple[list[float], float]:
    """Consecutive jumps (mean absolute difference), and the wrap-around jump from the last frame to the first."""
    inner = [float((frames[k + 1] - frames[k]).abs().mean()) for k in range(len(frames) - 1)]
    return inner, float((frames[0] - frames[-1]).abs().mean())


def main() -> None:
    args, model, image = common.zoom_bench(__doc__)
    settings = DreamSettings(octaves=2, iterations=8, step=0.015)
    print(
        f"zoom of {args.frames} frames, {args.size} px, zoom 1.05 and 1 degree a frame; loop overlap "
        f"{loop_overlap(args.frames)} frames"
    )
    for loop in (False, True):
        frames = dream_zoom(image, model, {"blocks.8": 1.0}, settings, args.frames, 1.05, 1.0, loop=loop)
        inner, wrap = jumps(frames)
        median = statistics.median([*inner, wrap])
        print(f"\nloop={loop}: jumps " + " ".join(f"{v:.3f}" for v in inner))
        print(
            f"  last -> first {wrap:.3f}, median jump {median:.3f}, ratio {wrap / median:.2f}, "
            f"largest other jump {max(inner) / median:.2f}x the median"
        )
        if loop:
            print(f"must hold: ratio <= 1.5: {wrap / median <= 1.5}")


if __name__ == "__main__":
    main()
