"""Video: warping, the flow check, streaming, and dreams that hold still along the motion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dream_core import DreamCancelled, DreamError, DreamSettings
from dream_core.flow import flow_function, resolve_flow_method
from dream_core.imageio import load_image
from dream_core.options import VideoSettings
from dream_core.video import dream_video, frame_seed, reliable, warp

FAST = DreamSettings(octaves=2, iterations=8, step=0.02, seed=1, precision="fp32")
LAYERS = {"blocks.6": 1.0, "blocks.8": 1.0}


def pan(photo: torch.Tensor, count: int, speed: int = 4, size: int = 80) -> list[torch.Tensor]:
    """A camera moving right by `speed` px per frame: frame t's pixel x shows the photo at x + speed * t."""
    wide = F.interpolate(photo, size=(size, size + speed * count), mode="area")
    return [wide[..., speed * t : speed * t + size].contiguous() for t in range(count)]


def temporal_error(dreams: list[torch.Tensor], speed: int) -> float:
    """Mean |dream_t - dream_{t-1} moved by the known pan| over pixels seen in both frames."""
    errors = [(dreams[t][..., :-speed] - dreams[t - 1][..., speed:]).abs().mean() for t in range(1, len(dreams))]
    return float(sum(errors) / len(errors))


def test_warp_moves_pixels_along_the_flow():
    image = torch.rand(1, 3, 20, 30)
    flow = torch.zeros(2, 20, 30)
    flow[0] = 3.0  # each pixel takes what is 3 px to its right
    moved = warp(image, flow)
    assert torch.allclose(moved[..., :-3], image[..., 3:], atol=1e-5)


def test_the_flow_check_marks_pixels_whose_flows_disagree():
    backward = torch.zeros(2, 16, 16)
    backward[0] = 2.0
    forward = -backward.clone()
    agreed = reliable(backward, forward)[0, 0]
    assert agreed[:, :14].min() == 1.0 and agreed[:, 14:].max() == 0.0  # the last 2 columns entered the picture
    forward[:, 4:8, 4:8] = 5.0  # an object that moved differently: hidden or uncovered
    marks = reliable(backward, forward)[0, 0]
    assert marks[5, 3] == 0 and marks[12, 12] == 1


@pytest.mark.parametrize("method", ["ilk", "dis"])
def test_each_flow_method_finds_a_pan(small_photo, method):
    if method == "dis":
        pytest.importorskip("cv2")
    frames = pan(small_photo, 2, speed=4, size=96)
    flow = flow_function(method)(frames[0], frames[1])
    assert flow.shape == (2, 96, 96)
    middle = flow[:, 24:72, 24:72]
    assert abs(float(middle[0].median()) + 4) < 0.6 and abs(float(middle[1].median())) < 0.6  # content moves left


def test_frames_stream_through_one_at_a_time(lite0, small_photo):
    frames = pan(small_photo, 4)
    pulled = []

    def source():
        for frame in frames:
            pulled.append(frame)
            yield frame

    video = dream_video(source(), lite0, LAYERS, FAST, VideoSettings(flow="ilk"))
    first = next(video)
    assert len(pulled) == 2 and first.shape == frames[0].shape  # read one ahead, for its flow
    assert len(list(video)) == 3 and len(pulled) == 4


def test_the_coherent_dream_holds_still_where_frame_by_frame_dreams_boil(lite0, small_photo):
    frames = pan(small_photo, 5)
    coherent = list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(flow="ilk")))
    alone = list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(carry=0.0)))
    strength = [float((d - f).abs().mean()) for d, f in zip(coherent, frames, strict=True)]
    assert temporal_error(coherent, 4) < 0.6 * temporal_error(alone, 4)
    assert min(strength) > 0.6 * float((alone[0] - frames[0]).abs().mean())  # still a dream, frame after frame


def test_carry_zero_dreams_every_frame_as_alone(lite0, small_photo):
    from dream_core import dream

    frames = pan(small_photo, 2)
    out = list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(carry=0.0)))
    assert torch.equal(out[1], dream(frames[1], lite0, LAYERS, FAST.with_options(seed=frame_seed(1, 1))).images)


def test_every_frame_gets_a_fresh_jitter_from_the_seed(lite0, small_photo):
    still = [small_photo[..., :80, :80]] * 3  # the same picture three times
    alone = VideoSettings(carry=0.0)
    out = list(dream_video(iter(still), lite0, LAYERS, FAST, alone))
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])  # the shifts differ frame to frame
    again = list(dream_video(iter(still), lite0, LAYERS, FAST, alone))
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))  # and the seed gives the same clip


def test_warp_and_the_flow_check_never_leave_the_device():
    # On the meta device nothing can be copied to the host: a hidden .cpu() would raise.
    image = torch.empty(1, 3, 48, 64, device="meta")
    flow = torch.empty(2, 48, 64, device="meta")
    assert warp(image, flow).device.type == "meta"
    assert reliable(flow, flow).shape == (1, 1, 48, 64) and reliable(flow, flow).device.type == "meta"


def test_flow_of_large_frames_is_estimated_small_and_scaled_back(small_photo):
    calls = []

    def recording(a, b):
        calls.append(tuple(a.shape[-2:]))
        flow = torch.zeros(2, *a.shape[-2:])
        flow[0] = -3.0  # 3 px to the left at the estimate's size
        return flow

    from dream_core.flow import _at_most

    frames = [torch.rand(1, 3, 1080, 1920)] * 2
    flow = _at_most(recording, 720)(*frames)
    assert calls == [(405, 720)] and flow.shape == (2, 1080, 1920)
    assert torch.allclose(flow[0], torch.full((1080, 1920), -8.0)) and flow[1].abs().max() == 0  # 3 px * 1920 / 720


def test_the_next_frames_flow_is_computed_while_the_current_frame_dreams(lite0, small_photo):
    import threading

    flowed = threading.Event()
    threads = []

    def flow(a, b):
        threads.append(threading.current_thread().name)
        flowed.set()
        return torch.zeros(2, *a.shape[-2:])

    def progress(step, total, image):
        if step == 2:  # frame 0's last step: frame 1's flows must be done already, computed alongside
            assert flowed.wait(timeout=60), "frame 1's flow was not computed while frame 0 dreamed"

    frames = pan(small_photo, 3)
    list(
        dream_video(
            iter(frames),
            lite0,
            LAYERS,
            FAST.with_options(iterations=2, octaves=1),
            VideoSettings(next_iterations=2),
            flow=flow,
            on_progress=progress,
        )
    )
    assert len(threads) == 4 and all(name.startswith("deepdream-flow") for name in threads)  # 2 pairs, off the loop


def test_a_mask_per_frame_or_one_for_all(lite0, small_photo):
    frames = pan(small_photo, 2)
    masks = torch.zeros(2, 80, 80)
    masks[1, :, 40:] = 1.0  # frame 0 untouched, frame 1 dreams its right half
    out = list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(flow="ilk"), mask=masks))
    assert (out[0] - frames[0]).abs().max() < 2 / 255
    assert (out[1][..., :30] - frames[1][..., :30]).abs().max() < 2 / 255
    assert (out[1][..., 50:] - frames[1][..., 50:]).abs().mean() > 0.01


def test_cancel_stops_within_a_frame_and_progress_counts_over_the_clip(lite0, small_photo):
    frames = pan(small_photo, 3)
    seen = []
    with pytest.raises(DreamCancelled):
        for _ in dream_video(
            iter(frames),
            lite0,
            LAYERS,
            FAST,
            VideoSettings(flow="ilk"),
            frame_count=3,
            on_progress=lambda step, total, _image: seen.append((step, total)),
            should_stop=lambda: len(seen) >= 18,
        ):
            pass
    total = 16 + 2 * 4  # the first frame's 2 octaves x 8, then 4 steps each
    assert seen[0] == (1, total) and seen[-1][0] == 18


def test_frames_of_different_sizes_and_unknown_flows_are_clear_errors(lite0, small_photo):
    frames = [small_photo[..., :80, :80], small_photo[..., :64, :80]]
    with pytest.raises(DreamError, match="same size"):
        list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(flow="ilk")))
    with pytest.raises(DreamError, match="flow must be one of"):
        VideoSettings(flow="magic").validate()
    assert resolve_flow_method("ilk") == "ilk" and resolve_flow_method("auto") in ("dis", "ilk")


def test_raft_offline_names_the_file_and_the_folder(monkeypatch, tmp_path):
    from dream_core.errors import WeightsNotFoundError

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsNotFoundError, match=r"raft_small.*\.pth.*" + tmp_path.name):
        flow_function("raft", "cpu", tmp_path)


def test_the_dream_video_node_dreams_a_batch_of_frames_in_order(lite0, small_photo):
    from conftest import pack_module

    node = pack_module("nodes.video_nodes").DreamVideo
    frames = torch.cat(pan(small_photo, 3)).permute(0, 2, 3, 1).contiguous()
    before = frames.clone()
    widgets = {n: spec[1]["default"] for n, spec in node.INPUT_TYPES()["required"].items() if "default" in spec[1]}
    widgets.update(octaves=1, iterations=4, flow="ilk", precision="fp32")
    (out,) = node.execute(frames, lite0, **widgets)
    assert out.shape == frames.shape and torch.equal(frames, before)
    assert all(float((out[i] - frames[i]).abs().mean()) > 1e-3 for i in range(3))


@pytest.mark.slow
def test_a_video_file_in_gives_a_video_file_out_with_its_frame_count_rate_and_audio(tmp_path):
    import av

    from dream_core.cli import main

    source = Path(__file__).resolve().parents[1] / "samples" / "pan.mp4"
    out = tmp_path / "dreamed.mp4"
    fast = ["--octaves", "1", "--iterations", "2", "--next-iterations", "1", "--flow", "ilk"]
    assert main(["video", str(source), "-o", str(out), *fast]) == 0

    def facts(path):
        with av.open(str(path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            rate, sample_rate, codec = video.average_rate, audio.rate, audio.codec_context.name
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        with av.open(str(path)) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
        return frames, rate, sample_rate, codec, samples

    assert facts(out) == facts(source)
    assert main(["video", str(source), "-o", str(tmp_path / "frames"), *fast]) == 0
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 24


def _cut(small_photo):
    """Three frames of a pan over the photo, a hard cut, three frames of a pan over another picture."""
    other = torch.nn.functional.interpolate(
        load_image(Path(__file__).resolve().parents[1] / "samples" / "coffee.jpg"), size=(128, 121), mode="area"
    )
    return pan(small_photo, 3) + pan(other, 3)


@pytest.mark.slow
def test_a_cut_starts_a_new_shot_with_a_fresh_full_dream(lite0, small_photo):
    frames = _cut(small_photo)
    starts = []
    out = list(dream_video(iter(frames), lite0, LAYERS, FAST, VideoSettings(flow="dis"), on_new_shot=starts.append))
    assert starts == [0, 3]
    from dream_core import dream

    fresh = dream(frames[3], lite0, LAYERS, FAST.with_options(seed=frame_seed(FAST.seed, 3))).images
    assert torch.equal(out[3], fresh)  # nothing of the previous shot carried over
    never = []
    list(
        dream_video(
            iter(frames), lite0, LAYERS, FAST, VideoSettings(flow="dis", cut_threshold=0.0), on_new_shot=never.append
        )
    )
    assert never == [0]


def test_a_fade_or_a_flash_is_not_a_cut(lite0, small_photo):
    frames = pan(small_photo, 8, speed=2)
    faded = [f * s for f, s in zip(frames, [1.0, 0.6, 0.25, 0.0, 0.25, 0.6, 1.0, 1.0], strict=True)]
    faded[7] = (faded[7] * 1.8).clamp(0, 1)  # and a flash
    starts = []
    list(
        dream_video(
            iter(faded),
            lite0,
            LAYERS,
            FAST.with_options(iterations=2),
            VideoSettings(flow="dis"),
            on_new_shot=starts.append,
        )
    )
    assert starts == [0]


@pytest.mark.slow
def test_a_still_shot_holds_its_strength_instead_of_burning_in(lite0, small_photo):
    still = [small_photo[..., :80, :80]] * 12
    settings = FAST.with_options(iterations=4)

    def strengths(video):
        out = list(dream_video(iter(still), lite0, LAYERS, settings, video))
        return [float((o - still[0]).abs().mean()) for o in out]

    steady = strengths(VideoSettings(flow="dis"))
    assert 0.8 <= steady[-1] / steady[0] <= 1.25, steady
    building = strengths(VideoSettings(flow="dis", steady=False))
    assert building[-1] / building[0] > 1.25, building  # what it did before


def _clip(path: Path, frames: int, side: int = 192) -> Path:
    """A generated clip: the photo panning by 2 px a frame, with a sine tone for audio."""
    import av
    import numpy as np

    photo = F.interpolate(
        load_image(Path(__file__).resolve().parents[1] / "samples" / "astronaut.png"),
        size=(side, side + 2 * frames),
        mode="area",
    )
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        for t in range(frames):
            rgb = (photo[0, :, :, 2 * t : 2 * t + side].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.slow
def test_the_video_node_streams_a_video_file_to_a_video_file_with_its_rate_and_audio(lite0):
    import av
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    bridge = pack_module("nodes.comfy_bridge")
    clip = bridge.VideoFile(str(Path(__file__).resolve().parents[1] / "samples" / "pan.mp4"))
    out = nodes["DreamVideoFile"].execute(clip, lite0, octaves=1, iterations=2, next_iterations=1)[0]
    with av.open(out.get_stream_source()) as container, av.open(clip.get_stream_source()) as original:
        assert container.streams.video[0].frames == original.streams.video[0].frames == 24
        assert container.streams.video[0].average_rate == original.streams.video[0].average_rate
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]


@pytest.mark.slow
def test_the_video_nodes_memory_does_not_grow_with_the_clip(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    peaks = {}
    for frames in (30, 300):
        clip = _clip(tmp_path / f"clip{frames}.mp4", frames)
        code = (
            "import resource, sys; sys.path[:0] = ['tests', 'tools']; from conftest import pack_module; "
            "nodes = pack_module('nodes').NODE_CLASS_MAPPINGS; bridge = pack_module('nodes.comfy_bridge'); "
            "from dream_core import load_feature_model; model = load_feature_model('efficientnet_lite0', 'random'); "
            f"nodes['DreamVideoFile'].execute(bridge.VideoFile({str(clip)!r}), model, octaves=1, iterations=1, "
            "next_iterations=0, carry=0.0); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        peaks[frames] = int(run.stdout.split()[-1])
    assert peaks[300] <= 1.3 * peaks[30], peaks  # ten times the clip, not ten times the memory


@pytest.mark.slow
def test_a_video_file_render_stopped_in_comfyui_goes_on_from_its_frames_and_gives_the_same_video(
    lite0, tmp_path, monkeypatch
):
    """Cancel (or a crash) half way through Dream Video File, then the same inputs queued again: only the frames
    left are dreamed, and the video is frame for frame the one an uninterrupted render gives."""
    import av
    import numpy as np
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    bridge = pack_module("nodes.comfy_bridge")
    render = pack_module("dream_core.render")
    clip = bridge.VideoFile(str(_clip(tmp_path / "clip.mp4", 10, side=96)))
    inputs = dict(octaves=1, iterations=2, next_iterations=1, flow="ilk")

    def run(folder: str, **more):
        monkeypatch.setattr(bridge, "render_folder", lambda: folder)
        return nodes["DreamVideoFile"].execute(clip, lite0, **inputs, **more)[0].get_stream_source()

    def frames(path: str) -> list:
        with av.open(path) as container:
            return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]

    class Interrupted(Exception):  # what ComfyUI's Cancel raises inside the node
        pass

    real, saved = render.save_pixels, []

    def save(array, path, quick=False):
        if len(saved) == 4:
            raise Interrupted
        saved.append(path)
        return real(array, path, quick=quick)

    monkeypatch.setattr(render, "save_pixels", save)
    with pytest.raises(Interrupted):
        run(str(tmp_path / "renders"))
    monkeypatch.setattr(render, "save_pixels", lambda *a, **k: saved.append(a[1]) or real(*a, **k))
    resumed = run(str(tmp_path / "renders"))
    assert len(saved) == 10  # 4 before the stop, the 6 left after it: none dreamed twice
    assert not any((tmp_path / "renders").iterdir())  # the finished render's work folder went
    uninterrupted = run(str(tmp_path / "elsewhere"))
    assert len(saved) == 20
    first, second = frames(resumed), frames(uninterrupted)
    assert len(first) == len(second) == 10
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # The node's resume input off: a stopped render's frames are not used; the clip is dreamed afresh.
    saved.clear()
    monkeypatch.setattr(render, "save_pixels", save)
    with pytest.raises(Interrupted):
        run(str(tmp_path / "again"))
    monkeypatch.setattr(render, "save_pixels", lambda *a, **k: saved.append(a[1]) or real(*a, **k))
    afresh = run(str(tmp_path / "again"), resume=False)
    assert len(saved) == 4 + 10
    assert all(np.array_equal(a, b) for a, b in zip(frames(afresh), second, strict=True))
