"""Video files and folders of frames, one frame at a time (PyAV), keeping frame rate and audio."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DreamError
from .imageio import IMAGE_SUFFIXES, load_image, save_image
from .outputs import fill_frames, own_frames, partial_folder, partial_path

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".avi")
_CODECS = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".avi": "libx264",
    ".webm": "libvpx-vp9",
    ".gif": "gif",
}
DEFAULT_FPS = 24
TIME_BASE = Fraction(1, 90000)
"""Time stamps of a dreamed clip that keeps its source's frame times: MPEG's 90 kHz clock."""


def _av():
    try:
        import av
    except ImportError as error:
        raise DreamError("Video files need PyAV: pip install av (or pip install 'deepdream-nodes[video]').") from error
    return av


class VideoSource:
    """The frames of a video file or of a folder of pictures, read lazily, with their frame rate."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        """The frame rate asked for (None: the file's own): what another reader of the same clip is given."""
        self.files: list[Path] = []
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise DreamError(f"{self.path} holds no pictures to use as frames.")
            self.rate = Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
            self.count: int | None = len(self.files)
            self.has_audio = False
            self.fps_given = True
            return
        if not self.path.is_file():
            raise DreamError(f"Input not found: {self.path}.")
        av = _av()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DreamError(f"{self.path.name} has no video stream.")
                stream = container.streams.video[0]
                self.rate = Fraction(fps) if fps else (stream.average_rate or Fraction(DEFAULT_FPS))
                self.fps_given = fps is not None
                self.count = stream.frames or None
                self.has_audio = bool(container.streams.audio)
        except av.error.FFmpegError as error:
            raise DreamError(f"Cannot read the video {self.path.name}: {error}") from error

    def frames(self, start: int = 0) -> Iterator[torch.Tensor]:
        """Each frame from frame `start` on, as `[1, 3, H, W]` in 0..1, decoded only when asked for."""
        if self.files:
            for file in self.files[start:]:
                yield load_image(file)
            return
        av = _av()
        with av.open(str(self.path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index < start:  # decoded in order (seeking lands on key frames only): cheap next to a dream
                    continue
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).unsqueeze(0)
                yield upright(rgb, getattr(frame, "rotation", 0)).float().div_(255)

    def times(self) -> list[Fraction] | None:
        """Each frame's time from the first, in seconds, as the file stores them (a phone's variable frame rate),
        read from the packets without decoding, and where the last one ends; None for a folder of frames, a rate
        given with --fps, or a file whose packets do not say."""
        if self.files or self.fps_given:
            return None
        av = _av()
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stamps = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None)
            end, time_base = stream.duration, stream.time_base  # read while open: PyAV frees them on close
        if not stamps or time_base is None or (self.count and len(stamps) != self.count):
            return None
        times = [(stamp - stamps[0]) * time_base for stamp in stamps]
        # Where the last frame ends: the stream's length, else one more of the last gap (or frame at the rate).
        last = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1 / self.rate)
        times.append(end * time_base if end and end > stamps[-1] - stamps[0] else last)
        return times


def upright(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """A decoded frame `[..., H, W]` turned as its file says it is shown (a phone's portrait clip is stored sideways
    with a display rotation, counterclockwise in degrees)."""
    turns = round((rotation or 0) / 90) % 4
    return torch.rot90(rgb, turns, dims=(-2, -1)).contiguous() if turns else rgb


AUDIO_CODECS_FITTING = {".webm": {"opus", "vorbis"}, ".gif": set()}
"""Audio codecs a container can hold, where it cannot hold all: a WebM takes Opus or Vorbis only
(not the AAC of most MP4s), a GIF no sound at all. Others (MP4, MOV, MKV, AVI) take the common ones."""


def audio_codecs(path: Path) -> list[str]:
    """The codec names of a video file's audio streams."""
    av = _av()
    with av.open(str(path)) as container:
        return [stream.codec_context.name for stream in container.streams.audio]


def audio_fits(output: Path, codecs: list[str]) -> tuple[bool, str | None]:
    """Whether the source's audio can be copied into `output`, and if not, the warning to give before any work."""
    allowed = AUDIO_CODECS_FITTING.get(output.suffix.lower())
    if not codecs or allowed is None or all(codec in allowed for codec in codecs):
        return True, None
    if not allowed:
        return False, f"{output.suffix} files hold no sound: the audio is left out."
    return False, (
        f"{output.suffix} cannot hold {', '.join(sorted(set(codecs)))} audio (only "
        f"{', '.join(sorted(allowed))}): the audio is left out; write .mp4 or .mkv to keep it."
    )


class VideoSink:
    """Writes frames to a video file (codec from the suffix; the source's audio copied in) or, for a
    path without a video suffix, to a folder of numbered PNG files.

    Whole or not at all: the file (or folder) is written under a temporary name beside the
    final one and put in place by `close()`; `abort()` (an error, Ctrl-C, SIGTERM) removes
    it, and a kill leaves only a hidden `.NAME.partial-*` behind, never a file that looks
    finished under the final name.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        rate: Fraction,
        audio_from: Path | None = None,
        times: list[Fraction] | None = None,
    ) -> None:
        self.path = Path(path)
        self.rate = rate
        self.times = times
        """Frame i shows from `times[i]` seconds (and the last until `times[count]` where given): a variable frame
        rate kept. None: every frame 1/rate long."""
        self.audio_from = audio_from
        self.count = 0
        # PyAV's output container and video stream, made with the first frame (PyAV carries no types).
        self.container: Any = None
        self.stream: Any = None
        self.partial: Path | None = None
        self.audio_streams: dict = {}
        self._durations: dict[int, int] = {}
        self._next_pts = 0
        self.to_folder = self.path.suffix.lower() not in VIDEO_SUFFIXES
        if self.to_folder and self.path.suffix:
            kinds = ", ".join(VIDEO_SUFFIXES)
            raise DreamError(f"{self.path.name}: write a video ({kinds}) or a folder for PNG frames.")

    def _open(self, height: int, width: int) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = self.path.suffix.lower()
        self.partial = partial_path(self.path)
        self.container = av.open(str(self.partial), "w")
        self.stream = self.container.add_stream(_CODECS[suffix], rate=self.rate)
        self.stream.width, self.stream.height = width, height
        if self.times is not None and suffix != ".gif":
            self.stream.codec_context.time_base = self.stream.time_base = TIME_BASE
            if _CODECS[suffix] == "libx264":  # with B-frames an MP4's edit list cuts a variable-rate clip short
                self.stream.codec_context.options = {"bf": "0"}
        self.stream.pix_fmt = "rgb8" if suffix == ".gif" else "yuv420p"
        if self.audio_from is not None and suffix != ".gif":
            with av.open(str(self.audio_from)) as source:
                for audio in source.streams.audio:
                    self.audio_streams[audio.index] = self.container.add_stream_from_template(audio)

    def write(self, frame: torch.Tensor) -> None:
        """Append one frame `[1, 3, H, W]` in 0..1."""
        if self.to_folder:
            if self.partial is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.partial = partial_folder(self.path)
            save_image(frame[0], self.partial / f"frame_{self.count:05d}.png")
            self.count += 1
            return
        height, width = frame.shape[-2:]
        if self.stream is None:
            if self.path.suffix.lower() != ".gif" and (height % 2 or width % 2):
                raise DreamError(
                    f"Frames of {width}x{height} px cannot be encoded as {self.path.suffix} (it needs an "
                    "even width and height); write PNG frames to a folder instead."
                )
            self._open(height, width)
        av = _av()
        rgb = (frame[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self.times is not None and self.path.suffix.lower() != ".gif":
            # Strictly rising, even where two stamps round to one tick or the clip has more frames than stamps.
            start = max(self._tick(self.count), self._next_pts)
            self._next_pts = max(self._tick(self.count + 1), start + 1)
            video_frame.pts, video_frame.time_base = start, TIME_BASE
            self._durations[start] = self._next_pts - start
        self._mux(self.stream.encode(video_frame))
        self.count += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            if packet.pts in self._durations:  # how long each frame shows: the last one's too
                packet.duration = self._durations.pop(packet.pts)
            self.container.mux(packet)

    def _tick(self, index: int) -> int:
        """Where frame `index` starts, in `TIME_BASE` ticks (past the stamps: a frame at the rate after the last)."""
        times = self.times
        assert times is not None  # ticks are asked for only where the frames have times
        beyond = max(0, index - len(times) + 1)
        return round((times[min(index, len(times) - 1)] + beyond / self.rate) / TIME_BASE)

    def close(self) -> None:
        """Flush the encoder, copy the source's audio in, close the file and put it in place."""
        if self.to_folder:
            if self.partial is not None:
                fill_frames(self.path, own_frames(self.partial))  # the folder's other files stay
                shutil.rmtree(self.partial, ignore_errors=True)
                self.partial = None
            return
        if self.container is None:
            return
        self._mux(self.stream.encode())
        if self.audio_streams:
            av = _av()
            with av.open(str(self.audio_from)) as source:
                for packet in source.demux(*[s for s in source.streams.audio if s.index in self.audio_streams]):
                    if packet.dts is None:
                        continue
                    packet.stream = self.audio_streams[packet.stream.index]
                    self.container.mux(packet)
        self.container.close()
        self.container = None
        assert self.partial is not None  # made with the container
        os.replace(self.partial, self.path)
        self.partial = None

    def abort(self) -> None:
        """Drop what was written: nothing appears under the final name, a previous file stays as it was."""
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()
            self.container = None
        if self.partial is not None:
            if self.partial.is_dir():
                shutil.rmtree(self.partial, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    self.partial.unlink()
            self.partial = None


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """A file's first audio stream (a video's soundtrack, or a sound file) as mono float samples `[S]` and its
    sample rate; DreamError if it has none."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DreamError(f"{path.name} has no audio to follow.")
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                torch.from_numpy(out.to_ndarray().reshape(-1).copy())
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
            chunks += [torch.from_numpy(out.to_ndarray().reshape(-1).copy()) for out in resampler.resample(None)]
    except av.error.FFmpegError as error:
        raise DreamError(f"Cannot read the audio of {path.name}: {error}") from error
    return (torch.cat(chunks) if chunks else torch.zeros(0)), int(rate)
