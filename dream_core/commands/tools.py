"""`deepdream channels`, `train`, `models`, `layers` and `presets`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .. import cluster
from ..channels import channel_pictures, default_layer, top_channels
from ..devices import default_device
from ..errors import DreamError
from ..goals import channel_goals, parse_goals
from ..imageio import load_image, save_image
from ..job import NAMED_WEIGHTS, Job, check_device
from ..loading import load_feature_model
from ..options import ChannelSettings
from ..outputs import check_outputs
from ..presets import PRESETS
from ..progress import ProgressBar, after_bar
from ..report import per_class_text
from ..sheet import contact_sheet
from ..timm_zoo import timm_line
from ..torchvision_zoo import network_parameters, torchvision_families
from ..training import TrainSettings, train_classifier
from ..weights import folders_of
from ..zoo import LOGITS, ZOO, get_spec, imagenet_weights_file, layer_catalogue
from .images import REPLACE_HINT, check_picture_output


def channels(
    output: Path,
    settings: ChannelSettings,
    model: str,
    weights: str = "imagenet",
    weights_dir: Path | None = None,
    device: str | None = None,
    layer: str | None = None,
    chosen_text: str = "0-7",
    image: Path | None = None,
    pictures: Path | None = None,
    columns: int = 0,
    overwrite: bool = False,
    ray: cluster.RayRequest | None = None,
) -> int:
    """Grow a picture from noise for each chosen channel of a layer; write them as a labelled sheet (and each
    into `pictures`); with `ray`, parts of the set grown by a cluster's workers."""
    check_picture_output(output)
    read = [*([Path(weights)] if weights not in NAMED_WEIGHTS else []), *([image] if image else [])]
    check_outputs([output], read, overwrite, replace_hint=REPLACE_HINT)
    if pictures and pictures.exists() and not pictures.is_dir():
        raise DreamError(f"--pictures {pictures} is a file; give a folder.")
    chosen, top = parse_goals(chosen_text)
    if top and not image:
        raise DreamError(f"--channels top{top} picks the channels most active on a picture: give it with --image.")
    settings = settings.validate()
    picture = load_image(image) if image else None
    here = device or default_device()  # (a cluster's workers each choose theirs unless it was given)
    check_device(here)
    network = load_feature_model(get_spec(model).name, weights, weights_dir, device=here)
    layer = network.resolve_layer(layer).name if layer else default_layer(network)
    if top and picture is not None:
        chosen = channel_goals(top_channels(network, layer, picture, top))
    # Each picture is a file of its own in `pictures`: only those are replaced (with --overwrite), nothing else.
    labels = [goal.label(layer) for goal in chosen]
    files = {label: pictures / picture_file_name(label) for label in labels} if pictures else {}
    check_outputs([output, *files.values()], read, overwrite, replace_hint=REPLACE_HINT)
    print(
        f"Growing {len(chosen)} pictures of {layer} of {network.name} ({Path(str(network.weights)).name} weights) "
        f"on {network.device}: {settings.size} px, {settings.steps} steps.",
        file=sys.stderr,
    )
    if ray is not None:  # each worker loads the same network itself
        job = Job(network.name, ((layer, 1.0),), weights=weights, weights_dir=_text(weights_dir), device=device)
        result = cluster.channels_on_ray(job, ray, layer, tuple(chosen), settings)
    else:
        result = channel_pictures(network, layer, chosen, settings, on_progress=ProgressBar(layer))
    measured = zip(result.labels, result.start.tolist(), result.end.tolist(), strict=True)
    gains = ", ".join(f"{label} {start:.3g} -> {end:.3g}" for label, start, end in measured)
    heading = "each goal on the starting noise -> on the picture (a channel: its mean activation)"
    print(after_bar(f"{heading}: {gains}"), file=sys.stderr)
    for label, grown in zip(result.labels, result.images, strict=True):
        if label in files:
            save_image(grown, files[label])
    if files:
        print(f"wrote {len(files)} pictures to {pictures}")
    print(f"wrote {save_image(contact_sheet(result.images, result.labels, columns)[0], output)}")
    return 0


def picture_file_name(label: str) -> str:
    """A channel picture's file name from its label: 'blocks.8[5] diverse 1/4' -> 'blocks.8_5_diverse_1-4.png'."""
    name = label.replace("[", "_").replace("]", "").replace("/", "-").replace("*", "x").replace(" @", "_at_")
    name = name.replace(" ", "_")
    return re.sub(r"[^A-Za-z0-9._+-]", "-", name) + ".png"


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def train(
    folder: Path,
    output: Path,
    settings: TrainSettings,
    model: str,
    weights: str = "imagenet",
    weights_dir: Path | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> int:
    """Fine-tune a classifier on a folder (a sub-folder per class) and save it with its report pictures."""
    if output.suffix.lower() != ".safetensors":
        raise DreamError(f"{output.name}: trained models are saved as .safetensors; use that extension.")
    stem = output.with_suffix("")
    reports = [stem.with_name(stem.name + ".curve.png"), stem.with_name(stem.name + ".confusion.png")]
    starting = [Path(weights)] if weights not in NAMED_WEIGHTS else []
    check_outputs([output, *reports], starting, overwrite, replace_hint=REPLACE_HINT)
    settings = settings.validate()
    bar = ProgressBar(folder.name)

    def progress(step: int, total: int, figures: dict) -> None:
        accuracy = f", held-out {figures['accuracy']:.0%}" if "accuracy" in figures else ""
        bar.label = f"{folder.name} epoch {figures['epoch']}/{figures['epochs']}, loss {figures['loss']:.3f}{accuracy}"
        bar(step, total)

    result = train_classifier(
        folder,
        model,
        weights,
        settings,
        output,
        weights_dir=weights_dir,
        device=device or default_device(),
        on_progress=progress,
    )
    for skipped in result.skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
    print(f"classes: {', '.join(result.class_names)} ({result.train_count} training pictures)")
    print(
        f"held-out accuracy: {result.accuracy:.1%} on {result.holdout_count} pictures (epoch {result.best_epoch} "
        f"of {len(result.history)} kept)"
    )
    print("per class: " + per_class_text(result.per_class))
    stem = output.with_suffix("")
    print(f"wrote {output}, {stem.name}.curve.png and {stem.name}.confusion.png")
    return 0


def models(weights_dir: Path | None = None) -> int:
    """The networks, a line each: the six by name, torchvision's others by family, timm's where it is installed."""
    on_disk = {path.name for folder in folders_of(weights_dir) if folder.is_dir() for path in folder.iterdir()}
    print(f"{'network':20s} {'params':>8s}  {'default layers':42s} ImageNet weights")
    for spec in ZOO.values():
        size = network_parameters(spec.name) / 1e6
        print(f"{spec.name:20s} {size:7.1f}M  {_defaults(spec):42s} {_weights(spec, on_disk)}")
    print(
        "\nEvery other torchvision classification network by name, its layers derived from its structure (ImageNet "
        "weights downloaded on first use; --weights random works offline), a family a line, smallest first:"
    )
    print(f"  {'family':12s} {'params':>12s}  {'default layer':20s} {'weights on disk':16s} networks")
    for family, names in torchvision_families().items():
        print(f"  {family:12s} {_family_line(names, on_disk)}", flush=True)  # each family as soon as it is known
    print(f"\n{timm_line()}")
    return 0


def _family_line(names: list[str], on_disk: set[str]) -> str:
    """A family's parameters, default layer (each network's, where they differ), weights on disk and networks."""
    names = sorted(names, key=network_parameters)
    sizes = [network_parameters(name) / 1e6 for name in names]
    defaults = {name: _defaults(get_spec(name)) for name in names}
    one = len(set(defaults.values())) == 1
    layer = defaults[names[0]] if one else "(each network's)"
    present = ", ".join(n for n in names if _weights(get_spec(n), on_disk) == "on disk") or "-"
    span = f"{sizes[0]:.1f}-{sizes[-1]:.1f}M" if len(sizes) > 1 else f"{sizes[0]:.1f}M"
    listed = ", ".join(name if one else f"{name} ({defaults[name]})" for name in names)
    return f"{span:>12s}  {layer:20s} {present:16s} {listed}"


def _defaults(spec) -> str:
    return ", ".join(layer if weight == 1 else f"{layer}:{weight:g}" for layer, weight in spec.default_layers.items())


def _weights(spec, on_disk: set[str]) -> str:
    if spec.packaged_weights is not None:
        return "installed (works offline)"
    if spec.imagenet_weights is None:
        return "none (random or a checkpoint)"
    return "on disk" if imagenet_weights_file(spec)[0] in on_disk else "downloaded on first use"


def layers(model: str) -> int:
    spec = get_spec(model)
    print(f"{'layer':16s} {'aliases':24s} {'channels':>8s} {'stride':>6s}")
    for info in layer_catalogue(spec.name):
        if info.name == LOGITS:
            print(f"{'class:NAME':16s} {'class scores (logits)':24s} {info.channels:8d} {'-':>6s}")
            continue
        aliases = ", ".join(a for a in info.aliases if a != info.module_path) or "-"
        if info.module_path != info.name:
            aliases = f"{aliases} [{info.module_path}]" if aliases != "-" else f"[{info.module_path}]"
        print(f"{info.name:16s} {aliases:24s} {info.channels:8d} {info.stride:6d}")
    print(f"default: {', '.join(f'{k}:{v}' for k, v in spec.default_layers.items())}")
    return 0


def presets() -> int:
    for name, preset in PRESETS.items():
        print(f"{name:12s} {preset.description}")
    return 0
