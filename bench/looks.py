"""The new looks against the classic step, on the bundled photo with the default model.

    python bench/looks.py [--size 384] [--out DIR]

For each precondition (off = classic, lapnorm, whitened), the same dream (default layers
and settings, same seed and step count): the share of the change's energy above half the
Nyquist frequency (radial frequency > 0.25 cycles per pixel) and the objective's gain
(after / before) relative to the classic step's. With --out, the pictures are written
there to be looked at.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
from pathlib import Path

from common import ROOT

import torch
import torch.nn.functional as F

from dream_core import DreamSettings, dream, load_feature_model, objective_value
from dream_core.imageio import load_image, save_image


def high_frequency_share(change: torch.Tensor) -> float:
    """Share of `change`'s spectral energy at radial frequencies above 0.25 cycles per pixel."""
    power = torch.fft.rfft2(change.double()).abs().square().sum(dim=(0, 1))
    fy = torch.fft.fftfreq(change.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(change.shape[-1], dtype=torch.float64)[None, :]
    high = torch.sqrt(fx * fx + fy * fy) > 0.25
    return float(power[high].sum() / power.sum())


def measure(size: int, out: Path | None, looks=("off", "lapnorm", "whitened"), scale=0.0, rotate=0.0) -> dict:
    model = load_feature_model()
    layers = dict(model.spec.default_layers)
    photo = load_image(ROOT / "samples" / "astronaut.png")
    photo = F.interpolate(photo, size=(size, size), mode="area")
    before = float(objective_value(model, photo, layers).sum())
    figures = {}
    for look in looks:
        settings = DreamSettings(precondition=look, scale_jitter=scale, rotate_jitter=rotate)
        dreamed = dream(photo, model, layers, settings).images
        gain = float(objective_value(model, dreamed, layers).sum()) / before
        figures[look] = {"high": high_frequency_share(dreamed - photo), "gain": gain}
        if out is not None:
            save_image(dreamed[0], out / f"looks_{look}.png")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures = measure(args.size, args.out)
    classic = figures["off"]
    print(f"astronaut {args.size} px, efficientnet_lite0, default layers and settings, seed 0")
    for look, value in figures.items():
        print(
            f"{look:9s} energy above half Nyquist {value['high']:6.1%} ({value['high'] / classic['high']:.2f}x "
            f"classic); objective gain {value['gain']:.2f}x ({value['gain'] / classic['gain']:.2f}x classic's)"
        )


if __name__ == "__main__":
    main()
