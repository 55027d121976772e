"""A dreaming command's work as a value: what it dreams with, read once from the command line, and loaded alike
wherever it runs (this process, or each worker of a Ray cluster).

A `Job` is frozen and picklable: names, numbers and file paths, no tensors and no models. `load_job` turns it
into a `LoadedJob` (the feature models, the objective resolved against them, the mask and guide as tensors) on
the job's device, or on the device of the process that loads it when the job names none. `Job.identity` is what
a stopped job is recognised by when it is run again: the job itself (not where it runs) and its files by content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .devices import default_device
from .errors import DreamError
from .feature_model import FeatureModel
from .imageio import load_image, load_mask
from .loading import load_feature_model
from .objectives import LayerWeights, Objective, Term, parse_layer_weights
from .options import DreamSettings
from .outputs import file_identity
from .zoo import get_spec

MAX_NETWORKS = 8
"""Other networks one dream may run beside its own (each holds its weights and activations at every step)."""
NAMED_WEIGHTS = ("imagenet", "random")
"""Weights that are not a file."""


@dataclass(frozen=True)
class NetworkSpec:
    """One more network dreaming the same picture: an architecture, its weights and the layers it dreams."""

    architecture: str
    weights: str
    layers: str

    @classmethod
    def parse(cls, text: str) -> NetworkSpec:
        """`MODEL[@WEIGHTS]=LAYERS`, e.g. 'vgg16=conv4_3:1' (weights default to imagenet)."""
        model, sep, layers = text.partition("=")
        if not sep or not model.strip() or not layers.strip():
            raise DreamError(
                f"--network {text[:60]!r}: write it as MODEL=LAYERS or MODEL@WEIGHTS=LAYERS, e.g. 'vgg16=conv4_3:1'."
            )
        architecture, at, weights = model.partition("@")
        if at and not weights.strip():
            raise DreamError(
                f"--network {text[:60]!r}: nothing after '@'. Give the weights (imagenet, random or a checkpoint "
                "file), or leave out the '@'."
            )
        return cls(architecture.strip(), weights.strip() or "imagenet", layers)


@dataclass(frozen=True)
class RegionSpec:
    """A mask file and the layer weights dreamed inside it."""

    mask: str
    layers: str

    @classmethod
    def parse(cls, text: str) -> RegionSpec:
        """`MASK_FILE=LAYERS`, e.g. 'left.png=mixed3:1'."""
        mask_file, sep, layers = text.partition("=")
        if not sep:
            raise DreamError(f"--region {text!r}: write it as MASK_FILE=LAYERS, e.g. left.png=mixed3:1.")
        return cls(mask_file, layers)


@dataclass(frozen=True)
class Job:
    """What a dreaming command dreams with: the network, the layers, the files that shape the dream, the settings
    and (optionally) the device."""

    model: str
    """The architecture's name, as the zoo spells it."""
    layers: tuple[tuple[str | Term, float], ...]
    """The layers the network dreams: the ones asked for, else the preset's or the model's own."""
    settings: DreamSettings = field(default_factory=DreamSettings)
    weights: str = "imagenet"
    """'imagenet', 'random' or a checkpoint file."""
    weights_dir: str | None = None
    layers_given: bool = True
    """Whether the layers were asked for: regions alone say what to dream unless they were."""
    learning_phase: str = "inference"
    mask: str | None = None
    guide: str | None = None
    regions: tuple[RegionSpec, ...] = ()
    networks: tuple[NetworkSpec, ...] = ()
    device: str | None = None
    """Where to dream; None: wherever the job is loaded, its GPU if it has one."""

    def __post_init__(self) -> None:
        if len(self.networks) > MAX_NETWORKS:
            raise DreamError(
                f"{len(self.networks)} --network flags: at most {MAX_NETWORKS} other networks dream at once."
            )

    def files(self) -> list[Path]:
        """Every file the job reads besides its pictures: mask, guide, region masks, checkpoints."""
        files = [self.mask, self.guide, *(region.mask for region in self.regions)]
        files += [
            weights for weights in (self.weights, *(n.weights for n in self.networks)) if weights not in NAMED_WEIGHTS
        ]
        return [Path(f) for f in files if f is not None]

    def on(self, device: str | None) -> Job:
        return replace(self, device=device)

    def identity(self, files: Iterable[Path] = (), **more: Any) -> str:
        """The job's identity for going on after a stop: the job (not where it runs), what the command adds
        (`more`: its inputs, outputs and own settings) and the files read, by content. The same job on unchanged
        files gives the same text, with or without a cluster, on any device."""
        fields = asdict(self)
        del fields["device"]
        text = {**fields, **more, "files": [file_identity(path) for path in [*files, *self.files()]]}
        return json.dumps(text, sort_keys=True, default=str)


@dataclass
class LoadedJob:
    """A job's feature models and tensors, ready for the engine."""

    job: Job
    model: FeatureModel
    objective: Objective
    """Resolved against the model: the layers dreamed everywhere (none when only regions were given), the regions
    and the guide."""
    mask: torch.Tensor | None = None
    guide: torch.Tensor | None = None
    regions: list[tuple[torch.Tensor, dict[Term, float]]] = field(default_factory=list)
    networks: list[tuple[FeatureModel, dict[Term, float]]] = field(default_factory=list)
    """(feature model, layer weights) of the other networks dreaming with it."""

    @property
    def settings(self) -> DreamSettings:
        return self.job.settings

    @property
    def sweep_layers(self) -> dict[str | Term, float]:
        """The layers a sweep compares when it is given no lines: the job's."""
        return dict(self.job.layers)

    @property
    def dreamed_layers(self) -> dict[str | Term, float]:
        """The layers the main network dreams everywhere (none when regions alone say what to dream)."""
        return {} if self.job.regions and not self.job.layers_given else dict(self.job.layers)

    def line(self, layer_weights: LayerWeights) -> Objective:
        """A sweep line's objective: its layers, with the job's guide, regions and other networks."""
        return Objective.of(layer_weights, regions=self.regions, guide=self.guide, networks=self.networks).resolved(
            self.model
        )


def check_device(device: str) -> None:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise DreamError(f"--device {device}: not usable here ({str(error).splitlines()[0]}). Use cpu.") from error


def load_job(job: Job) -> LoadedJob:
    """The job's models and tensors, on its device (else this process's default one); a bad layer, mask or
    network fails here, before any work."""
    device = job.device or default_device()
    check_device(device)  # (each dream tunes cuDNN's kernels for itself: devices.cudnn_benchmark)
    model = load_feature_model(
        job.model, job.weights, job.weights_dir, device=device, learning_phase=job.learning_phase
    )
    model.resolve_weights(dict(job.layers))  # a sweep's default lines: a bad layer name fails before any work
    regions = [(load_mask(region.mask), parse_layer_weights(region.layers)) for region in job.regions]
    loaded: dict[tuple[str, str], FeatureModel] = {}  # a network named twice is loaded once
    networks = [_load_network(spec, job, device, loaded) for spec in job.networks]
    mask = load_mask(job.mask) if job.mask else None
    guide = load_image(job.guide) if job.guide else None
    layers = {} if regions and not job.layers_given else dict(job.layers)  # regions alone may say what to dream
    objective = Objective.of(layers, regions=regions, guide=guide, networks=networks).resolved(model)
    return LoadedJob(job, model, objective, mask, guide, regions, networks)


def _load_network(
    spec: NetworkSpec, job: Job, device: str, loaded: dict[tuple[str, str], FeatureModel]
) -> tuple[FeatureModel, dict[Term, float]]:
    """A network's feature model (on the dream's device; one already `loaded` for the same architecture and
    weights is shared) and its layer weights, checked."""
    weights = spec.weights
    key = (get_spec(spec.architecture).name, weights if weights in NAMED_WEIGHTS else str(Path(weights).resolve()))
    if key not in loaded:
        loaded[key] = load_feature_model(
            key[0], weights, job.weights_dir, device=device, learning_phase=job.learning_phase
        )
    model = loaded[key]
    layer_weights = parse_layer_weights(spec.layers)
    try:
        model.resolve_weights(layer_weights)
    except DreamError as error:
        raise DreamError(f"--network {spec.architecture}: {error}") from None
    return model, layer_weights
