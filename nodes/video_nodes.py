"""DreamVideo (a clip as an IMAGE batch) and DreamVideoFile (a VIDEO, streamed): clips dreamed so that their
patterns follow the motion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..dream_core.errors import DreamError
from ..dream_core.options import OPTIONS, VIDEO_OPTIONS, VideoSettings
from ..dream_core.outputs import file_identity
from ..dream_core.render import ClipDream, render_clip
from ..dream_core.schedule import only_settings
from ..dream_core.video import dream_video, stream_batch
from ..dream_core.videoio import VideoSink, VideoSource, audio_codecs, audio_fits
from ..dream_core.workfolder import WorkFolder
from . import comfy_bridge
from .base import (
    NodeDream,
    dream_option_inputs,
    fingerprint,
    model_input,
    optional_inputs,
    output,
    schedule_input,
    to_bchw,
    to_bhwc,
    widgets,
)
from .comfy_io import folded, io
from .node import DREAM_ALIASES, node_schema

VIDEO_ALIASES = (*DREAM_ALIASES, "deep dream video", "dream video", "video")


def resume_input() -> io.Input:
    return io.Boolean.Input(
        "resume",
        default=True,
        optional=True,
        tooltip="Go on from the finished frames of an earlier render of these same inputs that was stopped (Cancel, a "
        "crash, a restarted server); its frames wait in output/deepdream_renders. Off: render afresh.",
        **folded(True),
    )


def video_node_dream(feature_model, layer_weights, inputs: dict) -> tuple[VideoSettings, NodeDream]:
    """A video node's widgets and inputs as the video settings and the dream call (the table says which is
    which)."""
    video = {opt.name: inputs[opt.name] for opt in VIDEO_OPTIONS if opt.name in inputs}
    dream = {name: value for name, value in inputs.items() if name not in video}
    return VideoSettings(**video), NodeDream.read(feature_model, layer_weights, dream)


def video_inputs(clip: io.Input, mask_tooltip: str) -> list[io.Input]:
    """A video node's inputs: its clip input, the model, the dream and video options, and the optional inputs
    (the mask with a video's own tooltip)."""
    return [
        clip,
        model_input(),
        *dream_option_inputs(),
        *widgets(VIDEO_OPTIONS, essentials=("carry",)),
        *optional_inputs("layer_weights", "mask", "guide", "regions", "networks", tooltips={"mask": mask_tooltip}),
    ]


class DreamVideo(io.ComfyNode):
    """Dreams the frames of a clip one after the other, each starting from the previous dream moved along the
    optical flow, so the patterns stay on the things they grew on instead of boiling."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "DreamVideo",
            "Dream Video",
            "Dreams a video without flicker. Frames come in as an IMAGE batch (Load Video -> Get Video Components, or "
            "any video pack) and go out the same way. The first frame gets the full dream; every next one starts from "
            "the previous dream carried along the optical flow, and gets a few more steps, so the patterns move with "
            "the picture instead of boiling; what the motion uncovers is dreamed fresh. Set carry to 0 to dream each "
            "frame alone and see the difference.",
            video_inputs(
                io.Image.Input("frames", tooltip="The clip's frames in order, as one IMAGE batch."),
                "Dream strength per pixel: one mask for every frame, or one per frame (a shorter batch is used in "
                "turn).",
            )
            + [schedule_input("the clip's frames")],
            [output(io.Image, "frames", "The dreamed frames, as many and as large as the input's.")],
            aliases=VIDEO_ALIASES,
        )

    @classmethod
    def execute(cls, frames, feature_model, layer_weights=None, schedule=None, **inputs) -> io.NodeOutput:
        video, call = video_node_dream(feature_model, layer_weights, inputs)
        schedules = only_settings(schedule or (), OPTIONS, "Dream Video")
        count = frames.shape[0]
        if count == 0:
            raise DreamError("The clip holds no frames (an empty IMAGE batch): check the video that was loaded.")
        out_device = comfy_bridge.output_device()
        result = None  # filled frame by frame: the clip is never copied whole
        with call.on_device(to_bchw(frames[:1]).shape) as device:
            source = stream_batch(frames, lambda frame: to_bchw(frame).to(device))
            # Each frame's mask goes to the device with that frame only; the progress counts the clip's steps.
            dreams = dream_video(
                source,
                call.model,
                call.objective,
                call.settings,
                video,
                frame_count=count,
                weights_dir=comfy_bridge.model_folders() or None,
                schedules=schedules,
                **call.engine_options(count),
            )
            for index, dreamed in enumerate(dreams):
                frame = to_bhwc(dreamed).to(out_device)
                if result is None:
                    result = torch.empty((count, *frame.shape[1:]), dtype=frame.dtype, device=out_device)
                result[index] = frame[0]
        return io.NodeOutput(result)


class DreamVideoFile(io.ComfyNode):
    """Dreams a whole video file frame by frame, from ComfyUI's VIDEO to a VIDEO: long clips in bounded memory."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs = video_inputs(
            io.Video.Input("video", tooltip="The clip to dream, e.g. from Load Video."),
            "Dream strength per pixel, the same for every frame; resized to it.",
        )
        return node_schema(
            "DreamVideoFile",
            "Dream Video File",
            "Dreams a long clip without holding it in memory: takes a VIDEO (Load Video) and gives a VIDEO (Save "
            "Video), decoding, dreaming and encoding one frame at a time, with the frame rate and the audio kept. "
            "Memory does not grow with the clip's length (a minute of 1080p as an IMAGE batch would not fit). Cuts "
            "start new shots; the dream holds still along the motion as in Dream Video. Use Dream Video for short "
            "clips you want to chain with image nodes.",
            [*inputs, resume_input(), schedule_input("the clip's frames")],  # last: saved workflows keep theirs
            [
                output(
                    io.Video,
                    "video",
                    "The dreamed clip (an MP4 in ComfyUI's temp folder): connect Save Video to keep it.",
                )
            ],
            aliases=VIDEO_ALIASES,
        )

    @classmethod
    def execute(cls, video, feature_model, layer_weights=None, resume=True, schedule=None, **inputs) -> io.NodeOutput:
        settings_of_video, call = video_node_dream(feature_model, layer_weights, inputs)
        schedules = only_settings(schedule or (), OPTIONS, "Dream Video File")
        source = VideoSource(comfy_bridge.video_path(video))
        probe = source.frames()
        first = next(probe, None)
        probe.close()
        if first is None:
            raise DreamError("The video holds no frames: check the file that was loaded.")
        output = comfy_bridge.new_video_path(".mp4")
        keep_audio = source.has_audio and audio_fits(Path(output), audio_codecs(source.path))[0]
        sink = VideoSink(output, source.rate, audio_from=source.path if keep_audio else None, times=source.times())
        work = render_work(
            source, feature_model, layer_weights, {**inputs, "schedule": schedules} if schedules else inputs
        )
        count = source.count or 1
        bar = call.progress(count)  # counts frames: a stream's step total is not known ahead
        with call.on_device(first.shape) as device:
            clip = ClipDream(
                call.model,
                call.objective,
                call.settings,
                settings_of_video,
                mask=call.mask,
                weights_dir=comfy_bridge.model_folders() or None,
                device=device,
                should_stop=comfy_bridge.raise_if_interrupted,
                schedules=schedules,
            )
            render_clip(
                work,
                source,
                sink,
                clip,
                on_frame=lambda done, _total, frame: bar(min(done, count), max(count, done), frame),
                go_on=resume,
            )
        return io.NodeOutput(comfy_bridge.video_output(output))


def render_work(source: VideoSource, feature_model, layer_weights, inputs: dict) -> WorkFolder:
    """The render's work folder, named by everything that makes its frames (the clip by content, the model, the
    layers, every widget and connected input): a render stopped (Cancel, a crash, a restarted server) and queued
    again with the same inputs goes on from its finished frames."""
    clip = [file_identity(path)[1:] for path in [source.path, *source.files]]  # by content: a temp copy's name varies
    identity = fingerprint({"clip": clip, "model": feature_model, "layer_weights": layer_weights, "inputs": inputs})
    name = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    return WorkFolder(Path(comfy_bridge.render_folder()) / f"render_{name}", identity)
