"""A clip rendered so that a stop loses nothing: the one resumable render of `deepdream video` and of the Dream
Video File node.

Each dreamed frame goes into the render's work folder (`workfolder.WorkFolder`) with what the next frame needs
(`video.CarriedState`). Rendered again with the same job, after Ctrl-C, Cancel, a crash or a restart, the render
goes on after its last finished frame, and the output is the same, frame for frame, as an uninterrupted one's.
When every frame is there the output is made from them (a video file, or PNG frames in a folder) and the work
folder goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .errors import DreamError
from .feature_model import FeatureModel
from .imageio import load_image, pixels, save_pixels
from .objectives import Objective
from .options import DreamSettings, VideoSettings
from .outputs import fill_frames
from .schedule import Schedule
from .video import CarriedState, dream_video
from .videoio import VideoSink, VideoSource
from .workfolder import WorkFolder

log = logging.getLogger(__name__)

FrameCallback = Callable[[int, "int | None", torch.Tensor], None]
"""`on_frame(done, total, frame)`: frames finished so far (those of an earlier run included), the clip's count
when known, and the frame just dreamed."""


@dataclass
class ClipDream:
    """How each frame of a clip is dreamed: the engine's arguments of `video.dream_video`."""

    model: FeatureModel
    objective: Objective
    settings: DreamSettings
    video: VideoSettings
    mask: torch.Tensor | None = None
    weights_dir: object = None
    device: torch.device | str | None = None
    """Where the frames are dreamed (each decoded frame is moved there); None: where they are decoded."""
    should_stop: Callable[[], bool] | None = None
    schedules: tuple[Schedule, ...] = ()
    """Settings that change over the frames (by the clip's frame index)."""


def render_clip(
    work: WorkFolder,
    source: VideoSource,
    sink: VideoSink,
    clip: ClipDream,
    on_frame: FrameCallback | None = None,
    say: Callable[[str], None] = log.warning,
    go_on: bool = True,
) -> int:
    """Dream `source` into `sink` through `work` (opened here, for the job it was made with), going on from an
    earlier run of the same job (unless `go_on` is False: then it starts afresh); returns the clip's frame count. A
    render refused before its first frame leaves no work folder; a stopped one leaves its frames for the next run."""
    with work:
        same_job = work.open()
        if same_job and not go_on:
            work.restart()
        resume = _resume_state(work, say) if same_job and go_on else None
        if resume is not None:
            say(f"going on after frame {resume.index + 1} of an interrupted run (from {work.path})")
        try:
            count = _render_frames(work, source, clip, resume, quick=not sink.to_folder, on_frame=on_frame)
        except DreamError:
            if work.whole_frames(1) == 0:  # refused before its first frame: nothing to go on from, nothing left
                work.remove()
            raise
        finish_clip(work, sink, source, count)
        return count


def _resume_state(work: WorkFolder, say: Callable[[str], None]) -> CarriedState | None:
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
        say(f"the work folder {work.path} of an earlier run is damaged: starting afresh")
        work.restart()
        return None
    return state


def _render_frames(
    work: WorkFolder,
    source: VideoSource,
    clip: ClipDream,
    resume: CarriedState | None,
    quick: bool,
    on_frame: FrameCallback | None,
) -> int:
    """Dream the clip's frames (from after `resume`'s frame) into the work folder, saving the state after each;
    returns how many frames the clip has. `quick`: frames on their way into a video, lightly compressed."""
    written = resume.index + 1 if resume is not None else 0
    frames: Iterator[torch.Tensor] = source.frames(resume.index if resume is not None else 0)
    if clip.device is not None:
        frames = (frame.to(clip.device) for frame in frames)
    dreams = dream_video(
        frames,
        clip.model,
        clip.objective,
        clip.settings,
        clip.video,
        mask=clip.mask,
        weights_dir=clip.weights_dir,
        resume=resume,
        should_stop=clip.should_stop,
        on_state=lambda state: state.save(work.path / "state.pt"),
        schedules=clip.schedules,
    )
    for dreamed in dreams:
        save_pixels(pixels(dreamed[0]), work.frame(written), quick=quick)
        written += 1
        if on_frame is not None:
            on_frame(written, source.count, dreamed)
    return written


def finish_clip(work: WorkFolder, sink: VideoSink, source: VideoSource, count: int) -> None:
    """The clip's `count` finished frames of the work folder into the sink's output: a file (whole or not at all)
    or a folder (only its frames replaced); then the work folder goes. Nothing is made from a damaged folder."""
    if count == 0:
        raise DreamError(f"{source.path.name} holds no frames to dream.")
    work.check_frames(count)
    try:
        if sink.to_folder:
            fill_frames(sink.path, [work.frame(index) for index in range(count)])
        else:
            for index in range(count):
                sink.write(_work_frame(work, index))
            sink.close()
    except BaseException:
        sink.abort()
        raise
    work.remove()


def _work_frame(work: WorkFolder, index: int) -> torch.Tensor:
    try:
        return load_image(work.frame(index))
    except DreamError as error:  # whole on disk yet undecodable: the folder was tampered with
        work.clear()
        raise DreamError(
            f"{error} The render's work folder was cleared: render the same clip again to start afresh."
        ) from None
