"""The engine on whatever device it is given, side by side in one run.

    python bench/gpu.py [--device cuda] [--sizes 512 1024 2048] [--rounds 7]
                        [--comfyui-deepdream FOLDER] [--small]

For GoogLeNet to inception4c and EfficientNet-Lite0 (its default layers), at every
size and every precision the device has (fp32, bf16, fp16):
- the engine's ascent step against a naive PyTorch loop (whole network, fp32,
  `loss.backward()`), and, given the folder of the ComfyUI-DeepDream pack
  (n1ckfg/ComfyUI-DeepDream), that pack's own step (its `gradient_ascent`) on the same
  network and layer;
- steps per second, GFLOP/s (torch's flop counter), and the ratio to the device's own
  matmul rate in the same precision, measured in the same run;
- a step's peak memory against `estimate_dream_memory`'s figure for it (CUDA:
  `max_memory_allocated`; elsewhere: `LiveTensorBytes`, every tensor the step made);
- the whole OctaveDream node call (its progress bar with previews, the model's
  loading through the bridge) against the bare `dream()` it wraps.
Weights are random (speed and memory do not depend on them). `--small` is the form CI
runs on the CPU: one small size, fp32 and bf16, one round.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from common import ROOT, naive_step_factory, pack_with_progress, race

import torch
from torch.utils.flop_counter import FlopCounterMode

from dream_core import DreamSettings, dream, get_spec, load_feature_model
from dream_core.devices import PRECISIONS
from dream_core.engine import STEP_SCALE, _Ascent
from dream_core.objectives import Objective
from dream_core.memory import LiveTensorBytes, estimate_dream_memory

NETWORKS = {
    "googlenet": {"inception4c": 1.0},
    "efficientnet_lite0": {"blocks.6": 1.0, "blocks.8": 1.5, "blocks.10": 1.0},
}


def precisions_of(device: torch.device, small: bool) -> list[str]:
    """fp32 always; bf16 and fp16 where the device has units for them (a CPU's fp16 is emulated: left out)."""
    if device.type == "cuda":
        bf16 = torch.cuda.get_device_capability(device) >= (8, 0)
        return ["fp32", *(["bf16"] if bf16 else []), "fp16"]
    return ["fp32", "bf16"]


def engine_step(model, layers, size, device, precision):
    """One ascent step as `dream` takes it; the model is computing in `precision` already."""
    image = torch.rand(1, 3, size, size, device=device)
    settings = DreamSettings(precision=precision, tile_size=size)
    ascent = _Ascent(model, Objective.of(layers).resolved(model), settings, image)

    def step() -> None:
        _loss, grad = ascent.gradient(image)
        image.add_(grad.mul_(0.01 * STEP_SCALE)).clamp_(0, 1)

    return step, ascent


def step_flops(step) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def matmul_rate(device: torch.device, precision: str, n: int) -> float:
    """GFLOP/s of an n x n matmul in `precision` on `device`: the device's own ceiling, this run."""
    a = torch.randn(n, n, device=device, dtype=PRECISIONS[precision])
    b = torch.randn(n, n, device=device, dtype=PRECISIONS[precision])
    seconds = race({"mm": lambda: torch.mm(a, b)}, rounds=5, warmup=2)["mm"]
    return 2 * n**3 / seconds / 1e9


def step_peak_bytes(step, device: torch.device) -> int:
    """Bytes one step holds at its peak beyond what was there before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - base
    tracker = LiveTensorBytes(device)
    with tracker:
        step()
    return tracker.peak


def their_step_factory(folder: str, model, layers, size, device):
    """The ComfyUI-DeepDream pack's `gradient_ascent` on our network (same layers, fp32)."""
    sys.path.insert(0, folder)
    theirs = importlib.import_module("deepdream")
    taps = model.tap(list(layers))

    class Outputs(torch.nn.Module):  # their step indexes the model's output by layer position
        def forward(self, x):
            features = taps(x)
            return [features[name] for name in taps.names]

    net = Outputs()
    config = {"num_gradient_ascent_iterations": 10, "smoothing_coefficient": 0.5, "lr": 0.09}
    image = torch.rand(1, 3, size, size, device=device).requires_grad_(True)

    def step() -> None:
        with torch.enable_grad():
            theirs.gradient_ascent(config, net, image, list(range(len(taps.names))), 0)

    return step, taps


def node_against_engine(model, layers, size, device, rounds: int) -> tuple[float, float]:
    """Seconds of the whole OctaveDream node call and of the bare `dream()` it wraps (same settings)."""
    pack, bridge = pack_with_progress(device)
    nodes = importlib.import_module(f"{pack}.nodes.dream_nodes")
    settings = {"octaves": 1, "iterations": 10, "precision": "auto"}
    image = torch.rand(1, size, size, 3)

    def node() -> None:
        nodes.OctaveDream.execute(image, model, layers, **settings)

    def bare() -> None:
        dream(image.permute(0, 3, 1, 2).to(device), model, layers, DreamSettings(**settings))

    times = race({"node": node, "bare": bare}, rounds)
    bridge.comfy_utils = None
    return times["node"], times["bare"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--comfyui-deepdream", metavar="FOLDER", help="the ComfyUI-DeepDream pack's folder")
    parser.add_argument("--small", action="store_true", help="the CPU form CI runs: 96 px, one round")
    parser.add_argument(
        "--networks", nargs="+", default=list(NETWORKS), help="networks by name (others: their default layers)"
    )
    args = parser.parse_args()
    if args.small:
        args.sizes, args.rounds = [96], 1
    sys.path.insert(0, str(ROOT / "tools"))
    device = torch.device(args.device)
    precisions = precisions_of(device, args.small)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), sizes {args.sizes}, precisions {precisions}, {args.rounds} rounds (medians)")
    rates = {p: matmul_rate(device, p, 256 if args.small else 4096) for p in precisions}
    print("matmul GFLOP/s: " + ", ".join(f"{p} {rate:.0f}" for p, rate in rates.items()))

    for model_name in args.networks:
        layers = NETWORKS.get(model_name) or dict(get_spec(model_name).default_layers)
        models, casts = {}, contextlib.ExitStack()
        for precision in precisions:  # one model per precision, cast once, as a dream casts once
            models[precision] = load_feature_model(model_name, "random", device=device)
            casts.enter_context(models[precision].computing_in(PRECISIONS[precision]))
        print(f"\n== {model_name} {', '.join(layers)}")
        print(
            f"{'size':>5} {'precision':>9} {'steps/s':>8} {'naive':>7} {'x naive':>7} {'theirs':>7} {'GFLOP/s':>8} "
            f"{'/matmul':>7} {'peak MB':>8} {'est. MB':>8} {'est/peak':>8}"
        )
        for size in args.sizes:
            naive = naive_step_factory(model_name, layers, size, device)
            theirs = None
            if args.comfyui_deepdream:
                theirs, their_tap = their_step_factory(args.comfyui_deepdream, models["fp32"], layers, size, device)
            for precision in precisions:
                model = models[precision]
                step, ascent = engine_step(model, layers, size, device, precision)
                contenders = {"engine": step, "naive": naive, **({"theirs": theirs} if theirs else {})}
                times = race(contenders, args.rounds, warmup=2)
                flops = step_flops(step)
                peak = step_peak_bytes(step, device)
                settings = DreamSettings(precision=precision, tile_size=size)
                estimate = estimate_dream_memory(model, list(layers), settings, (1, 3, size, size), device)
                ascent.close()
                rate = flops / times["engine"] / 1e9
                their = f"{1 / times['theirs']:7.1f}" if theirs else f"{'-':>7}"
                print(
                    f"{size:5d} {precision:>9} {1 / times['engine']:8.1f} {1 / times['naive']:7.1f} "
                    f"{times['naive'] / times['engine']:6.2f}x {their} {rate:8.1f} {rate / rates[precision]:7.2f} "
                    f"{peak / 2**20:8.0f} {estimate.activations / 2**20:8.0f} "
                    f"{estimate.activations / max(peak, 1):7.2f}x"
                )
            if theirs:
                their_tap.close()
        casts.close()
        node, bare = node_against_engine(models["fp32"], layers, args.sizes[0], device, args.rounds)
        print(
            f"node call / bare engine, {args.sizes[0]} px, 10 steps, precision auto: "
            f"{node:.3f} / {bare:.3f} s = {node / bare:.2f}x   target <= 1.15x"
        )


if __name__ == "__main__":
    main()
