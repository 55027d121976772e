"""Audio-reactive strength (issue 29): a clip dreamed with `--react 'step=0.002:0.03'` dreams as loud as it sounds.

    python bench/react.py [--size 160]

Makes a 24-frame clip at 12 fps (a pan across the sample photo) whose audio is silent for the first second and
loud (a tone and noise) for the second, and dreams it with the real command, `deepdream video clip.mp4 -o out.mp4
--react 'step=0.002:0.03'`, on EfficientNet-Lite0 (ImageNet weights, offline). Prints each frame's dream strength
(mean |dreamed frame - source frame|, both decoded from their files) beside the audio's loudness in that frame
(RMS), their correlation (must be at least 0.7), and whether the output kept the audio. The control dreams the
same clip at a fixed step. Then the same for `samples/beat.mov` (four drum hits in its second second).
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import common  # noqa: F401  (threads, import path)
import numpy as np
import torch

from dream_core.cli import main as deepdream
from dream_core.imageio import load_image
from dream_core.imageops import resize
from dream_core.videoio import VideoSource, read_audio

ROOT = common.ROOT
RATE = 22050
FLAGS = ["--model", "efficientnet_lite0", "--layers", "blocks.8:1", "--octaves", "2", "--iterations", "6"]
FLAGS += ["--flow", "ilk", "--precision", "fp32"]


def make_clip(path: Path, size: int, frames: int = 24, fps: int = 12) -> None:
    photo = resize(load_image(ROOT / "samples" / "astronaut.png"), (size, size + 3 * frames))
    t = np.arange(int(RATE * frames / fps)) / RATE
    loud = (t >= frames / fps / 2).astype(np.float64)
    noise = np.random.default_rng(0).standard_normal(t.size)
    sound = (loud * (0.5 * np.sin(2 * np.pi * 220 * t) + 0.2 * noise)).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "12"})
        video.width, video.height, video.pix_fmt = size, size, "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        for i in range(frames):
            rgb = (photo[0, :, :, 3 * i : 3 * i + size].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode())
        for start in range(0, sound.size, 1024):
            frame = av.AudioFrame.from_ndarray(sound[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


def loudness(path: Path, frames: int, fps: float) -> list[float]:
    samples, rate = read_audio(path)
    edges = [round(i * rate / fps) for i in range(frames + 1)]
    return [
        float(samples[a:b].square().mean().sqrt()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]


def strengths(source: Path, dreamed: Path) -> list[float]:
    pairs = zip(VideoSource(source).frames(), VideoSource(dreamed).frames(), strict=True)
    return [float((b - a).abs().mean()) for a, b in pairs]


def correlation(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(np.array(a), np.array(b))[0, 1])


def run(clip: Path, out: Path, *more: str) -> list[float]:
    assert deepdream(["video", str(clip), "-o", str(out), *FLAGS, *more]) == 0
    return strengths(clip, out)


def report(name: str, clip: Path, folder: Path) -> None:
    source = VideoSource(clip)
    heard = loudness(clip, source.count or 0, float(source.rate))
    reacting = run(clip, folder / f"{name}_react.mp4", "--react", "step=0.002:0.03")
    control = run(clip, folder / f"{name}_fixed.mp4", "--step", "0.02")
    with av.open(str(folder / f"{name}_react.mp4")) as container:
        kept = [stream.codec_context.name for stream in container.streams.audio]
    print(f"\n{name}: {len(heard)} frames at {float(source.rate):g} fps, --react 'step=0.002:0.03'")
    print("frame      " + " ".join(f"{i:5d}" for i in range(len(heard))))
    print("loudness   " + " ".join(f"{v:5.3f}" for v in heard))
    print("strength   " + " ".join(f"{v:5.3f}" for v in reacting))
    print("fixed step " + " ".join(f"{v:5.3f}" for v in control))
    print(
        f"correlation of strength with loudness: --react {correlation(reacting, heard):.2f}, "
        f"fixed step {correlation(control, heard):.2f}; audio in the output: {kept or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "half_silent.mp4"
        make_clip(clip, args.size)
        report("half silent, half loud", clip, Path(folder))
        report("samples/beat.mov", ROOT / "samples" / "beat.mov", Path(folder))


if __name__ == "__main__":
    main()
