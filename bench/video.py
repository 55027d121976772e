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
    return torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )


def _sample(source: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    height, width = source.shape[-2:]
    grid = torch.stack([xs * 2 / (width - 1) - 1, ys * 2 / (height - 1) - 1], dim=-1).unsqueeze(0)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pan_clip(count: int, speed: float = 6.0):
    """The camera moves right by `speed` px per frame over the astronaut photo."""
    photo = F.interpolate(
        load_image(ROOT / "samples" / "astronaut.png"), size=(240, 240 + int(speed * count)), mode="area"
    )
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
            edge = (
                F.max_pool2d(inside[None, None], 5, 1, 2)[0, 0] - F.avg_pool2d(inside[None, None], 5, 1, 2)[0, 0]
            ) > 0
            visible[revealed | edge] = 0
        previous_inside = inside
        backs.append(back)
        visibles.append(visible.view(1, 1, *SIZE))
    return frames, backs, visibles


def still_clip(count: int):
    """A locked-off camera: the same astronaut frame `count` times."""
    frame = pan_clip(1)[0][0]
    return [frame] * count


def slow_pan_clip(count: int):
    """The camera moving 1 px per frame over the astronaut photo."""
    return pan_clip(count, speed=1.0)[0]


def cut_clip(count: int):
    """A pan over the astronaut, a hard cut, then the zoom into the coffee cup: (frames, index of the cut)."""
    first = pan_clip(count // 2)[0]
    second = zoom_clip(count - count // 2)[0]
    return first + second, count // 2


def fade_clip(count: int):
    """The pan at 2 px a frame fading to black by its middle frame and back (with its motion, as pan_clip)."""
    frames, backs, visibles = pan_clip(count, speed=2.0)
    middle = (count - 1) / 2
    return [frame * abs(t - middle) / middle for t, frame in enumerate(frames)], backs, visibles


def strength(dreamed: torch.Tensor, frame: torch.Tensor) -> float:
    return float((dreamed - frame).abs().mean())


def shots(frames, model, layers, settings, video, keep=None):
    """Dream a clip coherently: ({index: dream} for the `keep` indices (all if None), first frames of its shots,
    seconds per frame, peak MB of the tensors the dream made: flat in the clip's length)."""
    from dream_core.memory import LiveTensorBytes

    starts, dreams = [], {}
    tracker = LiveTensorBytes("cpu")
    start = time.perf_counter()
    with tracker:
        for index, dreamed in enumerate(
            dream_video(iter(frames), model, layers, settings, video, on_new_shot=starts.append)
        ):
            if keep is None or index in keep:
                dreams[index] = dreamed.clone()
            del dreamed
    seconds = (time.perf_counter() - start) / len(frames)
    return dreams, starts, seconds, tracker.peak / 2**20


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


def shots_report(model, layers, settings, video, long: int) -> None:
    """Cuts, still shots, slow pans and fades: where shots start and how the strength holds."""
    from dream_core import dream

    print(
        f"\n-- shots ({long}-frame still shot and slow pan; steady={video.steady}, cut threshold {video.cut_threshold})"
    )
    frames, cut = cut_clip(16)
    dreams, starts, seconds, peak = shots(frames, model, layers, settings, video)
    fresh = dream(frames[cut], model, layers, settings).images
    after, alone = strength(dreams[cut], frames[cut]), strength(fresh, frames[cut])
    print(
        f"cut at frame {cut}: shots start at {starts}; first frame after the cut: strength {after:.4f} / fresh "
        f"dream {alone:.4f} = {after / alone:.2f}x (target >= 0.8x); {seconds:.3f} s/frame, peak {peak:.0f} MB"
    )
    save = Path(tempfile.gettempdir()) / "bench_video_after_cut.png"
    from dream_core.imageio import save_image

    save_image(torch.cat([frames[cut], dreams[cut - 1], dreams[cut]], dim=-1)[0], save)
    print(f"  (the frame after the cut, the dream before it, the dream after it: {save})")
    for name, clip in (("still shot", still_clip(long)), ("slow pan", slow_pan_clip(long))):
        dreams, starts, seconds, peak = shots(clip, model, layers, settings, video, keep={0, long - 1})
        first, last = strength(dreams[0], clip[0]), strength(dreams[long - 1], clip[-1])
        print(
            f"{name:11s} {long} frames: shots start at {starts}; strength last / first {last:.4f} / {first:.4f} "
            f"= {last / first:.2f}x (target 0.8-1.25x); {seconds:.3f} s/frame, peak {peak:.0f} MB"
        )
    clip = fade_clip(20)
    _, starts, _, _ = shots(clip[0], model, layers, settings, video, keep=set())
    e_coh = measure(*clip, model, layers, settings, video)[0]
    e_alone = measure(*clip, model, layers, settings, VideoSettings(carry=0.0))[0]
    print(
        f"fade to black and back, 20 frames: shots start at {starts} (target [0]); temporal error coherent / "
        f"alone {e_coh:.4f} / {e_alone:.4f} = {e_coh / e_alone:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS for 30 vs 300 frames (minutes)")
    parser.add_argument("--next-iterations", type=int, default=VideoSettings().next_iterations)
    parser.add_argument("--shot-frames", type=int, default=120, help="length of the still shot and the slow pan")
    parser.add_argument("--no-steady", dest="steady", action="store_false", help="measure without --steady")
    args = parser.parse_args()
    preset = get_preset("lite0")
    model = load_feature_model(preset.model)
    settings, layers = preset.settings, preset.layers
    coherent = VideoSettings(next_iterations=args.next_iterations, steady=args.steady)
    alone = VideoSettings(carry=0.0)
    print(f"threads {THREADS}, {args.frames} frames of {SIZE[1]}x{SIZE[0]}, {preset.model}, {settings}")
    print(f"coherent: {coherent}")
    for name, make in (("pan", pan_clip), ("zoom", zoom_clip), ("moving object", object_clip)):
        clip = make(args.frames)
        e_alone, s_alone, first_alone, _ = measure(*clip, model, layers, settings, alone)
        e_coh, s_coh, first_coh, later_coh = measure(*clip, model, layers, settings, coherent)
        print(
            f"{name:14s} temporal error coherent / alone {e_coh:.4f} / {e_alone:.4f} = {e_coh / e_alone:.2f}x "
            f"(target <= 0.35x); strength {s_coh:.4f} / {s_alone:.4f} = {s_coh / s_alone:.2f}x (>= 0.6x); "
            f"s per later frame / full dream {later_coh:.3f} / {first_coh:.3f} = {later_coh / first_coh:.2f}x "
            "(<= 0.4x)"
        )
    shots_report(model, layers, settings, coherent, args.shot_frames)
    if args.rss:
        with tempfile.TemporaryDirectory() as folder:
            short, long = peak_rss(30, Path(folder)), peak_rss(300, Path(folder))
        print(
            f"peak RSS, 512 px clip through the CLI: 300 frames / 30 frames {long:.2f} / {short:.2f} GB "
            f"= {long / short:.2f}x (target <= 1.3x)"
        )


if __name__ == "__main__":
    main()
