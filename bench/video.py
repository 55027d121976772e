"""Video: does the coherent dream hold still, how strong is it, what does a frame cost, and
does memory stay flat with the clip's length.

    python bench/video.py [--frames 10] [--rss]

Clips are made from the bundled photos with motion known exactly: a camera pan, a zoom
and an object moving over a still background. For each, the clip is dreamed frame by
frame (carry 0) and coherently (the engine's own optical flow), and compared with:

- temporal error: mean |dream_t - dream_{t-1} moved by the known motion|, over pixels
  that were visible in both frames;
- dream strength: mean |dream_t - frame_t|;
- seconds per frame after the first / seconds of the first (a full dream);
- with --rss: peak RSS of `deepdream video` on a 30- and a 300-frame 512 px clip, each
  in a fresh process.

Figures are 0..1 image units. Uses the real EfficientNet-Lite0 weights.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import THREADS

import torch
import torch.nn.functional as F

from dream_core import get_preset, load_feature_model
from dream_core.imageio import load_image
from dream_core.options import VideoSettings
from dream_core.video import dream_video, warp

ROOT = Path(__file__).resolve().parent.parent
SIZE = (160, 224)  # height, width


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")  # fmt: skip


def _sample(source: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    height, width = source.shape[-2:]
    grid = torch.stack([xs * 2 / (width - 1) - 1, ys * 2 / (height - 1) - 1], dim=-1).unsqueeze(0)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pan_clip(count: int, speed: float = 6.0):
    """The camera moves right by `speed` px per frame over the astronaut photo."""
    photo = F.interpolate(load_image(ROOT / "samples" / "astronaut.png"), size=(240, 240 + int(speed * count)),
                          mode="area")  # fmt: skip
    ys, xs = _grid(*SIZE)
    frames = [_sample(photo, xs + speed * t, ys + 40) for t in range(count)]
    back = torch.stack([torch.full(SIZE, speed), torch.zeros(SIZE)])  # pixel x of frame t was at x + speed
    visible = torch.ones(1, 1, *SIZE)
    visible[..., -int(speed) - 1 :] = 0  # entered at the right edge
    return frames, [back] * count, [visible] * count


def zoom_clip(count: int, rate: float = 1.03):
    """A zoom into the coffee photo's centre by `rate` per frame."""
    photo = F.interpolate(load_image(ROOT / "samples" / "coffee.jpg"), size=(320, 448), mode="area")
    height, width = SIZE
    ys, xs = _grid(height, width)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    frames = []
    for t in range(count):
        scale = rate**t
        frames.append(_sample(photo, (xs - cx) / scale * 1.6 + 223.5, (ys - cy) / scale * 1.6 + 159.5))
    back = torch.stack([(xs - cx) * (1 / rate - 1), (ys - cy) * (1 / rate - 1)])
    return frames, [back] * count, [torch.ones(1, 1, *SIZE)] * count


def object_clip(count: int, speed: float = 5.0):
    """The cat's face (a disc) moving right by `speed` px per frame over the still coffee photo."""
    height, width = SIZE
    background = F.interpolate(load_image(ROOT / "samples" / "coffee.jpg"), size=SIZE, mode="area")
    cat = F.interpolate(load_image(ROOT / "tests" / "data" / "chelsea.jpg"), size=(200, 300), mode="area")
    ys, xs = _grid(height, width)
    radius = 40.0
    frames, backs, visibles = [], [], []
    previous_inside = None
    for t in range(count):
        cx, cy = 50 + speed * t, height / 2
        inside = ((xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2).float()
        patch = _sample(cat, xs - cx + 150, ys - cy + 90)
        frames.append(background * (1 - inside) + patch * inside)
        back = torch.stack([-speed * inside, torch.zeros(SIZE)])
        visible = torch.ones(SIZE)
        if previous_inside is not None:
            revealed = (previous_inside > 0) & (inside == 0)  # background that the disc covered before
            edge = (F.max_pool2d(inside[None, None], 5, 1, 2)[0, 0] - F.avg_pool2d(inside[None, None], 5, 1, 2)[0, 0]
                    ) > 0  # fmt: skip
            visible[revealed | edge] = 0
        previous_inside = inside
        backs.append(back)
        visibles.append(visible.view(1, 1, *SIZE))
    return frames, backs, visibles


def measure(frames, backs, visibles, model, layers, settings, video):
    """(temporal error, strength, seconds of the first frame, mean seconds of the others)."""
    dreams, times = [], []
    start = time.perf_counter()
    for dreamed in dream_video(iter(frames), model, layers, settings, video):
        times.append(time.perf_counter() - start)
        dreams.append(dreamed)
        start = time.perf_counter()
    errors = []
    for t in range(1, len(dreams)):
        moved = warp(dreams[t - 1], backs[t])
        weight = visibles[t]
        errors.append(float(((dreams[t] - moved).abs() * weight).sum() / (weight.sum() * 3)))
    strength = sum(float((d - f).abs().mean()) for d, f in zip(dreams, frames, strict=True)) / len(dreams)
    return sum(errors) / len(errors), strength, times[0], sum(times[1:]) / (len(times) - 1)


def peak_rss(frames: int, workdir: Path) -> float:
    """Peak RSS (GB) of `deepdream video` on a generated 512 px clip of `frames` frames, in a fresh process."""
    import av
    import numpy as np

    clip = workdir / f"clip{frames}.mp4"
    photo = F.interpolate(load_image(ROOT / "samples" / "astronaut.png"), size=(512, 512 + 2 * frames), mode="area")
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for t in range(frames):
            rgb = (photo[0, :, :, 2 * t : 2 * t + 512].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    code = (
        "import resource, sys; from dream_core.cli import main; "
        f"rc = main(['video', {str(clip)!r}, '-o', {str(workdir / f'out{frames}.mp4')!r}, '--iterations', '1', "
        "'--octaves', '1', '--next-iterations', '1']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS for 30 vs 300 frames (minutes)")
    parser.add_argument("--next-iterations", type=int, default=VideoSettings().next_iterations)
    args = parser.parse_args()
    preset = get_preset("lite0")
    model = load_feature_model(preset.model)
    settings, layers = preset.settings, preset.layers
    coherent, alone = VideoSettings(next_iterations=args.next_iterations), VideoSettings(carry=0.0)
    print(f"threads {THREADS}, {args.frames} frames of {SIZE[1]}x{SIZE[0]}, {preset.model}, {settings}")
    print(f"coherent: {coherent}")
    for name, make in (("pan", pan_clip), ("zoom", zoom_clip), ("moving object", object_clip)):
        clip = make(args.frames)
        e_alone, s_alone, first_alone, _ = measure(*clip, model, layers, settings, alone)
        e_coh, s_coh, first_coh, later_coh = measure(*clip, model, layers, settings, coherent)
        print(f"{name:14s} temporal error coherent / alone {e_coh:.4f} / {e_alone:.4f} = {e_coh / e_alone:.2f}x "
              f"(target <= 0.35x); strength {s_coh:.4f} / {s_alone:.4f} = {s_coh / s_alone:.2f}x (>= 0.6x); "
              f"s per later frame / full dream {later_coh:.3f} / {first_coh:.3f} = {later_coh / first_coh:.2f}x "
              "(<= 0.4x)")  # fmt: skip
    if args.rss:
        with tempfile.TemporaryDirectory() as folder:
            short, long = peak_rss(30, Path(folder)), peak_rss(300, Path(folder))
        print(f"peak RSS, 512 px clip through the CLI: 300 frames / 30 frames {long:.2f} / {short:.2f} GB "
              f"= {long / short:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
