"""Fine-tune a zoo backbone on your own pictures, so that the dream shows your subject.

A folder with one sub-folder per class becomes a classifier: a new head, optionally
the last blocks unfrozen, standard augmentation, class balancing, a held-out split
whose accuracy is reported. The result is a `.safetensors` file whose metadata
(architecture, class names, preprocessing, accuracy) lets it load like any model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DreamCancelled, DreamError
from .models import FeatureModel, get_spec, load_feature_model, trainable_models

log = logging.getLogger(__name__)

"""Side of the training crops; 224 px unless the network was made for another size."""


@dataclass
class TrainSettings:
    """The options of one fine-tuning run."""

    epochs: int = 8
    learning_rate: float = 3e-3
    unfreeze: int = 0
    """How many of the backbone's last blocks to train too (0 = the new head only)."""
    batch_size: int = 16
    holdout: float = 0.2
    """Share of each class kept aside to measure accuracy."""
    seed: int = 0
    image_size: int = 0
    """Training crop side; 0 = the network's own (224, InceptionV3 299)."""


@dataclass
class TrainResult:
    """What a run produced: the frozen model, its file, and the figures."""

    model: FeatureModel
    path: Path | None
    class_names: list[str]
    accuracy: float
    holdout_count: int
    train_count: int
    skipped: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Dataset:
    """Images (already decoded, RGB) and their labels, per class folder."""

    class_names: list[str]
    images: list[Image.Image]
    labels: list[int]
    skipped: list[str]


def read_folder(folder: str | os.PathLike, max_side: int = 512) -> Dataset:
    """Read a folder with one sub-folder per class; warn about what is skipped.

    Unreadable files are skipped and named; every image is converted to RGB
    (grey, palette, CMYK, alpha all work) and shrunk to `max_side`; an empty class is
    skipped with a warning. Fewer than two usable classes is an error.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DreamError(f"Training folder {root} does not exist; give a folder with one sub-folder per class.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DreamError(
            f"{root} has no sub-folders. Put the pictures of each class in a sub-folder named after it, "
            "e.g. flowers/rose/*.jpg and flowers/tulip/*.jpg."
        )
    names, images, labels, skipped = [], [], [], []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        loaded = []
        for path in files:
            try:
                with Image.open(path) as im:
                    im = ImageOps.exif_transpose(im)
                    im.thumbnail((max_side, max_side))
                    loaded.append(im.convert("RGB"))
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
                skipped.append(f"{path.relative_to(root)} ({type(err).__name__})")
        if not loaded:
            log.warning("Class folder %s has no readable images; it is left out.", class_dir.name)
            skipped.append(f"{class_dir.name}/ (no readable images: class left out)")
            continue
        names.append(class_dir.name)
        labels += [len(names) - 1] * len(loaded)
        images += loaded
    if skipped:
        log.warning("Skipped while reading %s: %s", root, "; ".join(skipped))
    if len(names) < 2:
        raise DreamError(
            f"{root} has {len(names)} usable class(es) ({', '.join(names) or 'none'}); a classifier needs at "
            "least two sub-folders with pictures."
        )
    return Dataset(names, images, labels, skipped)


def split_holdout(labels: list[int], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out), stratified: each class gives `share` of its images (at least one
    when it has two or more)."""
    rng = random.Random(seed)
    train, held = [], []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        rng.shuffle(members)
        count = min(len(members) - 1, max(1, round(len(members) * share))) if len(members) > 1 else 0
        held += members[:count]
        train += members[count:]
    return train, held


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0


def augment(image: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """Standard augmentation: random resized crop (35-100% of the area), flip, light colour jitter."""
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(0.35, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if w <= width and h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            break
    else:
        w = h = min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    crop = image.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    tensor = _to_tensor(crop)
    brightness, contrast = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    mean = tensor.mean()
    return ((tensor - mean) * contrast + mean * brightness).clamp(0.0, 1.0)


def center_view(image: Image.Image, size: int) -> torch.Tensor:
    """The evaluation view: shorter side to `size`, centre crop."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return _to_tensor(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR))


def training_size(architecture: str, settings: TrainSettings) -> int:
    """The side of the training crops: the setting, else the network's own input size."""
    return settings.image_size or get_spec(architecture).train_size


def train_classifier(
    folder: str | os.PathLike,
    architecture: str = "efficientnet_lite0",
    weights: str | os.PathLike = "imagenet",
    settings: TrainSettings | None = None,
    output: str | os.PathLike | None = None,
    *,
    weights_dir=None,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune `architecture` (from `weights`) into a classifier of `folder`'s classes.

    Saves a `.safetensors` file at `output` (if given) with metadata, and returns the
    model, frozen and ready to dream with (its class names serve ``class:NAME``).
    `on_progress(step, total, figures)` after every batch; `should_stop()` before every
    batch (True raises `DreamCancelled`, nothing is saved).
    """
    settings = settings or TrainSettings()
    architecture = get_spec(architecture).name
    if get_spec(architecture).trainable is None:
        raise DreamError(f"Training supports {', '.join(trainable_models())}; {architecture} is not one of them.")
    if settings.epochs < 1 or settings.batch_size < 1 or not 0.0 < settings.holdout < 1.0:
        raise DreamError("epochs and batch_size must be at least 1, and holdout between 0 and 1.")
    if not (math.isfinite(settings.learning_rate) and settings.learning_rate > 0):
        raise DreamError("learning_rate must be a positive number.")
    data = read_folder(folder)
    size = training_size(architecture, settings)
    train_idx, held_idx = split_holdout(data.labels, settings.holdout, settings.seed)
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)

    base = load_feature_model(architecture, weights, weights_dir, device=device, fold_batchnorm=False)
    spec = base.spec
    with torch.inference_mode(False):
        net = spec.build(len(data.class_names))
        state = {k: v for k, v in base.net.state_dict().items() if not k.startswith(spec.classifier_prefix + ".")}
        net.load_state_dict(state, strict=False)
        net.to(device=device, memory_format=torch.channels_last)
        head, blocks = get_spec(architecture).trainable(net)
        net.requires_grad_(False)
        trainable = [head, *blocks[: max(0, settings.unfreeze)]]
        for module in trainable:
            module.requires_grad_(True)
        optimizer = torch.optim.AdamW(
            [{"params": head.parameters(), "lr": settings.learning_rate},
             {"params": [p for m in trainable[1:] for p in m.parameters()], "lr": settings.learning_rate / 10}],
            weight_decay=1e-4,
        )  # fmt: skip
        # Class balancing: each class weighs the same in the loss, however many pictures it has.
        counts = torch.bincount(torch.tensor([data.labels[i] for i in train_idx]), minlength=len(data.class_names))
        class_weight = (counts.sum() / (len(counts) * counts.clamp_min(1))).float().to(device)
        mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
        total = steps_per_epoch * settings.epochs
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[settings.learning_rate, settings.learning_rate / 10], total_steps=total
        )
        history: list[dict[str, float]] = []
        step = 0
        for epoch in range(settings.epochs):
            order = train_idx[:]
            rng.shuffle(order)
            # Frozen BatchNorm statistics: a few dozen pictures would only spoil them.
            net.eval()
            for start in range(0, len(order), settings.batch_size):
                if should_stop is not None and should_stop():
                    raise DreamCancelled("Training was cancelled; nothing was saved.")
                batch = order[start : start + settings.batch_size]
                x = torch.stack([augment(data.images[i], size, rng) for i in batch]).to(device)
                y = torch.tensor([data.labels[i] for i in batch], device=device)
                x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(net(x), y, weight=class_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                figures = {"epoch": epoch + 1, "loss": loss.item()}
                if on_progress is not None:
                    on_progress(step, total, figures)
            history.append({"epoch": epoch + 1, "loss": figures["loss"]})
        accuracy = _accuracy(net, data, held_idx, size, mean, std, device)
        log.info("held-out accuracy %.3f on %d images", accuracy, len(held_idx))
        net.eval().requires_grad_(False)
    model = FeatureModel(spec, net, str(output) if output else "trained", list(data.class_names))
    path = None
    if output is not None:  # saved before folding: a standard state dict of the architecture
        path = save_trained(model, output, accuracy=accuracy, source=str(weights), holdout=len(held_idx))
    model.spec.fold(net)
    return TrainResult(model, path, list(data.class_names), accuracy, len(held_idx), len(train_idx),
                       data.skipped, history)  # fmt: skip


@torch.no_grad()
def _accuracy(net, data: Dataset, indices: list[int], size: int, mean, std, device) -> float:
    if not indices:
        return float("nan")
    correct = 0
    for start in range(0, len(indices), 32):
        batch = indices[start : start + 32]
        x = torch.stack([center_view(data.images[i], size) for i in batch]).to(device)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        predicted = net(x).argmax(1).cpu()
        correct += int((predicted == torch.tensor([data.labels[i] for i in batch])).sum())
    return correct / len(indices)


def save_trained(model: FeatureModel, path: str | os.PathLike, **extra) -> Path:
    """Save a model as `.safetensors` with the metadata `load_feature_model` reads back."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise DreamError(f"{path.name}: trained models are saved as .safetensors; use that extension.")
    path.parent.mkdir(parents=True, exist_ok=True)
    # channels_last parameters are not contiguous, which safetensors refuses.
    state = {k: v.detach().contiguous().cpu() for k, v in model.net.state_dict().items()}
    metadata = {
        "architecture": model.spec.name,
        "class_names": json.dumps(model.class_names or []),
        "preprocessing": json.dumps({"mean": list(model.spec.mean), "std": list(model.spec.std)}),
        "format": "comfyui-deepdream/1",
    }
    metadata.update({key: json.dumps(value) for key, value in extra.items()})
    save_file(state, str(path), metadata=metadata)
    return path
