"""Helpers shared by the benchmarks: thread setup, timing, ratios, the naive loop."""

from __future__ import annotations

import os

# Spinning OpenMP workers turn any other load on the machine into 20-60x slowdowns;
# passive waiting softens that. Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes (CUDA synchronised)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def race(contenders: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each contender, alternating them round by round.

    Alternating keeps a burst of load on a noisy machine from landing on one
    contender only; ratios of these medians are what the benchmarks report.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def naive_step_factory(model_name: str, layers: dict[str, float], size: int, device: torch.device):
    """A naive DeepDream step: the whole network (classifier included), parameters
    that require gradients, the default memory format, `loss.backward()`.

    This is how a straightforward implementation (and most tutorials) do it; the
    engine's step is measured against it on the same model, layers and size.
    """
    from dream_core.objectives import parse_term, weighted_loss
    from dream_core.zoo import get_spec, layer_catalogue

    spec = get_spec(model_name)
    torch.manual_seed(0)
    net = spec.build(1000).to(device).eval()
    modules = dict(net.named_modules())
    catalogue = {i.name: i for i in layer_catalogue(model_name)}
    for info in list(catalogue.values()):
        for alias in info.aliases:
            catalogue[alias] = info
    features: dict[str, torch.Tensor] = {}
    for name in layers:
        info = catalogue[name]
        modules[info.module_path].register_forward_hook(
            lambda _m, _i, out, name=name: features.__setitem__(name, out) and None
        )
    terms = {parse_term(name): weight for name, weight in layers.items()}  # features are keyed by these names
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    image = torch.rand(1, 3, size, size, device=device)

    def step() -> None:
        nonlocal image
        img = image.detach().requires_grad_(True)
        net((img - mean) / std)
        loss = weighted_loss(features, terms, "l2").sum()
        net.zero_grad(set_to_none=True)
        loss.backward()
        grad = img.grad / img.grad.abs().mean().clamp_min(1e-7)
        image = (img.detach() + 0.005 * grad).clamp(0, 1)

    return step


def print_ratio(label: str, numerator: float, denominator: float, target: str = "") -> None:
    """One result line: the two figures and their ratio."""
    print(f"{label:58s} {numerator:9.4f} / {denominator:9.4f} = {numerator / denominator:6.2f}x  {target}")


def zoom_bench(description: str, frames: int = 24, size: int = 160):
    """The arguments (--frames, --size) of a benchmark of animations, EfficientNet-Lite0 with its ImageNet weights
    (offline) and the sample photo at --size px: `(args, model, photo)`."""
    import argparse

    from dream_core import load_feature_model
    from dream_core.imageio import load_image
    from dream_core.imageops import resize

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=frames)
    parser.add_argument("--size", type=int, default=size)
    args = parser.parse_args()
    model = load_feature_model("efficientnet_lite0", "imagenet")
    return args, model, resize(load_image(ROOT / "samples" / "astronaut.png"), (args.size, args.size))


def pack_with_progress(device: torch.device) -> tuple[str, object]:
    """The pack's package name as ComfyUI imports it, and its `comfy_bridge` given a stand-in for ComfyUI's
    ProgressBar (less the websocket: previews are made as for the real one) and `device` to compute on."""
    import importlib
    import types

    sys.path.insert(0, str(ROOT / "tools"))
    import build_workflows

    pack = build_workflows.load_pack().__name__
    bridge = importlib.import_module(f"{pack}.nodes.comfy_bridge")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            if preview is not None:
                preview[1].tobytes()

    bridge.comfy_utils = types.SimpleNamespace(ProgressBar=ProgressBar)
    bridge.compute_device = lambda: device
    return pack, bridge
