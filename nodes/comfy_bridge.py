"""The only place that touches ComfyUI: devices, progress, interrupts, model folders.

Outside ComfyUI (tests, plain Python) every service falls back to a harmless
stand-in, so the node classes stay importable and callable anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

import torch
from PIL import Image

from ..dream_core.memory import estimate_dream_memory
from ..dream_core.options import DreamSettings
from ..dream_core.weights import CHECKPOINT_SUFFIXES

log = logging.getLogger(__name__)

try:  # inside ComfyUI
    import comfy.model_management as model_management
    import comfy.utils as comfy_utils
    import folder_paths
    from comfy.model_patcher import ModelPatcher
except ImportError:  # plain Python: tests, scripts
    model_management = None
    comfy_utils = None
    folder_paths = None
    ModelPatcher = None
try:  # ComfyUI's VIDEO type (core Load Video / Save Video); older cores lack it
    from comfy_api.input_impl import VideoFromFile
except ImportError:
    VideoFromFile = None

MODEL_FOLDER = "deepdream"
PREVIEW_SIZE = 512


def register_model_folder() -> None:
    """Make `models/deepdream` known to ComfyUI without dropping configured paths.

    Paths that `extra_model_paths.yaml` already gave this folder name stay, and stay
    first; the default folder is appended, and our file types are allowed.
    """
    if folder_paths is None:
        return
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    folder_paths.add_model_folder_path(MODEL_FOLDER, default)
    paths, extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    if isinstance(extensions, set):
        extensions.update(CHECKPOINT_SUFFIXES)
    else:
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(extensions) | set(CHECKPOINT_SUFFIXES))


def model_files() -> list[str]:
    """Checkpoint files in the model folders, as ComfyUI lists them."""
    if folder_paths is None:
        return []
    return folder_paths.get_filename_list(MODEL_FOLDER)


def model_file_path(name: str) -> str:
    """Full path of a listed checkpoint; only files inside the model folders resolve."""
    if folder_paths is None:
        raise FileNotFoundError(f"{name}: model folders are only known inside ComfyUI.")
    path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise FileNotFoundError(f"Model file {name!r} is not in the DeepDream model folders ({folders}).")
    return path


def model_folders() -> list[str]:
    """Folders searched for ImageNet weights; downloads go into the first."""
    if folder_paths is None:
        return []
    return folder_paths.get_folder_paths(MODEL_FOLDER)


def compute_device() -> torch.device:
    """ComfyUI's torch device, or the CPU outside ComfyUI."""
    return model_management.get_torch_device() if model_management is not None else torch.device("cpu")


def output_device() -> torch.device:
    """Where ComfyUI wants returned tensors (its intermediate device)."""
    return model_management.intermediate_device() if model_management is not None else torch.device("cpu")


def raise_if_interrupted() -> bool:
    """Raise ComfyUI's own interrupt exception when the user pressed Cancel."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()
    return False


PREVIEW_INTERVAL = 0.25
"""Seconds between previews (at most ~4 a second): each is a copy off the device and a JPEG."""


class _PreviewCopy:
    """A small preview of a `[3, H, W]` device image on its way to the host, never waited for.

    Shrunk and turned into bytes on the device (a 512 px preview of an 8K dream is 0.3%
    of it), then copied into pinned memory without blocking; `ready()` asks the copy's
    event whether it has landed.
    """

    def __init__(self, image: torch.Tensor) -> None:
        scale = min(1.0, PREVIEW_SIZE / max(image.shape[-2:]))
        small = image.detach()[None].float()
        if scale < 1.0:
            size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
            small = torch.nn.functional.interpolate(small, size=size, mode="area")
        pixels = (small[0].clamp(0, 1) * 255).round().to(torch.uint8)
        cuda = pixels.device.type == "cuda"
        self.host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=cuda)
        self.host.copy_(pixels, non_blocking=cuda)
        self.event = torch.cuda.Event() if cuda else None
        if self.event is not None:
            self.event.record()

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def pil(self):
        return Image.fromarray(self.host.permute(1, 2, 0).numpy(), "RGB")


def progress_reporter(total: int) -> Callable[[int, int, torch.Tensor | None], None]:
    """An `on_progress` callback that drives ComfyUI's progress bar with a preview.

    Every call moves the bar (ComfyUI's progress hook also checks for Cancel, so each
    report is an interrupt point); a preview goes with it at most every
    `PREVIEW_INTERVAL` seconds, made small on the device and sent once its copy has
    arrived, so the dream never waits for the host.
    """
    if comfy_utils is None:
        return lambda done, total, image: None
    bar = comfy_utils.ProgressBar(total)
    pending: list[_PreviewCopy] = []
    last = [-math.inf]

    def report(done: int, total: int, image: torch.Tensor | None) -> None:
        now = time.monotonic()
        if image is not None and not pending and now - last[0] >= PREVIEW_INTERVAL:
            pending.append(_PreviewCopy(image[0]))
            last[0] = now
        preview = None
        if pending and pending[0].ready():
            preview = ("JPEG", pending.pop().pil(), PREVIEW_SIZE)
        bar.update_absolute(done, total, preview)

    return report


def make_room(size: int, device: torch.device, what: str) -> None:
    """Ask ComfyUI's model management to free `size` bytes on `device`, offloading other models."""
    if model_management is None:
        return
    log.info("DeepDream: asking ComfyUI's model management for %s on %s.", what, device)
    model_management.free_memory(size, device)


TILE_CAPS = {"LOW_VRAM": 1024, "NO_VRAM": 512}
"""Automatic tiles are kept this small (px) when ComfyUI runs with --lowvram / --novram."""


def host_tile_cap() -> int | None:
    """The tile cap ComfyUI's VRAM mode asks for (--lowvram, --novram), else None."""
    state = getattr(model_management, "vram_state", None) if model_management is not None else None
    return TILE_CAPS.get(getattr(state, "name", ""))


_patchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""The ModelPatcher through which ComfyUI's model management holds each feature model (one per model,
alive as long as the model is: ComfyUI only keeps a weak reference to it)."""


def offload_device() -> torch.device:
    """Where ComfyUI keeps models it is not using (the CPU, unless it runs with --gpu-only)."""
    return model_management.unet_offload_device() if model_management is not None else torch.device("cpu")


def load_feature_models_onto(models: Sequence, device: torch.device, memory_required: int) -> None:
    """Put the feature models (a dream's network and any others it runs) on `device` through ComfyUI's model
    management, all in one request so that loading one never offloads another.

    As ComfyUI's own training node does: a `ModelPatcher` over the network, loaded with
    `load_models_gpu` inside `inference_mode(False)` (a move made under inference mode
    would leave tensors autograd refuses), with the dream's own memory as
    `memory_required`, so other models are offloaded first. The network then stays on
    the device between runs while there is room, is offloaded when another model needs
    the room, and Unload Models frees it; nothing is copied when it is already there.
    Outside ComfyUI the model is simply moved.
    """
    if model_management is None or ModelPatcher is None:
        for model in models:
            model.to(device)
        return
    patchers = []
    for model in models:
        patcher = _patchers.get(model)
        if patcher is None or patcher.load_device != device:
            patcher = ModelPatcher(model.net, load_device=device, offload_device=offload_device())
            _patchers[model] = patcher
        patchers.append(patcher)
    with torch.inference_mode(False):
        model_management.load_models_gpu(patchers, memory_required=memory_required, force_full_load=True)


@contextlib.contextmanager
def dream_device(
    model, image_shape: tuple[int, ...], terms: Iterable[str], settings: DreamSettings, others: Sequence = ()
) -> Iterator[tuple[torch.device, DreamSettings]]:
    """Run a dream on ComfyUI's device, the model held there by ComfyUI's model management.

    The dream's own memory (activations of the largest tile, the images) is what
    `load_models_gpu` is asked to leave free, so it offloads other models (a checkpoint,
    an upscaler) first. Under --lowvram / --novram automatic tiles are capped. Yields
    the device and the settings to dream with. The model stays loaded afterwards: the
    next run finds it there, and ComfyUI offloads it when it needs the room. `others`: (feature model, terms)
    of further networks the dream runs (loaded with it; their activations add to what it needs).
    """
    device = compute_device()
    cap = host_tile_cap()
    if cap and settings.tile_size == 0:
        settings = replace(settings, tile_size=cap)
    estimate = estimate_dream_memory(model, terms, settings, image_shape, device, cap)
    log.info("DeepDream: %s on %s.", estimate.describe(), device)
    needed = estimate.activations + estimate.images
    for other, other_terms in others:
        needed += estimate_dream_memory(other, other_terms, settings, image_shape, device, cap).activations
    models = {id(each): each for each in (model, *(other for other, _ in others))}  # each loaded once
    load_feature_models_onto(list(models.values()), device, needed)
    yield device, settings


def park(model) -> None:
    """Move a model that was used outside model management (training) to where ComfyUI keeps idle models."""
    model.to(offload_device())
    if model_management is not None:
        model_management.soft_empty_cache()


def input_subfolder(name: str) -> str:
    """A folder inside ComfyUI's input directory, given relative to it.

    Absolute paths and '..' that lead outside the input directory are refused: a
    shared workflow must not read pictures from anywhere on the machine. Outside
    ComfyUI the name is used as given.
    """
    if folder_paths is None:
        return name
    base = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(base, name.strip()))
    if os.path.isabs(name.strip()) or os.path.commonpath([base, path]) != base or path == base:
        raise ValueError(
            f"The training folder must be a sub-folder of ComfyUI's input folder ({base}); got {name!r}. "
            "Give its name relative to that folder, e.g. 'my_flowers'."
        )
    # A class folder or picture that is a link leading out of input/ would read files from anywhere.
    for root, dirs, files in os.walk(path):
        for entry in (*dirs, *files):
            target = os.path.realpath(os.path.join(root, entry))
            if os.path.commonpath([base, target]) != base:
                raise ValueError(
                    f"{os.path.relpath(os.path.join(root, entry), base)} leads outside ComfyUI's input "
                    "folder; put the pictures themselves inside it."
                )
    return path


def model_save_path(name: str) -> str:
    """Where a trained model called `name` is saved: the first DeepDream model folder."""
    stem = name.strip().removesuffix(".safetensors")
    if not stem or not all(c.isalnum() or c in "-_." for c in stem) or stem.startswith("."):
        raise ValueError(f"Model name {name!r}: use letters, digits, '-', '_' and '.' only (no folders).")
    folders = model_folders()
    folder = folders[0] if folders else os.path.join("models", MODEL_FOLDER)
    return os.path.join(folder, stem + ".safetensors")


class VideoFile:
    """Outside ComfyUI, what a VIDEO is here: a file, handed on by its path (ComfyUI's VideoFromFile's API)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get_stream_source(self) -> str:
        return self.path


def temp_folder() -> str:
    """ComfyUI's temp folder (emptied at its start), else the system's."""
    if folder_paths is not None:
        os.makedirs(folder_paths.get_temp_directory(), exist_ok=True)
        return folder_paths.get_temp_directory()
    return tempfile.gettempdir()


def video_path(video) -> str:
    """A file holding a VIDEO's stream, to be decoded frame by frame: Load Video's own file as it is; a
    video held in memory (made by other nodes) written to the temp folder once, still compressed."""
    source = video.get_stream_source()
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        return str(source)
    handle, path = tempfile.mkstemp(dir=temp_folder(), prefix="deepdream_source_", suffix=".mp4")
    with os.fdopen(handle, "wb") as file:
        if hasattr(source, "getbuffer"):
            source.seek(0)
            file.write(source.getbuffer())
        else:
            file.close()
            video.save_to(path)
    return path


def new_video_path(suffix: str = ".mp4") -> str:
    """A new file name in the temp folder for a VIDEO this pack makes."""
    handle, path = tempfile.mkstemp(dir=temp_folder(), prefix="deepdream_video_", suffix=suffix)
    os.close(handle)
    os.unlink(path)  # the writer puts the finished file here (see VideoSink)
    return path


def video_output(path: str):
    """A VIDEO for Save Video and other video nodes: ComfyUI's VideoFromFile over the file."""
    return VideoFromFile(path) if VideoFromFile is not None else VideoFile(path)


def render_folder() -> str:
    """Where a long render keeps its finished frames until its video is made: ComfyUI's output folder (its temp
    folder is emptied when the server starts, and a render must go on after a restart), else the system's temp."""
    base = folder_paths.get_output_directory() if folder_paths is not None else tempfile.gettempdir()
    folder = os.path.join(base, "deepdream_renders")
    os.makedirs(folder, exist_ok=True)
    return folder
