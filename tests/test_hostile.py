"""Issue 26, the second hostile probe: each case it found, as a test (tools/hostile_cli.py runs them as a user
would and prints a table). Nothing of the user's lost, every job checked against the device before work, no
silent wrong output, no hang, one line for every refusal."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dream_core import DreamError, cluster, commands, memory
from dream_core import job as job_module
from dream_core import render as render_module
from dream_core.cli import build_parser, main
from dream_core.outputs import PARTIAL, file_identity
from dream_core.parser import parse
from dream_core.workfolder import WorkFolder

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--octaves", "1", "--iterations", "1"]
CHANNELS_FAST = ["--size", "64", "--steps", "1"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "in" / "a.png"
    path.parent.mkdir()
    Image.open(ROOT / "samples" / "astronaut.png").resize((64, 64)).save(path)
    return path


def frames_of(photo: Path, tmp_path: Path, count: int) -> Path:
    """A folder of `count` frames, each the photo: a clip the video command reads."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(count):
        shutil.copy(photo, frames / f"f{i}.png")
    return frames


@pytest.fixture
def little_memory(monkeypatch):
    """A device with 200 MB: what the memory check compares with."""
    monkeypatch.setattr(memory, "total_memory", lambda device: 200 << 20)


# --- data loss --------------------------------------------------------------------------------------------------


def test_channels_pictures_overwrite_replaces_only_its_pictures_and_never_the_input(photo, tmp_path, capsys):
    folder = photo.parent  # the pictures go where the input is
    (folder / "notes.txt").write_text("mine")
    before = md5(photo)
    args = [
        "channels",
        "-o",
        str(tmp_path / "sheet.png"),
        "--pictures",
        str(folder),
        "--channels",
        "top2",
        "--image",
        str(photo),
        *CHANNELS_FAST,
    ]
    assert main(args) == 0
    written = sorted(p.name for p in folder.glob("blocks*.png"))
    assert len(written) == 2
    assert main([*args, "--overwrite"]) == 0
    assert md5(photo) == before and (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["a.png", "notes.txt", *written])
    assert hidden(tmp_path) == []


def test_channels_refuse_a_picture_name_that_is_the_input(tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    image = folder / "blocks.8_1.png"  # the very name channel 1 of blocks.8 would be written to
    Image.open(ROOT / "samples" / "astronaut.png").resize((64, 64)).save(image)
    before = md5(image)
    code = main(
        [
            "channels",
            "-o",
            str(tmp_path / "sheet.png"),
            "--pictures",
            str(folder),
            "--layer",
            "blocks.8",
            "--channels",
            "1",
            "--image",
            str(image),
            "--overwrite",
            *CHANNELS_FAST,
        ]
    )
    assert code == 2 and "is the input" in capsys.readouterr().err and md5(image) == before


@pytest.mark.parametrize("command", ["video", "zoom"])
def test_a_frames_folder_given_with_overwrite_keeps_every_other_file_and_folder(photo, tmp_path, command, capsys):
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "x.txt").write_text("mine")
    (out / "holiday.png").write_bytes(b"mine")
    (out / "frame_00099.png").write_bytes(b"an earlier, longer run's frame")
    if command == "video":
        frames = frames_of(photo, tmp_path, 2)
        args = ["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk"]
    else:
        args = ["zoom", str(photo), "-o", str(out), *FAST, "--frames", "2"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # its own kind of file is there
    assert main([*args, "--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "frame_00099.png" not in names and "holiday.png" in names and (out / "keep" / "x.txt").is_file()
    assert len([n for n in names if n.startswith("frame_")]) == 2
    assert hidden(tmp_path) == []


def test_a_stopped_ray_job_of_another_input_folder_grants_no_overwrite(tmp_path, capsys):
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    for folder in (first, second):
        folder.mkdir()
        Image.open(ROOT / "samples" / "astronaut.png").resize((64, 64)).save(folder / "a.png")
    out.mkdir()
    (out / "a_dream.png").write_bytes(b"the first job's output")
    # What a stopped --ray job from `first` leaves: its journal, with the output it set out to write.
    stopped = parse(["dream", str(first), "-o", str(out), "--ray", "127.0.0.1:1"]).arguments
    identity = commands.dream_identity(stopped["job"], stopped["given"], stopped["output"])
    cluster.Journal(out / ".deepdream-job.json", identity).plan(["a_dream.png"])
    code = main(["dream", str(second), "-o", str(out), "--ray", "127.0.0.1:1"])
    assert code == 2 and "already exists; add --overwrite" in capsys.readouterr().err
    assert (out / "a_dream.png").read_bytes() == b"the first job's output"
    # The same job again is its own: not refused for its output (it then fails to reach the cluster).
    assert main(["dream", str(first), "-o", str(out), "--ray", "127.0.0.1:1"]) == 2
    assert "nothing answers there" in capsys.readouterr().err


# --- the host at risk ---------------------------------------------------------------------------------------------


def test_channel_pictures_that_would_not_fit_are_refused_in_one_line_before_work(tmp_path, little_memory, capsys):
    started = time.monotonic()
    code = main(["channels", "-o", str(tmp_path / "s.png"), "--channels", "0-63", "--size", "1024", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "needs about" in err and "fewer channels" in err and not (tmp_path / "s.png").exists()
    assert time.monotonic() - started < 30 and err.count("error:") == 1


def test_top_channels_of_a_huge_photo_are_read_in_tiles_and_checked(lite0, little_memory):
    from dream_core.channels import channel_means, top_channels

    image = torch.rand(1, 3, 1100, 300)  # two tiles: the means weigh each tile by its area
    means = channel_means(lite0, "blocks.4", image)
    assert means.shape == (1, lite0.resolve_layer("blocks.4").channels) and torch.isfinite(means).all()
    with pytest.raises(DreamError, match="needs about .* Give a smaller picture"):
        top_channels(lite0, "blocks.8", torch.rand(1, 3, 6000, 6000), 4)
    with pytest.raises(DreamError, match="picture given is empty"):
        top_channels(lite0, "blocks.8", torch.rand(0, 3, 64, 64), 4)


def test_a_repeated_network_is_loaded_once_counted_in_memory_and_capped(photo, tmp_path, monkeypatch, capsys):
    loads = []
    real = job_module.load_feature_model
    monkeypatch.setattr(job_module, "load_feature_model", lambda *a, **k: loads.append(a[:2]) or real(*a, **k))
    spec = "efficientnet_lite0=blocks.10:1"
    assert (
        main(
            [
                "dream",
                str(photo),
                "-o",
                str(tmp_path / "x.png"),
                *FAST,
                "--network",
                spec,
                "--network",
                spec,
                "--network",
                spec,
            ]
        )
        == 0
    )
    assert len(loads) == 2  # the main network and one other, not three
    assert "blocks.6" in capsys.readouterr().err  # the main network keeps its own layers beside the others
    code = main(["dream", str(photo), "-o", str(tmp_path / "y.png"), *FAST, *["--network", spec] * 9])
    assert code == 2 and "at most 8" in capsys.readouterr().err


def test_the_memory_estimate_counts_every_other_network(lite0):
    from dream_core import DreamSettings, load_feature_model
    from dream_core.memory import estimate_objective_memory
    from dream_core.objectives import Objective

    alone = estimate_objective_memory(
        lite0, Objective.of({"blocks.6": 1}).resolved(lite0), DreamSettings(), (1, 3, 512, 512), "cpu", 512
    )
    other = load_feature_model("efficientnet_lite0", "random")
    both = Objective.of({"blocks.6": 1}, networks=[(other, {"blocks.10": 1})] * 2).resolved(lite0)
    with_other = estimate_objective_memory(lite0, both, DreamSettings(), (1, 3, 512, 512), "cpu", 512)
    # Named twice: its activations twice (two passes in each step), its weights once.
    assert with_other.activations > 2.5 * alone.activations and with_other.weights == 2 * alone.weights


def test_a_dream_too_large_for_the_device_is_refused_before_any_step(tmp_path, little_memory, capsys):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 3000), "gray").save(big)
    code = main(["dream", str(big), "-o", str(tmp_path / "y.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "needs about" in err and "Dream a smaller picture" in err


# --- silent wrong output ------------------------------------------------------------------------------------------


def test_two_renders_to_one_output_never_run_at_once(tmp_path):
    out = tmp_path / "x.mp4"
    first = WorkFolder(out, "job one")
    assert first.open() is False
    (first.frame(0)).write_bytes(b"the first render's frame")
    with pytest.raises(DreamError, match="Another render to .* is running"):
        WorkFolder(out, "job two").open()
    assert first.frame(0).is_file()  # the second did not clear the first's frames
    first.close()
    second = WorkFolder(out, "job two")
    assert second.open() is False and not second.frame(0).exists()  # another job: afresh, once it is free
    second.remove()
    assert hidden(tmp_path) == []


def test_a_file_changed_with_its_size_and_time_put_back_is_another_input(tmp_path):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"a" * 1000)
    stat = path.stat()
    identity = file_identity(path)
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert file_identity(path) != identity


def _rotated_clip(path: Path, rotation: int, times: list[float]) -> torch.Tensor:
    """A portrait picture stored sideways with a display rotation, shown at `times` (the last: where it ends)."""
    from dream_core.videoio import VideoSink

    upright = torch.nn.functional.interpolate(
        torch.from_numpy(np.array(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB")))
        .permute(2, 0, 1)
        .unsqueeze(0)
        .float()
        / 255,
        size=(96, 64),
        mode="area",
    )
    stored = torch.rot90(upright, -round(rotation / 90), dims=(-2, -1))  # as the phone's sensor saw it
    sink = VideoSink(path, Fraction(25), times=[Fraction(t).limit_denominator(1000) for t in times])
    for _ in times[:-1]:
        sink.write(stored)
    sink.close()
    return upright


def test_a_phone_clip_dreams_upright_and_keeps_its_variable_frame_times(tmp_path, monkeypatch):
    import av

    from dream_core import videoio

    clip = tmp_path / "phone.mp4"
    times = [0, 0.1, 0.3, 0.35, 0.8, 1.0, 1.4, 2.08]
    # Written by our own sink with the rotation set on the stream, as a phone stores it.
    real_open = videoio.VideoSink._open

    def rotated_open(self, height, width):
        real_open(self, height, width)
        self.stream.set_display_rotation(-90)

    monkeypatch.setattr(videoio.VideoSink, "_open", rotated_open)
    upright = _rotated_clip(clip, -90, times)
    monkeypatch.setattr(videoio.VideoSink, "_open", real_open)
    out = tmp_path / "dream.mp4"
    assert main(["video", str(clip), "-o", str(out), "--octaves", "1", "--iterations", "0", "--flow", "ilk"]) == 0
    with av.open(str(out)) as container:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time), f.rotation) for f in container.decode(video=0)]
    first = torch.from_numpy(frames[0][0]).permute(2, 0, 1).float() / 255
    assert first.shape[-2:] == (96, 64) and frames[0][2] == 0  # portrait, shown as stored
    assert (first - upright[0]).abs().mean() < 0.05  # upright, not turned
    assert [round(t, 2) for _, t, _ in frames] == times[:-1]
    with av.open(str(clip)) as source, av.open(str(out)) as result:
        assert abs(result.duration - source.duration) <= 0.02 * source.duration


def _stop_after(monkeypatch, frames: int) -> None:
    """Ctrl-C once `frames` frames of a render were written."""
    real = render_module.save_pixels
    count = [0]

    def save(array, path, quick=False):
        if count[0] == frames:
            raise KeyboardInterrupt
        count[0] += 1
        return real(array, path, quick=quick)

    monkeypatch.setattr(render_module, "save_pixels", save)


@pytest.mark.parametrize("damage", ["missing", "cut short", "stray file"])
@pytest.mark.slow
def test_a_damaged_work_folder_is_never_mixed_into_the_output_and_a_rerun_recovers(
    photo, tmp_path, monkeypatch, damage, capsys
):
    frames = frames_of(photo, tmp_path, 4)
    out = tmp_path / "out"
    args = ["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk"]
    with monkeypatch.context() as patch:
        _stop_after(patch, 2)
        assert main(args) == 130
    work = tmp_path / ".out.work"
    assert (work / "frame_00001.png").is_file()
    if damage == "missing":
        (work / "frame_00000.png").unlink()
    elif damage == "cut short":
        data = (work / "frame_00001.png").read_bytes()
        (work / "frame_00001.png").write_bytes(data[: len(data) // 2])
    else:
        (work / "frame_00007.png").write_bytes(b"not ours")
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(4)]
    assert all(Image.open(out / name).size == (64, 64) for name in names)
    if damage != "stray file":
        assert "damaged: starting afresh" in capsys.readouterr().err
    assert hidden(tmp_path) == []


def test_a_work_folder_damaged_at_the_end_fails_once_and_the_rerun_recovers(photo, tmp_path, monkeypatch, capsys):
    frames = frames_of(photo, tmp_path, 2)
    out = tmp_path / "out.mp4"
    args = ["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk"]
    real = render_module._render_frames

    def render_then_damage(work, *rest, **named):
        count = real(work, *rest, **named)
        work.frame(1).unlink()
        return count

    with monkeypatch.context() as patch:
        patch.setattr(render_module, "_render_frames", render_then_damage)
        assert main(args) == 2
    assert "missing or damaged" in capsys.readouterr().err and not out.exists()
    assert main(args) == 0 and out.is_file()
    assert hidden(tmp_path) == []


# --- no hang; one line each ---------------------------------------------------------------------------------------


def test_a_ray_address_where_nothing_listens_fails_in_seconds():
    started = time.monotonic()
    with pytest.raises(DreamError, match="nothing answers there"):
        cluster._check_answers("127.0.0.1:1")
    assert time.monotonic() - started < 30


def test_a_long_legal_output_name_is_written_and_a_too_long_one_refused_before_work(photo, tmp_path, capsys):
    name = "d" * 246 + ".png"  # 250 bytes: legal; the temporary name beside it must stay legal too
    assert main(["dream", str(photo), "-o", str(tmp_path / name), *FAST]) == 0
    assert (tmp_path / name).is_file()
    too_long = "d" * 300 + ".png"
    assert main(["dream", str(photo), "-o", str(tmp_path / too_long), *FAST]) == 2
    assert "at most 255" in capsys.readouterr().err
    assert [p for p in tmp_path.iterdir() if PARTIAL in p.name] == []


def test_a_full_disk_during_a_video_is_one_line_and_the_rerun_goes_on(photo, tmp_path, monkeypatch, capsys):
    import errno

    frames = frames_of(photo, tmp_path, 3)
    out = tmp_path / "out"
    args = ["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk"]
    real = render_module.save_pixels
    calls = [0]

    def disk_full(array, path, quick=False):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(array, path, quick=quick)

    with monkeypatch.context() as patch:
        patch.setattr(render_module, "save_pixels", disk_full)
        assert main(args) == 1
    err = capsys.readouterr().err
    assert "no space left on the disk" in err and err.count("\n") <= 3
    assert main(args) == 0 and len(list(out.iterdir())) == 3


@pytest.mark.parametrize("make", ["dot", "folder named like a video"])
def test_video_outputs_that_cannot_be_written_are_refused_before_work(photo, tmp_path, monkeypatch, make, capsys):
    monkeypatch.chdir(photo.parent)
    clip = ROOT / "samples" / "pan.mp4"
    if make == "dot":
        target = "."  # the folder that holds... nothing of the input here, but a dot has no name of its own
        (photo.parent / "frames_here").mkdir()
        monkeypatch.chdir(photo.parent / "frames_here")
        shutil.copy(clip, "pan.mp4")
        clip = Path("pan.mp4")
    else:
        target = str(tmp_path / "x.mp4")
        (tmp_path / "x.mp4").mkdir()
    monkeypatch.setattr(job_module, "load_feature_model", lambda *a, **k: pytest.fail("loaded before refusing"))
    assert main(["video", str(clip), "-o", target, *FAST, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and ("holds the input" in err or "is a folder" in err)


def test_v_after_the_command_is_understood():
    assert build_parser().parse_args(["models", "-v"]).verbose is True
    assert build_parser().parse_args(["-v", "models"]).verbose is True
    assert build_parser().parse_args(["models"]).verbose is False


def test_the_smaller_cases_get_one_clear_line(photo, tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["dream", str(photo), "-o", out, "--weights", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["dream", str(photo), "-o", out, "--network", "efficientnet_lite0@=blocks.6"]) == 2
    assert "nothing after '@'" in capsys.readouterr().err
    assert main(["dream", str(photo), "-o", out, "--layers", "class:zzqx"]) == 2
    assert "Unknown class 'zzqx'" in capsys.readouterr().err
    help_text = build_parser()._subparsers._group_actions[0].choices["channels"].format_help()
    assert "presets set" not in help_text


def test_the_detail_reinject_node_and_channel_pictures_node_refuse_in_one_line(lite0, little_memory):
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    small = torch.rand(1, 64, 64, 3)
    with pytest.raises(DreamError, match="Ask for a smaller size"):
        nodes["DetailReinject"].execute(small, small, 16384, 16384, 1.0)
    with pytest.raises(DreamError, match="empty"):
        nodes["ChannelPictures"].execute(lite0, "blocks.8", "top4", 0, image=torch.rand(0, 64, 64, 3))


def test_detail_reinject_never_writes_into_its_inputs():
    """ComfyUI caches a node's outputs and hands the same tensors to the next run: a Detail Reinject that wrote into
    the original photo made the next workflow dream a corrupted photo (found on the real host)."""
    from dream_core.imageops import reinject_detail

    original, dreamed = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 32, 32)
    upscaled = torch.rand(1, 3, 64, 64)
    kept = [original.clone(), dreamed.clone(), upscaled.clone()]
    reinject_detail(dreamed, original)
    reinject_detail(dreamed, original, upscaled=upscaled)
    assert all(torch.equal(a, b) for a, b in zip(kept, [original, dreamed, upscaled], strict=True))


def test_a_clips_frame_times_are_its_own_and_rise():
    from dream_core.videoio import VideoSource

    source = VideoSource(ROOT / "samples" / "pan.mp4")
    times = source.times()
    assert len(times) == source.count + 1 and times[0] == 0 and float(times[-1]) == pytest.approx(2.0)
    assert all(later > earlier for earlier, later in zip(times, times[1:]))  # noqa: B905
    assert VideoSource(ROOT / "samples" / "pan.mp4", fps=30).times() is None  # a rate given: every frame 1/30 s


def test_loading_random_weights_is_seeded_and_leaves_the_callers_generator_alone():
    from dream_core import load_feature_model

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = load_feature_model("efficientnet_lite0", "random")
    assert torch.equal(torch.rand(3), expected)  # the global generator is where the caller left it
    second = load_feature_model("efficientnet_lite0", "random")
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.net.state_dict().values(), second.net.state_dict().values(), strict=True)
    )
