"""Any network (issue 30): torchvision's networks by name dream, with their default layers and a channel list.

    python bench/networks.py [--sizes 224 333x517] [--names NAME ...]

For each network (random weights, no download; BatchNorm networks on each picture's own statistics, since random
weights under eval-mode statistics fade out), the sample photo at each size is dreamed (2 octaves x 4 steps)
with the network's default layer and with its first 4 channels; prints the layer count, the default layer, the
change each dream made (mean abs) and the seconds. A network that fails prints its error and the run goes on.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (threads, import path)
import torch

from dream_core import dream, get_spec, layer_catalogue, load_feature_model
from dream_core.imageio import load_image
from dream_core.imageops import resize
from dream_core.options import DreamSettings

NAMES = (
    "resnet18 resnet101 wide_resnet50_2 resnext50_32x4d convnext_tiny convnext_small densenet121 densenet169 "
    "mobilenet_v2 mobilenet_v3_small mobilenet_v3_large regnet_x_400mf regnet_y_800mf efficientnet_b0 "
    "efficientnet_v2_s shufflenet_v2_x1_0 squeezenet1_1 mnasnet1_0 alexnet vgg11_bn vit_b_16 vit_b_32 swin_t "
    "swin_v2_t"
).split()
SETTINGS = DreamSettings(octaves=2, iterations=4, step=0.03, seed=1, precision="fp32")


def _model(name: str):
    with torch.device("meta"):
        norms = any(isinstance(m, torch.nn.BatchNorm2d) for m in get_spec(name).build(1000).modules())
    return load_feature_model(name, "random", learning_phase="training" if norms else "inference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["224", "333x517"])
    parser.add_argument("--names", nargs="+", default=list(NAMES))
    args = parser.parse_args()
    photo = load_image(common.ROOT / "samples" / "astronaut.png")
    sizes = [tuple(int(v) for v in (s.split("x") * 2)[:2]) for s in args.sizes]
    families = {name.split("_")[0].rstrip("0123456789") for name in args.names}
    print(f"{len(args.names)} networks, {len(families)} families; sizes {args.sizes}")
    print(f"{'network':20s} {'layers':>6s} {'default':22s} " + " ".join(f"{s:>22s}" for s in args.sizes))
    for name in args.names:
        try:
            model, (layer,) = _model(name), get_spec(name).default_layers
            cells = []
            for size in sizes:
                image = resize(photo, size)
                start = time.perf_counter()
                plain = dream(image, model, {layer: 1.0}, SETTINGS).images
                channels = dream(image, model, {f"{layer}[0-3]": 1.0}, SETTINGS).images
                seconds = time.perf_counter() - start
                change = (float((plain - image).abs().mean()), float((channels - image).abs().mean()))
                cells.append(f"{change[0]:.3f}/{change[1]:.3f} {seconds:5.1f}s")
            print(f"{name:20s} {len(layer_catalogue(name)) - 1:6d} {layer:22s} " + " ".join(f"{c:>22s}" for c in cells))
        except Exception as error:  # a bench goes on: the failure is the figure
            print(f"{name:20s} FAILED: {type(error).__name__}: {str(error).splitlines()[0][:120]}")


if __name__ == "__main__":
    main()
