"""Peak memory of whole dreams at 1024, 2048, 4096 and 8192 px, each in a fresh process.

    python bench/memory.py [--sizes 1024 2048 4096 8192] [--model inception_v3]

InceptionV3 up to mixed7 (Keras' layers), random weights, automatic tiles. Up to
4096 px: Keras' 3 octaves with 1 iteration each (the peak does not grow with more
iterations); 8192 px: one octave, two iterations. Prints peak RSS (and the CUDA
peak on a GPU) against the 4 GB target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_GB = 4.0


def child(size: int, model_name: str) -> None:
    """Runs in the subprocess: one dream, then its memory figures as JSON."""
    sys.path.insert(0, str(HERE))
    import resource
    import time

    import common  # noqa: F401  (thread settings)
    import torch

    from dream_core import DreamSettings, dream, load_feature_model
    from dream_core.engine import _Ascent
    from dream_core.objectives import Objective

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_feature_model(model_name, "random", device=device)
    layers = {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5} if model_name == "inception_v3" else None
    layers = layers or dict(model.spec.default_layers)
    settings = DreamSettings(octaves=3, iterations=1) if size <= 4096 else DreamSettings(octaves=1, iterations=2)
    image = torch.rand(1, 3, size, size, device=device)
    tile = _Ascent(model, Objective.of(layers).resolved(model), settings, image[:1])
    tile.close()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    dream(image, model, layers, settings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    cuda = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    print(
        json.dumps(
            {
                "size": size,
                "peak_rss_gb": peak,
                "rss_before_gb": before,
                "cuda_peak_gb": cuda,
                "tile": tile.tile_size,
                "seconds": seconds,
                "octaves": settings.octaves,
                "iterations": settings.iterations,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model)
        return
    print(
        f"{'size':>6s} {'octaves x iters':>15s} {'tile':>5s} {'RSS before':>10s} {'peak RSS':>9s} "
        f"{'CUDA peak':>9s} {'seconds':>8s}"
    )
    for size in args.sizes:
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--model", args.model],
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode != 0:
            print(f"{size:6d} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        cuda = f"{r['cuda_peak_gb']:.2f} GB" if r["cuda_peak_gb"] is not None else "-"
        verdict = "" if size < 4096 else ("  <= 4 GB: ok" if r["peak_rss_gb"] <= TARGET_GB else "  > 4 GB: MISSED")
        print(
            f"{size:6d} {r['octaves']:>7d} x {r['iterations']:<5d} {r['tile']:5d} {r['rss_before_gb']:7.2f} GB "
            f"{r['peak_rss_gb']:6.2f} GB {cuda:>9s} {r['seconds']:8.1f}{verdict}"
        )


if __name__ == "__main__":
    main()
