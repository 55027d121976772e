"""Speed of one ascent step: engine vs naive loop, vs bare forward+backward, vs the
machine's matmul rate; tiled vs untiled. All figures from one run, contenders
alternated round by round; ratios are what count.

    python bench/speed.py [--size 512] [--rounds 7] [--model inception_v3]

Weights are random (speed does not depend on them), so this runs offline.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import contextlib

from common import naive_step_factory, print_ratio, race

import torch

from dream_core import DreamSettings, load_feature_model
from dream_core.devices import PRECISIONS, resolve_precision
from dream_core.engine import STEP_SCALE, _Ascent
from dream_core.objectives import Objective
from dream_core.objectives import weighted_loss

KERAS_LAYERS = {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5}


def engine_step_factory(model, layers, size, device, tile_size=0, jitter=32, precision="fp32"):
    """The engine's own step (`_Ascent.gradient` + in-place update), as `dream` runs it.

    `model` must be computing in `precision` already (`FeatureModel.computing_in`, entered
    once, as a dream does): one model per precision.
    """
    weights = model.resolve_weights(layers)
    settings = DreamSettings(tile_size=tile_size, jitter=jitter, precision=precision)
    image = torch.rand(1, 3, size, size, device=device)
    ascent = _Ascent(model, Objective.of(weights).resolved(model), settings, image)

    def step() -> None:
        _loss, grad = ascent.gradient(image)
        image.add_(grad.mul_(settings.step * STEP_SCALE)).clamp_(0, 1)

    return step, ascent


def bare_step_factory(model, layers, size, device, precision="fp32"):
    """Forward to the deepest layer and backward to the input, nothing else."""
    weights = model.resolve_weights(layers)
    tap = model.tap(weights)
    image = torch.rand(1, 3, size, size, device=device)
    dtype = PRECISIONS[precision]

    def step() -> None:
        img = image.detach().requires_grad_(True)
        with torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"):
            loss = weighted_loss(tap(img), weights, "l2").sum()
        torch.autograd.grad(loss, img)

    return step, tap


def step_flops(model, layers, size, device) -> int:
    """FLOPs of one forward+backward of the truncated network (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    step, tap = bare_step_factory(model, layers, size, device)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    tap.close()
    return counter.get_total_flops()


def matmul_factory(n: int, device, precision="fp32"):
    a = torch.randn(n, n, device=device, dtype=PRECISIONS[precision])
    b = torch.randn(n, n, device=device, dtype=PRECISIONS[precision])
    return lambda: torch.mm(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tiled-size", type=int, default=1024, help="image side for tiled vs untiled")
    parser.add_argument("--tile", type=int, default=512)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layers = KERAS_LAYERS if args.model == "inception_v3" else None
    auto = resolve_precision("auto", device)
    # One model per precision, each cast once for the whole run, as a dream casts once.
    models, casts = {}, contextlib.ExitStack()  # the casts stay on until the end of the run
    for precision in dict.fromkeys(["fp32", auto]):
        models[precision] = load_feature_model(args.model, "random", device=device)
        casts.enter_context(models[precision].computing_in(PRECISIONS[precision]))
    model = models["fp32"]
    layers = layers or dict(model.spec.default_layers)
    print(
        f"device {device}, threads {torch.get_num_threads()}, model {args.model}, layers {layers}, "
        f"{args.size} px, {args.rounds} rounds (medians)"
    )

    naive = naive_step_factory(args.model, layers, args.size, device)
    contenders = {"naive": naive}
    closers = []
    for precision in dict.fromkeys(["fp32", auto]):
        engine, ascent = engine_step_factory(models[precision], layers, args.size, device, precision=precision)
        bare, tap = bare_step_factory(model, layers, args.size, device, precision=precision)
        contenders[f"engine {precision}"] = engine
        contenders[f"bare {precision}"] = bare
        contenders[f"matmul {precision}"] = matmul_factory(2048, device, precision)
        closers += [ascent, tap]
    t = race(contenders, args.rounds)
    for closer in closers:
        closer.close()

    flops = step_flops(model, layers, args.size, device)
    print(f"\nseconds per step (median); default precision here: {auto} ('auto')")
    for precision in dict.fromkeys(["fp32", auto]):
        engine, bare, matmul = (t[f"{k} {precision}"] for k in ("engine", "bare", "matmul"))
        print(f"-- engine in {precision}")
        print_ratio("naive loop (fp32) / engine step (speed-up)", t["naive"], engine, "target >= 2.5x")
        print_ratio("engine step / bare truncated fwd+bwd (overhead)", engine, bare, "target <= 1.10x")
        step_rate = flops / engine / 1e9
        matmul_rate = 2 * 2048**3 / matmul / 1e9
        print(
            f"{'step GFLOP/s / 2048^2 matmul GFLOP/s (same precision)':58s} {step_rate:9.1f} / "
            f"{matmul_rate:9.1f} = {step_rate / matmul_rate:6.2f}   target >= 0.50  "
            f"({flops / 1e9:.1f} GFLOP per step)"
        )

    size = args.tiled_size
    for precision in dict.fromkeys(["fp32", auto]):
        net = models[precision]
        untiled, a1 = engine_step_factory(net, layers, size, device, tile_size=size, precision=precision)
        tiled, a2 = engine_step_factory(net, layers, size, device, tile_size=args.tile, precision=precision)
        t2 = race({"untiled": untiled, "tiled": tiled}, args.rounds, warmup=2)
        a1.close()
        a2.close()
        print(f"-- tiling ({precision})")
        print_ratio(
            f"tiled ({args.tile} px tiles) / untiled, {size} px image", t2["tiled"], t2["untiled"], "target <= 1.20x"
        )


if __name__ == "__main__":
    main()
