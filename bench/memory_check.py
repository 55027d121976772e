"""The memory check's estimate against the measured peak, for the paths issue 26 found unchecked.

    python bench/memory_check.py [--scale 1.0]

Each case runs in a fresh process: the model is loaded, the resident memory noted, the work done, and the peak
resident memory (ru_maxrss) taken; measured = peak - resident before. Cases: channel pictures (a batch of 4 at
512 px, and 1 at 1024 px), a dream with a second network (1024 px), and topN's channel means of a 3072 px photo.
Prints, per case, the estimate `memory.check_memory` compares with the device, the measured peak and their
ratio (the issue asks for 1/1.3 .. 1.3). Random weights: memory does not depend on them.

`dream_NAME@SIZE[:PRECISION]` (issue 30): one dream of 3 octaves x 2 steps of the network `NAME` with its default
layer (fp32 unless `:bf16`). Beside the resident memory it prints the peak of the tensors the dream made
(`memory.LiveTensorBytes` around it): what a GPU's allocator reports as its peak, without the CPU allocator's own
caches, which grow with the process rather than with the dream. The estimate is asked to be 1.0-1.3x that peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ["channels_4x512", "channels_1x1024", "channels_1x2048", "channels_3x2048", "network_1024", "topn_3072"]


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(case: str, scale: float) -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import resource

    import common  # noqa: F401  (thread settings)
    import torch

    from dream_core import DreamSettings, dream, load_feature_model
    from dream_core.channels import channel_pictures, dream_settings, top_channels
    from dream_core.memory import LiveTensorBytes, channel_means_memory, estimate_objective_memory, model_bytes
    from dream_core.objectives import Objective
    from dream_core.options import ChannelSettings

    kind, _, shape = case.partition("_")
    if kind == "dream":  # dream_NETWORK@SIZE[:PRECISION]: a network by name (issue 30), its default layer
        name, _, side = shape.partition("@")
        side, _, precision = side.partition(":")
        model = load_feature_model(name, "random", device="cpu")
        size = int(int(side) * scale)
        objective = Objective.of(dict(model.spec.default_layers)).resolved(model)
        settings = DreamSettings(octaves=3, iterations=2, precision=precision or "fp32")
        estimate = estimate_objective_memory(model, objective, settings, (1, 3, size, size))
        tracker = LiveTensorBytes("cpu")
        before = _resident()
        with tracker:
            dream(torch.rand(1, 3, size, size), model, objective, settings)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        # the weights' cast copy (reduced precisions) is made during the dream: counted in the estimate's weights
        estimate_bytes = estimate.total - model_bytes(model)
        row = {"case": case, "estimate": estimate_bytes, "measured": peak - before, "tensors": tracker.peak}
        print(json.dumps(row))
        return
    model = load_feature_model("efficientnet_lite0", "random", device="cpu")
    if kind == "channels":
        count, size = (int(v) for v in shape.split("x"))
        size = int(size * scale)
        settings = ChannelSettings(size=size, steps=2)
        objective = Objective.of({"blocks.8": 1.0}).resolved(model)
        estimate = estimate_objective_memory(model, objective, dream_settings(settings), (count, 3, size, size))

        def work():
            channel_pictures(model, "blocks.8", range(count), settings)
    elif kind == "network":
        size = int(int(shape) * scale)
        other = load_feature_model("efficientnet_lite0", "random", device="cpu")
        objective = Objective.of({"blocks.6": 1.0}, networks=[(other, {"blocks.10": 1.0})]).resolved(model)
        settings = DreamSettings(octaves=1, iterations=2)
        estimate = estimate_objective_memory(model, objective, settings, (1, 3, size, size))

        def work():
            dream(torch.rand(1, 3, size, size), model, objective, settings)
    else:
        size = int(int(shape) * scale)
        image = torch.rand(1, 3, size, size)
        estimate = channel_means_memory(model, "blocks.8", image.shape)

        def work():
            top_channels(model, "blocks.8", image, 8)

    before = _resident()
    work()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"case": case, "estimate": estimate.total - estimate.weights, "measured": peak - before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="scale every case's size (0.5: a quick run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--cases", nargs="+", default=CASES, help="which cases; dream_NAME@SIZE dreams a network by name (fp32)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.scale)
        return
    print(f"{'case':26s} {'estimate MB':>12s} {'measured MB':>12s} {'ratio':>6s} {'tensors MB':>11s} {'ratio':>6s}")
    worst = 1.0
    for case in args.cases:
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, "--scale", str(args.scale)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = row["estimate"] / max(row["measured"], 1)
        line = f"{case:26s} {row['estimate'] / 2**20:12.0f} {row['measured'] / 2**20:12.0f} {ratio:6.2f}"
        if "tensors" in row:  # a network's dream: judged on its tensors' peak (module text)
            ratio = row["estimate"] / max(row["tensors"], 1)
            line += f" {row['tensors'] / 2**20:11.0f} {ratio:6.2f}"
        worst = max(worst, ratio, 1 / ratio)
        print(line)
    print(f"furthest from the measured peak: {worst:.2f}x (asked: within 1.3x)")


if __name__ == "__main__":
    main()
