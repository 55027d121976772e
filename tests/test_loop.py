"""Perfect loops (issue 29): a looping zoom's last frame leads into its first as any frame into the next."""

from __future__ import annotations

import torch

from dream_core.animation import dream_zoom, loop_overlap
from dream_core.options import DreamSettings
from dream_core.parser import parse
from dream_core.schedule import parse_schedules

SETTINGS = DreamSettings(octaves=1, iterations=3, step=0.03, seed=5, precision="fp32")
LAYERS = {"blocks.8": 1.0}


def _jump(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_a_looping_zoom_fades_its_continuation_into_its_first_frames(lite0, small_photo):
    from dream_core.animation import zoom_schedulable

    frames, overlap = 8, loop_overlap(8)
    image = small_photo[..., :64, :64]
    looped_schedule = parse_schedules("angle: 0=0, 7=7", zoom_schedulable())
    # Past its end the zoom goes on with the schedule read again from frame 0: frames 8, 9 turn as frames 0, 1 did.
    unrolled = parse_schedules("angle: 0=0, 7=7, 8=0, 9=1", zoom_schedulable())
    chain = dream_zoom(image, lite0, LAYERS, SETTINGS, frames + overlap, 1.1, schedules=unrolled)
    reports = []
    looped = dream_zoom(
        image,
        lite0,
        LAYERS,
        SETTINGS,
        frames,
        1.1,
        schedules=looped_schedule,
        loop=True,
        on_progress=lambda step, total, _image: reports.append((step, total)),
    )
    assert overlap == 2 and looped.shape[0] == frames
    assert reports[-1] == (10 * 3 + 2 * 1,) * 2  # ten frames of 3 steps, then the two seam frames' one each
    assert torch.equal(looped[overlap:], chain[overlap:frames])  # the middle is the plain zoom
    from dream_core.animation import seam_settings
    from dream_core.engine import dream

    for i in range(overlap):  # faded from the continuation into the start, then dreamed lightly as one picture
        weight = (i + 1) / (overlap + 1)
        faded = chain[frames + i] * (1 - weight) + chain[i] * weight
        light = seam_settings(SETTINGS.with_options(seed=SETTINGS.seed + i), frames + overlap)
        assert light.octaves == 1 and light.iterations == 1 and light.seed == SETTINGS.seed + i + frames + overlap
        assert torch.allclose(looped[i], dream(faded[None], lite0, LAYERS, light).images[0], atol=1e-6)


def test_the_loop_closes_the_wrap_around_jump(lite0, small_photo):
    image = small_photo[..., :64, :64]
    plain = dream_zoom(image, lite0, LAYERS, SETTINGS, 8, 1.1, 2.0)
    looped = dream_zoom(image, lite0, LAYERS, SETTINGS, 8, 1.1, 2.0, loop=True)
    for frames, bound in ((plain, None), (looped, 1.5)):
        inner = sorted(_jump(frames[k + 1], frames[k]) for k in range(7))
        median = inner[len(inner) // 2]
        wrap = _jump(frames[0], frames[-1])
        if bound is None:
            assert wrap > 1.5 * median  # without the loop the picture jumps back to where it started
        else:
            assert wrap <= bound * median


def test_loop_is_a_zoom_flag_and_a_dream_zoom_input(lite0, small_photo):
    assert parse(["zoom", "in.png", "-o", "out.webp", "--loop"]).arguments["loop"] is True
    assert parse(["zoom", "in.png", "-o", "out.webp"]).arguments["loop"] is False
    from conftest import pack_module

    node = pack_module("nodes").NODE_CLASS_MAPPINGS["DreamZoom"]
    image = small_photo[..., :64, :64].permute(0, 2, 3, 1)
    fast = {"octaves": 1, "iterations": 2, "frames": 4, "zoom": 1.1}
    plain, looped = node.execute(image, lite0, **fast)[0], node.execute(image, lite0, **fast, loop=True)[0]
    assert looped.shape == plain.shape and torch.equal(looped[2:], plain[2:]) and not torch.equal(looped[0], plain[0])
