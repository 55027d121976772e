"""`deepdream dream`, `sweep` and `zoom`: each a job loaded, the engine called, the outputs written."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import cluster, engine
from .. import options as option_table
from ..animation import ZOOM_OPTIONS, dream_frames, dream_zoom, zoom_schedulable
from ..audio import NO_REACTION, Reaction, merged, react_schedules
from ..errors import DreamError
from ..feature_model import FeatureModel
from ..imageio import expand_inputs, load_image, save_animation, save_image
from ..job import Job, LoadedJob, load_job
from ..objectives import LayerWeights, parse_layer_weights
from ..options import DreamSettings
from ..outputs import check_name, check_outputs, distinct_names, frames_written_whole
from ..progress import ProgressBar
from ..report import describe_training
from ..schedule import Schedule, Schedules, read_schedules
from ..sheet import contact_sheet, layer_sweep
from ..videoio import read_audio

REPLACE_HINT = "add --overwrite to replace"
WRITABLE_PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_FPS = 1000.0


def check_fps(fps: float) -> None:
    if not (0 < fps <= MAX_FPS):
        raise DreamError(f"--fps {fps:g}: give a frame rate above 0 and at most {MAX_FPS:g}.")


def check_picture_output(path: Path) -> None:
    if path.suffix.lower() not in WRITABLE_PICTURES:
        raise DreamError(f"{path.name}: pictures are written as {', '.join(WRITABLE_PICTURES)}; use one of those.")


def _terms_text(layers: LayerWeights) -> str:
    return ", ".join(str(term) if weight == 1 else f"{term} x{weight:g}" for term, weight in layers.items())


def plan_text(
    model: FeatureModel,
    layers: LayerWeights,
    regions: Sequence[object],
    settings: DreamSettings,
    networks: Sequence[tuple[FeatureModel, LayerWeights]] = (),
) -> str:
    """What a dreaming command will do, in a user's words: its first line (every setting under -v)."""
    dreamed = _terms_text(layers)
    if regions:
        dreamed += (" and " if dreamed else "") + f"{len(regions)} region{'s' if len(regions) > 1 else ''}"
    each = [(dreamed, model)] if dreamed else []
    each += [(_terms_text(other_layers), other) for other, other_layers in networks]
    what = " with ".join(f"{terms} of {net.name} ({Path(str(net.weights)).name} weights)" for terms, net in each)
    changed = [
        f"{opt.name.replace('_', ' ')} {getattr(settings, opt.name)}"
        for opt in option_table.OPTIONS
        if opt.name not in ("octaves", "iterations", "step") and getattr(settings, opt.name) != opt.default
    ]
    return (
        f"Dreaming {what} on {model.device}: {settings.octaves} octaves of {settings.iterations} steps of "
        f"{settings.step:g}" + (f"; {', '.join(changed)}" if changed else "") + "."
    )


def loaded(job: Job) -> LoadedJob:
    """The job loaded, and said in a line (with the training report of a fine-tuned model)."""
    result = load_job(job)
    model = result.model
    print(plan_text(model, result.dreamed_layers, result.regions, job.settings, result.networks), file=sys.stderr)
    logging.getLogger(__name__).info("every setting: %s", job.settings)
    if model.training_report:
        report = describe_training(Path(str(model.weights)).name, model.class_names or [], model.training_report)
        print(report, file=sys.stderr)
    return result


def _dream_targets(given: Sequence[str], inputs: list[Path], out: Path) -> dict[Path, Path]:
    """Each input's output file: `out` itself for one picture, else a distinct name in the folder `out`."""
    check_name(out)
    if not (len(inputs) > 1 or out.suffix == "" or out.is_dir()):
        check_picture_output(out)
        return {inputs[0]: out}
    for path in map(Path, given):
        if path.is_dir() and path.resolve() == out.resolve():
            raise DreamError(
                f"The output folder {out} is the input folder: the dreams would be mixed with the pictures (and "
                "dreamed again next time). Write to another folder."
            )
    names = distinct_names(inputs)
    return {path: out / names[path] for path in inputs}


def dream_identity(job: Job, given: Sequence[str], output: Path) -> str:
    """A folder job's identity (what a stopped `--ray` job goes on from): the job, where its pictures come from
    (wherever it is run: a folder job from other folders is another job) and where they go."""
    return job.identity(command="dream", inputs=[str(Path(p).resolve()) for p in given], output=str(output))


def dream(
    job: Job,
    given: Sequence[str],
    output: Path,
    frames_every: int | None = None,
    save_octaves: bool = False,
    overwrite: bool = False,
    ray: cluster.RayRequest | None = None,
) -> int:
    """Dream image files and folders (`given`) into `output`: a file for one picture, else a folder."""
    inputs = list(dict.fromkeys(expand_inputs(given)))  # a file given twice is dreamed once
    if not inputs:
        raise DreamError("No input images found; give image files or folders that contain some.")
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise DreamError(f"Input not found: {', '.join(missing)}.")
    targets = _dream_targets(given, inputs, output)
    if ray is not None:
        if frames_every or save_octaves:
            raise DreamError(
                "--frames-every and --save-octaves are not spread over a cluster: leave them out, or leave out --ray."
            )
        folder = output if output not in targets.values() else output.parent
        identity = dream_identity(job, given, output)
        return cluster.dream_on_ray(
            job, ray, targets, folder, identity, overwrite, announce=loaded, replace_hint=REPLACE_HINT
        )
    planned = list(targets.values())
    for target in targets.values():
        if frames_every:
            planned.append(target.with_name(f"{target.stem}_frames.webp"))
        if save_octaves:
            planned += [target.with_name(f"{target.stem}_octave{i}.png") for i in range(job.settings.octaves)]
    check_outputs(planned, [*inputs, *job.files()], overwrite, replace_hint=REPLACE_HINT)
    work = loaded(job)
    failed = []
    for path in inputs:
        try:
            _dream_one(work, path, targets[path], frames_every, save_octaves)
        except DreamError as error:
            if len(inputs) == 1:
                raise
            print(f"error: {error}", file=sys.stderr)
            failed.append(path.name)
    if failed:
        print(f"error: {len(failed)} of {len(inputs)} images failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _dream_one(work: LoadedJob, path: Path, target: Path, frames_every: int | None, save_octaves: bool) -> None:
    image = load_image(path)
    bar = ProgressBar(path.name)
    frames = None
    if frames_every:  # the same dream, keeping the image every N steps on the way
        result, frames = dream_frames(
            image, work.model, work.objective, work.settings, frames_every, mask=work.mask, on_progress=bar
        )
    else:
        result = engine.dream(image, work.model, work.objective, work.settings, mask=work.mask, on_progress=bar)
    save_image(result.images[0], target)
    print(f"wrote {target}")
    if frames is not None:
        print(f"wrote {save_animation(frames, target.with_name(f'{target.stem}_frames.webp'), fps=8.0)}")
    if save_octaves:
        for i, octave in enumerate(result.octave_images):
            print(f"wrote {save_image(octave[0], target.with_name(f'{target.stem}_octave{i}.png'))}")


def sweep(
    job: Job,
    given: Path,
    output: Path,
    lines: Sequence[str] = (),
    columns: int = 0,
    overwrite: bool = False,
    ray: cluster.RayRequest | None = None,
) -> int:
    """Dream one image once per layer-weights line (default: each of the job's layers, then all of them) and
    write the dreams as a labelled sheet."""
    check_picture_output(output)
    check_outputs([output], [given, *job.files()], overwrite, replace_hint=REPLACE_HINT)
    image = load_image(given)
    work = loaded(job)
    if not lines:  # each of the job's layers alone, then all of them
        lines = [f"{name}: {weight:g}" for name, weight in work.sweep_layers.items()]
        lines += [", ".join(lines)] if len(lines) > 1 else []
    sweep_lines = [work.line(parse_layer_weights(line)) for line in lines]
    if ray is not None:
        images = cluster.sweep_on_ray(job, ray, image, lines)
    else:
        images = layer_sweep(
            image, work.model, sweep_lines, work.settings, mask=work.mask, on_progress=ProgressBar(given.name)
        )
    sheet = contact_sheet(images, lines, columns)
    print(f"wrote {save_image(sheet[0], output)}")
    return 0


def _zoom_reactions(reaction: Reaction, audio: Path | None, frames: int, fps: float) -> tuple[Schedule, ...]:
    """--react's schedules from the sound file `audio`, frame i hearing it from i/fps s (none without --react)."""
    if bool(reaction.texts) != (audio is not None):
        raise DreamError("--react needs --audio FILE on a zoom, and --audio is read for --react only: give both.")
    if audio is None:
        return ()
    return react_schedules(reaction, read_audio(audio), frames, fps, zoom_schedulable())


def zoom(
    job: Job,
    given: Path,
    output: Path,
    motion: dict[str, float],
    fps: float = 8.0,
    overwrite: bool = False,
    schedules: str | Schedules = "",
    reaction: Reaction = NO_REACTION,
    audio: Path | None = None,
    loop: bool = False,
) -> int:
    """The infinite zoom: dream, move (`motion`: frames, zoom, angle, shift_x, shift_y), dream again; written as
    an animated WEBP, or as PNG frames into a folder (a name without a suffix). `schedules`: settings that change
    over the frames (`schedule.parse_schedules`); `reaction`: settings that follow the loudness of the sound file
    `audio`, frame i hearing it from i/fps s. All checked before any work. `loop`: a perfect loop."""
    for opt in ZOOM_OPTIONS:
        problem = opt.problem(motion[opt.name])
        if problem:
            raise DreamError(f"{opt.flag}: {problem}.")
    timeline = read_schedules(schedules, zoom_schedulable())
    check_fps(fps)
    timeline = merged(timeline, _zoom_reactions(reaction, audio, int(motion["frames"]), fps))
    if output.suffix and output.suffix.lower() != ".webp":
        raise DreamError(
            f"{output.name}: the zoom is written as an animated .webp, or as PNG frames into a folder (a name "
            "without a suffix)."
        )
    read = [given, *job.files()]
    if output.suffix:
        check_outputs([output], read, overwrite, replace_hint=REPLACE_HINT)
    else:
        check_outputs([], read, overwrite, folders=[output], replace_hint=REPLACE_HINT)
    image = load_image(given)
    work = loaded(job)
    frames = dream_zoom(
        image,
        work.model,
        work.objective,
        work.settings,
        int(motion["frames"]),
        motion["zoom"],
        motion["angle"],
        motion["shift_x"],
        motion["shift_y"],
        mask=work.mask,
        on_progress=ProgressBar(given.name),
        schedules=timeline,
        loop=loop,
    )
    if output.suffix:
        print(f"wrote {save_animation(frames, output, fps=fps)}")
    else:
        with frames_written_whole(output) as folder:
            for i, frame in enumerate(frames):
                save_image(frame, folder / f"frame_{i:04d}.png")
        print(f"wrote {len(frames)} frames into {output}")
    return 0
