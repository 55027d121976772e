"""Audio-reactive settings (dream_core/audio.py): the envelope per frame, its band and smoothing, the NAME=LOW:HIGH
text, and the commands that follow a soundtrack."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import pytest
import torch

from dream_core.audio import Reaction, envelope, parse_react, react, react_schedules
from dream_core.errors import DreamError
from dream_core.options import OPTIONS

RATE = 8000


def tone(seconds: float, hz: float, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    return amplitude * torch.sin(2 * math.pi * hz * t)


def test_silence_is_zero_the_loudest_frame_one_and_each_frame_hears_its_own_slice():
    sound = torch.cat([torch.zeros(RATE), tone(1, 440, 0.2), tone(1, 440, 0.8)])  # 3 s
    levels = envelope(sound, RATE, 6, 2.0)  # two frames a second
    assert levels[:2] == [0.0, 0.0]
    assert levels[2] == pytest.approx(0.25, abs=0.01) and levels[3] == pytest.approx(0.25, abs=0.01)
    assert levels[4] == pytest.approx(1.0) and levels[5] == pytest.approx(1.0)
    assert envelope(sound, RATE, 8, 2.0)[6:] == [0.0, 0.0]  # after the audio ends: silence
    assert envelope(torch.zeros(RATE), RATE, 3, 3.0) == [0.0, 0.0, 0.0]
    stereo = torch.stack([sound, sound])
    assert envelope(stereo, RATE, 6, 2.0) == pytest.approx(levels)


def test_a_band_hears_only_its_frequencies():
    sound = torch.cat([tone(1, 80), tone(1, 6000 if RATE > 12000 else 3000)])  # a bass second, then a high one
    full = envelope(sound, RATE, 2, 1.0)
    bass = envelope(sound, RATE, 2, 1.0, band="bass")
    mids = envelope(sound, RATE, 2, 1.0, band="mids")
    assert full[0] == pytest.approx(full[1], rel=0.01)
    assert bass[0] == 1.0 and bass[1] < 0.05
    assert mids[1] == 1.0 and mids[0] < 0.05


def test_attack_and_release_smooth_a_jump_each_at_its_own_speed():
    sound = torch.cat([torch.zeros(RATE), tone(2, 440), torch.zeros(2 * RATE)])  # 5 s
    raw = envelope(sound, RATE, 50, 10.0)
    slow_up = envelope(sound, RATE, 50, 10.0, attack=0.3)
    slow_down = envelope(sound, RATE, 50, 10.0, release=0.3)
    assert raw[10] == pytest.approx(1.0) and raw[9] == raw[30] == 0.0
    # One-pole smoothing: each 0.1 s frame goes 1 - exp(-0.1 / 0.3) of the way; the other direction at once.
    assert slow_up[10] / slow_up[29] == pytest.approx(1 - math.exp(-1 / 3), rel=0.01) and slow_up[30] == 0.0
    assert slow_down[10] == pytest.approx(slow_down[29])
    assert slow_down[33] / slow_down[29] == pytest.approx(math.exp(-4 / 3), rel=0.01)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("stp=0.001:0.02", "'stp'"),
        ("step=0.001", "NAME=LOW:HIGH"),
        ("step=0.001:5", "5"),
        ("step=a:0.02", "'a'"),
        ("iterations=1.5:4", "1.5"),
    ],
)
def test_a_bad_react_is_one_message_naming_it(text, named):
    with pytest.raises(DreamError) as error:
        parse_react(text, OPTIONS)
    assert named in str(error.value)


def test_react_maps_silence_to_low_and_the_loudest_frame_to_high():
    option, low, high = parse_react("iterations=2:10", OPTIONS)
    schedule = react(option, low, high, [0.0, 0.5, 1.0])
    assert schedule.values(5) == [2, 6, 10, 10, 10]  # whole numbers rounded, the last held
    with pytest.raises(DreamError, match="twice"):
        react_schedules(Reaction(("step=0:0.02", "step=0:0.01")), (torch.zeros(RATE), RATE), 4, 4.0, OPTIONS)


def _wav(path: Path, sound: torch.Tensor) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((sound.clamp(-1, 1) * 32767).round().to(torch.int16).numpy().tobytes())
    return path


def test_the_zoom_follows_a_sound_file_frame_by_frame(tmp_path):
    from dream_core.animation import ZOOM_OPTIONS
    from dream_core.commands.images import zoom
    from dream_core.imageio import load_image, save_image
    from dream_core.job import Job
    from dream_core.options import DreamSettings

    photo = load_image(Path(__file__).resolve().parents[1] / "samples" / "astronaut.png")
    save_image(torch.nn.functional.interpolate(photo, size=(64, 64), mode="area")[0], tmp_path / "in.png")
    audio = _wav(tmp_path / "beat.wav", torch.cat([torch.zeros(RATE), tone(1, 300, 0.5)]))  # 4 frames at 2 fps
    motion = {opt.name: opt.default for opt in ZOOM_OPTIONS} | {"frames": 4, "zoom": 1.0}
    job = Job("efficientnet_lite0", (("blocks.8", 1.0),), DreamSettings(octaves=1, iterations=3, precision="fp32"))
    react_on = Reaction(("step=0:0.05",), attack=0.0, release=0.0)
    with pytest.raises(DreamError, match="--audio"):  # --react without a sound file: before any work
        zoom(job, tmp_path / "in.png", tmp_path / "out", motion, fps=2.0, reaction=react_on)
    assert zoom(job, tmp_path / "in.png", tmp_path / "out", motion, fps=2.0, reaction=react_on, audio=audio) == 0
    frames = [load_image(tmp_path / "out" / f"frame_{i:04d}.png") for i in range(4)]
    start = load_image(tmp_path / "in.png")
    assert (frames[1] - start).abs().max() <= 1 / 255  # silent: step 0, nothing dreamed
    assert (frames[2] - frames[1]).abs().mean() > 0.01 and (frames[3] - frames[2]).abs().mean() > 0.01


def test_reacting_to_a_clip_without_audio_says_so_before_any_work(tmp_path):
    from dream_core.commands.clip import video
    from dream_core.imageio import save_image
    from dream_core.options import VideoSettings

    (tmp_path / "frames").mkdir()
    save_image(torch.rand(3, 16, 16), tmp_path / "frames" / "a.png")
    with pytest.raises(DreamError, match="has none"):
        video(None, tmp_path / "frames", tmp_path / "out.mp4", VideoSettings(), reaction=Reaction(("step=0:0.02",)))
    with pytest.raises(DreamError, match="'stp'"):  # the text first, before the clip is even opened
        video(None, tmp_path / "missing", tmp_path / "out.mp4", VideoSettings(), reaction=Reaction(("stp=0:0.02",)))


def test_the_audio_envelope_node_hears_an_audio_or_a_videos_own_soundtrack_and_chains():
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    bridge = pack_module("nodes.comfy_bridge")
    node = nodes["AudioEnvelope"]
    widgets = dict(setting="step", low=0.0, high=0.04, band="full", attack=0.0, release=0.0, fps=2.0, frames=0)
    sound = {"waveform": torch.cat([torch.zeros(RATE), tone(1, 300)]).float().view(1, 1, -1), "sample_rate": RATE}
    (schedules,) = node.execute(**widgets, audio=sound)
    assert [s.name for s in schedules] == ["step"] and schedules[0].values(4) == pytest.approx([0, 0, 0.04, 0.04])
    # A clip's own soundtrack at its own rate and count: samples/beat.mov is silent for its first second.
    clip = bridge.VideoFile(str(Path(__file__).resolve().parents[1] / "samples" / "beat.mov"))
    first = nodes["DreamSchedule"].execute("jitter: 0=0, 23=16")[0]
    (both,) = node.execute(**widgets, video=clip, schedules=first)
    assert [s.name for s in both] == ["jitter", "step"] and len(both[1].keys) == 24  # 2 s at 12 fps
    beat = both[1].values(24)
    assert max(beat[:11]) < 0.001 and max(beat[12:]) == pytest.approx(0.04)
    with pytest.raises(DreamError, match="already has a schedule"):
        node.execute(**widgets, audio=sound, schedules=both)
    with pytest.raises(DreamError, match="step"):
        node.execute(**{**widgets, "high": 5.0}, audio=sound)  # above step's maximum
    with pytest.raises(DreamError, match="connect an AUDIO"):
        node.execute(**widgets)
    for broken in ({"waveform": torch.zeros(0, 1, 10), "sample_rate": RATE}, {"sample_rate": RATE}, "noise"):
        with pytest.raises(DreamError, match="no samples"):
            node.execute(**widgets, audio=broken)
    with pytest.raises(DreamError, match="positive rate"):
        node.execute(**widgets, audio={**sound, "sample_rate": 0})
    noisy = {**sound, "waveform": sound["waveform"].clone().index_fill_(2, torch.tensor([5, 9000]), float("nan"))}
    assert node.execute(**widgets, audio=noisy)[0][0].values(4) == pytest.approx([0, 0, 0.04, 0.04])
    with pytest.raises(DreamError, match="attack"):
        Reaction(("step=0:0.02",), attack=-1).check()


@pytest.mark.slow
def test_the_video_command_dreams_to_the_clips_own_soundtrack_and_keeps_it(tmp_path):
    import av

    from dream_core.cli import main
    from dream_core.videoio import VideoSource

    clip = Path(__file__).resolve().parents[1] / "samples" / "beat.mov"  # silent for 1 s, then four hits
    out = tmp_path / "out.mp4"
    flags = ["--model", "efficientnet_lite0", "--layers", "blocks.8:1", "--octaves", "1", "--iterations", "3"]
    flags += ["--next-iterations", "2", "--flow", "ilk", "--react", "step=0:0.04", "--release", "0"]
    assert main(["video", str(clip), "-o", str(out), *flags]) == 0
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    pairs = zip(VideoSource(clip).frames(), VideoSource(out).frames(), strict=True)
    strength = [float((b - a).abs().mean()) for a, b in pairs]
    assert max(strength[:10]) < 0.02 < min(strength[12], strength[15], strength[18], strength[21])


def test_a_stopped_dream_video_file_render_resumes_only_with_the_same_schedule():
    from conftest import pack_module

    video_nodes = pack_module("nodes.video_nodes")
    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    from dream_core.videoio import VideoSource

    source = VideoSource(Path(__file__).resolve().parents[1] / "samples" / "beat.mov")
    one = nodes["DreamSchedule"].execute("step: 0=0, 9=0.03")[0]
    other = nodes["DreamSchedule"].execute("step: 0=0, 9=0.02")[0]
    names = {
        video_nodes.render_work(source, "model", None, inputs).path.name
        for inputs in ({"step": 0.01}, {"step": 0.01, "schedule": one}, {"step": 0.01, "schedule": other})
    }
    assert len(names) == 3  # a render of other schedules is a render of its own
