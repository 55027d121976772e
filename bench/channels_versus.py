"""Channel pictures side by side with lucent and torch-dreams (issue 31): one evaluator for every tool.

    python bench/channels_versus.py [--layers blocks.8 ...] [--channels 0-7] [--tools ours lucent torch-dreams]
                                    [--steps 256 512] [--out FOLDER]

The network is EfficientNet-Lite0 with its ImageNet weights (the pack's default, offline). Every tool grows one
224 px picture per channel at its own defaults but for the step count (`--steps`, ours `--ours-steps`):
ours `deepdream channels` (`channel_pictures`, default settings); lucent's `render_vis` (a decorrelated Fourier
image, its standard transforms, Adam at 0.05); torch-dreams' `Dreamer.render` (its Fourier image and
transforms). lucent and torch-dreams are optional benchmark dependencies (`pip install torch-lucent
torch-dreams`), never the pack's; a tool that is not installed is left out. Both are handed the same network,
its input normalised as Lite0 expects.

Per tool and step count, over the channels:
- activation: each channel's mean activation on its own picture (averaged over the channels);
- own-strongest: for how many channels their own picture is the one they fire most on;
- colourfulness: Hasler and Suesstrunk's M (sigma + 0.3 mu of the opponent channels rg and yb, 0..255 scale);
- clipped: the share of colour values at 0 or 255 once saved as 8 bits;
- CPU-s / picture: process CPU seconds of the run over the number of pictures.
With `--layers`, a table per layer; `--googlenet` adds ours on GoogLeNet's inception4c with random weights (no
other tool: activation, own-strongest and clipping); `--diversity CHANNEL` grows a diverse batch of 4 pictures of
that channel of blocks.8 ('CHANNELx4') beside 4 grown apart only by their noise: each one's activation over the single
picture's, and the largest pixel correlation between two of them.
With `--runs N`, each tool runs N times with its noise and random transforms seeded apart (lucent's transforms draw
from numpy's generator: seeded here too), and a row gives their means.
With `--out`, each labelled sheet is written there (`blocks.8_ours_256.png`, `blocks.8_lucent_512.png`, ...).
"""

# ruff: noqa: I001  (common must be imported first: it sets thread settings before torch starts)
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import common  # noqa: F401

import torch

from dream_core import load_feature_model
from dream_core.channels import channel_means, channel_pictures
from dream_core.goals import parse_goals
from dream_core.imageio import save_image
from dream_core.options import ChannelSettings
from dream_core.sheet import contact_sheet

SIZE = 224
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Pixels(torch.nn.Module):
    """The dream network fed pictures in 0..1 (`expects`: 'pixels'), or ImageNet-normalised ones ('imagenet',
    what torch-dreams hands a model): normalised here as the network expects."""

    def __init__(self, model, expects: str) -> None:
        super().__init__()
        self.net = model.net
        self.expects = expects
        self.register_buffer("mean", torch.tensor(model.spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.spec.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.expects == "imagenet":
            x = x * IMAGENET_STD + IMAGENET_MEAN
        return self.net((x - self.mean) / self.std)


def ours(model, layer: str, channels, steps: int, run: int = 0) -> torch.Tensor:
    settings = ChannelSettings(size=SIZE, steps=steps, seed=ChannelSettings().seed + run)
    return channel_pictures(model, layer, channels, settings).images


def lucent(model, layer: str, channels, steps: int, run: int = 0) -> torch.Tensor:
    import numpy as np
    from lucent.optvis import param, render

    wrapped = Pixels(model, "pixels").eval()
    name = "net_" + model.resolve_layer(layer).module_path.replace(".", "_")
    pictures = []
    for channel in channels:
        torch.manual_seed(channel + 1000 * run)
        np.random.seed(channel + 1000 * run)  # its random shifts, scales and turns
        images = render.render_vis(
            wrapped,
            f"{name}:{channel}",
            param_f=lambda: param.image(SIZE, fft=True, decorrelate=True),
            thresholds=(steps,),
            preprocess=False,  # Pixels normalises as Lite0 expects
            progress=False,
            show_image=False,
        )
        pictures.append(torch.from_numpy(images[-1][0]).permute(2, 0, 1))
    return torch.stack(pictures).float()


def torch_dreams(model, layer: str, channels, steps: int, run: int = 0) -> torch.Tensor:
    from torch_dreams import Dreamer

    wrapped = Pixels(model, "imagenet").eval()
    dreamer = Dreamer(wrapped, quiet=True, device="cpu")
    module = wrapped.net.get_submodule(model.resolve_layer(layer).module_path)
    pictures = []
    for channel in channels:
        torch.manual_seed(channel + 1000 * run)

        def loss(outputs, channel=channel):
            return -outputs[0][:, channel].mean()

        image = dreamer.render(layers=[module], width=SIZE, height=SIZE, iters=steps, custom_func=loss)
        pictures.append(image.to_chw_tensor(device="cpu"))
    return torch.stack(pictures).float().clamp(0, 1)


TOOLS = {"ours": (ours, None), "lucent": (lucent, "lucent"), "torch-dreams": (torch_dreams, "torch_dreams")}


def colourfulness(pictures: torch.Tensor) -> float:
    """Hasler and Suesstrunk's colourfulness M of each picture (0..255 scale), averaged."""
    r, g, b = (pictures * 255).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = (rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False)).sqrt()
    mu = (rg.flatten(1).mean(1).square() + yb.flatten(1).mean(1).square()).sqrt()
    return float((sigma + 0.3 * mu).mean())


def clipped(pictures: torch.Tensor) -> float:
    """Share of colour values at 0 or 255 once saved as 8 bits."""
    levels = (pictures.clamp(0, 1) * 255).round()
    return float(((levels == 0) | (levels == 255)).float().mean())


def evaluate(model, layer: str, channels, pictures: torch.Tensor) -> tuple[float, int]:
    """(mean activation of each channel on its own picture, how many fire most on their own picture)."""
    means = channel_means(model, layer, pictures.clamp(0, 1))[:, list(channels)]  # [picture, channel]
    own = means.diagonal()
    strongest = int((means.argmax(dim=0) == torch.arange(len(channels))).sum())
    return float(own.mean()), strongest


def table(model, layer: str, channels, tools, step_counts, out: Path | None, prefix="", ours=(256,), runs=1) -> None:
    """A table row per tool, step count (ours: `ours`) and run for `channels` of `layer`; sheets into `out`.
    Each run seeds the tool's noise and random transforms differently; with several, a row of their means."""
    print(f"\n{len(channels)} channels of {layer} ({model.name}, {model.weights} weights), {SIZE} px")
    print("| tool | steps | activation | own-strongest | colourfulness | clipped | CPU-s / picture |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for tool in tools:
        grow, package = TOOLS[tool]
        if package and importlib.util.find_spec(package) is None:
            print(f"| {tool} | not installed (pip install {tool.replace('lucent', 'torch-lucent')}) | | | | | |")
            continue
        for steps in ours if tool == "ours" else step_counts:
            rows = []
            for run in range(runs):
                began = time.process_time()
                pictures = grow(model, layer, channels, steps, run)
                seconds = (time.process_time() - began) / len(channels)
                activation, strongest = evaluate(model, layer, channels, pictures)
                rows.append((activation, strongest, colourfulness(pictures), clipped(pictures), seconds))
                print(row(tool, f"{steps}" + (f" run {run + 1}" if runs > 1 else ""), rows[-1], len(channels)))
                if out:
                    labels = [f"{layer}[{c}]" for c in channels]
                    name = f"{prefix}{layer}_{tool}_{steps}" + (f"_run{run + 1}" if runs > 1 else "") + ".png"
                    save_image(contact_sheet(pictures.clamp(0, 1), labels)[0], out / name)
            if runs > 1:
                means = tuple(sum(column) / runs for column in zip(*rows, strict=True))
                print(row(f"**{tool}**", f"**{steps}, mean of {runs}**", means, len(channels)))


def row(tool: str, steps: str, figures, channels: int) -> str:
    activation, strongest, colour, clip, seconds = figures
    return (
        f"| {tool} | {steps} | {activation:.3g} | {strongest:g}/{channels} | {colour:.1f} | {clip:.1%} "
        f"| {seconds:.1f} |"
    )


def diversity(model, layer: str, channel: int, out: Path | None) -> None:
    """A diverse batch of 4 pictures of `channel` against 4 grown apart only by their noise, and the single one."""
    print(f"\nDiversity: 4 pictures of {layer}[{channel}], {SIZE} px, default settings")
    print("| batch | each / single picture's activation | largest pairwise pixel correlation |")
    print("| --- | --- | --- |")
    settings = ChannelSettings(size=SIZE)
    single = channel_pictures(model, layer, [channel], settings).end[0]
    for name, text in (("4 seeds, no diversity term", ",".join([str(channel)] * 4)), ("diverse (NxK)", f"{channel}x4")):
        grown = channel_pictures(model, layer, parse_goals(text)[0], settings)
        flat = grown.images.flatten(1)
        correlation = torch.corrcoef(flat)[~torch.eye(4, dtype=torch.bool)].max()
        ratios = ", ".join(f"{float(v / single):.2f}" for v in grown.end)
        print(f"| {name} | {ratios} | {float(correlation):.2f} |", flush=True)
        if out:
            save_image(contact_sheet(grown.images, grown.labels)[0], out / f"diversity_{text.count('x')}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", nargs="+", default=["blocks.8"])
    parser.add_argument("--channels", default="0-7")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--steps", nargs="+", type=int, default=[256, 512], help="lucent's and torch-dreams' steps")
    parser.add_argument("--ours-steps", nargs="+", type=int, default=[ChannelSettings().steps])
    parser.add_argument("--googlenet", action="store_true", help="also ours on GoogLeNet's inception4c, random weights")
    parser.add_argument("--diversity", type=int, metavar="CHANNEL", help="also a diverse batch of this channel")
    parser.add_argument("--runs", type=int, default=1, help="run each tool this often, seeded apart, and average")
    parser.add_argument("--out", type=Path, help="write each tool's labelled sheet into this folder")
    args = parser.parse_args()
    print(f"{common.THREADS} threads")
    model = load_feature_model("efficientnet_lite0", "imagenet")
    channels = tuple(goal.mix[0][0] for goal in parse_goals(args.channels)[0])
    for layer in args.layers:
        table(
            model,
            model.resolve_layer(layer).name,
            channels,
            args.tools,
            args.steps,
            args.out,
            ours=args.ours_steps,
            runs=args.runs,
        )
    if args.googlenet:
        googlenet = load_feature_model("googlenet", "random")
        table(
            googlenet, "inception4c", channels, ["ours"], [], args.out, "random_", ours=args.ours_steps, runs=args.runs
        )
    if args.diversity is not None:
        diversity(model, "blocks.8", args.diversity, args.out)


if __name__ == "__main__":
    main()
