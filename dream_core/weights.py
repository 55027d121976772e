"""Reading weights safely: torchvision's ImageNet files, the offline default, checkpoints.

A checkpoint is read as data only: `.safetensors` directly, pickled `.pt/.pth/.ckpt`
through `torch.load(weights_only=True)`, which refuses anything that would run code.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torchvision
from torch import nn

from .errors import UnsafeCheckpointError, WeightsMismatchError, WeightsNotFoundError

if TYPE_CHECKING:
    from .models import ModelSpec

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_KEY_PREFIXES = ("module.", "_orig_mod.", "model.")


def _torchvision_weights(spec: ModelSpec):
    enum_name, entry = spec.imagenet_weights.split(".")
    return getattr(getattr(torchvision.models, enum_name), entry)


def imagenet_weights_file(spec: ModelSpec) -> tuple[str, str]:
    """(file name, download URL) of a torchvision model's ImageNet weights."""
    url = _torchvision_weights(spec).url
    return url.rsplit("/", 1)[-1], url


def _download(url: str, folder: Path) -> dict[str, torch.Tensor]:
    return torch.hub.load_state_dict_from_url(
        url, model_dir=str(folder), map_location="cpu", progress=True, weights_only=True
    )


def load_imagenet_state_dict(
    spec: ModelSpec, weights_dir: str | os.PathLike | Sequence[str | os.PathLike]
) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a zoo model: from a weights folder, else downloaded.

    `weights_dir` is one folder or several: each is searched for torchvision's file
    name, and a download goes into the first. Weights a package installs
    (`spec.packaged_weights`, EfficientNet-Lite0's) never need the network. Offline, the error names the file to
    fetch and the folder to put it in.
    """
    if spec.packaged_weights is not None:
        return _torch_load(Path(spec.packaged_weights()))
    if spec.imagenet_weights is None:
        raise WeightsNotFoundError(f"{spec.name} has no ImageNet weights; use --weights random or a checkpoint file.")
    folders = [Path(weights_dir)] if isinstance(weights_dir, (str, os.PathLike)) else [Path(d) for d in weights_dir]
    filename, url = imagenet_weights_file(spec)
    for folder in folders:
        if (folder / filename).is_file():
            return _torch_load(folder / filename)
    folder = folders[0]
    try:
        log.info("Downloading %s ImageNet weights from %s into %s", spec.name, url, folder)
        folder.mkdir(parents=True, exist_ok=True)
        return _download(url, folder)
    except Exception as err:  # any network or disk failure ends in the same advice
        raise WeightsNotFoundError(
            f"ImageNet weights for {spec.name} are not on disk and could not be downloaded "
            f"({type(err).__name__}: {err}). Download {url} and put the file {filename} into "
            f"the folder {folder}. Or use the model efficientnet_lite0, whose weights work offline."
        ) from err


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path.name} holds Python objects that could run code when loaded, so it was not "
            f"loaded. Save the plain state dict (model.state_dict()) as .safetensors instead. "
            f"Detail: {str(err).splitlines()[0]}"
        ) from None
    except Exception as err:  # a damaged file can fail anywhere in the unpickler (KeyError, EOFError, ...)
        raise WeightsMismatchError(
            f"{path.name} could not be read as a PyTorch checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}). The file may be truncated "
            "or not a checkpoint; download or save it again."
        ) from None


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint as (state dict, metadata) without running code from it.

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and the prefixes
    that DataParallel or torch.compile add are removed. Metadata comes from a
    safetensors header (JSON values decoded where possible).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Checkpoint {path} does not exist; check the file name and folder.")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise WeightsMismatchError(
            f"{path.name}: unsupported checkpoint type {suffix!r}; use one of {', '.join(CHECKPOINT_SUFFIXES)}."
        )
    meta: dict[str, Any] = {}
    if suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                raw_meta = handle.metadata() or {}
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsMismatchError(
                f"{path.name} is not a readable .safetensors file ({err}); it may be truncated. "
                "Download or save it again."
            ) from None
        for key, value in raw_meta.items():
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):
                meta[key] = value
        return state, meta
    obj = _torch_load(path)
    for _ in range(3):
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not _is_state_dict(obj):
        raise WeightsMismatchError(
            f"{path.name} does not contain a state dict of tensors. Save model.state_dict() "
            "(ideally as .safetensors), not the whole model object."
        )
    return _strip_prefixes(obj), meta


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _KEY_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _is_buffer_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def fit_state_dict(spec: ModelSpec, state: dict[str, torch.Tensor], source: str) -> tuple[nn.Module, int]:
    """Build `spec`'s network sized for the checkpoint's classes and load `state`.

    The classification head may have any number of classes; every feature layer must
    match by name and shape, else `WeightsMismatchError` names the keys.
    """
    head = spec.classifier_prefix + "."
    state = {k: v for k, v in state.items() if not k.startswith(spec.ignored_prefixes)}
    head_weight = state.get(head + "weight")
    num_classes = int(head_weight.shape[0]) if head_weight is not None and head_weight.ndim == 2 else 1000
    net = spec.build(num_classes)
    expected = net.state_dict()

    def is_head(key: str) -> bool:
        return key.startswith(head)

    missing = [k for k in expected if k not in state and not _is_buffer_counter(k) and not is_head(k)]
    unexpected = [k for k in state if k not in expected and not _is_buffer_counter(k)]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{label} ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
        for label, keys in (
            (f"missing {len(missing)} keys", missing),
            (f"{len(unexpected)} unknown keys", unexpected),
            (f"{len(wrong_shape)} keys of another shape", wrong_shape),
        )
        if keys
    ]
    if problems:
        raise WeightsMismatchError(
            f"{source} does not fit the {spec.name} architecture: {'; '.join(problems)}. "
            f"Choose the architecture the checkpoint was trained as."
        )
    if not any(is_head(k) for k in state):
        log.warning("%s has no classification head; class objectives will be meaningless.", source)
    net.load_state_dict(state, strict=False)
    return net, num_classes
