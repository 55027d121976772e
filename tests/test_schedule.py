"""Keyframed schedules (dream_core/schedule.py): the text, the values between and around the keys, the checks."""

from __future__ import annotations

import pytest
import torch

from dream_core.animation import ZOOM_OPTIONS
from dream_core.errors import DreamError
from dream_core.options import OPTIONS
from dream_core.schedule import parse_schedules

SETTINGS = (*OPTIONS, *ZOOM_OPTIONS)


def test_a_linear_schedule_holds_before_and_after_its_keys_and_moves_straight_between():
    (step,) = parse_schedules("step: 4=0.01, 8=0.03", SETTINGS)
    values = step.values(12)
    assert values[:5] == [0.01] * 5 and values[8:] == [0.03] * 4
    assert values[6] == pytest.approx(0.02) and values[5] == pytest.approx(0.015)


def test_a_smooth_schedule_eases_in_and_out_and_never_leaves_its_keys():
    (linear,) = parse_schedules("zoom: 0=1.0, 10=1.2", SETTINGS)
    (smooth,) = parse_schedules("zoom~: 0=1.0, 10=1.2", SETTINGS)
    assert smooth.at(5) == pytest.approx(linear.at(5))  # the middle is the same
    assert smooth.at(1) < linear.at(1) and smooth.at(9) > linear.at(9)  # slow at both ends
    assert all(1.0 <= v <= 1.2 for v in smooth.values(11))
    steps = [b - a for a, b in zip(smooth.values(11), smooth.values(11)[1:], strict=False)]
    assert all(s > 0 for s in steps)


def test_whole_number_settings_are_rounded_and_several_schedules_read_at_once():
    schedules = parse_schedules("iterations: 0=2, 4=10\n# a comment\nangle: 0=0, 2=4; jitter~: 0=0, 10=64", SETTINGS)
    by_name = {s.name: s for s in schedules}
    assert set(by_name) == {"iterations", "angle", "jitter"}
    assert by_name["iterations"].values(5) == [2, 4, 6, 8, 10] and isinstance(by_name["iterations"].at(1), int)
    assert by_name["angle"].at(1) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("stp: 0=0.01", "'stp'"),  # unknown name
        ("loss: 0=1", "'loss'"),  # a choice cannot follow a schedule
        ("step: 0=0.01, 48=5", "48=5"),  # above step's maximum
        ("step: 10=0.01, 5=0.02", "5=0.02"),  # out of order
        ("step: 0=0.01, 0=0.02", "0=0.02"),  # the same frame twice
        ("iterations: 0=2.5", "0=2.5"),  # not a whole number
        ("step: 0=abc", "0=abc"),
        ("step 0=0.01", "step 0=0.01"),  # no colon
        ("step: 0=0.01\nstep: 5=0.02", "already"),
        ("step: -1=0.01", "-1=0.01"),
    ],
)
def test_a_bad_schedule_is_one_message_naming_the_key(text, named):
    with pytest.raises(DreamError) as error:
        parse_schedules(text, SETTINGS)
    assert named in str(error.value)


def test_a_zoom_follows_its_schedules_frame_by_frame(lite0, small_photo):
    from dream_core.animation import dream_zoom, zoom_schedulable, zoom_transform
    from dream_core.engine import dream
    from dream_core.options import DreamSettings

    settings = DreamSettings(octaves=1, iterations=2, step=0.02, seed=3)
    layers = {"blocks.8": 1.0}
    schedules = parse_schedules("step: 1=0, 2=0.05\nzoom~: 0=1.0, 2=1.2", zoom_schedulable())
    reports = []
    frames = dream_zoom(
        small_photo,
        lite0,
        layers,
        settings,
        frames=3,
        schedules=schedules,
        on_progress=lambda step, total, image: reports.append((step, total)),
    )
    # Frame k is dreamed with the scheduled values at k, from the previous frame moved by the motion at k.
    first = settings.with_options(step=0.0)  # held before the first key
    assert torch.equal(frames[:1], dream(small_photo, lite0, layers, first).images)
    moved = zoom_transform(frames[0:1], 1.1, 0.0, 0.0, 0.0)
    assert torch.equal(frames[1:2], dream(moved, lite0, layers, settings.with_options(step=0.0, seed=4)).images)
    moved = zoom_transform(frames[1:2], 1.2, 0.0, 0.0, 0.0)
    assert torch.equal(frames[2:3], dream(moved, lite0, layers, settings.with_options(step=0.05, seed=5)).images)
    assert reports[-1] == (6, 6)


def test_the_zoom_command_reads_its_schedules_before_any_work():
    from pathlib import Path

    from dream_core.animation import ZOOM_OPTIONS
    from dream_core.commands.images import zoom

    motion = {opt.name: opt.default for opt in ZOOM_OPTIONS}
    with pytest.raises(DreamError, match="'frames'"):  # the job is never looked at
        zoom(None, Path("missing.png"), Path("out.webp"), motion, schedules="frames: 0=3")


def test_dream_schedule_nodes_chain_check_their_keys_and_drive_dream_zoom(lite0, small_photo):
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    first = nodes["DreamSchedule"].execute("step: 0=0, 1=0.05")[0]
    both = nodes["DreamSchedule"].execute("angle~: 0=0, 1=10", schedules=first)[0]
    assert [s.name for s in both] == ["step", "angle"] and [s.name for s in first] == ["step"]  # a new tuple
    with pytest.raises(DreamError, match="already has a schedule"):
        nodes["DreamSchedule"].execute("step: 0=0.01", schedules=first)
    with pytest.raises(DreamError, match="48=5"):
        nodes["DreamSchedule"].execute("step: 0=0.01, 48=5")
    image = small_photo.permute(0, 2, 3, 1)
    fast = {"octaves": 1, "iterations": 2, "frames": 2, "zoom": 1.1}
    plain = nodes["DreamZoom"].execute(image, lite0, **fast)[0]
    scheduled = nodes["DreamZoom"].execute(image, lite0, **fast, schedule=first)[0]
    assert (scheduled[0] - image[0]).abs().max() < 1e-6  # step 0 on frame 0: nothing dreamed there
    assert (plain[0] - image[0]).abs().max() > 0.01


def _pan(photo: torch.Tensor, count: int, speed: int = 4, size: int = 64) -> list[torch.Tensor]:
    wide = torch.nn.functional.interpolate(photo, size=(size, size + speed * count), mode="area")
    return [wide[..., speed * t : speed * t + size].contiguous() for t in range(count)]


def test_a_clip_follows_its_schedule_by_frame_index_and_goes_on_after_a_stop_the_same(lite0, small_photo):
    from dream_core.engine import dream
    from dream_core.options import DreamSettings, VideoSettings
    from dream_core.video import dream_video, frame_seed

    settings = DreamSettings(octaves=1, iterations=3, step=0.02, seed=2, precision="fp32")
    layers = {"blocks.8": 1.0}
    frames = _pan(small_photo, 4)
    schedules = parse_schedules("step: 0=0.03, 3=0\niterations: 0=3, 3=1", OPTIONS)
    alone = list(dream_video(iter(frames), lite0, layers, settings, VideoSettings(carry=0.0), schedules=schedules))
    for index in (0, 2):  # each frame dreamed with the values at its index
        at = settings.with_options(step=schedules[0].at(index), iterations=schedules[1].at(index))
        expected = dream(frames[index], lite0, layers, at.with_options(seed=frame_seed(2, index))).images
        assert torch.equal(alone[index], expected)
    assert (alone[3] - frames[3]).abs().max() < 1e-6  # step 0 at the last key: nothing dreamed
    # Carried along the flow, with progress over the scheduled steps and a stop after frame 1 then going on.
    states, reports = [], []
    video = VideoSettings(flow="ilk", next_iterations=2)
    whole = list(
        dream_video(
            iter(frames),
            lite0,
            layers,
            settings,
            video,
            frame_count=4,
            schedules=schedules,
            on_state=states.append,
            on_progress=lambda step, total, image: reports.append((step, total)),
        )
    )
    assert reports[-1] == (3 + 2 + 2 + 1, 3 + 2 + 2 + 1)  # frame 0 full, then the scheduled iterations
    resumed = list(dream_video(iter(frames[1:]), lite0, layers, settings, video, schedules=schedules, resume=states[1]))
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(resumed, whole[2:], strict=True))


def test_a_stopped_clip_render_is_only_resumed_by_the_same_schedule(tmp_path):
    from dream_core.commands.clip import video_identity
    from dream_core.job import Job
    from dream_core.options import VideoSettings

    class Source:
        path, files, fps = tmp_path / "clip.mp4", [], 24.0

    Source.path.write_bytes(b"clip")
    job, video = Job("efficientnet_lite0", (("blocks.8", 1.0),)), VideoSettings()
    plain = video_identity(job, Source, tmp_path / "out.mp4", video)
    assert plain == video_identity(job, Source, tmp_path / "out.mp4", video, ())
    one = video_identity(job, Source, tmp_path / "out.mp4", video, parse_schedules("step: 0=0, 9=0.03", OPTIONS))
    other = video_identity(job, Source, tmp_path / "out.mp4", video, parse_schedules("step: 0=0, 9=0.02", OPTIONS))
    assert len({plain, one, other}) == 3


def test_the_video_command_reads_its_schedules_before_any_work(tmp_path):
    from dream_core.commands.clip import video
    from dream_core.options import VideoSettings

    with pytest.raises(DreamError, match="'zoom'"):  # a zoom's motion is not a clip's setting
        video(None, tmp_path / "missing.mp4", tmp_path / "out.mp4", VideoSettings(), schedules="zoom: 0=1.1")


def test_dream_frames_dreams_a_scheduled_batch_as_a_sequence(lite0, small_photo):
    from conftest import pack_module

    from dream_core.animation import dream_frames
    from dream_core.options import DreamSettings

    settings = DreamSettings(octaves=1, iterations=4, step=0.02, seed=1, precision="fp32")
    batch = torch.cat([small_photo[..., :64, :64], small_photo[..., 32:96, 32:96]])
    schedules = parse_schedules("iterations: 0=2, 1=4", OPTIONS)
    result, frames = dream_frames(batch, lite0, {"blocks.8": 1.0}, settings, every=2, schedules=schedules)
    _, first = dream_frames(batch[:1], lite0, {"blocks.8": 1.0}, settings.with_options(iterations=2), every=2)
    _, second = dream_frames(batch[1:], lite0, {"blocks.8": 1.0}, settings, every=2)
    assert frames.shape[0] == 1 + 2 and torch.equal(frames, torch.cat([first, second]))
    assert torch.equal(result.images, torch.cat([first[-1:], second[-1:]]))
    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    zoom_only = nodes["DreamSchedule"].execute("zoom: 0=1.0, 3=1.1")[0]
    image = batch.permute(0, 2, 3, 1)
    for name in ("DreamFrames", "DreamVideo"):
        with pytest.raises(DreamError, match="cannot follow a schedule for zoom"):
            nodes[name].execute(image, lite0, octaves=1, iterations=1, schedule=zoom_only)


def test_a_layers_weight_and_a_blend_between_two_weightings_follow_schedules(lite0, small_photo):
    from dream_core.animation import dream_zoom, zoom_schedulable, zoom_transform
    from dream_core.engine import dream
    from dream_core.options import DreamSettings

    settings = DreamSettings(octaves=1, iterations=2, step=0.03, seed=3, precision="fp32")
    own, other = {"blocks.8": 1.0}, {"blocks.10": 2.0}
    schedules = parse_schedules("blend: 0=0, 2=1\nweight(blocks.6): 0=0, 2=0.5", zoom_schedulable(), blend_to=other)
    image = small_photo[..., :64, :64]
    frames = dream_zoom(image, lite0, own, settings, frames=3, zoom=1.1, schedules=schedules)
    # Frame 0: the dream's own layers (blend 0, blocks.6 weighed 0); frame 2: the target's, with blocks.6 at 0.5.
    first = dream(image, lite0, {"blocks.8": 1.0, "blocks.10": 0.0, "blocks.6": 0.0}, settings).images
    assert torch.allclose(frames[:1], first, atol=1e-6)
    moved = zoom_transform(frames[1:2], 1.1, 0.0, 0.0, 0.0)
    last = dream(moved, lite0, {"blocks.10": 2.0, "blocks.8": 0.0, "blocks.6": 0.5}, settings.with_options(seed=5))
    assert torch.allclose(frames[2:3], last.images, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("blend: 0=0, 5=1", "--blend-to"),  # no target given
        ("weight(blocks.8): 0=1, 5=5000", "5=5000"),
        ("weight(mixed4[x]): 0=1", "weight(mixed4[x])"),
    ],
)
def test_a_bad_weighting_schedule_is_one_message(text, named):
    with pytest.raises(DreamError) as error:
        parse_schedules(text, OPTIONS)
    assert named in str(error.value)


def test_blend_to_reaches_the_commands_and_dream_schedule(lite0):
    from conftest import pack_module

    from dream_core.parser import parse
    from dream_core.schedule import Schedules

    call = parse(["zoom", "in.png", "-o", "o.webp", "--schedule", "blend: 0=0, 9=1", "--blend-to", "mixed5:2"])
    given = call.arguments["schedules"]
    assert isinstance(given, Schedules) and [str(t) for t in given.blend_to] == ["mixed5"]
    (blend,) = given.parsed(OPTIONS)
    assert blend.target == (("mixed5", 2.0),) and blend.at(9) == 1.0
    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    (made,) = nodes["DreamSchedule"].execute("blend~: 0=0, 9=1", blend_to={"blocks.10": 1.0})[0]
    assert made.target == (("blocks.10", 1.0),) and made.smooth
