"""Do tiles leave seams? Dream the sample photo at 2048 px with 512 px tiles and
compare the image's mean absolute Laplacian on the tile boundaries with elsewhere.

    python bench/seams.py [--size 2048] [--tile 512] [--out out/seams.png] [--fixed-grid]

Real weights (EfficientNet-Lite0, the offline default), the `lite0` preset. Two
measures: on the nominal tile grid (rows and columns next to multiples of the tile
size), and the worst phase: for every offset p, the Laplacian of columns and rows at
positions = p (mod tile) against the mean; a seam at any fixed offset would show
there. `--fixed-grid` turns off the moving grid and the context margins (what a
naive tiler does) to show that the measure does catch seams.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common  # noqa: F401  (thread settings)
import torch
import torch.nn.functional as F

from dream_core import dream, engine, get_preset, load_feature_model, tiling
from dream_core.imageio import load_image, save_image

ROOT = Path(__file__).resolve().parents[1]


def laplacian_magnitude(image: torch.Tensor) -> torch.Tensor:
    """|Laplacian| of the grey image `[H-2, W-2]` (4-neighbour kernel)."""
    grey = image.mean(dim=1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(grey, kernel).abs()[0, 0]


def seam_ratios(image: torch.Tensor, tile: int) -> tuple[float, float]:
    """(nominal grid ratio, worst phase ratio) of the mean |Laplacian|."""
    lap = laplacian_magnitude(image)  # index i here is pixel i + 1 of the image
    h, w = lap.shape
    on_grid = torch.zeros_like(lap, dtype=torch.bool)
    for k in range(tile, max(h, w) + 2, tile):
        for pixel in (k - 1, k):  # the two pixels that meet at a boundary
            if 0 <= pixel - 1 < h:
                on_grid[pixel - 1, :] = True
            if 0 <= pixel - 1 < w:
                on_grid[:, pixel - 1] = True
    nominal = (lap[on_grid].mean() / lap[~on_grid].mean()).item()
    overall = lap.mean()
    cols, rows = lap.mean(dim=0), lap.mean(dim=1)
    worst = 0.0
    for phase in range(tile):
        value = torch.cat([cols[phase::tile], rows[phase::tile]]).mean()
        worst = max(worst, (value / overall).item())
    return nominal, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--out", default=str(ROOT / "out" / "seams.png"))
    parser.add_argument("--fixed-grid", action="store_true", help="naive tiling, for comparison")
    args = parser.parse_args()
    if args.fixed_grid:
        engine._Ascent._randint = lambda self, low, high: 0  # no jitter, no grid offset
        tiling.MARGIN_FRACTION = 0.0
    preset = get_preset("lite0")
    model = load_feature_model(preset.model)
    photo = F.interpolate(
        load_image(ROOT / "samples" / "astronaut.png"), size=(args.size, args.size), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    settings = preset.settings.with_options(tile_size=args.tile)
    result = dream(photo, model, preset.layers, settings).images
    save_image(result[0], args.out)
    nominal, worst = seam_ratios(result, args.tile)
    base_nominal, base_worst = seam_ratios(photo, args.tile)
    label = "fixed grid (naive)" if args.fixed_grid else "moving grid (engine)"
    print(f"{label}: {args.size} px, {args.tile} px tiles, wrote {args.out}")
    print(
        f"mean |Laplacian| on tile boundaries / elsewhere: {nominal:.3f}   (photo before dreaming: "
        f"{base_nominal:.3f}; target within 10%: 0.90..1.10)"
    )
    print(f"worst phase (rows+columns at one offset mod {args.tile}) / mean: {worst:.3f}   (photo: {base_worst:.3f})")


if __name__ == "__main__":
    main()
