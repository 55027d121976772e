"""One option table: every flag and every widget reaches the engine, and only the table says what they are."""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pack_module
from PIL import Image

from dream_core import DreamError, DreamSettings, cli, options
from dream_core import engine as engine_module
from dream_core import job as job_module
from dream_core import parser as parser_module
from dream_core import render as render_module
from dream_core.commands import images as images_module
from dream_core.imageio import save_image
from dream_core.loading import load_feature_model
from dream_core.objectives import Layers
from dream_core.options import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("dream", "sweep", "zoom", "video")
dream_nodes = pack_module("nodes.dream_nodes")
creative_nodes = pack_module("nodes.creative_nodes")


def other_value(opt: options.Option):
    """A valid value of `opt` that is not its default."""
    if opt.choices:
        return next(c for c in opt.choices if c != opt.default)
    if opt.kind is bool:
        return not opt.default
    step = opt.step or 1
    value = opt.default + step
    if opt.maximum is not None and value > opt.maximum:
        value = opt.default - step
    return opt.kind(round(value, 6)) if opt.kind is float else value


def flag_args(opt: options.Option, value) -> list[str]:
    if opt.kind is bool:
        return [opt.flag if value else f"--no-{opt.flag[2:]}"]
    return [opt.flag, str(value)]


class Reached(Exception):
    """Raised by a stand-in engine function once it has seen the settings."""


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_photo):
    folder = tmp_path_factory.mktemp("inputs")
    photo = torch.nn.functional.interpolate(small_photo, size=(64, 64), mode="area")
    save_image(photo[0], folder / "photo.png")
    save_image(photo[0].flip(-2), folder / "guide.png")
    mask = torch.zeros(1, 64, 64)
    mask[..., 32:] = 1.0
    Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(folder / "mask.png")
    return folder


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_every_option_flag_reaches_the_settings_of_every_dreaming_command(monkeypatch, files, command, opt):
    seen = []

    def engine(images, model, objective, settings, *args, **kwargs):
        seen.append((settings, objective, kwargs))
        raise Reached

    monkeypatch.setattr(job_module, "load_feature_model", lambda *a, **k: _random_lite0())
    engines = {
        "dream": (engine_module, "dream"),
        "sweep": (images_module, "layer_sweep"),
        "zoom": (images_module, "dream_zoom"),
        "video": (render_module, "dream_video"),
    }
    monkeypatch.setattr(*engines[command], engine)
    value = other_value(opt)
    suffix = ".webp" if command == "zoom" else ".png"
    out = files / f"out_{command}{suffix}" if command != "video" else files / "out_video"
    source = files / "photo.png" if command != "video" else files  # a folder of frames
    call = parser_module.parse(
        [
            command,
            str(source),
            "-o",
            str(out),
            "--guide",
            str(files / "guide.png"),
            "--mask",
            str(files / "mask.png"),
            *flag_args(opt, value),
        ]
    )
    with pytest.raises(Reached):
        call()
    settings, objective, kwargs = seen[0]
    assert getattr(settings, opt.name) == value
    # Sweep and zoom take the guide (in the objective, every sweep line's) and the mask too.
    for each in objective if isinstance(objective, list) else [objective]:
        assert any(isinstance(part, Layers) and part.guide is not None for part in each.parts)
    assert kwargs["mask"] is not None


@functools.cache
def _random_lite0():
    return load_feature_model("efficientnet_lite0", "random")


video_nodes = pack_module("nodes.video_nodes")
NODE_CALLS = {  # node class, module whose engine function it calls, that function's name
    "OctaveDream": (dream_nodes, "dream"),
    "DreamVideo": (video_nodes, "dream_video"),
    "LayerSweep": (creative_nodes, "layer_sweep"),
    "DreamFrames": (creative_nodes, "dream_frames"),
    "DreamZoom": (creative_nodes, "dream_zoom"),
}


@pytest.mark.parametrize("node_name", NODE_CALLS)
@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_every_option_widget_of_every_dream_node_reaches_the_engine(monkeypatch, node_name, opt, small_photo):
    module, function = NODE_CALLS[node_name]
    seen = []

    def engine(images, model, objective, settings, *args, **kwargs):
        seen.append(settings)
        raise Reached

    monkeypatch.setattr(module, function, engine)
    node = getattr(module, node_name)
    types = node.INPUT_TYPES()
    widgets = {**types["required"], **types["optional"]}
    inputs = {name: spec[1]["default"] for name, spec in widgets.items() if "default" in spec[1]}
    shown = [o for o in OPTIONS if not o.nodes or node_name in o.nodes]
    assert {o.name for o in shown} <= set(inputs), "every option is a widget of every dream node (or of its own)"
    assert not {o.name for o in OPTIONS if o not in shown} & set(inputs), "a node's own option on no other node"
    # Options added after the first release come after every other input: saved widget values keep their places.
    names = [
        name
        for name, spec in {**types["required"], **types["optional"]}.items()
        if spec[0] in ("COMBO", "INT", "FLOAT", "BOOLEAN", "STRING")
    ]  # widgets, in order
    late = [o for o in shown if o.appended or o.nodes]
    assert all(names.index(o.name) > names.index(p.name) for o in late for p in shown if p not in late)
    assert [name for name in names if name in {o.name for o in late}] == [o.name for o in late]
    if opt not in shown:
        return
    inputs[opt.name] = other_value(opt)
    with pytest.raises(Reached):
        getattr(node(), node.FUNCTION)(small_photo.permute(0, 2, 3, 1), _random_lite0(), **inputs)
    assert getattr(seen[0], opt.name) == inputs[opt.name]


def test_a_default_changed_in_the_table_changes_the_widget_the_flag_and_the_readme(monkeypatch):
    changed = tuple(dataclasses.replace(o, default=5) if o.name == "octaves" else o for o in OPTIONS)
    monkeypatch.setattr(options, "OPTIONS", changed)  # the table only: every consumer reads it from there
    assert dream_nodes.OctaveDream.INPUT_TYPES()["required"]["octaves"][1]["default"] == 5
    assert creative_nodes.LayerSweep.INPUT_TYPES()["required"]["octaves"][1]["default"] == 5
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    help_text = commands["dream"].format_help()
    assert "(default 5;" in " ".join(help_text.split())
    assert "(default 5;" in cli.flags_markdown()


def test_the_readme_flag_table_is_the_parsers():
    import build_readme

    text = (ROOT / "README.md").read_text()
    assert build_readme.with_flags_table(text) == text, "run tools/build_readme.py"
    for opt in OPTIONS:
        assert f"`{opt.flag}`" in text


def test_validation_comes_from_the_table():
    for opt in OPTIONS:
        if opt.maximum is not None:
            with pytest.raises(DreamError, match=f"{opt.name} must be"):
                DreamSettings().with_options(**{opt.name: opt.kind(opt.maximum * 2 + 1)}).validate()
        if opt.choices:
            with pytest.raises(DreamError, match=f"{opt.name} must be one of"):
                DreamSettings().with_options(**{opt.name: "nonsense"}).validate()
        DreamSettings().with_options(**{opt.name: other_value(opt)}).validate()


# --- every flag changes the written picture, or is refused with a reason ----------------------------------------

BASE = ["--octaves", "2", "--iterations", "2", "--seed", "1", "--step", "0.05", "--jitter", "4", "--precision", "fp32"]
SETTING_FLAGS = {  # a value that must change the picture from BASE's
    "octaves": ["--octaves", "1"],
    "octave_scale": ["--octave-scale", "1.8"],
    "iterations": ["--iterations", "4"],
    "step": ["--step", "0.1"],
    "max_loss": ["--max-loss", "0.000001"],
    "jitter": ["--jitter", "0"],
    "seed": ["--seed", "2"],
    "loss": ["--loss", "mean"],
    "normalize": ["--normalize", "std"],
    "reinject_detail": ["--no-reinject-detail"],
    "tile_size": ["--tile-size", "32"],
    "keep_colors": ["--keep-colors", "luminance"],
    "grad_blur": ["--grad-blur", "2"],
    "tv_weight": ["--tv-weight", "50"],
    "guide_mix": ["--guide", "GUIDE", "--guide-mix", "0.5"],
    "precision": ["--precision", "bf16"],
    "precondition": ["--precondition", "lapnorm"],
    "scale_jitter": ["--scale-jitter", "0.2"],
    "rotate_jitter": ["--rotate-jitter", "10"],
    "seamless": ["--seamless"],
}
OTHER_FLAGS = {
    "layers": ["--layers", "blocks.3:1"],
    "weights": ["--weights", "random"],
    "guide": ["--guide", "GUIDE"],
    "mask": ["--mask", "MASK"],
    "region": ["--region", "MASK=blocks.3:1"],
    "learning_phase": ["--learning-phase", "training"],
    "network": ["--network", "efficientnet_lite0=blocks.10:1"],
}
REFUSED = {  # flags that cannot change this picture here: refused with a reason, nothing written
    "model": (["--model", "googlenet"], "googlenet"),
    "preset": (["--preset", "keras"], "inception_v3"),
    "weights_dir": (["--weights-dir", "WEIGHTS"], "--weights-dir"),
    "guide_mix_alone": (["--guide-mix", "0.5"], "--guide-mix only matters with --guide"),
    "device": (["--device", "cuda:7"], "--device cuda:7"),
}


def _run(command: str, files: Path, out: Path, extra: list[str]) -> int:
    extra = [
        a.replace("GUIDE", str(files / "guide.png"))
        .replace("MASK", str(files / "mask.png"))
        .replace("WEIGHTS", str(files))
        for a in extra
    ]
    if command == "zoom":
        extra += ["--frames", "2"]
    return cli.main([command, str(files / "photo.png"), "-o", str(out), *BASE, *extra])


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def cached_models():
    real = job_module.load_feature_model

    @functools.cache
    def cached(name, weights, weights_dir=None, device="cpu", learning_phase="inference"):
        return real(name, weights, weights_dir, device=device, learning_phase=learning_phase)

    return cached


@pytest.mark.parametrize("command", ("dream", "sweep", "zoom"))
@pytest.mark.slow
def test_every_dream_flag_changes_the_written_image_or_is_refused(
    monkeypatch, files, tmp_path, command, cached_models, capsys
):
    monkeypatch.setattr(job_module, "load_feature_model", cached_models)
    suffix = ".webp" if command == "zoom" else ".png"
    baseline = tmp_path / f"base{suffix}"
    assert _run(command, files, baseline, []) == 0
    base = _pixels(baseline)
    unchanged = []
    for name, extra in {**SETTING_FLAGS, **OTHER_FLAGS}.items():
        out = tmp_path / f"{name}{suffix}"
        assert _run(command, files, out, extra) == 0, name
        changed = _pixels(out)
        if changed.shape == base.shape and np.abs(changed - base).max() == 0:
            unchanged.append(name)
    assert unchanged == []
    capsys.readouterr()
    for name, (extra, reason) in REFUSED.items():
        out = tmp_path / f"refused_{name}{suffix}"
        assert _run(command, files, out, extra) != 0, name
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, (name, err)
        assert not out.exists()
    # Every dream flag of the parser is covered above.
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    # --output and --overwrite say where the picture goes, not what it is (tests/test_outputs.py).
    # -v says how much is logged (tests/test_hostile.py).
    covered = (
        set(SETTING_FLAGS)
        | set(OTHER_FLAGS)
        | set(REFUSED)
        | {"output", "overwrite", "help", "preset", "model", "verbose"}
    )
    command_only = {
        "frames_every",
        "save_octaves",
        "line",
        "columns",
        "frames",
        "zoom",
        "angle",
        "shift_x",
        "shift_y",
        "fps",
        "schedule",  # the zoom's settings over its frames: tests/test_schedule.py
        "blend_to",  # a blend schedule's target: tests/test_schedule.py
        "react",  # settings that follow a sound file: tests/test_audio.py
        "audio",
        "band",
        "attack",
        "release",
        "loop",  # tests/test_loop.py
    }
    # How the work is spread, never what it makes: tests/test_cluster.py checks the same pixels come out.
    spread = {"ray", "workers", "worker_threads"}
    dests = {a.dest for a in sub._actions if a.option_strings} - command_only - spread
    assert dests <= covered | {"weights_dir", "device"}
