"""One worker process of a Ray cluster: the job loaded once, then images, sweep lines and a clip's shots dreamed
exactly as the command dreams them on one machine. Nothing here imports Ray: the pool makes this class an actor."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..channels import channel_pictures
from ..devices import default_device
from ..engine import dream
from ..goals import Goal
from ..imageio import pixels, save_pixels
from ..job import Job, load_job
from ..objectives import parse_layer_weights
from ..options import ChannelSettings, VideoSettings
from ..video import dream_video, shot_ranges
from ..videoio import VideoSource

FRAMES_PER_CALL = 4
"""A shot comes back a few frames per call: memory stays bounded and frames are written as they are made."""


class Mailbox(Protocol):
    """The driver's folder as a worker sees it (`pool.Outbox`)."""

    token: str

    def seen_from_here(self) -> bool: ...


class Worker:
    """One worker process: the job loaded once (on the job's device, else this worker's), then images, sweep lines
    and shots dreamed exactly as the command would dream them on one machine."""

    def __init__(self, job: Job, threads: int) -> None:
        torch.set_num_threads(threads)
        self.job = job.on(job.device or default_device())
        self.loaded = load_job(self.job)
        self._shot: tuple[tuple[int, int], Iterator[torch.Tensor], int] | None = None
        self._outboxes: dict[str, bool] = {}

    def pid(self) -> int:
        return os.getpid()

    def _deliver(self, array: np.ndarray, path: str, outbox: Mailbox | None, quick: bool = False) -> np.ndarray | None:
        """Write the pixels to `path` if this worker sees the driver's folder (None back), else send them back."""
        if outbox is not None:
            if outbox.token not in self._outboxes:
                self._outboxes[outbox.token] = outbox.seen_from_here()
            if self._outboxes[outbox.token]:
                save_pixels(array, path, quick=quick)
                return None
        return array

    def dream_image(self, image: np.ndarray, target: str = "", outbox: Mailbox | None = None) -> np.ndarray | None:
        """The dream of one image (`[3, H, W]` float32 in 0..1): written to `target` through the outbox, or its
        pixels sent back."""
        job = self.loaded
        picture = torch.from_numpy(image.copy()).unsqueeze(0)  # Ray hands over read-only arrays
        result = dream(picture, job.model, job.objective, job.settings, mask=job.mask)
        return self._deliver(pixels(result.images[0]), target, outbox)

    def dream_line(self, image: np.ndarray, line: str) -> np.ndarray:
        """A sweep line's dream of the image, as floats (the sheet is made from them)."""
        job = self.loaded
        objective = job.line(parse_layer_weights(line))
        picture = torch.from_numpy(image.copy()).unsqueeze(0)  # Ray hands over read-only arrays
        result = dream(picture, job.model, objective, job.settings, mask=job.mask)
        return result.images[0].numpy()

    def channel_pictures(
        self, layer: str, goals: tuple[Goal, ...], settings: ChannelSettings, first: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pictures `first`.. of a set of channel pictures (as floats `[N, 3, S, S]`), with their goals' values
        on the starting noise and on the picture."""
        grown = channel_pictures(self.loaded.model, layer, goals, settings, first=first)
        return grown.images.numpy(), grown.start.numpy(), grown.end.numpy()

    def find_cuts(
        self, clip: str, fps: float | None, part: tuple[int, int | None], video: VideoSettings
    ) -> tuple[list, int]:
        """The frames of `part` (first, after last; None: to the end) of the clip that start a new shot, each judged
        against the frame before it exactly as the whole clip's dream judges it; and how far the clip went."""
        first, stop = part
        begin = max(first - 1, 0)  # the frame before the part: what its first frame is judged against
        frames = VideoSource(clip, fps=fps).frames(begin)
        if stop is not None:
            frames = itertools.islice(frames, stop - begin)
        ranges = shot_ranges(
            frames, video, device=self.job.device or default_device(), weights_dir=self.job.weights_dir
        )
        seen = begin + ranges[-1][1] if ranges else 0  # a part past the clip's real end saw nothing
        return [begin + start for start, _ in ranges if begin + start >= max(first, 1)], seen

    def shot_frames(
        self,
        shot: tuple[int, int],
        clip: str,
        fps: float | None,
        video: VideoSettings,
        work: str = "",
        outbox: Mailbox | None = None,
        quick: bool = True,
        schedules: tuple = (),
    ) -> tuple[int, list, bool]:
        """The next few dreamed frames of a shot (`(first, after last)` of the clip): the clip's index of the
        first of them, their pixels (None for each one written into the work folder through the outbox), and
        whether the shot is done."""
        if self._shot is None or self._shot[0] != shot:
            first, stop = shot
            frames = itertools.islice(VideoSource(clip, fps=fps).frames(first), stop - first)
            job = self.loaded
            dreams = dream_video(
                frames,
                job.model,
                job.objective,
                job.settings,
                video,
                mask=job.mask,
                weights_dir=self.job.weights_dir,
                start=first,
                schedules=schedules,
            )
            self._shot = (shot, dreams, first)
        _, dreams, index = self._shot
        out = [
            self._deliver(pixels(frame[0]), str(Path(work) / f"frame_{index + offset:05d}.png"), outbox, quick)
            for offset, frame in enumerate(itertools.islice(dreams, min(FRAMES_PER_CALL, shot[1] - index)))
        ]
        done = index + len(out) >= shot[1] or not out
        self._shot = None if done else (shot, dreams, index + len(out))
        return index, out, done
