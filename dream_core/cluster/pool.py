"""The cluster itself: joining it (`connect`), the pool of workers that keeps them busy and replaces the dead,
the outbox through which workers write into the driver's folder, and the journal a stopped job goes on from."""

from __future__ import annotations

import json
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DreamError
from ..job import Job
from ..outputs import PARTIAL, file_identity, written_whole
from ..progress import ItemProgress
from .worker import Worker

RAY_INSTALL = 'pip install "deepdream-nodes[ray]"'
MAX_ATTEMPTS = 2
"""An item whose worker died this many times is reported as failed instead of killing more workers."""


@dataclass(frozen=True)
class RayRequest:
    """Where the work is spread: the cluster's address (None: RAY_ADDRESS, or a cluster started for the command),
    how many workers (0: as many as it holds) and CPU threads each (0: 1)."""

    address: str | None = None
    workers: int = 0
    threads: int = 0


def import_ray():
    """The `ray` module, or a `DreamError` saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise DreamError(
            f"--ray needs Ray, which is not installed here. Install it with: {RAY_INSTALL} (on this "
            "machine and every machine of the cluster); without --ray everything runs here."
        ) from error
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
        raise DreamError(
            f"--ray {address}: nothing answers there ({getattr(error, 'strerror', None) or error}). Start the cluster "
            "with 'ray start --head', or check the address."
        ) from None


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
            raise DreamError(
                f"--ray {address}: no Ray cluster answers there ({reason}). Start one with 'ray start "
                "--head', or give --ray alone for a cluster on this machine."
            ) from None
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    threads = threads or 1
    if workers < 0 or threads < 1:
        raise DreamError("--workers and --worker-threads must be positive (0 workers: as many as the cluster holds).")
    plan = ClusterPlan(workers or (gpus if gpus else max(1, cpus // threads)), threads, gpus > 0)
    # A worker the cluster has no room for would wait for ever: refused here instead.
    if gpus and plan.workers > gpus:
        raise DreamError(
            f"--workers {plan.workers}: the cluster has {gpus} GPUs, one per worker. Ask for {gpus} or "
            "fewer, or add machines."
        )
    if not gpus and plan.workers * threads > cpus:
        raise DreamError(
            f"{plan.workers} workers of {threads} threads need {plan.workers * threads} CPUs; the "
            f"cluster has {cpus}. Ask for fewer workers or threads, or add machines."
        )
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

    def __init__(self, plan: ClusterPlan, job: Job) -> None:
        self.ray = import_ray()
        self.plan, self.job = plan, job
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
        return self.remote.options(**resources).remote(self.job, self.plan.threads)

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

    def run(self, items: Iterable, submit: Callable, handle: Callable, progress: ItemProgress) -> list[tuple[Any, str]]:
        """Every item done (or failed: returned as (item, reason))."""
        queue, idle, failed = deque(items), list(self.workers), []
        attempts: dict[Any, int] = {}
        progress.show(self._note())
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
                progress.show(self._note())
            else:  # the next part of the same item, from the same worker
                self.running[submit(worker, item)] = (worker, item)
                self.last = (worker, item)
        progress.end()
        return failed

    def _note(self) -> str:
        return f"{len(self.workers)} workers"

    def _replace(self, dead):
        """A new worker in a dead one's place (a few times over: a job that kills every worker stops)."""
        self.replaced += 1
        if self.replaced > 2 * self.plan.workers + 2:
            raise DreamError(
                f"{self.replaced} workers died; the cluster cannot finish this job (see its logs: "
                "'ray logs', or the dashboard)."
            )
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
            partial.write_text(
                json.dumps({"job": self.job, "done": self.done, "planned": sorted(self.planned)}, sort_keys=True)
            )

    def close(self) -> None:
        """The job is complete: nothing to go on from."""
        self.path.unlink(missing_ok=True)
