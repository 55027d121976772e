"""`deepdream video`: a clip dreamed so that its patterns follow the motion, resumable (`render`), on this
machine or spread over a Ray cluster's workers shot by shot."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import torch

from .. import cluster
from ..audio import NO_REACTION, Reaction, merged, parse_react, react_schedules
from ..errors import DreamError, Terminated
from ..job import Job
from ..options import OPTIONS, VideoSettings
from ..outputs import check_outputs
from ..progress import ItemProgress, after_bar
from ..render import ClipDream, render_clip
from ..schedule import Schedule, Schedules, read_schedules
from ..videoio import VideoSink, VideoSource, audio_codecs, audio_fits, read_audio
from ..workfolder import WorkFolder
from .images import REPLACE_HINT, check_fps, loaded


def video_identity(
    job: Job, source: VideoSource, output: Path, video: VideoSettings, schedules: tuple[Schedule, ...] = ()
) -> str:
    """A clip render's identity: the same with and without --ray, on any device (the work folder holds the same
    frames either way). Schedules count by their keys (a render stopped and run again with another schedule starts
    afresh)."""
    more = {"schedules": [[s.name, s.smooth, list(s.keys), list(s.target)] for s in schedules]} if schedules else {}
    return job.identity(
        [source.path, *source.files],
        command="video",
        input=str(source.path.resolve()),
        output=str(output),
        video=asdict(video),
        fps=source.fps,
        **more,
    )


def video(
    job: Job,
    given: Path,
    output: Path,
    settings: VideoSettings,
    fps: float | None = None,
    overwrite: bool = False,
    ray: cluster.RayRequest | None = None,
    schedules: str | Schedules = "",
    reaction: Reaction = NO_REACTION,
) -> int:
    """Dream a video file or a folder of frames into a video file (audio and frame times kept) or PNG frames.
    `schedules`: dream settings that change over the clip's frames (`schedule.parse_schedules`); `reaction`:
    settings that follow the loudness of the clip's own audio. Checked before any work."""
    timeline = read_schedules(schedules, OPTIONS)
    for text in reaction.texts:
        parse_react(text, OPTIONS)
    if fps is not None:
        check_fps(fps)
    source = VideoSource(given, fps=fps)
    if reaction.texts:
        timeline = merged(timeline, _reactions(source, reaction))
    sink = VideoSink(output, source.rate)  # refuses an unknown suffix before any work
    if sink.to_folder:
        check_outputs(
            [], [source.path, *source.files, *job.files()], overwrite, folders=[output], replace_hint=REPLACE_HINT
        )
    else:
        check_outputs([output], [source.path, *job.files()], overwrite, replace_hint=REPLACE_HINT)
    keep_audio = source.has_audio
    if source.has_audio and not sink.to_folder:
        keep_audio, warning = audio_fits(output, audio_codecs(source.path))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    sink.audio_from = source.path if keep_audio and not sink.to_folder else None
    sink.times = source.times()  # a phone's variable frame rate kept
    # Dreamed frames go to a work folder, with what the next frame needs after each: a stopped
    # render (Ctrl-C, a crash, a reboot) run again with the same arguments goes on from there.
    work = WorkFolder(output, video_identity(job, source, output, settings, timeline))
    if ray is not None:
        count = cluster.video_on_ray(job, ray, source, sink, settings, work, announce=loaded, schedules=timeline)
    else:
        count = _render_here(job, source, sink, settings, work, timeline)
    audio = " with the audio" if sink.audio_from is not None else ""
    print(f"wrote {count} frames at {float(source.rate):g} fps to {output}{audio}")
    return 0


def _reactions(source: VideoSource, reaction: Reaction) -> tuple[Schedule, ...]:
    """--react's schedules from the clip's own audio, frame i hearing it from i/rate s."""
    if not source.has_audio:
        raise DreamError(f"--react follows the clip's own audio, and {source.path.name} has none.")
    sound = read_audio(source.path)
    count = source.count or sum(1 for _ in source.frames())  # (a stream that does not say: counted once)
    return react_schedules(reaction, sound, count, float(source.rate), OPTIONS)


def _render_here(
    job: Job, source: VideoSource, sink: VideoSink, settings: VideoSettings, work: WorkFolder, schedules=()
) -> int:
    run = loaded(job)
    clip = ClipDream(
        run.model,
        run.objective,
        run.settings,
        settings,
        mask=run.mask,
        weights_dir=job.weights_dir,
        schedules=schedules,
    )
    progress = ItemProgress("video", source.count, "frames", head="frame {count}")

    def on_frame(done: int, _total: int | None, _frame: torch.Tensor) -> None:
        if progress.done == 0:  # going on after an earlier run: its frames do not count in the rate
            progress.first = done - 1
        progress.done = done
        progress.show()

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        count = render_clip(work, source, sink, clip, on_frame=on_frame, say=say)
    except (KeyboardInterrupt, Terminated):
        progress.end()
        done = work.whole_frames(10**9)
        print(
            after_bar(f"stopped after {done} frames: run the same command again to go on from there"), file=sys.stderr
        )
        raise
    progress.end()
    return count
