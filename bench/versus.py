"""This checkout's engine against another checkout's, side by side in one run.

    python bench/versus.py --before ../other-checkout [--model inception_v3] [--size 512] [--rounds 7]

Loads the other checkout's `dream_core` as a second package and alternates the two,
round by round: one ascent step (each engine's own `_Ascent.gradient`, as `dream` runs
it) and one whole small dream (`dream()`: 2 octaves x 5 steps at half the size), in
fp32 and in the precision 'auto' gives here. Same network and random weights on both
sides. Prints after / before: below 1 is faster now.
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from pathlib import Path

from common import print_ratio, race

import torch

import dream_core
from dream_core.devices import PRECISIONS, resolve_precision
from dream_core.engine import _Ascent
from dream_core.objectives import Objective

KERAS_LAYERS = {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5}


def load_other(checkout: Path):
    """The other checkout's dream_core, imported as `dream_core_before` (its relative imports stay inside it)."""
    folder = checkout / "dream_core"
    spec = importlib.util.spec_from_file_location(
        "dream_core_before", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["dream_core_before"] = module
    spec.loader.exec_module(module)
    return module


def _old_ascent(before, before_engine, model, layers, settings, image):
    """The other checkout's `_Ascent`, made as that engine makes it: from a resolved objective and the images
    (since the objective parts), or from resolved weights and a batch size (earlier engines)."""
    objectives = sys.modules.get("dream_core_before.objectives")
    if objectives is not None and hasattr(objectives, "Objective"):
        return before_engine._Ascent(model, objectives.Objective.of(layers).resolved(model), settings, image)
    return before_engine._Ascent(model, model.resolve_weights(layers), settings, 1)


def compare(before, before_engine, args, device: torch.device, precision: str) -> None:
    """Race both engines' step and a whole small dream in `precision`; print after / before."""
    now = dream_core.load_feature_model(args.model, "random", device=device)
    old = before.load_feature_model(args.model, "random", device=device)
    layers = KERAS_LAYERS if args.model == "inception_v3" else dict(now.spec.default_layers)
    image = torch.rand(1, 3, args.size, args.size, device=device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(now.computing_in(PRECISIONS[precision]))  # cast once, as a dream does
        if hasattr(old, "computing_in"):  # the other engine's network cast the same way, where it can be
            stack.enter_context(old.computing_in(PRECISIONS[precision]))
        now_ascent = _Ascent(
            now, Objective.of(layers).resolved(now), dream_core.DreamSettings(precision=precision), image
        )
        old_ascent = _old_ascent(before, before_engine, old, layers, before.DreamSettings(precision=precision), image)
        stack.callback(now_ascent.close)
        stack.callback(old_ascent.close)
        steps = race(
            {"before": lambda: old_ascent.gradient(image), "after": lambda: now_ascent.gradient(image)},
            args.rounds,
            warmup=2,
        )
    small = torch.rand(1, 3, args.size // 2, args.size // 2, device=device)
    now_settings = dream_core.DreamSettings(octaves=2, iterations=5, precision=precision)
    old_settings = before.DreamSettings(octaves=2, iterations=5, precision=precision)
    dreams = race(
        {
            "before": lambda: before.dream(small, old, layers, old_settings),
            "after": lambda: dream_core.dream(small, now, layers, now_settings),
        },
        max(3, args.rounds // 2),
    )
    print(f"-- {precision}")
    print_ratio("ascent step: after / before (s)", steps["after"], steps["before"], "target <= 1.0x")
    print_ratio(
        f"whole dream, {args.size // 2} px, 2 x 5 steps: after / before (s)",
        dreams["after"],
        dreams["before"],
        "target <= 1.0x",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path, help="the other checkout's root folder")
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    before = load_other(args.before.resolve())
    before_engine = importlib.import_module("dream_core_before.engine")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    auto = resolve_precision("auto", device)
    print(
        f"device {device}, threads {torch.get_num_threads()}, model {args.model}, {args.size} px, "
        f"{args.rounds} rounds (medians); before: {args.before}"
    )

    for precision in dict.fromkeys(["fp32", auto]):
        compare(before, before_engine, args, device, precision)


if __name__ == "__main__":
    main()
