"""Weights files, read safely and found or fetched: pure file I/O (nothing here builds a network).

A checkpoint is read as data only: `.safetensors` directly, pickled `.pt/.pth/.ckpt`
through `torch.load(weights_only=True)`, which refuses anything that would run code.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import UnsafeCheckpointError, WeightsMismatchError, WeightsNotFoundError

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_KEY_PREFIXES = ("module.", "_orig_mod.", "model.")


def find_or_download(filename: str, url: str, folders: Sequence[Path], what: str, otherwise: str) -> dict:
    """The state dict in the first of `folders` holding `filename`; else downloaded from `url` into the first.

    Offline (any network or disk failure), the error names the file to fetch, the folder to
    put it in, and `otherwise`, what to do instead. `what` names the weights in messages.
    """
    for folder in folders:
        if (folder / filename).is_file():
            return read_state_dict(folder / filename)
    folder = folders[0]
    try:
        log.info("Downloading %s from %s into %s", what, url, folder)
        folder.mkdir(parents=True, exist_ok=True)
        return _download(url, folder)
    except Exception as err:  # any network or disk failure ends in the same advice
        raise WeightsNotFoundError(
            f"{what} are not on disk and could not be downloaded ({type(err).__name__}: {err}). Download {url} and "
            f"put the file {filename} into the folder {folder}. {otherwise}"
        ) from err


def _download(url: str, folder: Path) -> dict[str, torch.Tensor]:
    return torch.hub.load_state_dict_from_url(
        url, model_dir=str(folder), map_location="cpu", progress=True, weights_only=True
    )


def folders_of(weights_dir: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """One folder or several as a list (none: torchvision's own, $TORCH_HOME/hub/checkpoints)."""
    if weights_dir is None:
        return [Path(torch.hub.get_dir()) / "checkpoints"]
    if isinstance(weights_dir, (str, os.PathLike)):
        return [Path(weights_dir)]
    return [Path(folder) for folder in weights_dir]


def read_state_dict(path: Path) -> Any:
    """A pickled PyTorch file read as data only (`weights_only`): code in it is refused, never run."""
    try:
        with warnings.catch_warnings():  # torch's note on newer pickle protocols says nothing to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
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
    if path.is_dir():
        raise WeightsNotFoundError(
            f"Checkpoint {path} is a folder; give the checkpoint file inside it ({', '.join(CHECKPOINT_SUFFIXES)})."
        )
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
    obj = read_state_dict(path)
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
