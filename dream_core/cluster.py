"""Past one machine: a folder's images, a sweep's lines and a clip's shots dreamed by the workers of a Ray cluster.

Ray is an optional extra (``pip install "deepdream-nodes[ray]"``); nothing imports it until a command is given
``--ray`` (`import_ray`), so every command works without it.

Each worker is a Ray actor that reads the job once (its model loaded once) and then dreams what it is handed:
an image, a sweep line, or a shot of a clip a few frames at a time. It sends back the 8-bit pixels the
single-machine command would have saved (`imageio.pixels`) and the driver writes them (`imageio.save_pixels`),
so outputs are the same files, written as they come in. A worker that dies has what it held handed to another,
started in its place; an item that fails is named at the end and the rest are kept.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .devices import default_device
from .errors import DreamError
from .imageio import pixels, save_pixels
from .outputs import PARTIAL, file_identity, written_whole

RAY_INSTALL = 'pip install "deepdream-nodes[ray]"'
MAX_ATTEMPTS = 2
"""An item whose worker died this many times is reported as failed instead of killing more workers."""
FRAMES_PER_CALL = 4
"""A shot comes back a few frames per call: memory stays bounded and frames are written as they are made."""


def import_ray():
    """The `ray` module, or a `DreamError` saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise DreamError(f"--ray needs Ray, which is not installed here. Install it with: {RAY_INSTALL} (on this "
                         "machine and every machine of the cluster); without --ray everything runs here.") from error
    return ray


@dataclass(frozen=True)
class ClusterPlan:
    """How many workers, with how many CPU threads each, and whether each has a GPU of its own."""

    workers: int
    threads: int
    gpus: bool

    def describe(self) -> str:
        each = "one GPU" if self.gpus else f"{self.threads} CPU thread{'s' if self.threads > 1 else ''}"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {each} each"


ANSWER_SECONDS = 5.0
"""How long a cluster's address may take to accept a connection before it is called silent."""


def _check_answers(address: str | None) -> None:
    """Refuse, within seconds, an address HOST:PORT where nothing listens (Ray itself waits minutes for it)."""
    host, sep, port = (address or "").removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # 'auto', RAY_ADDRESS or a cluster started here: Ray finds those itself
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=ANSWER_SECONDS).close()
    except (OSError, ValueError) as error:
        raise DreamError(f"--ray {address}: nothing answers there ({error.strerror or error}). Start the cluster "
                         "with 'ray start --head', or check the address.") from None  # fmt: skip


def connect(address: str | None, workers: int = 0, threads: int = 0) -> ClusterPlan:
    """Join the cluster at `address` (None: `RAY_ADDRESS`, or a local cluster started here) and plan the workers:
    one per GPU where the cluster has GPUs, else one per `threads` CPUs (1 each unless given)."""
    ray = import_ray()
    if not ray.is_initialized():
        _check_answers(address)
        try:
            ray.init(address=address or None, log_to_driver=False, include_dashboard=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as error:
            reason = str(error).splitlines()[0]
            raise DreamError(f"--ray {address}: no Ray cluster answers there ({reason}). Start one with 'ray start "
                             "--head', or give --ray alone for a cluster on this machine.") from None
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    threads = threads or 1
    if workers < 0 or threads < 1:
        raise DreamError("--workers and --worker-threads must be positive (0 workers: as many as the cluster holds).")
    plan = ClusterPlan(workers or (gpus if gpus else max(1, cpus // threads)), threads, gpus > 0)
    # A worker the cluster has no room for would wait for ever: refused here instead.
    if gpus and plan.workers > gpus:
        raise DreamError(f"--workers {plan.workers}: the cluster has {gpus} GPUs, one per worker. Ask for {gpus} or "
                         "fewer, or add machines.")  # fmt: skip
    if not gpus and plan.workers * threads > cpus:
        raise DreamError(f"{plan.workers} workers of {threads} threads need {plan.workers * threads} CPUs; the "
                         f"cluster has {cpus}. Ask for fewer workers or threads, or add machines.")  # fmt: skip
    return plan


class Outbox:
    """Where workers may write the outputs themselves: a folder of the driver's that they see at the same path (the
    same machine, or a folder shared by all). The driver leaves a token file there; a worker that reads the same
    token writes its pictures straight into the folder, and the others send them to the driver to write. Saving a
    1080p PNG takes half a second: written by every worker at once, not one after another by the driver."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = str(folder.resolve())
        self.token = os.urandom(8).hex()
        self.name = f".deepdream-outbox-{self.token}"
        (folder / self.name).write_text(self.token)

    def close(self, pids: Iterable[int] = ()) -> None:
        """The token removed, and what the job's workers (`pids`) left half-written when they died."""
        folder = Path(self.folder)
        (folder / self.name).unlink(missing_ok=True)
        for pid in pids:
            for stray in folder.glob(f".*{PARTIAL}{pid}-*"):
                stray.unlink(missing_ok=True)

    def seen_from_here(self) -> bool:
        try:
            return (Path(self.folder) / self.name).read_text() == self.token
        except OSError:
            return False


class Worker:
    """One worker process: the job read once from the command's arguments (`make_job`, the CLI's
    `prepare_dream`), then images, sweep lines and shots dreamed exactly as the command would dream them here."""

    def __init__(self, make_job: Callable, args: Any, threads: int) -> None:
        torch.set_num_threads(threads)
        args = copy.copy(args)
        args.device = args.device or default_device()
        with contextlib.redirect_stderr(io.StringIO()):  # the plan's first line is the driver's to print
            self.job = make_job(args)
        self.args = args
        self._shot: tuple[Any, Iterator, int] | None = None
        self._outboxes: dict[str, bool] = {}

    def pid(self) -> int:
        return os.getpid()

    def _deliver(self, array: np.ndarray, path: str, outbox: Outbox | None, quick: bool = False) -> np.ndarray | None:
        """Write the pixels to `path` if this worker sees the driver's folder (None back), else send them back."""
        if outbox is not None:
            if outbox.token not in self._outboxes:
                self._outboxes[outbox.token] = outbox.seen_from_here()
            if self._outboxes[outbox.token]:
                save_pixels(array, path, quick=quick)
                return None
        return array

    def dream_image(self, image: np.ndarray, target: str = "", outbox: Outbox | None = None) -> np.ndarray | None:
        """The dream of one image (`[3, H, W]` float32 in 0..1): written to `target` through the outbox, or its
        pixels sent back."""
        from .engine import dream

        job = self.job
        picture = torch.from_numpy(image.copy()).unsqueeze(0)  # Ray hands over read-only arrays
        result = dream(picture, job.model, job.objective, job.settings, mask=job.mask)
        return self._deliver(pixels(result.images[0]), target, outbox)

    def dream_line(self, image: np.ndarray, line: str) -> np.ndarray:
        """A sweep line's dream of the image, as floats (the sheet is made from them)."""
        from .engine import dream
        from .objectives import parse_layer_weights

        job = self.job
        objective = job.line(parse_layer_weights(line))
        picture = torch.from_numpy(image.copy()).unsqueeze(0)  # Ray hands over read-only arrays
        result = dream(picture, job.model, objective, job.settings, mask=job.mask)
        return result.images[0].numpy()

    def find_cuts(self, clip: str, fps: float | None, part: tuple[int, int | None], video: Any) -> tuple[list, int]:
        """The frames of `part` (first, after last; None: to the end) of the clip that start a new shot, each judged
        against the frame before it exactly as the whole clip's dream judges it; and how far the clip went."""
        from .video import shot_ranges
        from .videoio import VideoSource

        first, stop = part
        begin = max(first - 1, 0)  # the frame before the part: what its first frame is judged against
        frames = VideoSource(clip, fps=fps).frames(begin)
        if stop is not None:
            frames = itertools.islice(frames, stop - begin)
        ranges = shot_ranges(frames, video, device=self.args.device, weights_dir=self.args.weights_dir)
        seen = begin + ranges[-1][1] if ranges else 0  # a part past the clip's real end saw nothing
        return [begin + start for start, _ in ranges if begin + start >= max(first, 1)], seen

    def shot_frames(self, shot: tuple[int, int], clip: str, fps: float | None, video: Any, work: str = "",
                    outbox: Outbox | None = None, quick: bool = True) -> tuple[int, list, bool]:  # fmt: skip
        """The next few dreamed frames of a shot (`(first, after last)` of the clip): the clip's index of the
        first of them, their pixels (None for each one written into the work folder through the outbox), and
        whether the shot is done."""
        from .video import dream_video
        from .videoio import VideoSource

        if self._shot is None or self._shot[0] != shot:
            first, stop = shot
            frames = itertools.islice(VideoSource(clip, fps=fps).frames(first), stop - first)
            job = self.job
            dreams = dream_video(frames, job.model, job.objective, job.settings, video, mask=job.mask,
                                 weights_dir=self.args.weights_dir, start=first)  # fmt: skip
            self._shot = (shot, dreams, first)
        _, dreams, index = self._shot
        out = [self._deliver(pixels(frame[0]), str(Path(work) / f"frame_{index + offset:05d}.png"), outbox, quick)
               for offset, frame in enumerate(itertools.islice(dreams, min(FRAMES_PER_CALL, shot[1] - index)))]
        done = index + len(out) >= shot[1] or not out
        self._shot = None if done else (shot, dreams, index + len(out))
        return index, out, done


@dataclass
class Progress:
    """One line for the whole job: items done, workers, time, ETA (redrawn on a terminal, a line each in a log)."""

    label: str
    total: int
    unit: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def line(self, workers: int) -> str:
        elapsed = time.monotonic() - self.started
        eta = f"  eta {elapsed / self.done * (self.total - self.done):.0f}s" if self.done else ""
        return f"{self.label}: {self.done}/{self.total} {self.unit}  {workers} workers  {elapsed:.0f}s{eta}"

    def show(self, workers: int) -> None:
        tty = sys.stderr.isatty()
        print(("\r" if tty else "") + self.line(workers), file=sys.stderr, end="" if tty else "\n", flush=True)
        if tty and self.done >= self.total:
            print(file=sys.stderr)


class Pool:
    """The job's workers and the loop that keeps them busy.

    `run(items, submit, handle)`: each idle worker is handed the next item (`submit(worker, item)` returns the
    call's object ref); `handle(item, result)` takes what came back and says whether the item is finished (a
    shot takes several calls, all to the same worker). A dead worker's item goes back to the queue and a new
    worker takes its place.
    """

    watch: Callable[[Pool], None] | None = None
    """Called with the pool whenever calls are in flight, before waiting for one (tests kill a worker from here:
    `last` is the worker and item of the call submitted last)."""

    def __init__(self, plan: ClusterPlan, make_job: Callable, args: Any) -> None:
        self.ray = import_ray()
        self.plan, self.make_job, self.args = plan, make_job, args
        self.remote = self.ray.remote(Worker)
        self.pids: dict[Any, int] = {}
        self.running: dict[Any, tuple[Any, Any]] = {}
        """Object ref -> (worker, item) of every call in flight."""
        self.replaced = 0
        self.last: tuple[Any, Any] | None = None
        self.workers = [self._start() for _ in range(plan.workers)]
        for worker in self.workers:  # each reads the job now: a bad job fails here, once
            self.pids[worker] = self._get(worker.pid.remote())

    def _start(self):
        resources = {"num_gpus": 1} if self.plan.gpus else {"num_cpus": self.plan.threads}
        return self.remote.options(**resources).remote(self.make_job, self.args, self.plan.threads)

    def _get(self, ref):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:
            raise DreamError(f"A worker could not start: {error.cause if error.cause else error}") from None

    def kill(self, worker) -> None:
        """Kill a worker's process (as a crash or a lost machine would)."""
        os.kill(self.pids[worker], 9)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        """The workers are stopped with the job (their resources free for the next one at once)."""
        for worker in self.workers:
            self.ray.kill(worker)

    def run(self, items: Iterable, submit: Callable, handle: Callable, progress: Progress) -> list[tuple[Any, str]]:
        """Every item done (or failed: returned as (item, reason))."""
        queue, idle, failed = deque(items), list(self.workers), []
        attempts: dict[Any, int] = {}
        progress.show(len(self.workers))
        while queue or self.running:  # a busy worker has one call in flight (a shot stays with its worker)
            while idle and queue:
                worker, item = idle.pop(), queue.popleft()
                try:
                    ref = submit(worker, item)
                except DreamError as error:  # the driver could not read the item (a broken picture)
                    failed.append((item, str(error)))
                    idle.append(worker)
                    continue
                self.running[ref] = (worker, item)
                self.last = (worker, item)
            if not self.running:
                break
            if self.watch is not None:
                self.watch(self)
            (ref,), _ = self.ray.wait(list(self.running), num_returns=1)
            worker, item = self.running.pop(ref)
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayActorError:  # the worker died: its item goes to another one
                attempts[item] = attempts.get(item, 0) + 1
                if attempts[item] >= MAX_ATTEMPTS:
                    failed.append((item, f"its worker died {attempts[item]} times"))
                else:
                    queue.appendleft(item)
                idle.append(self._replace(worker))
                continue
            except self.ray.exceptions.RayTaskError as error:
                failed.append((item, str(error.cause) if error.cause else str(error).splitlines()[0]))
                idle.append(worker)
                continue
            if handle(item, result):
                idle.append(worker)
                progress.done += 1
                progress.show(len(self.workers))
            else:  # the next part of the same item, from the same worker
                self.running[submit(worker, item)] = (worker, item)
                self.last = (worker, item)
        return failed

    def _replace(self, dead):
        """A new worker in a dead one's place (a few times over: a job that kills every worker stops)."""
        self.replaced += 1
        if self.replaced > 2 * self.plan.workers + 2:
            raise DreamError(f"{self.replaced} workers died; the cluster cannot finish this job (see its logs: "
                             "'ray logs', or the dashboard).")
        self.workers.remove(dead)
        worker = self._start()
        self.workers.append(worker)
        self.pids[worker] = self._get(worker.pid.remote())
        return worker


class Journal:
    """What a job has finished, kept beside its outputs: the same command run again goes on from there.

    The job's arguments are stored with it (another job starts afresh), and with each finished output the size and
    time of the input it came from: an input changed since is dreamed again, one added is dreamed, one removed is
    left out.
    """

    def __init__(self, path: Path, job: str) -> None:
        self.path, self.job = path, job
        self.done: dict[str, list] = {}
        self.planned: set[str] = set()
        """The outputs an earlier run of this job set out to write: its own, to finish or replace."""
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("job") == job and isinstance(saved.get("done"), dict):
            self.done, self.planned = saved["done"], set(saved.get("planned", []))

    def finished(self, name: str, source: Path) -> bool:
        return self.done.get(name) == file_identity(source)

    def plan(self, names: Iterable[str]) -> None:
        """Record the outputs this run sets out to write (a worker may write one before it is reported done)."""
        self.planned |= set(names)
        self._write()

    def add(self, name: str, source: Path) -> None:
        self.done[name] = file_identity(source)
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(self.path) as partial:
            partial.write_text(json.dumps({"job": self.job, "done": self.done, "planned": sorted(self.planned)},
                                          sort_keys=True))  # fmt: skip

    def close(self) -> None:
        """The job is complete: nothing to go on from."""
        self.path.unlink(missing_ok=True)
