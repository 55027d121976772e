"""Any network (issue 30): networks by name dream from the command line and from the nodes, with their default
layers and a channel list, at any size; `deepdream layers` and `deepdream channels` work on each.

    python bench/networks.py [--sizes 224 333x517 1024] [--names NAME ...] [--via cli node]

Random weights, no download; BatchNorm networks on each picture's own statistics (`--learning-phase training`, the
node's `learning_phase`), since random weights under eval-mode statistics fade out. For each network:

* `deepdream layers NAME`: how many layers it lists, and its default layer;
* `deepdream channels --model NAME --channels 0-3` (64 px, 8 steps): the sheet is written;
* at each size, the sample photo dreamed with the default layer and with its channels 0-3, through the command
  line (`deepdream dream`, the photo resized into a file) and through the nodes (Load Feature Model with
  `other_architecture`, Octave Dream): 2 octaves x 4 steps, at 1024 px and above 1 octave x 2 steps.

Prints per network and size the change each dream made (mean abs: default / channels, CLI | node) and the seconds;
a network that fails prints its error and the run goes on. timm networks by `timm:NAME` where timm is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (threads, import path)
import torch

from dream_core import get_spec
from dream_core.cli import main as cli
from dream_core.imageio import load_image, save_image
from dream_core.imageops import resize

NAMES = (
    "resnet18 resnet101 wide_resnet50_2 resnext50_32x4d convnext_tiny convnext_small densenet121 densenet169 "
    "mobilenet_v2 mobilenet_v3_small mobilenet_v3_large regnet_x_400mf regnet_y_800mf efficientnet_b0 "
    "efficientnet_v2_s shufflenet_v2_x1_0 squeezenet1_1 mnasnet1_0 alexnet vgg11_bn vit_b_16 vit_b_32 swin_t "
    "swin_v2_t"
).split()
SMALL = {"octaves": 2, "iterations": 4}
LARGE = {"octaves": 1, "iterations": 2}
"""At 1024 px and above: it is the size that is being shown to work, not a finished dream."""


def _phase(name: str) -> str:
    with torch.device("meta"):
        norms = any(isinstance(m, torch.nn.BatchNorm2d) for m in get_spec(name).build(1000).modules())
    return "training" if norms else "inference"


def _quiet(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli(list(argv))
    if code != 0:
        raise RuntimeError(f"deepdream {' '.join(argv[:3])} ... exited {code}")
    return out.getvalue()


def _nodes():
    """The pack's node modules as ComfyUI imports them (ComfyUI's progress bar stood in for)."""
    pack, _bridge = common.pack_with_progress(torch.device("cpu"))
    return importlib.import_module(f"{pack}.nodes.model_nodes"), importlib.import_module(f"{pack}.nodes.dream_nodes")


def _via_cli(name, phase, layer, image, steps, folder: Path) -> tuple[float, float]:
    source = folder / "in.png"
    save_image(image[0], source)
    changes = []
    for layers in (layer, f"{layer}[0-3]"):
        out = folder / "out.png"
        flags = [f"--{k}={v}" for k, v in steps.items()]
        _quiet(
            "dream", str(source), "-o", str(out), "--overwrite", "--model", name, "--weights", "random",
            "--learning-phase", phase, "--layers", layers, "--precision", "fp32", *flags,
        )  # fmt: skip
        changes.append(float((load_image(out) - load_image(source)).abs().mean()))
    return changes[0], changes[1]


def _via_nodes(nodes, name, phase, layer, image, steps) -> tuple[float, float]:
    model_nodes, dream_nodes = nodes
    (model,) = model_nodes.LoadFeatureModel.execute("efficientnet_lite0", "random", phase, other_architecture=name)
    bhwc = image.permute(0, 2, 3, 1).contiguous()
    changes = []
    for layers in (layer, f"{layer}[0-3]"):
        (weights,) = model_nodes.LayerWeights.execute(f"{layers}: 1.0", 1.0)
        dreamed = dream_nodes.OctaveDream.execute(bhwc, model, weights, precision="fp32", **steps)[0]
        changes.append(float((dreamed - bhwc).abs().mean()))
    return changes[0], changes[1]


def _network(name, sizes, via, nodes, photo, folder: Path) -> str:
    phase = _phase(name)
    listed = _quiet("layers", name).splitlines()
    (layer,) = get_spec(name).default_layers
    sheet = folder / "sheet.png"
    _quiet(
        "channels", "-o", str(sheet), "--overwrite", "--model", name, "--weights", "random", "--channels", "0-3",
        "--size", "64", "--steps", "8",
    )  # fmt: skip
    cells = [f"{len(listed) - 3:3d} layers, {layer}, sheet {load_image(sheet).shape[-1]} px"]
    for size in sizes:
        image = resize(photo, size)
        steps = LARGE if max(size) >= 1024 else SMALL
        start = time.perf_counter()
        parts = []
        if "cli" in via:
            parts.append("{:.3f}/{:.3f}".format(*_via_cli(name, phase, layer, image, steps, folder)))
        if "node" in via:
            parts.append("{:.3f}/{:.3f}".format(*_via_nodes(nodes, name, phase, layer, image, steps)))
        cells.append(f"{size[0]}x{size[1]}: {' | '.join(parts)} {time.perf_counter() - start:5.1f}s")
    return "; ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["224", "333x517", "1024"])
    parser.add_argument("--names", nargs="+", default=list(NAMES))
    parser.add_argument("--via", nargs="+", default=["cli", "node"], choices=["cli", "node"])
    args = parser.parse_args()
    photo = load_image(common.ROOT / "samples" / "astronaut.png")
    sizes = [tuple(int(v) for v in (s.split("x") * 2)[:2]) for s in args.sizes]
    families = {name.split("_")[0].rstrip("0123456789") for name in args.names}
    print(f"{len(args.names)} networks, {len(families)} families; sizes {args.sizes}; via {' and '.join(args.via)}")
    print("change (mean abs) with the default layer / its channels 0-3, " + " | ".join(args.via))
    nodes = _nodes() if "node" in args.via else None
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        for name in args.names:
            try:
                print(f"{name:20s} {_network(name, sizes, args.via, nodes, photo, Path(folder))}", flush=True)
            except Exception as error:  # a bench goes on: the failure is the figure
                failed += 1
                print(f"{name:20s} FAILED: {type(error).__name__}: {str(error).splitlines()[0][:120]}", flush=True)
    print(f"{len(args.names) - failed} of {len(args.names)} networks: every size, both ways, layers and channels")


if __name__ == "__main__":
    main()
