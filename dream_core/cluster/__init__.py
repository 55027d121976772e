"""Past one machine: a folder's images, a sweep's lines, a clip's shots and a set of channel pictures dreamed by
the workers of a Ray cluster.

Ray is an optional extra (``pip install "deepdream-nodes[ray]"``); nothing imports it until a command is given
``--ray`` (`pool.import_ray`), so every command works without it.

Each worker (`worker.Worker`, a Ray actor) loads the job once (`job.load_job`, as the command does on one machine)
and then dreams what it is handed: an image, a sweep line, or a shot of a clip a few frames at a time. It writes
the 8-bit pixels the single-machine command would have saved into the driver's folder when it sees it, else sends
them back for the driver to write (`driver`): the outputs are the same files, written as they come in. A worker
that dies has what it held handed to another, started in its place (`pool.Pool`); an item that fails is named at
the end and the rest are kept.
"""

from .driver import channels_on_ray, dream_on_ray, on_ray, sweep_on_ray, video_on_ray
from .pool import RAY_INSTALL, ClusterPlan, Journal, Outbox, Pool, RayRequest, _check_answers, connect, import_ray
from .worker import FRAMES_PER_CALL, Worker

__all__ = [
    "FRAMES_PER_CALL",
    "RAY_INSTALL",
    "ClusterPlan",
    "channels_on_ray",
    "Journal",
    "Outbox",
    "Pool",
    "RayRequest",
    "Worker",
    "_check_answers",
    "connect",
    "dream_on_ray",
    "import_ray",
    "on_ray",
    "sweep_on_ray",
    "video_on_ray",
]
