"""The driver's half of `--ray`: what the commands hand to the workers, and what they do with what comes back.

A folder's images go one to a worker and are written as they come back (a journal beside them lets a stopped job
go on); a sweep's lines go one to a worker; a clip is cut into shots (found by the workers, a part of the clip
each) and each shot is dreamed coherently by one worker into the render's work folder, then joined in order as
without Ray (`render.finish_clip`).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..channels import ChannelPictures
from ..devices import default_device
from ..errors import DreamError
from ..goals import Goal
from ..imageio import load_image, save_pixels
from ..job import Job, load_job
from ..options import ChannelSettings, VideoSettings
from ..outputs import check_outputs, written_whole
from ..progress import ItemProgress
from ..render import finish_clip
from ..schedule import Schedule
from ..video import shot_ranges
from ..videoio import VideoSink, VideoSource
from ..workfolder import WorkFolder, whole_png
from .pool import Journal, Outbox, Pool, RayRequest, connect


def ray_pool(job: Job, ray: RayRequest, announce: Callable[[Job], object] | None = load_job) -> Pool:
    """The job checked here by `announce` (loaded: a bad flag fails before any worker starts; None: it was
    checked), then the cluster's workers, each loading the job itself on its own device."""
    if announce is not None:
        announce(job)
    plan = connect(ray.address, ray.workers, ray.threads)
    here = torch.get_num_threads()
    note = ""
    if not plan.gpus and plan.threads != here:  # a CPU's sums, and so a dream's last bits, follow its threads
        note = (
            f" (the same pixels as a run on one machine with {plan.threads} thread{'s' * (plan.threads > 1)}; "
            f"--worker-threads {here} for this machine's)"
        )
    print(f"on the Ray cluster: {plan.describe()}{note}", file=sys.stderr)
    return Pool(plan, job)


@contextlib.contextmanager
def on_ray(
    job: Job, ray: RayRequest, folder: Path | None = None, announce: Callable[[Job], object] | None = load_job
) -> Iterator[tuple[Pool, Outbox | None]]:
    """The cluster's workers for the length of the block, and with `folder` an outbox there: the workers that
    see it write their results themselves."""
    outbox, pool = (Outbox(folder) if folder is not None else None), None
    try:
        with ray_pool(job, ray, announce) as pool:
            yield pool, outbox
    finally:
        if outbox is not None:
            outbox.close(pool.pids.values() if pool is not None else ())


def dream_on_ray(
    job: Job,
    ray: RayRequest,
    targets: dict[Path, Path],
    folder: Path,
    identity: str,
    overwrite: bool,
    announce: Callable[[Job], object] = load_job,
    replace_hint: str = "allow replacing them",
) -> int:
    """Each input image dreamed by a worker and written to its target as it comes back; a job stopped and run
    again (the same `identity`) goes on from the images it finished. `replace_hint`: how the host allows
    replacing outputs (see `outputs.check_outputs`)."""
    inputs = list(targets)
    journal = Journal(folder / ".deepdream-job.json", identity)
    left = [path for path in inputs if not (journal.finished(targets[path].name, path) and targets[path].is_file())]
    # An earlier run of this job may have written an output it never reported: its own, so not refused.
    fresh = [targets[p] for p in left if targets[p].name not in journal.planned]
    check_outputs(fresh, [*inputs, *job.files()], overwrite, replace_hint=replace_hint)
    if len(left) < len(inputs):
        print(
            f"going on: {len(inputs) - len(left)} of {len(inputs)} images were finished by an earlier run",
            file=sys.stderr,
        )
    if not left:
        journal.close()
        return 0
    journal.plan(targets[path].name for path in left)

    def handle(path: Path, result: np.ndarray | None) -> bool:
        if result is not None:  # the worker does not see this folder: its pixels came back to be written here
            save_pixels(result, targets[path])
        journal.add(targets[path].name, path)
        print(f"wrote {targets[path]}")
        return True

    def submit(worker: Any, path: Path) -> Any:
        return worker.dream_image.remote(load_image(path)[0].numpy(), str(targets[path].resolve()), outbox)

    with on_ray(job, ray, folder, announce) as (pool, outbox):
        failed = pool.run(left, submit, handle, ItemProgress("images", len(left), "images"))
    for path, reason in failed:
        print(f"error: {path.name}: {reason}", file=sys.stderr)
    if failed:
        names = ", ".join(p.name for p, _ in failed)
        print(
            f"error: {len(failed)} of {len(inputs)} images failed: {names} (the others are written; run the same "
            "command again to retry these)",
            file=sys.stderr,
        )
        return 1
    journal.close()
    return 0


def sweep_on_ray(job: Job, ray: RayRequest, image: torch.Tensor, lines: Sequence[str]) -> torch.Tensor:
    """A sweep's lines dreamed by the cluster's workers, one line each, in the order of the lines."""
    dreams: dict[int, np.ndarray] = {}

    def handle(item: tuple[int, str], result: np.ndarray) -> bool:
        dreams[item[0]] = result
        return True

    array = image[0].numpy()
    with on_ray(job, ray, announce=None) as (pool, _):
        failed = pool.run(
            list(enumerate(lines)),
            lambda worker, item: worker.dream_line.remote(array, item[1]),
            handle,
            ItemProgress("sweep", len(lines), "lines"),
        )
    if failed:
        raise DreamError("; ".join(f"line {line!r}: {reason}" for (_, line), reason in failed))
    return torch.stack([torch.from_numpy(dreams[index].copy()) for index in range(len(lines))])  # Ray's: read-only


def channels_on_ray(
    job: Job, ray: RayRequest, layer: str, goals: tuple[Goal, ...], settings: ChannelSettings
) -> ChannelPictures:
    """A set of channel pictures grown by the cluster's workers, a part of the set each (each picture from its own
    noise in the whole set: the same pictures as grown at once on one machine; a diverse batch on one worker)."""
    parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def handle(part: tuple[int, tuple[Goal, ...]], result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
        parts[part[0]] = result
        return True

    with on_ray(job, ray, announce=None) as (pool, _):
        items = goal_parts_for(goals, max(1, math.ceil(len(goals) / len(pool.workers))))
        failed = pool.run(
            items,
            lambda worker, item: worker.channel_pictures.remote(layer, item[1], settings, item[0]),
            handle,
            ItemProgress("channels", len(items), "parts"),
        )
    if failed:
        raise DreamError("; ".join(f"pictures {part[0]}-{part[0] + len(part[1]) - 1}: {why}" for part, why in failed))
    images, start, end = (torch.cat([torch.from_numpy(parts[k][i].copy()) for k in sorted(parts)]) for i in range(3))
    return ChannelPictures(images, layer, goals, start, end)


def goal_parts_for(goals: tuple[Goal, ...], size: int) -> list[tuple[int, tuple[Goal, ...]]]:
    """(first, goals) parts of about `size` pictures each, never splitting a diverse batch (its pictures push
    each other apart, so they grow together)."""
    items: list[tuple[int, tuple[Goal, ...]]] = []
    first = 0
    for index in range(1, len(goals) + 1):
        ends_batch = index == len(goals) or goals[index].group < 0 or goals[index].group != goals[index - 1].group
        if index - first >= size and ends_batch or index == len(goals):
            items.append((first, goals[first:index]))
            first = index
    return items


def video_on_ray(
    job: Job,
    ray: RayRequest,
    source: VideoSource,
    sink: VideoSink,
    video: VideoSettings,
    work: WorkFolder,
    announce: Callable[[Job], object] = load_job,
    schedules: tuple[Schedule, ...] = (),
) -> int:
    """The clip's shots found by the workers (each part of the clip judged as the one-machine dream judges it),
    each shot dreamed coherently by one worker, shots in parallel; the frames written into the work folder as
    they come, then joined in order as without Ray. Returns the clip's frame count."""
    with work:
        work.open()
        return _video_shots(job, ray, source, sink, video, work, announce, schedules)


def _video_shots(
    job: Job,
    ray: RayRequest,
    source: VideoSource,
    sink: VideoSink,
    video: VideoSettings,
    work: WorkFolder,
    announce: Callable[[Job], object],
    schedules: tuple[Schedule, ...] = (),
) -> int:
    def handle(shot: tuple[int, int], result: tuple[int, list, bool]) -> bool:
        first, frames, done = result
        for offset, frame in enumerate(frames):
            if frame is not None:  # else the worker wrote it into the work folder itself
                save_pixels(frame, work.frame(first + offset), quick=not sink.to_folder)
        if done:
            with written_whole(work.path / f"shot_{shot[0]:05d}.done") as partial:
                partial.write_text("")
        return done

    clip = str(source.path.resolve())
    with on_ray(job, ray, work.path, announce) as (pool, outbox):
        shots = _shots(pool, job, source, video, work.path)
        left = [shot for shot in shots if not _shot_done(work, shot)]
        print(
            f"{len(shots)} shots in {shots[-1][1]} frames"
            + (f"; {len(shots) - len(left)} finished by an earlier run" if len(left) < len(shots) else ""),
            file=sys.stderr,
        )
        failed = pool.run(
            left,
            lambda worker, shot: worker.shot_frames.remote(
                shot, clip, source.fps, video, str(work.path), outbox, not sink.to_folder, schedules
            ),
            handle,
            ItemProgress("video", len(left), "shots"),
        )
    if failed:
        raise DreamError(
            "; ".join(f"shot at frame {shot[0]}: {reason}" for shot, reason in failed) + ". The "
            "finished shots are kept: run the same command again to go on."
        )
    finish_clip(work, sink, source, shots[-1][1])
    return shots[-1][1]


def _shot_done(work: WorkFolder, shot: tuple[int, int]) -> bool:
    """Whether an earlier run finished `shot`: its mark, and every frame of it whole (else it is dreamed again)."""
    mark = work.path / f"shot_{shot[0]:05d}.done"
    if not mark.is_file():
        return False
    if all(whole_png(work.frame(index)) for index in range(*shot)):
        return True
    mark.unlink()
    return False


def _shots(pool: Pool, job: Job, source: VideoSource, video: VideoSettings, work: Path) -> list[tuple[int, int]]:
    """The clip's shots (first frame, after the last): from an earlier run of the job, else found by the workers,
    a part of the clip each (where the clip says how many frames it has), else here."""
    found = work / "shots.json"
    if found.is_file():
        return [(int(first), int(stop)) for first, stop in json.loads(found.read_text())]
    if source.count and len(pool.workers) > 1:
        shots = _shots_by_workers(pool, source, video, source.count)
    else:
        shots = shot_ranges(source.frames(), video, device=job.device or default_device(), weights_dir=job.weights_dir)
    if not shots:
        raise DreamError(f"{source.path.name} holds no frames to dream.")
    with written_whole(found) as partial:
        partial.write_text(json.dumps(shots))
    return shots


def _shots_by_workers(pool: Pool, source: VideoSource, video: VideoSettings, count: int) -> list[tuple[int, int]]:
    size = max(4, math.ceil(count / (4 * len(pool.workers))))
    # The last part runs to the very end (a clip may hold more frames than it says).
    parts = [(first, first + size if first + size < count else None) for first in range(0, count, size)]
    starts, reached = {0}, [0]

    def handle(part: tuple[int, int | None], result: tuple[list[int], int]) -> bool:
        starts.update(result[0])
        reached.append(result[1])
        return True

    clip = str(source.path.resolve())
    failed = pool.run(
        parts,
        lambda worker, part: worker.find_cuts.remote(clip, source.fps, part, video),
        handle,
        ItemProgress("finding shots", len(parts), "parts"),
    )
    if failed:
        raise DreamError("; ".join(f"frames from {part[0]}: {reason}" for part, reason in failed))
    seen = max(reached)
    ordered = sorted(start for start in starts if start < seen)
    return list(zip(ordered, [*ordered[1:], seen], strict=True))
