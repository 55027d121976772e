"""Command line: ``python -m dream_core dream|sweep|zoom|video|train|models|layers|presets``."""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import cluster
from . import options as option_table
from .animation import ZOOM_OPTIONS, dream_frames, dream_zoom
from .channels import channel_pictures, default_layer, parse_channels, top_channels
from .devices import default_device
from .engine import DreamSettings, dream
from .errors import DreamError
from .feature_model import LEARNING_PHASE_HELP, LEARNING_PHASES, FeatureModel
from .imageio import expand_inputs, load_image, load_mask, pixels, save_animation, save_image, save_pixels
from .loading import load_feature_model
from .objectives import Objective, parse_layer_weights
from .options import ChannelSettings, Option
from .outputs import (
    check_name,
    check_outputs,
    distinct_names,
    fill_frames,
    frames_written_whole,
    job_text,
    written_whole,
)
from .presets import PRESETS, default_preset, get_preset
from .report import describe_training, per_class_text
from .sheet import contact_sheet, layer_sweep
from .training import TrainSettings, train_classifier
from .video import CarriedState, dream_video, shot_ranges
from .videoio import VIDEO_SUFFIXES, VideoSink, VideoSource, audio_codecs, audio_fits
from .workfolder import WorkFolder, whole_png
from .zoo import DEFAULT_MODEL, LOGITS, ZOO, get_spec, layer_catalogue


class ProgressBar:
    """An `on_progress` callback drawing tqdm's bar on stderr: steps done, rate and ETA; redrawn in a terminal,
    a line now and then in a log. `label` may change between calls (training shows its epoch and loss)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr  # looked up now, not when the module was imported
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int, _preview: torch.Tensor | None = None) -> None:
        if self.bar is None:
            terminal = self.stream.isatty()
            self.bar = tqdm(total=total, desc=self.label, unit="step", file=self.stream, dynamic_ncols=terminal,
                            mininterval=0.1 if terminal else 10.0, ascii=not terminal)  # fmt: skip
        self.bar.total = total
        self.bar.set_description_str(self.label, refresh=False)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None


def _terms_text(layers: dict) -> str:
    return ", ".join(str(term) if weight == 1 else f"{term} x{weight:g}" for term, weight in layers.items())


def plan_text(model: FeatureModel, layers: dict, regions: list, settings: DreamSettings,
              networks: Sequence = ()) -> str:  # fmt: skip
    """What a dreaming command will do, in a user's words: its first line (every setting under -v)."""
    dreamed = _terms_text(layers)
    if regions:
        dreamed += (" and " if dreamed else "") + f"{len(regions)} region{'s' if len(regions) > 1 else ''}"
    each = [(dreamed, model)] if dreamed else []
    each += [(_terms_text(other_layers), other) for other, other_layers in networks]
    what = " with ".join(f"{terms} of {net.name} ({Path(str(net.weights)).name} weights)" for terms, net in each)
    changed = [f"{opt.name.replace('_', ' ')} {getattr(settings, opt.name)}" for opt in option_table.OPTIONS
               if opt.name not in ("octaves", "iterations", "step") and getattr(settings, opt.name) != opt.default]
    return (f"Dreaming {what} on {model.device}: {settings.octaves} octaves of {settings.iterations} steps of "
            f"{settings.step:g}" + (f"; {', '.join(changed)}" if changed else "") + ".")


def _preset_values(opt: Option) -> str:
    """Where presets give an option another value than the table: 'lite0: 0.015, google: 0.012'."""
    values = [f"{name}: {getattr(p.settings, opt.name)}" for name, p in PRESETS.items()
              if getattr(p.settings, opt.name, opt.default) != opt.default]  # fmt: skip
    return ", ".join(values)


def _option_help(opt: Option) -> str:
    presets = _preset_values(opt) if opt in option_table.OPTIONS else ""  # presets set dream options only
    note = f"; presets set their own: {presets}" if presets else ""
    return f"{opt.help} (default {opt.default}{note})".replace("%", "%%")


def _add_option_flags(p: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """A flag per option of a table; left out, it is None, so presets and defaults apply."""
    for opt in options:
        flags, named = (opt.flag, *opt.aliases), {"dest": opt.name, "help": _option_help(opt)}
        if opt.kind is bool:
            p.add_argument(*flags, action=argparse.BooleanOptionalAction, default=None, **named)
        elif opt.choices:
            p.add_argument(*flags, choices=opt.choices, **named)
        else:
            p.add_argument(*flags, type=opt.kind, metavar=opt.name.upper(), **named)


def _add_dream_options(p: argparse.ArgumentParser) -> None:
    """Every flag of the commands that dream: what to dream with, then one flag per option of the table."""
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="start from a classic setting (model, layers, options); options given too override it")
    p.add_argument("--model", help=f"architecture (default {DEFAULT_MODEL}); see 'models'")
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (default), 'random', or a .safetensors/.pt/.pth checkpoint file")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="folder for torchvision's ImageNet weights (default: torchvision's, "
                   "$TORCH_HOME/hub/checkpoints)")
    p.add_argument("--layers", help="layer weights, e.g. 'mixed4:1,mixed5:1.5' (default: the model's own); "
                   "see 'layers MODEL'")
    p.add_argument("--learning-phase", choices=LEARNING_PHASES, help=LEARNING_PHASE_HELP + " (default inference)")
    p.add_argument("--guide", type=Path, help="guide image: dream toward its features (see --guide-mix)")
    p.add_argument("--mask", type=Path, help="grey image: dream strength per pixel (white = full)")
    p.add_argument("--region", action="append", default=[], metavar="MASK=LAYERS",
                   help="a mask image and the layer weights dreamed inside it, e.g. 'left.png=mixed3:1'; "
                   "repeat for several regions")
    p.add_argument("--network", action="append", default=[], metavar="MODEL[@WEIGHTS]=LAYERS",
                   help="one more network dreaming the same picture with its own layer weights, e.g. "
                   "'vgg16=conv4_3:1' or 'efficientnet_lite0@mine.safetensors=class:dots:2' (weights: imagenet, "
                   "random or a checkpoint; default imagenet); repeat for several (at most 8). The main network "
                   "still dreams --layers (else its own layers)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _add_option_flags(p, option_table.OPTIONS)
    # Older spelling of --no-reinject-detail.
    p.add_argument("--no-reinject", dest="reinject_detail", action="store_const", const=False, default=None,
                   help=argparse.SUPPRESS)  # fmt: skip


@dataclass
class DreamJob:
    """What the flags of a dreaming command ask for, read and checked once: the one path from
    parsed arguments to an engine call, shared by `dream`, `sweep`, `zoom` and `video`."""

    model: FeatureModel
    objective: Objective
    """Resolved against the model: the layers dreamed everywhere (none when only regions were given), the
    regions and the guide."""
    settings: DreamSettings
    sweep_layers: dict[str, float] = field(default_factory=dict)
    """The layers a sweep compares when no --line is given: --layers, else the model's own."""
    mask: torch.Tensor | None = None
    guide: torch.Tensor | None = None
    regions: list = field(default_factory=list)
    networks: list = field(default_factory=list)
    """(feature model, layer weights) of the other networks dreaming with it (--network)."""

    def line(self, layer_weights: dict) -> Objective:
        """A sweep line's objective: its layers, with the job's guide, regions and other networks."""
        return Objective.of(layer_weights, regions=self.regions, guide=self.guide,
                            networks=self.networks).resolved(self.model)  # fmt: skip


def _settings_from_args(args: argparse.Namespace) -> tuple[str, dict[str, float], DreamSettings]:
    preset = get_preset(args.preset) if args.preset else None
    model = get_spec(args.model or (preset.model if preset else DEFAULT_MODEL)).name
    if preset is None or preset.model != model:
        preset = default_preset(model)
    settings = preset.settings if preset else DreamSettings()
    layers = parse_layer_weights(args.layers) if args.layers else dict(preset.layers if preset else
                                                                         get_spec(model).default_layers)
    given = [opt.name for opt in option_table.OPTIONS if getattr(args, opt.name) is not None]
    options = {name: getattr(args, name) for name in given}
    return model, layers, settings.with_options(**options).validate()


OVERWRITE_HELP = ("replace output files that already exist (an input is never replaced; in a folder only the "
                  "files this command writes there); without it an existing output is refused before any work")
WRITABLE_PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_FPS = 1000.0
MAX_NETWORKS = 8
"""Other networks one dream may run beside its own (each holds its weights and activations at every step)."""


def _check_fps(fps: float) -> None:
    if not (0 < fps <= MAX_FPS):
        raise DreamError(f"--fps {fps:g}: give a frame rate above 0 and at most {MAX_FPS:g}.")


def _check_device(device: str) -> None:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise DreamError(f"--device {device}: not usable here ({str(error).splitlines()[0]}). Use cpu.") from error


def prepare_dream(args: argparse.Namespace) -> DreamJob:
    """Read every dream flag once: the model, layers, settings, mask, guide and regions."""
    model_name, layers, settings = _settings_from_args(args)
    if getattr(args, "ray", None) is None and (getattr(args, "workers", 0) or getattr(args, "worker_threads", 0)):
        raise DreamError("--workers and --worker-threads only matter with --ray; add --ray or leave them out.")
    if args.guide is None and args.guide_mix is not None:
        raise DreamError("--guide-mix only matters with --guide IMAGE; give a guide image or leave it out.")
    if args.weights_dir is not None and (args.weights != "imagenet" or get_spec(model_name).imagenet_weights is None):
        # Only torchvision's downloaded weights are looked for there.
        raise DreamError(f"--weights-dir is where torchvision's ImageNet weights are looked for; {model_name} with "
                         f"--weights {args.weights} does not use it. Leave it out.")
    args.device = args.device or default_device()
    _check_device(args.device)  # (each dream tunes cuDNN's kernels for itself: devices.cudnn_benchmark)
    model = load_feature_model(model_name, args.weights, args.weights_dir, device=args.device,
                               learning_phase=args.learning_phase or "inference")  # fmt: skip
    model.resolve_weights(layers)  # a sweep's default lines: a bad layer name fails before any work
    regions = []
    for spec in args.region:
        mask_file, sep, region_layers = spec.partition("=")
        if not sep:
            raise DreamError(f"--region {spec!r}: write it as MASK_FILE=LAYERS, e.g. left.png=mixed3:1.")
        regions.append((load_mask(mask_file), parse_layer_weights(region_layers)))
    if len(args.network) > MAX_NETWORKS:
        raise DreamError(f"{len(args.network)} --network flags: at most {MAX_NETWORKS} other networks dream at once.")
    loaded: dict[tuple[str, str], FeatureModel] = {}  # a network named twice is loaded once
    networks = [_load_network(spec, args, loaded) for spec in args.network]
    # Regions alone say what to dream; other networks dream beside the main one's layers.
    layers_everywhere = {} if regions and not args.layers else layers
    mask = load_mask(args.mask) if args.mask else None
    guide = load_image(args.guide) if args.guide else None
    objective = Objective.of(layers_everywhere, regions=regions, guide=guide, networks=networks).resolved(model)
    print(plan_text(model, layers_everywhere, regions, settings, networks), file=sys.stderr)
    logging.getLogger(__name__).info("every setting: %s", settings)
    if model.training_report:
        print(describe_training(Path(str(model.weights)).name, model.class_names or [], model.training_report),
              file=sys.stderr)  # fmt: skip
    return DreamJob(model, objective, settings, sweep_layers=layers, mask=mask, guide=guide, regions=regions,
                    networks=networks)


def _network_spec(text: str) -> tuple[str, str, str]:
    """(architecture, weights, layer weights text) of a --network value MODEL[@WEIGHTS]=LAYERS."""
    model, sep, layers = text.partition("=")
    if not sep or not model.strip() or not layers.strip():
        raise DreamError(f"--network {text[:60]!r}: write it as MODEL=LAYERS or MODEL@WEIGHTS=LAYERS, e.g. "
                         "'vgg16=conv4_3:1'.")
    architecture, at, weights = model.partition("@")
    if at and not weights.strip():
        raise DreamError(f"--network {text[:60]!r}: nothing after '@'. Give the weights (imagenet, random or a "
                         "checkpoint file), or leave out the '@'.")  # fmt: skip
    return architecture.strip(), weights.strip() or "imagenet", layers


def _load_network(text: str, args: argparse.Namespace, loaded: dict) -> tuple[FeatureModel, dict]:
    """A --network's feature model (on the dream's device; one already `loaded` for the same architecture and
    weights is shared) and its layer weights, checked."""
    architecture, weights, layers = _network_spec(text)
    key = (get_spec(architecture).name, str(Path(weights).resolve()) if weights not in ("imagenet", "random")
           else weights)  # fmt: skip
    if key not in loaded:
        loaded[key] = load_feature_model(key[0], weights, args.weights_dir, device=args.device,
                                         learning_phase=args.learning_phase or "inference")  # fmt: skip
    model = loaded[key]
    layer_weights = parse_layer_weights(layers)
    try:
        model.resolve_weights(layer_weights)
    except DreamError as error:
        raise DreamError(f"--network {architecture}: {error}") from None
    return model, layer_weights


def _job_inputs(args: argparse.Namespace) -> list[Path]:
    """Every file a dreaming command reads besides its pictures: mask, guide, region masks, checkpoint."""
    files = [args.mask, args.guide, *(Path(spec.partition("=")[0]) for spec in args.region)]
    for weights in (args.weights, *(_network_spec(spec)[1] for spec in args.network)):
        if weights not in ("imagenet", "random"):
            files.append(Path(weights))
    return [Path(f) for f in files if f is not None]


def _check_picture_output(path: Path) -> None:
    if path.suffix.lower() not in WRITABLE_PICTURES:
        raise DreamError(f"{path.name}: pictures are written as {', '.join(WRITABLE_PICTURES)}; use one of those.")


def _dream_targets(args: argparse.Namespace, inputs: list[Path], out: Path) -> dict[Path, Path]:
    """Each input's output file: `out` itself for one picture, else a distinct name in the folder `out`."""
    check_name(out)
    if not (len(inputs) > 1 or out.suffix == "" or out.is_dir()):
        _check_picture_output(out)
        return {inputs[0]: out}
    for given in map(Path, args.inputs):
        if given.is_dir() and given.resolve() == out.resolve():
            raise DreamError(f"The output folder {out} is the input folder: the dreams would be mixed with "
                             "the pictures (and dreamed again next time). Write to another folder.")  # fmt: skip
    names = distinct_names(inputs)
    return {path: out / names[path] for path in inputs}


def _cmd_dream(args: argparse.Namespace) -> int:
    inputs = list(dict.fromkeys(expand_inputs(args.inputs)))  # a file given twice is dreamed once
    if not inputs:
        raise DreamError("No input images found; give image files or folders that contain some.")
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise DreamError(f"Input not found: {', '.join(missing)}.")
    out = Path(args.output)
    targets = _dream_targets(args, inputs, out)
    if args.ray is not None:
        return _dream_on_ray(args, inputs, targets, out if out not in targets.values() else out.parent)
    planned = list(targets.values())
    for target in targets.values():
        if args.frames_every:
            planned.append(target.with_name(f"{target.stem}_frames.webp"))
        if args.save_octaves:
            octaves = _settings_from_args(args)[2].octaves
            planned += [target.with_name(f"{target.stem}_octave{i}.png") for i in range(octaves)]
    check_outputs(planned, [*inputs, *_job_inputs(args)], args.overwrite)
    job = prepare_dream(args)
    failed = []
    for path in inputs:
        try:
            image = load_image(path)
            options = dict(mask=job.mask, on_progress=ProgressBar(path.name))
            frames = None
            if args.frames_every:  # the same dream, keeping the image every N steps on the way
                result, frames = dream_frames(image, job.model, job.objective, job.settings, args.frames_every,
                                              **options)  # fmt: skip
            else:
                result = dream(image, job.model, job.objective, job.settings, **options)
        except DreamError as error:
            if len(inputs) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            failed.append(path.name)
            continue
        target = targets[path]
        save_image(result.images[0], target)
        print(f"wrote {target}")
        if frames is not None:
            frames_path = save_animation(frames, target.with_name(f"{target.stem}_frames.webp"), fps=8.0)
            print(f"wrote {frames_path}")
        if args.save_octaves:
            for i, octave in enumerate(result.octave_images):
                octave_path = target.with_name(f"{target.stem}_octave{i}.png")
                save_image(octave[0], octave_path)
                print(f"wrote {octave_path}")
    if failed:
        print(f"error: {len(failed)} of {len(inputs)} images failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _dream_on_ray(args: argparse.Namespace, inputs: list[Path], targets: dict[Path, Path], folder: Path) -> int:
    """`deepdream dream ... --ray`: the images dreamed by the cluster's workers, each written as it comes back;
    a job stopped and run again goes on from the images it finished."""
    if args.frames_every or args.save_octaves:
        raise DreamError("--frames-every and --save-octaves are not spread over a cluster: leave them out, or "
                         "leave out --ray.")  # fmt: skip
    read = [*inputs, *_job_inputs(args)]
    journal = cluster.Journal(folder / ".deepdream-job.json", job_text(args, _job_inputs(args)))
    left = [path for path in inputs if not (journal.finished(targets[path].name, path) and targets[path].is_file())]
    # An earlier run of this job may have written an output it never reported: its own, so not refused.
    check_outputs([targets[p] for p in left if targets[p].name not in journal.planned], read, args.overwrite)
    if len(left) < len(inputs):
        print(f"going on: {len(inputs) - len(left)} of {len(inputs)} images were finished by an earlier run",
              file=sys.stderr)  # fmt: skip
    if not left:
        journal.close()
        return 0
    journal.plan(targets[path].name for path in left)

    def handle(path: Path, result) -> bool:
        if result is not None:  # the worker does not see this folder: its pixels came back to be written here
            save_pixels(result, targets[path])
        journal.add(targets[path].name, path)
        print(f"wrote {targets[path]}")
        return True

    with _on_ray(args, folder) as (pool, outbox):
        failed = pool.run(left, lambda worker, path: worker.dream_image.remote(
            load_image(path)[0].numpy(), str(targets[path].resolve()), outbox), handle,
            cluster.Progress("images", len(left), "images"))  # fmt: skip
    for path, reason in failed:
        print(f"error: {path.name}: {reason}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(inputs)} images failed: {', '.join(p.name for p, _ in failed)} (the "
              "others are written; run the same command again to retry these)", file=sys.stderr)  # fmt: skip
        return 1
    journal.close()
    return 0


def _ray_pool(args: argparse.Namespace, checked: bool = False) -> cluster.Pool:
    """The job checked here unless it was (a bad flag fails before any worker starts), then the cluster's workers."""
    if not checked:
        prepare_dream(copy.copy(args))  # the workers pick their own device: this copy's choice stays here
    plan = cluster.connect(args.ray, args.workers, args.worker_threads)
    here = torch.get_num_threads()
    note = ""
    if not plan.gpus and plan.threads != here:  # a CPU's sums, and so a dream's last bits, follow its threads
        note = (f" (the same pixels as a run on one machine with {plan.threads} thread{'s' * (plan.threads > 1)}; "
                f"--worker-threads {here} for this machine's)")
    print(f"on the Ray cluster: {plan.describe()}{note}", file=sys.stderr)
    return cluster.Pool(plan, prepare_dream, args)


@contextlib.contextmanager
def _on_ray(args: argparse.Namespace, folder: Path | None = None, checked: bool = False):
    """The cluster's workers (`cluster.Pool`) for the length of the block, and with `folder` an outbox there: the
    workers that see it write their results themselves."""
    outbox, pool = (cluster.Outbox(folder) if folder is not None else None), None
    try:
        with _ray_pool(args, checked) as pool:
            yield pool, outbox
    finally:
        if outbox is not None:
            outbox.close(pool.pids.values() if pool is not None else ())


def _sweep_on_ray(args: argparse.Namespace, image: torch.Tensor, lines: list[str]) -> torch.Tensor:
    """A sweep's lines dreamed by the cluster's workers, one line each, in the order of the lines."""
    dreams: dict[int, np.ndarray] = {}

    def handle(item: tuple[int, str], result) -> bool:
        dreams[item[0]] = result
        return True

    array = image[0].numpy()
    with _on_ray(args, checked=True) as (pool, _):
        failed = pool.run(list(enumerate(lines)), lambda worker, item: worker.dream_line.remote(array, item[1]),
                          handle, cluster.Progress("sweep", len(lines), "lines"))  # fmt: skip
    if failed:
        raise DreamError("; ".join(f"line {line!r}: {reason}" for (_, line), reason in failed))
    return torch.stack([torch.from_numpy(dreams[index].copy()) for index in range(len(lines))])  # Ray's are read-only


def _video_on_ray(args: argparse.Namespace, source: VideoSource, sink: VideoSink, out: Path, video) -> int:
    """`deepdream video ... --ray`: the clip's shots found by the workers (each part of the clip judged as the
    one-machine dream judges it), each shot dreamed coherently by one worker, shots in parallel; the frames
    written into the work folder as they come, then joined in order as without Ray."""
    work = _video_work(out, args, source)
    with work:
        work.open()
        return _video_shots_on_ray(args, source, sink, out, video, work)


def _video_shots_on_ray(args, source: VideoSource, sink: VideoSink, out: Path, video, work: WorkFolder) -> int:
    def handle(shot: tuple[int, int], result) -> bool:
        first, frames, done = result
        for offset, frame in enumerate(frames):
            if frame is not None:  # else the worker wrote it into the work folder itself
                save_pixels(frame, work.frame(first + offset), quick=not sink.to_folder)
        if done:
            with written_whole(work.path / f"shot_{shot[0]:05d}.done") as partial:
                partial.write_text("")
        return done

    clip = str(source.path.resolve())
    with _on_ray(args, work.path) as (pool, outbox):
        shots = _shots(pool, source, video, work.path, args)
        left = [shot for shot in shots if not _shot_done(work, shot)]
        print(f"{len(shots)} shots in {shots[-1][1]} frames" + (f"; {len(shots) - len(left)} finished by an "
              "earlier run" if len(left) < len(shots) else ""), file=sys.stderr)  # fmt: skip
        failed = pool.run(left, lambda worker, shot: worker.shot_frames.remote(
            shot, clip, args.fps, video, str(work.path), outbox, not sink.to_folder), handle,
            cluster.Progress("video", len(left), "shots"))  # fmt: skip
    if failed:
        raise DreamError("; ".join(f"shot at frame {shot[0]}: {reason}" for shot, reason in failed) + ". The "
                         "finished shots are kept: run the same command again to go on.")  # fmt: skip
    return _finish_video(work, sink, out, source, shots[-1][1])


def _shot_done(work: WorkFolder, shot: tuple[int, int]) -> bool:
    """Whether an earlier run finished `shot`: its mark, and every frame of it whole (else it is dreamed again)."""
    mark = work.path / f"shot_{shot[0]:05d}.done"
    if not mark.is_file():
        return False
    if all(whole_png(work.frame(index)) for index in range(*shot)):
        return True
    mark.unlink()
    return False


def _shots(pool: cluster.Pool, source: VideoSource, video, work: Path, args: argparse.Namespace) -> list:
    """The clip's shots (first frame, after the last): from an earlier run of the job, else found by the workers,
    a part of the clip each (where the clip says how many frames it has), else here."""
    found = work / "shots.json"
    if found.is_file():
        return [tuple(shot) for shot in json.loads(found.read_text())]
    if source.count and len(pool.workers) > 1:
        size = max(4, math.ceil(source.count / (4 * len(pool.workers))))
        parts = [(first, first + size if first + size < source.count else None)  # the last part: to the very end
                 for first in range(0, source.count, size)]  # fmt: skip
        starts, reached = {0}, [0]

        def handle(part, result) -> bool:
            starts.update(result[0])
            reached.append(result[1])
            return True

        failed = pool.run(parts, lambda worker, part: worker.find_cuts.remote(str(source.path.resolve()), args.fps,
                          part, video), handle, cluster.Progress("finding shots", len(parts), "parts"))  # fmt: skip
        if failed:
            raise DreamError("; ".join(f"frames from {part[0]}: {reason}" for part, reason in failed))
        count = max(reached)
        ordered = sorted(start for start in starts if start < count)
        shots = list(zip(ordered, [*ordered[1:], count], strict=True))
    else:
        shots = shot_ranges(source.frames(), video, device=args.device or default_device(),
                            weights_dir=args.weights_dir)  # fmt: skip
    if not shots:
        raise DreamError(f"{source.path.name} holds no frames to dream.")
    with written_whole(found) as partial:
        partial.write_text(json.dumps(shots))
    return shots


def _cmd_sweep(args: argparse.Namespace) -> int:
    _check_picture_output(Path(args.output))
    check_outputs([Path(args.output)], [Path(args.input), *_job_inputs(args)], args.overwrite)
    image = load_image(args.input)
    job = prepare_dream(copy.copy(args) if args.ray is not None else args)  # Ray's workers pick their own device
    lines = args.line or [f"{name}: {weight:g}" for name, weight in job.sweep_layers.items()]
    if not args.line and len(job.sweep_layers) > 1:
        lines.append(", ".join(lines))
    sweep = [job.line(parse_layer_weights(line)) for line in lines]
    if args.ray is not None:
        images = _sweep_on_ray(args, image, lines)
    else:
        images = layer_sweep(image, job.model, sweep, job.settings, mask=job.mask,
                             on_progress=ProgressBar(Path(args.input).name))  # fmt: skip
    sheet = contact_sheet(images, lines, args.columns)
    print(f"wrote {save_image(sheet[0], args.output)}")
    return 0


def _cmd_channels(args: argparse.Namespace) -> int:
    _check_picture_output(Path(args.output))
    weights = [Path(args.weights)] if args.weights not in ("imagenet", "random") else []
    read = [*weights, *([Path(args.image)] if args.image else [])]
    check_outputs([Path(args.output)], read, args.overwrite)
    if args.pictures and Path(args.pictures).exists() and not Path(args.pictures).is_dir():
        raise DreamError(f"--pictures {args.pictures} is a file; give a folder.")
    chosen, top = parse_channels(args.channels)
    if top and not args.image:
        raise DreamError(f"--channels top{top} picks the channels most active on a picture: give it with --image.")
    settings = ChannelSettings(**{opt.name: getattr(args, opt.name) for opt in option_table.CHANNEL_OPTIONS
                                  if getattr(args, opt.name) is not None}).validate()  # fmt: skip
    image = load_image(args.image) if args.image else None
    args.device = args.device or default_device()
    _check_device(args.device)
    model = load_feature_model(get_spec(args.model).name, args.weights, args.weights_dir, device=args.device)
    layer = model.resolve_layer(args.layer).name if args.layer else default_layer(model)
    if top:
        chosen = top_channels(model, layer, image, top)
    # Each picture is a file of its own in --pictures: only those are replaced (with --overwrite), nothing else.
    pictures = {label: Path(args.pictures) / f"{label.replace('[', '_').replace(']', '')}.png"
                for label in (f"{layer}[{channel}]" for channel in chosen)} if args.pictures else {}  # fmt: skip
    check_outputs([Path(args.output), *pictures.values()], read, args.overwrite)
    print(f"Growing {len(chosen)} pictures of {layer} of {model.name} ({Path(str(model.weights)).name} weights) "
          f"on {model.device}: {settings.size} px, {settings.steps} steps.", file=sys.stderr)  # fmt: skip
    result = channel_pictures(model, layer, chosen, settings, on_progress=ProgressBar(layer))
    measured = zip(result.labels, result.start.tolist(), result.end.tolist(), strict=True)
    gains = ", ".join(f"{label} {start:.3g} -> {end:.3g}" for label, start, end in measured)
    print(_after_bar(f"mean activation on the starting noise -> on the picture: {gains}"), file=sys.stderr)
    for label, picture in zip(result.labels, result.images, strict=True):
        if label in pictures:
            save_image(picture, pictures[label])
    if pictures:
        print(f"wrote {len(pictures)} pictures to {args.pictures}")
    print(f"wrote {save_image(contact_sheet(result.images, result.labels, args.columns)[0], args.output)}")
    return 0


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="spread the work over a Ray cluster (pip install \"deepdream-nodes[ray]\"): images, sweep "
                   "lines or a clip's shots go to its workers, the results are the same files; ADDRESS of a running "
                   "cluster ('auto': the one 'ray start' began here; none: RAY_ADDRESS, or a cluster started for "
                   "this command). Give it after the inputs")  # fmt: skip
    p.add_argument("--workers", type=int, default=0,
                   help="with --ray: how many workers (default: one per GPU of the cluster, else one per CPU)")
    p.add_argument("--worker-threads", type=int, default=0,
                   help="with --ray: CPU threads per worker where there is no GPU (default 1)")


def _add_channels_parser(sub) -> None:
    p = sub.add_parser("channels", help="grow a picture from noise for each of a layer's channels; write a sheet")
    p.add_argument("-o", "--output", required=True, help="the labelled sheet (PNG/JPEG)")
    p.add_argument("--layer", help="the layer (default: the middle one of the model's default layers); see "
                   "'layers MODEL'")  # fmt: skip
    p.add_argument("--channels", default="0-7", help="channels, e.g. '0-7' or '3,17,40-47', or 'top8': the 8 most "
                   "active on --image (default 0-7)")  # fmt: skip
    p.add_argument("--image", help="picture whose most active channels 'topN' picks")
    p.add_argument("--pictures", help="also write each picture into this folder (LAYER_CHANNEL.png)")
    p.add_argument("--columns", type=int, default=0, help="columns of the sheet (default: about square)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"architecture (default {DEFAULT_MODEL}); see 'models'")
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (default), 'random', or a .safetensors/.pt/.pth checkpoint file")
    p.add_argument("--weights-dir", type=Path, default=None, help="folder for torchvision's ImageNet weights")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _add_option_flags(p, option_table.CHANNEL_OPTIONS)
    p.set_defaults(func=_cmd_channels)


def _cmd_zoom(args: argparse.Namespace) -> int:
    for opt in ZOOM_OPTIONS:
        problem = opt.problem(getattr(args, opt.name))
        if problem:
            raise DreamError(f"{opt.flag}: {problem}.")
    _check_fps(args.fps)
    out = Path(args.output)
    if out.suffix and out.suffix.lower() != ".webp":
        raise DreamError(f"{out.name}: the zoom is written as an animated .webp, or as PNG frames into a folder "
                         "(a name without a suffix).")  # fmt: skip
    if out.suffix:
        check_outputs([out], [Path(args.input), *_job_inputs(args)], args.overwrite)
    else:
        check_outputs([], [Path(args.input), *_job_inputs(args)], args.overwrite, folders=[out])
    image = load_image(args.input)
    job = prepare_dream(args)
    frames = dream_zoom(image, job.model, job.objective, job.settings, args.frames, args.zoom, args.angle,
                        args.shift_x, args.shift_y, mask=job.mask, on_progress=ProgressBar(Path(args.input).name))
    if out.suffix.lower() == ".webp":
        print(f"wrote {save_animation(frames, out, fps=args.fps)}")
    else:
        with frames_written_whole(out) as folder:
            for i, frame in enumerate(frames):
                save_image(frame, folder / f"frame_{i:04d}.png")
        print(f"wrote {len(frames)} frames into {out}")
    return 0


def _video_work(out: Path, args: argparse.Namespace, source: VideoSource) -> WorkFolder:
    """The render's work folder beside the output, locked (a second render to the same output is refused); an
    earlier run's frames are kept only if it was the same command on the same input files (by content)."""
    # With or without --ray: the work folder holds the same frames (a Ray job's shot marks are read by Ray only).
    return WorkFolder(out, job_text(args, [source.path, *source.files, *_job_inputs(args)]))


def _resume_state(work: WorkFolder) -> CarriedState | None:
    """What an earlier, stopped run of this job left to go on from: its last state, if every frame up to it is
    whole (else the folder is cleared and the render starts afresh)."""
    state_file = work.path / "state.pt"
    if not state_file.is_file():
        return None
    try:
        state = CarriedState.load(state_file)
    except Exception:  # cut short or damaged: the same as none
        state = None
    if state is None or work.whole_frames(state.index + 1) <= state.index:
        print(f"the work folder {work.path} of an earlier run is damaged: starting afresh", file=sys.stderr)
        work.clear()
        with written_whole(work.path / "job.json") as partial:
            partial.write_text(work.job)
        return None
    return state


def _render_frames(work: WorkFolder, source: VideoSource, job: DreamJob, video, args, resume) -> int:
    """Dream the clip's frames (from after `resume`'s frame) into the work folder, saving the state after each;
    returns how many frames the clip has."""
    first = resume.index + 1 if resume is not None else 0
    started, written = time.monotonic(), first
    frames = dream_video(source.frames(resume.index if resume is not None else 0), job.model, job.objective,
                         job.settings, video, mask=job.mask, weights_dir=args.weights_dir, resume=resume,
                         on_state=lambda state: state.save(work.path / "state.pt"))  # fmt: skip
    into_video = Path(args.output).suffix.lower() in VIDEO_SUFFIXES  # frames on their way: lightly compressed
    for dreamed in frames:
        save_pixels(pixels(dreamed[0]), work.frame(written), quick=into_video)
        written += 1
        elapsed = time.monotonic() - started
        if source.count:
            eta = elapsed / (written - first) * (source.count - written)
            line = f"frame {written}/{source.count}  {elapsed:6.1f}s  eta {eta:6.1f}s"
        else:
            line = f"frame {written}  {elapsed:6.1f}s"
        tty = sys.stderr.isatty()  # a terminal: one line redrawn; a log: a line per frame
        print(("\r" if tty else "") + line, file=sys.stderr, end="" if tty else "\n")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return written


def _cmd_video(args: argparse.Namespace) -> int:
    given = [opt.name for opt in option_table.VIDEO_OPTIONS if getattr(args, opt.name) is not None]
    video = option_table.VideoSettings(**{name: getattr(args, name) for name in given}).validate()
    if args.fps is not None:
        _check_fps(args.fps)
    out = Path(args.output)
    source = VideoSource(args.input, fps=args.fps)
    sink = VideoSink(out, source.rate)  # refuses an unknown suffix before any work
    if sink.to_folder:
        check_outputs([], [source.path, *source.files, *_job_inputs(args)], args.overwrite, folders=[out])
    else:
        check_outputs([out], [source.path, *_job_inputs(args)], args.overwrite)
    keep_audio = source.has_audio
    if source.has_audio and not sink.to_folder:
        keep_audio, warning = audio_fits(out, audio_codecs(source.path))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    sink.audio_from = source.path if keep_audio and not sink.to_folder else None
    sink.times = source.times()  # a phone's variable frame rate kept
    if args.ray is not None:
        return _video_on_ray(args, source, sink, out, video)
    job = prepare_dream(args)
    # Dreamed frames go to a work folder, with what the next frame needs after each: a stopped
    # render (Ctrl-C, a crash, a reboot) run again with the same arguments goes on from there.
    with _video_work(out, args, source) as work:
        resume = _resume_state(work) if work.open() else None
        if resume is not None:
            print(f"going on after frame {resume.index + 1} of an interrupted run (from {work.path})",
                  file=sys.stderr)  # fmt: skip
        try:
            count = _render_frames(work, source, job, video, args, resume)
        except DreamError:
            if work.whole_frames(1) == 0:  # refused before its first frame: nothing to go on from, nothing left
                work.remove()
            raise
        except (KeyboardInterrupt, Terminated):
            done = work.whole_frames(10**9)
            print(_after_bar(f"stopped after {done} frames: run the same command again to go on from there"),
                  file=sys.stderr)  # fmt: skip
            raise
        return _finish_video(work, sink, out, source, count)


def _finish_video(work: WorkFolder, sink: VideoSink, out: Path, source: VideoSource, count: int) -> int:
    """The clip's `count` finished frames of the work folder into the output: a file (whole or not at all) or the
    folder (only its frames replaced). Nothing is made from a damaged work folder."""
    if count == 0:
        raise DreamError(f"{source.path.name} holds no frames to dream.")
    work.check_frames(count)
    try:
        if sink.to_folder:
            fill_frames(out, [work.frame(index) for index in range(count)])
        else:
            for index in range(count):
                sink.write(_work_frame(work, index))
            sink.close()
    except BaseException:
        sink.abort()
        raise
    work.remove()
    print(f"wrote {count} frames at {float(source.rate):g} fps to {out}"
          + (" with the audio" if sink.audio_from is not None else ""))  # fmt: skip
    return 0


def _work_frame(work: WorkFolder, index: int) -> torch.Tensor:
    try:
        return load_image(work.frame(index))
    except DreamError as error:  # whole on disk yet undecodable: the folder was tampered with
        work.clear()
        raise DreamError(f"{error} The render's work folder was cleared: run the same command again to render "
                         "afresh.") from None  # fmt: skip


def _cmd_train(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() != ".safetensors":
        raise DreamError(f"{output.name}: trained models are saved as .safetensors; use that extension.")
    stem = output.with_suffix("")
    reports = [stem.with_name(stem.name + ".curve.png"), stem.with_name(stem.name + ".confusion.png")]
    starting = [Path(args.weights)] if args.weights not in ("imagenet", "random") else []
    check_outputs([output, *reports], starting, args.overwrite)
    given = {opt.name: getattr(args, opt.name) for opt in option_table.TRAIN_OPTIONS
             if getattr(args, opt.name) is not None}  # fmt: skip
    settings = TrainSettings(**given).validate()
    bar = ProgressBar(Path(args.folder).name)

    def progress(step: int, total: int, figures: dict) -> None:
        accuracy = f", held-out {figures['accuracy']:.0%}" if "accuracy" in figures else ""
        bar.label = f"{Path(args.folder).name} epoch {figures['epoch']}/{figures['epochs']}, loss " \
                    f"{figures['loss']:.3f}{accuracy}"
        bar(step, total)

    result = train_classifier(args.folder, args.model, args.weights, settings, args.output,
                              weights_dir=args.weights_dir, device=args.device, on_progress=progress)  # fmt: skip
    for skipped in result.skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
    print(f"classes: {', '.join(result.class_names)} ({result.train_count} training pictures)")
    print(f"held-out accuracy: {result.accuracy:.1%} on {result.holdout_count} pictures (epoch {result.best_epoch} "
          f"of {len(result.history)} kept)")  # fmt: skip
    print("per class: " + per_class_text(result.per_class))
    stem = result.path.with_suffix("")
    print(f"wrote {result.path}, {stem.name}.curve.png and {stem.name}.confusion.png")
    return 0


def _cmd_models(_args: argparse.Namespace) -> int:
    for spec in ZOO.values():
        print(f"{spec.name:20s} {spec.description}")
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
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


def _cmd_presets(_args: argparse.Namespace) -> int:
    for name, preset in PRESETS.items():
        print(f"{name:12s} {preset.description}")
    return 0


DREAM_COMMANDS = ("dream", "sweep", "zoom", "video")


def flags_markdown() -> str:
    """The README's table of every flag of the commands that dream, read off the parser itself."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    rows: dict[str, list] = {}
    for command in DREAM_COMMANDS:
        for action in commands[command]._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS) or action.dest == "help":
                continue
            flags = " ".join(f"`{o}`" for o in action.option_strings)
            if action.choices and not isinstance(action, argparse.BooleanOptionalAction):
                flags += " " + "/".join(f"`{c}`" for c in action.choices)
            text = action.help.replace("%%", "%")
            rows.setdefault(f"{flags}\0{text}", [[], text])[0].append(command)
    lines = ["| flag | commands | what it does |", "| --- | --- | --- |"]
    for key, (used_by, text) in rows.items():
        flags = key.split("\0")[0]
        where = "all" if len(used_by) == len(DREAM_COMMANDS) else ", ".join(used_by)
        lines.append(f"| {flags} | {where} | {text.replace('|', '/')} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `deepdream` command."""
    parser = argparse.ArgumentParser(prog="deepdream", description="DeepDream images from the command line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dream", help="dream image files or folders")
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    _add_dream_options(p)
    p.set_defaults(func=_cmd_dream)
    p.add_argument("--frames-every", type=int, metavar="N",
                   help="also write an animated WEBP of the image every N steps (NAME_frames.webp)")  # fmt: skip
    p.add_argument("--save-octaves", action="store_true", help="also write the image after each octave")
    _add_ray_flags(p)
    p = sub.add_parser("sweep", help="dream one image once per layer-weights line; write a contact sheet")
    p.add_argument("input", help="image file")
    p.add_argument("-o", "--output", required=True, help="contact sheet file (PNG/JPEG)")
    p.add_argument("--line", action="append", default=[], metavar="LAYERS",
                   help="one dream's layer weights, e.g. 'mixed4:1' or 'mixed3:1,mixed5:1'; repeat. Default: "
                   "each of the model's default layers alone, then all of them")  # fmt: skip
    p.add_argument("--columns", type=int, default=0, help="columns of the sheet (default: about square)")
    _add_dream_options(p)
    _add_ray_flags(p)
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser("zoom", help="the infinite zoom: dream, zoom in, dream again; write an animated WEBP")
    p.add_argument("input", help="image file")
    p.add_argument("-o", "--output", required=True, help="animated .webp (or a folder for PNG frames)")
    for opt in ZOOM_OPTIONS:
        p.add_argument(opt.flag, type=opt.kind, default=opt.default, metavar=opt.name.upper(),
                       help=f"{opt.help} (default {opt.default})")  # fmt: skip
    p.add_argument("--fps", type=float, default=8.0, help="frames per second of the WEBP (default 8)")
    _add_dream_options(p)
    p.set_defaults(func=_cmd_zoom)
    p = sub.add_parser("video", help="dream a video (file or folder of frames) so its patterns follow the motion")
    p.add_argument("input", help="video file (mp4, webm, mov, mkv, gif) or a folder of frames")
    p.add_argument("-o", "--output", required=True, help="video file (same kinds; audio and frame rate kept) or a "
                   "folder for PNG frames")  # fmt: skip
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 24), or to override a file's")
    _add_option_flags(p, option_table.VIDEO_OPTIONS)
    _add_dream_options(p)
    _add_ray_flags(p)
    p.set_defaults(func=_cmd_video)
    p = sub.add_parser("train", help="fine-tune a classifier on a folder (one sub-folder per class)")
    p.add_argument("folder", help="folder with one sub-folder of pictures per class")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"architecture to fine-tune (default {DEFAULT_MODEL})")
    p.add_argument("--weights", default="imagenet", help="starting weights: 'imagenet' or a checkpoint file")
    p.add_argument("--weights-dir", type=Path, default=None, help="folder for torchvision's ImageNet weights")
    _add_option_flags(p, option_table.TRAIN_OPTIONS)
    p.add_argument("--device", default=default_device(), help="torch device")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_train)
    _add_channels_parser(sub)
    sub.add_parser("models", help="list the model zoo").set_defaults(func=_cmd_models)
    p = sub.add_parser("layers", help="list a model's layers, aliases and channels")
    p.add_argument("model")
    p.set_defaults(func=_cmd_layers)
    sub.add_parser("presets", help="list the classic presets").set_defaults(func=_cmd_presets)
    _add_verbose_flags(sub)
    return parser


def _add_verbose_flags(sub) -> None:
    """-v after the command too (errors say "run with -v"); the one before it still works."""
    for command in sub.choices.values():
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")


def _after_bar(message: str) -> str:
    """A message on a line of its own after a progress bar that a terminal redraws in place."""
    return ("\n" if sys.stderr.isatty() else "") + message


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so every half-written file is cleaned up on the way out."""


def _raise_terminated(_signum, _frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m dream_core` and the `deepdream` script.

    Exit status: 0 done, 1 some inputs failed (or an unexpected error), 2 refused (a one-line
    reason), 130 Ctrl-C, 143 SIGTERM; a stopped command leaves no half-written file behind.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return args.func(args)
    except Terminated:
        print(_after_bar("terminated: nothing half-written was left"), file=sys.stderr)
        return 143
    except DreamError as err:
        if args.verbose:
            logging.exception("details")
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno != errno.ENOSPC:
            return _unexpected(err, args)
        print(f"error: no space left on the disk{f' writing {err.filename}' if err.filename else ''}. Free some "
              "space and run the same command again (a video goes on from its last finished frame).",
              file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print(_after_bar("interrupted: nothing half-written was left"), file=sys.stderr)
        return 130
    except Exception as err:  # a missing package, a model that cannot be built: one line, -v for the rest
        return _unexpected(err, args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _unexpected(err: Exception, args: argparse.Namespace) -> int:
    if args.verbose:
        raise err
    name = f"the package {err.name!r} is missing; install it" if isinstance(err, ImportError) and err.name else err
    print(f"error: {type(err).__name__}: {name} (run with -v for details)", file=sys.stderr)
    return 1
