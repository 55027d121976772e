"""Spreading work over Ray workers against one machine, side by side in one run.

    python bench/scale.py [--images 12] [--side 256] [--shot-frames 8] [--rounds 2]

A folder of pictures (`deepdream dream FOLDER`) and a 3-shot clip (`deepdream video CLIP`, frames out) are
dreamed by: the single-machine command (2 threads), a local Ray cluster with 1 worker (1 thread), and with 2
workers (1 thread each). Each contender runs the whole command (the Ray ones start their workers, each loading
the model, inside the time); rounds alternate the contenders and medians are compared. Prints images per
second and seconds per video, and each Ray figure over the single machine's.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT

import torch
import torch.nn.functional as F

from dream_core import cli
from dream_core.imageio import load_image, save_image

FAST = ["--octaves", "2", "--iterations", "10"]


def make_folder(folder: Path, count: int, side: int) -> None:
    photos = [load_image(ROOT / "samples" / name) for name in ("astronaut.png", "coffee.jpg")]
    for index in range(count):
        photo = photos[index % 2]
        top, left = (index * 37) % (photo.shape[-2] - side), (index * 53) % (photo.shape[-1] - side)
        crop = torch.rot90(photo[..., top : top + side, left : left + side], index % 4, dims=(-2, -1))
        save_image(crop[0], folder / f"picture_{index:02d}.png")


def make_clip(folder: Path, per_shot: int, side: int) -> None:
    """Three shots of `per_shot` frames as a folder of frames: pans over three different pictures."""
    astronaut, coffee = (load_image(ROOT / "samples" / name) for name in ("astronaut.png", "coffee.jpg"))
    pictures = [astronaut, coffee, torch.rot90(astronaut[..., 200:, 100:], 2, dims=(-2, -1))]
    index = 0
    for picture in pictures:
        wide = F.interpolate(picture, size=(side, side + 3 * per_shot), mode="area")
        for t in range(per_shot):
            save_image(wide[0, :, :, 3 * t : 3 * t + side], folder / f"frame_{index:04d}.png")
            index += 1


def run(command: list[str]) -> float:
    """Seconds the whole command takes (its output to the terminal left out)."""
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(command)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code})")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--shot-frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level="ERROR")
    work = Path(tempfile.mkdtemp(prefix="deepdream-scale-"))
    (work / "pictures").mkdir()
    (work / "clip").mkdir()
    make_folder(work / "pictures", args.images, args.side)
    make_clip(work / "clip", args.shot_frames, args.side)
    contenders = {
        "one machine, 2 threads": [],
        "Ray, 1 worker x 1 thread": ["--ray", "--workers", "1"],
        "Ray, 2 workers x 1 thread": ["--ray", "--workers", "2"],
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, flags in contenders.items():
            for job, command in (
                ("folder", ["dream", str(work / "pictures")]),
                ("video", ["video", str(work / "clip")]),
            ):
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                times.setdefault((name, job), []).append(run([*command, "-o", str(out), *FAST, *flags]))
    print(
        f"{args.images} pictures of {args.side} px; a clip of 3 shots x {args.shot_frames} frames of {args.side} "
        f"px; {' '.join(FAST)}; medians of {args.rounds} rounds, each command whole"
    )
    base = {job: statistics.median(times[(next(iter(contenders)), job)]) for job in ("folder", "video")}
    for name in contenders:
        folder, video = (statistics.median(times[(name, job)]) for job in ("folder", "video"))
        print(
            f"  {name:28s} {args.images / folder:6.2f} images/s ({base['folder'] / folder:4.2f}x)   "
            f"{video:6.1f} s per video ({base['video'] / video:4.2f}x)"
        )
    shutil.rmtree(work, ignore_errors=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
