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
from .feature_model import FeatureModel
from .imageio import rgb_picture
from .loading import load_feature_model
from .options import TrainSettings
from .outputs import written_whole
from .report import confusion_picture, curve_picture, save_report, side_by_side
from .zoo import ModelSpec, get_spec, is_imagenet_head, trainable_models

log = logging.getLogger(__name__)
CROP_AREA = 0.6
"""Smallest share of a picture a training crop keeps."""


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
    """Per epoch: 'epoch', 'loss' (mean training loss), 'accuracy' (held out)."""
    per_class: dict[str, float] = field(default_factory=dict)
    """Held-out accuracy of each class (the kept epoch)."""
    confusion: list[list[int]] = field(default_factory=list)
    """Held-out counts: row = true class, column = predicted class."""
    best_epoch: int = 0
    report: Image.Image | None = None
    """The training curve and the confusion matrix side by side (also written next to the model)."""


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
                    im = rgb_picture(ImageOps.exif_transpose(im))  # 16-bit grey scaled, not clipped
                    im.thumbnail((max_side, max_side))
                    loaded.append(im)
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
    """Augmentation for photos: random resized crop (60-100% of the area, so the subject stays in),
    flip, light colour jitter."""
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(CROP_AREA, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if w <= width and h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            break
    else:
        w = h = min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    crop = image.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR)
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
    return _to_tensor(image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR))


def training_size(architecture: str, settings: TrainSettings, pictures: list[Image.Image] | None = None) -> int:
    """The side of the training crops: the setting, else three times the pictures' median side (small
    pictures gain little from being enlarged further, and train faster: 64 px pictures at 192 px reached
    90-92% where 128 px gave 87.5%), between 96 px and the network's own input size."""
    if settings.image_size:
        return settings.image_size
    full = get_spec(architecture).train_size
    if not pictures:
        return full
    median = sorted(min(p.size) for p in pictures)[len(pictures) // 2]
    return int(min(full, max(96, 3 * median)) // 32 * 32)


def auto_epochs(train_count: int) -> int:
    """Epochs for a folder of `train_count` training pictures: about 6000 picture views, 8 to 30 epochs."""
    return max(8, min(30, math.ceil(6000 / max(train_count, 1))))


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
        raise DreamError(
            f"Training supports {', '.join(trainable_models())} and the torchvision networks with a linear "
            f"classifier head; {architecture} is not one of them."
        )
    settings.validate()
    data = read_folder(folder)
    size = training_size(architecture, settings, data.images)
    train_idx, held_idx = split_holdout(data.labels, settings.holdout, settings.seed)
    epochs = settings.epochs or auto_epochs(len(train_idx))
    rng = random.Random(settings.seed)
    with torch.random.fork_rng(devices=_cuda_indices(device)):  # the caller's generators left as they were
        torch.manual_seed(settings.seed)
        base = load_feature_model(architecture, weights, weights_dir, device=device, fold_batchnorm=False)
        class_names = list(data.class_names)
        known = base.class_names if base.class_names and not is_imagenet_head(len(base.class_names)) else []
        class_names += [name for name in known if name not in class_names]  # going on: known classes stay
        with torch.inference_mode(False):
            run = _Run(base, class_names, settings, data, train_idx, held_idx, size, epochs, device, rng)
            history, (accuracy, best_epoch, confusion) = run.train(on_progress, should_stop)
    log.info("kept epoch %d: held-out accuracy %.3f on %d images", best_epoch, accuracy, len(held_idx))
    outcome = _Outcome(accuracy, best_epoch, confusion, history, epochs, len(held_idx), len(train_idx))
    return _finished(run, base.spec, class_names, outcome, data.skipped, output, str(weights))


@dataclass
class _Outcome:
    """What a training run measured."""

    accuracy: float
    best_epoch: int
    confusion: list[list[int]]
    history: list[dict[str, float]]
    epochs: int
    holdout: int
    train_count: int


def _cuda_indices(device: torch.device | str) -> list[int]:
    """The CUDA generators a run on `device` draws from (none on other devices)."""
    place = torch.device(device)
    if place.type != "cuda" or not torch.cuda.is_available():
        return []
    return [place.index if place.index is not None else torch.cuda.current_device()]


def _finished(
    run: _Run,
    spec: ModelSpec,
    class_names: list[str],
    outcome: _Outcome,
    skipped: list[str],
    output: str | os.PathLike | None,
    source: str,
) -> TrainResult:
    """The trained network as a frozen feature model, saved (with its report pictures) where asked."""
    confusion = outcome.confusion
    per_class = {
        name: (row[i] / sum(row) if sum(row) else float("nan"))
        for i, (name, row) in enumerate(zip(class_names, confusion, strict=True))
    }
    report = {"accuracy": outcome.accuracy, "per_class": per_class, "best_epoch": outcome.best_epoch}
    model = FeatureModel(spec, run.net, str(output) if output else "trained", class_names, training_report=report)
    path = None
    if output is not None:  # saved before folding: a standard state dict of the architecture
        path = save_trained(
            model,
            output,
            accuracy=outcome.accuracy,
            source=source,
            holdout=outcome.holdout,
            per_class=per_class,
            epochs=outcome.epochs,
            best_epoch=outcome.best_epoch,
            history=outcome.history,
        )
    model.spec.fold(run.net)  # fold_batchnorms makes its weights with inference mode off, as dreaming needs
    curve, matrix = curve_picture(outcome.history, outcome.best_epoch), confusion_picture(confusion, class_names)
    if path is not None:
        save_report(curve, matrix, path)
    return TrainResult(
        model,
        path,
        class_names,
        outcome.accuracy,
        outcome.holdout,
        outcome.train_count,
        skipped,
        outcome.history,
        per_class,
        confusion,
        outcome.best_epoch,
        side_by_side(curve, matrix),
    )


class _Run:
    """One fine-tuning run: the network with its new head, the optimiser and its schedule, the epochs."""

    def __init__(self, base, class_names, settings, data, train_idx, held_idx, size, epochs, device, rng) -> None:
        self.settings, self.data, self.size, self.device, self.rng = settings, data, size, device, rng
        self.train_idx, self.held_idx, self.epochs, self.classes = train_idx, held_idx, epochs, len(class_names)
        self.warm_up = max(1, epochs // 4) if settings.unfreeze_blocks else epochs  # the new head alone first
        spec = base.spec
        self.net = net = spec.build(len(class_names))
        state = {k: v for k, v in base.net.state_dict().items() if not k.startswith(spec.classifier_prefix + ".")}
        net.load_state_dict(state, strict=False)
        head, blocks = spec.trainable(net)
        _carry_over_classes(base, head, class_names)
        net.to(device=device, memory_format=torch.channels_last)
        net.requires_grad_(False)
        self.unfrozen = blocks[: max(0, settings.unfreeze_blocks)]
        head.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(
            [
                {"params": head.parameters(), "lr": settings.learning_rate},
                {"params": [p for m in self.unfrozen for p in m.parameters()], "lr": settings.learning_rate / 10},
            ],
            weight_decay=1e-4,
        )
        # Class balancing: each class weighs the same in the loss, however many pictures it has.
        counts = torch.bincount(torch.tensor([data.labels[i] for i in train_idx]), minlength=len(class_names))
        self.class_weight = (counts.sum() / (len(counts) * counts.clamp_min(1))).float().to(device)
        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        self.total = math.ceil(len(train_idx) / settings.batch_size) * epochs
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=[settings.learning_rate, settings.learning_rate / 10], total_steps=self.total
        )
        self.step = 0

    def train(self, on_progress, should_stop) -> tuple[list[dict[str, float]], tuple[float, int, list]]:
        """Every epoch (or until the held-out accuracy stalls); the kept epoch's weights loaded back. Returns the
        history and the kept epoch's (held-out accuracy, epoch, confusion)."""
        history: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor], list[list[int]]] | None = None  # the epoch kept
        for epoch in range(self.epochs):
            if epoch == self.warm_up:
                for module in self.unfrozen:
                    module.requires_grad_(True)
            losses = self._epoch(epoch, history, on_progress, should_stop)
            confusion = _confusion(
                self.net, self.data, self.held_idx, self.size, self.mean, self.std, self.device, self.classes
            )
            accuracy = _accuracy_of(confusion)
            history.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses), "accuracy": accuracy})
            log.info(
                "epoch %d/%d: loss %.3f, held-out accuracy %.3f", epoch + 1, self.epochs, history[-1]["loss"], accuracy
            )
            if on_progress is not None:
                on_progress(
                    self.step,
                    self.total,
                    {
                        "epoch": epoch + 1,
                        "epochs": self.epochs,
                        "accuracy": accuracy,
                        "loss": history[-1]["loss"],
                        "curve": curve_picture(history),
                    },
                )
            if best is None or accuracy > best[0] or not self.settings.keep_best:
                weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                best = (accuracy, epoch + 1, weights, confusion)
            if self._stalled(epoch, best):
                break
        assert best is not None  # at least one epoch ran
        accuracy, best_epoch, state, confusion = best
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)
        return history, (accuracy, best_epoch, confusion)

    def _stalled(self, epoch: int, best) -> bool:
        stalled = epoch + 1 - best[1]  # epochs since the best one (kept or not)
        perfect = best[0] == 1.0 and stalled >= 2  # every held-out picture right, twice since: no more to gain
        if self.settings.patience and epoch >= self.warm_up and (stalled >= self.settings.patience or perfect):
            log.info("no better held-out accuracy for %d epochs: stopped after epoch %d", stalled, epoch + 1)
            return True
        return False

    def _epoch(self, epoch: int, history: list, on_progress, should_stop) -> list[float]:
        settings, data = self.settings, self.data
        order = self.train_idx[:]
        self.rng.shuffle(order)
        # Frozen BatchNorm statistics: a few dozen pictures would only spoil them.
        self.net.eval()
        losses = []
        for start in range(0, len(order), settings.batch_size):
            if should_stop is not None and should_stop():
                raise DreamCancelled("Training was cancelled; nothing was saved.")
            batch = order[start : start + settings.batch_size]
            x = torch.stack([augment(data.images[i], self.size, self.rng) for i in batch]).to(self.device)
            y = torch.tensor([data.labels[i] for i in batch], device=self.device)
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(self.net(x), y, weight=self.class_weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            losses.append(loss.item())
            if on_progress is not None:
                on_progress(
                    self.step,
                    self.total,
                    {
                        "epoch": epoch + 1,
                        "epochs": self.epochs,
                        "loss": losses[-1],
                        **({"accuracy": history[-1]["accuracy"]} if history else {}),
                    },
                )
        return losses


@torch.no_grad()
def _confusion(net, data: Dataset, indices: list[int], size: int, mean, std, device, classes: int) -> list[list[int]]:
    """Held-out counts, row = true class, column = predicted class."""
    counts = torch.zeros(classes, classes, dtype=torch.long)
    for start in range(0, len(indices), 32):
        batch = indices[start : start + 32]
        x = torch.stack([center_view(data.images[i], size) for i in batch]).to(device)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        predicted = net(x).argmax(1).cpu()
        for truth, guess in zip([data.labels[i] for i in batch], predicted.tolist(), strict=True):
            counts[truth, guess] += 1
    return counts.tolist()


def _accuracy_of(confusion: list[list[int]]) -> float:
    total = sum(map(sum, confusion))
    return sum(confusion[i][i] for i in range(len(confusion))) / total if total else float("nan")


def _carry_over_classes(base: FeatureModel, head: torch.nn.Linear, class_names: list[str]) -> None:
    """Going on from a fine-tuned model: the classes it already knows keep its head's rows; new ones
    start fresh."""
    old_names = base.class_names or []
    if not old_names or is_imagenet_head(len(old_names)):  # ImageNet's head: nothing to carry over
        return
    assert base.spec.trainable is not None  # only trainable models are fine-tuned
    old_head, _ = base.spec.trainable(base.net)
    with torch.no_grad():
        for index, name in enumerate(class_names):
            if name in old_names:
                head.weight[index] = old_head.weight[old_names.index(name)]
                head.bias[index] = old_head.bias[old_names.index(name)]


def save_trained(model: FeatureModel, path: str | os.PathLike, **extra) -> Path:
    """Save a model as `.safetensors` with the metadata `load_feature_model` reads back."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise DreamError(f"{path.name}: trained models are saved as .safetensors; use that extension.")
    # channels_last parameters are not contiguous, which safetensors refuses.
    state = {k: v.detach().contiguous().cpu() for k, v in model.net.state_dict().items()}
    metadata = {
        "architecture": model.spec.name,
        "class_names": json.dumps(model.class_names or []),
        "preprocessing": json.dumps({"mean": list(model.spec.mean), "std": list(model.spec.std)}),
        "format": "comfyui-deepdream/1",
    }
    metadata.update({key: json.dumps(value) for key, value in extra.items()})
    with written_whole(path) as partial:  # a kill or a full disk leaves no half-written model
        save_file(state, str(partial), metadata=metadata)
    return path
