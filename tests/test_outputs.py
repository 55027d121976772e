"""Nothing of the user's destroyed, nothing lost: outputs never over inputs, never over existing files
unless asked, written whole or not at all, refused before any work; signals; bad input refused in one line."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dream_core import DreamError, DreamSettings, dream
from dream_core import job as job_module
from dream_core.cli import main
from dream_core.commands import tools as tools_module
from dream_core.imageio import load_image, save_image
from dream_core.outputs import PARTIAL, distinct_names

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--octaves", "1", "--iterations", "1"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files left where the user looks (a stopped render's hidden work folder is kept on purpose:
    the next run goes on from it, and removes it when the output is complete)."""
    return [p.name for p in folder.rglob("*") if PARTIAL in p.name and ".work" not in p.parent.name]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "a.png"
    Image.open(ROOT / "samples" / "astronaut.png").resize((64, 64)).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a command loads a network: every refusal here must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was loaded before the refusal")

    monkeypatch.setattr(job_module, "load_feature_model", refuse)
    monkeypatch.setattr(tools_module, "load_feature_model", refuse)
    monkeypatch.setattr(tools_module, "train_classifier", refuse)


# --- never over an input ------------------------------------------------------------------------------------------


def test_an_output_that_is_an_input_is_refused_before_any_work(photo, tmp_path, no_model, capsys):
    before = md5(photo)
    os.link(photo, tmp_path / "hard.png")
    clip = tmp_path / "clip.mp4"
    shutil.copy(ROOT / "samples" / "pan.mp4", clip)
    clip_before = md5(clip)
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(photo, frames / "f0.png")
    runs = [
        ["dream", str(photo), "-o", str(photo)],
        ["dream", str(tmp_path / "hard.png"), "-o", str(photo)],  # the same file by inode
        ["dream", str(frames), "-o", str(frames)],  # a folder written into itself
        ["sweep", str(photo), "-o", str(photo)],
        ["dream", str(tmp_path / "hard.png"), "-o", str(tmp_path / "m.png"), "--mask", str(tmp_path / "m.png")],
        ["video", str(clip), "-o", str(clip)],
        ["video", str(frames), "-o", str(frames)],
        ["zoom", str(photo), "-o", str(tmp_path)],  # a frames folder holding the input
        ["train", str(frames), "-o", str(tmp_path / "x.safetensors"), "--weights", str(tmp_path / "x.safetensors")],
    ]
    (tmp_path / "m.png").write_bytes(photo.read_bytes())
    (tmp_path / "x.safetensors").write_bytes(b"not really")
    for args in runs:
        assert main(args + (FAST if args[0] != "train" else [])) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and (
            "is the input" in err[0] or "holds the input" in err[0] or "is the input folder" in err[0]
        ), (args, err)
    assert md5(photo) == before and md5(clip) == clip_before
    assert (tmp_path / "x.safetensors").read_bytes() == b"not really"
    assert sorted(p.name for p in frames.iterdir()) == ["f0.png"]


def test_a_checkpoint_is_never_overwritten_by_the_model_trained_from_it(tmp_path, no_model, capsys):
    start = tmp_path / "mine.safetensors"
    start.write_bytes(b"weights")
    assert (
        main(["train", str(ROOT / "samples" / "shapes"), "-o", str(start), "--weights", str(start), "--overwrite"]) == 2
    )
    assert "is the input" in capsys.readouterr().err and start.read_bytes() == b"weights"


# --- never over an existing file unless asked ---------------------------------------------------------------------


def test_an_existing_output_is_refused_unless_overwrite_and_then_replaced_whole(photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert main(["dream", str(photo), "-o", str(out), *FAST]) == 2
    assert "already exists; add --overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["dream", str(photo), "-o", str(out), *FAST, "--overwrite"]) == 0
    assert load_image(out).shape == (1, 3, 64, 64) and leftovers(tmp_path) == []


def test_a_folder_run_gives_every_input_its_own_output(photo, tmp_path, capsys):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    shutil.copy(photo, pictures / "pic.png")
    Image.open(photo).convert("RGB").save(pictures / "pic.jpg")
    out = tmp_path / "out"
    assert main(["dream", str(pictures), "-o", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pic_jpg_dream.png", "pic_png_dream.png"]
    assert main(["dream", str(pictures), "-o", str(out), *FAST]) == 2  # said up front, both named
    err = capsys.readouterr().err
    assert "pic_jpg_dream.png" in err and "pic_png_dream.png" in err and "already exist" in err


def test_distinct_names_never_map_two_inputs_to_one_file():
    inputs = [Path("a/pic.png"), Path("a/pic.jpg"), Path("b/pic.png"), Path("c/other.png"), Path("c/other.png")]
    names = distinct_names(inputs)
    assert len(set(names.values())) == len(set(inputs))
    assert names[Path("c/other.png")] == "other_dream.png"


def test_a_frames_folder_of_a_longer_run_keeps_no_stale_frames(photo, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        shutil.copy(photo, frames / f"f{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    for i in range(6):  # an earlier, longer run
        (out / f"frame_{i:05d}.png").write_bytes(b"old")
    assert main(["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk"]) == 2
    assert "add --overwrite" in capsys.readouterr().err and len(list(out.iterdir())) == 6
    assert main(["video", str(frames), "-o", str(out), *FAST, "--flow", "ilk", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:05d}.png" for i in range(3)]
    assert leftovers(tmp_path) == []


# --- written whole or not at all ----------------------------------------------------------------------------------


def test_a_write_that_fails_half_way_leaves_the_previous_file_and_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "picture.png"
    target.write_bytes(b"the previous good file")
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as half:  # half of it on disk, then the disk is full
            half.truncate(Path(fp).stat().st_size // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError):
        save_image(torch.rand(3, 32, 32), target)
    assert target.read_bytes() == b"the previous good file" and leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_video_that_fails_half_way_leaves_nothing_under_its_name(tmp_path, monkeypatch, capsys):
    from dream_core import videoio

    real_write = videoio.VideoSink.write
    written = []

    def fail_on_third(self, frame):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        real_write(self, frame)

    monkeypatch.setattr(videoio.VideoSink, "write", fail_on_third)
    out = tmp_path / "out.mp4"
    assert main(["video", str(ROOT / "samples" / "pan.mp4"), "-o", str(out), *FAST, "--next-iterations", "1"]) == 1
    assert not out.exists() and leftovers(tmp_path) == []


# --- everything checked before the work ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dream", "PHOTO", "-o", "TMP/x.xyz"], "pictures are written as"),
        (["sweep", "PHOTO", "-o", "TMP/sheet.xyz"], "pictures are written as"),
        (["zoom", "PHOTO", "-o", "TMP/z.gif"], "animated .webp"),
        (["zoom", "PHOTO", "-o", "TMP/z.webp", "--fps", "0"], "--fps 0"),
        (["video", "CLIP", "-o", "TMP/v.mp4", "--fps", "0"], "--fps 0"),
        (["video", "CLIP", "-o", "TMP/v.mp4", "--fps", "1e9"], "at most 1000"),
        (["video", "CLIP", "-o", "TMP/v.xyz"], "write a video"),
        (["train", "SHAPES", "-o", "TMP/m.pt"], ".safetensors"),
        (["dream", "PHOTO", "-o", "TMP/afile/out.png"], "Cannot write into"),  # a folder that cannot be made
    ],
)
def test_outputs_formats_and_rates_are_checked_before_any_work(photo, tmp_path, no_model, capsys, args, message):
    (tmp_path / "afile").write_text("a file where a folder would have to be")
    paths = {"PHOTO": str(photo), "CLIP": str(ROOT / "samples" / "pan.mp4"), "SHAPES": str(ROOT / "samples" / "shapes")}
    args = [paths.get(a, a.replace("TMP", str(tmp_path))) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_webm_takes_the_bundled_clips_aac_audio_out_with_a_warning_up_front(tmp_path, capsys):
    import av

    out = tmp_path / "pan.webm"
    assert main(["video", str(ROOT / "samples" / "pan.mp4"), "-o", str(out), *FAST, "--next-iterations", "1"]) == 0
    err = capsys.readouterr().err
    assert "cannot hold aac audio" in err and err.index("warning") < err.index("frame 1")
    with av.open(str(out)) as container:
        assert len(container.streams.video) == 1 and not container.streams.audio


# --- signals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
@pytest.mark.slow
def test_a_stopped_video_render_leaves_no_file_that_looks_finished(tmp_path, sig, code):
    out = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dream_core",
            "video",
            str(ROOT / "samples" / "pan.mp4"),
            "-o",
            str(out),
            "--octaves",
            "1",
            "--iterations",
            "2",
            "--next-iterations",
            "2",
            "--flow",
            "ilk",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        # Ctrl-C as in a terminal, even where pytest itself runs in the background (a shell then starts it, and so
        # this child, with SIGINT ignored, and Python installs no KeyboardInterrupt handler over an ignored SIGINT).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    seen = ""
    while "frame 2" not in seen and time.monotonic() < deadline:  # a log: one line per frame
        line = process.stderr.readline()
        if not line:
            break
        seen += line
    assert "frame 2" in seen, seen
    process.send_signal(sig)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == code, rest
    assert not out.exists()  # neither half a file nor a finished-looking short one
    if sig != signal.SIGKILL:  # a kill cannot clean up: it leaves only the hidden work folder
        assert leftovers(tmp_path) == [] and len(rest.strip().splitlines()) == 2, rest
        assert "run the same command again" in rest


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.slow
def test_a_render_killed_half_way_goes_on_from_its_last_frame_and_ends_identical(tmp_path):
    flags = ["--octaves", "1", "--iterations", "2", "--next-iterations", "2", "--flow", "dis"]
    command = [sys.executable, "-m", "dream_core", "video", str(ROOT / "samples" / "pan.mp4"), *flags]
    whole = tmp_path / "whole.mp4"
    subprocess.run([*command, "-o", str(whole)], check=True, capture_output=True, cwd=ROOT, timeout=300)
    out = tmp_path / "resumed.mp4"
    process = subprocess.Popen([*command, "-o", str(out)], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen = ""
    while "frame 12/24" not in seen:
        line = process.stderr.readline()
        assert line, seen
        seen += line
    process.kill()  # no chance to clean up: as a crash or a reboot
    process.wait(timeout=60)
    assert not out.exists()
    done = len(list((tmp_path / ".resumed.mp4.work").glob("frame_*.png")))
    assert 12 <= done < 24
    again = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr
    kept = int(again.stderr.split("going on after frame ")[1].split()[0])  # frames whose state was saved
    assert 10 <= kept <= done  # the state of the frame being taken when killed may not be saved yet
    dreamed_again = [line for line in again.stderr.splitlines() if line.startswith("frame ")]
    assert len(dreamed_again) == 24 - kept  # only the frames that were left
    assert md5(out) == md5(whole)  # byte for byte what the uninterrupted render wrote
    assert not (tmp_path / ".resumed.mp4.work").exists() and leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_different_job_never_goes_on_from_another_ones_frames(tmp_path):
    flags = ["--octaves", "1", "--iterations", "1", "--next-iterations", "1", "--flow", "dis"]
    source = str(ROOT / "samples" / "pan.mp4")
    work = tmp_path / ".out.mp4.work"
    work.mkdir()
    (work / "job.json").write_text("{}")  # an earlier, different job
    (work / "frame_00000.png").write_bytes(b"stale")
    assert main(["video", source, "-o", str(tmp_path / "out.mp4"), *flags]) == 0
    assert len(_frames(tmp_path / "out.mp4")) == 24 and not work.exists()


# --- no silent garbage --------------------------------------------------------------------------------------------


def test_a_16_bit_grey_png_keeps_its_range(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image.shape == (1, 3, 64, 64)
    assert abs(float(image.mean()) - 0.5) < 0.01 and float((image > 0.99).float().mean()) < 0.02  # not 89% white


def test_a_huge_layer_weight_or_a_nan_checkpoint_is_refused_not_written_black(tmp_path, lite0, small_photo, capsys):
    from safetensors.torch import save_file

    from dream_core import load_feature_model
    from dream_core.objectives import parse_layer_weights

    with pytest.raises(DreamError, match="too large"):
        parse_layer_weights("blocks.6: 1e38")
    state = {
        k: v.contiguous().clone()
        for k, v in load_feature_model("efficientnet_lite0", "random", fold_batchnorm=False).net.state_dict().items()
    }
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][...] = float("nan")
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    with pytest.raises(DreamError, match="NaN or infinite"):
        load_feature_model("efficientnet_lite0", broken)
    # Whatever else makes the gradient non-finite stops the dream with one line.
    poisoned = load_feature_model("efficientnet_lite0", "random")
    next(iter(poisoned.net.parameters())).data.fill_(float("nan"))
    with pytest.raises(DreamError, match="became NaN or infinite"):
        dream(small_photo, poisoned, {"blocks.6": 1.0}, DreamSettings(octaves=1, iterations=2))


# --- nodes --------------------------------------------------------------------------------------------------------


def test_node_edge_cases_get_one_clear_message_each(lite0):
    from conftest import pack_module

    nodes = pack_module("nodes").NODE_CLASS_MAPPINGS
    image = torch.rand(1, 64, 64, 3)
    fast = {"octaves": 1, "iterations": 1}
    cases = {
        "no frames": (lambda: nodes["DreamVideo"].execute(torch.rand(0, 64, 64, 3), lite0, **fast), "no frames"),
        "mask batch 0": (
            lambda: nodes["OctaveDream"].execute(image, lite0, mask=torch.rand(0, 64, 64), **fast),
            "empty",
        ),
        "0x64 mask": (lambda: nodes["OctaveDream"].execute(image, lite0, mask=torch.rand(1, 0, 64), **fast), "empty"),
        "guide batch 0": (
            lambda: nodes["OctaveDream"].execute(image, lite0, guide=torch.rand(0, 8, 8, 3), **fast),
            "no image",
        ),
    }
    for call, message in cases.values():
        with pytest.raises(DreamError, match=message):
            call()
    tiny = nodes["DreamVideo"].execute(torch.rand(3, 11, 11, 3), lite0, **fast)[0]  # under DIS's 12 px: it works
    assert tiny.shape == (3, 11, 11, 3)


def test_the_train_node_reads_only_a_real_sub_folder_of_input(tmp_path, monkeypatch):
    import types

    from conftest import pack_module

    comfy_bridge = pack_module("nodes.comfy_bridge")
    inputs, outside = tmp_path / "input", tmp_path / "elsewhere"
    (inputs / "flowers" / "rose").mkdir(parents=True)
    outside.mkdir()
    monkeypatch.setattr(comfy_bridge, "folder_paths", types.SimpleNamespace(get_input_directory=lambda: str(inputs)))
    assert comfy_bridge.input_subfolder("flowers") == str((inputs / "flowers").resolve())
    for name in ("", "  ", ".", "..", str(outside)):
        with pytest.raises(ValueError, match="sub-folder of ComfyUI's input folder"):
            comfy_bridge.input_subfolder(name)
    (inputs / "flowers" / "secrets").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="leads outside"):
        comfy_bridge.input_subfolder("flowers")
