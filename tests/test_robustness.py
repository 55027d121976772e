"""Hostile input: property-based tests over the option space and the layer-weight
parser, and one fault-injection test per case of the robustness issue."""

from __future__ import annotations

import logging
import math
import sys
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from dream_core import (
    DreamCancelled,
    DreamError,
    DreamSettings,
    UnknownLayerError,
    dream,
    load_feature_model,
    parse_layer_weights,
)
from dream_core.devices import PRECISIONS
from dream_core.objectives import LOSS_MODES, Term, parse_term
from dream_core.options import COLOR_MODES, NORMALIZATIONS

ONE_EPOCH = {"epochs": 1, "learning_rate": 1e-3, "unfreeze_blocks": 0, "seed": 0}  # Train Feature Model's widgets

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"blocks.3": 1.0}
TINY = DreamSettings(octaves=1, iterations=1, jitter=0, precision="fp32")

# ---------------------------------------------------------------- property-based

option_values = st.fixed_dictionaries(
    {
        "octaves": st.integers(-2, 6),
        "octave_scale": st.one_of(st.floats(0.5, 3.0), st.sampled_from([math.inf, math.nan])),
        "iterations": st.integers(-1, 2),
        "step": st.one_of(st.floats(-0.1, 0.2), st.just(math.nan)),
        "max_loss": st.floats(-1.0, 50.0),
        "jitter": st.integers(-4, 40),
        "seed": st.integers(0, 2**63 - 1),
        "loss": st.sampled_from([*LOSS_MODES, "l3"]),
        "normalize": st.sampled_from([*NORMALIZATIONS, "none"]),
        "tile_size": st.integers(-1, 200),
        "precision": st.sampled_from([*PRECISIONS, "auto", "int8"]),
        "keep_colors": st.sampled_from([*COLOR_MODES, "sepia"]),
        "grad_blur": st.floats(-1.0, 3.0),
        "tv_weight": st.floats(-1.0, 10.0),
        "guide_mix": st.floats(-0.5, 1.5),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=option_values, size=st.tuples(st.integers(1, 70), st.integers(1, 70)))
def test_any_options_end_in_an_image_or_a_clear_error(lite0, options, size):
    """Every combination either dreams a finite image of the input's shape or raises a
    DreamError naming the bad option; nothing else escapes."""
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    try:
        settings_ = DreamSettings().with_options(**options).validate()
    except DreamError as err:
        assert "Invalid dream settings" in str(err)
        return
    # Keep each example quick: the option space, not the runtime, is under test.
    settings_ = settings_.with_options(iterations=min(settings_.iterations, 1), octaves=min(settings_.octaves, 2))
    try:
        out = dream(image, lite0, LAYERS, settings_).images
    except DreamError as err:
        assert "too thin" in str(err)
        return
    assert out.shape == image.shape and bool(torch.isfinite(out).all())
    assert out.min() >= 0 and out.max() <= 1


names = st.text(alphabet="abcxyz_.0123456789[]-:,;=\n ", min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(text=names)
def test_the_layer_weight_parser_returns_finite_weights_or_a_clear_error(text):
    try:
        parsed = parse_layer_weights(text)
    except DreamError as err:
        assert "weight" in str(err).lower()
        return
    assert all(isinstance(k, Term) and str(k) and math.isfinite(v) for k, v in parsed.items())


@settings(max_examples=60, deadline=None)
@given(
    weights=st.dictionaries(
        st.sampled_from(["blocks.3", "block3", "_blocks.3", "blocks.5", "stem"]),
        st.floats(-5, 5, allow_nan=False),
        max_size=4,
    )
)
def test_aliases_of_a_layer_add_up_and_zeros_drop(lite0, weights):
    resolved = lite0.resolve_weights(weights)
    assert all(v != 0 for v in resolved.values())
    total = sum(v for k, v in weights.items() if lite0.resolve_layer(k).name == "blocks.3")
    assert math.isclose(resolved.get(Term("blocks.3"), 0.0), total, abs_tol=1e-9)


@settings(max_examples=50, deadline=None)
@given(selector=st.text(alphabet="0123456789,- topbm", max_size=12))
def test_channel_selectors_never_escape_the_layer(lite0, selector):
    try:
        resolved = lite0.resolve_weights({f"blocks.3[{selector}]": 1.0})
    except DreamError as err:
        assert "blocks.3" in str(err) or "selector" in str(err).lower()
        return
    (term,) = resolved
    if not term.top:
        assert term.channels and all(0 <= c < 40 for c in term.channels)
        assert parse_term(str(term)) == term  # its text (ranges like 0-3) reads back as the same term


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("side", [1, 2, 7, 16])
def test_tiny_images_are_dreamed_and_the_user_is_told(lite0, side, caplog):
    image = torch.rand(1, 3, side, side)
    with caplog.at_level(logging.WARNING):
        out = dream(image, lite0, LAYERS, TINY).images
    assert out.shape == image.shape and "scaled back down" in caplog.text


def test_nan_and_inf_pixels_are_replaced_and_reported(lite0, caplog):
    image = torch.rand(1, 3, 40, 40)
    image[0, 0, :3, :3] = math.nan
    image[0, 1, 5, 5] = math.inf
    with caplog.at_level(logging.WARNING):
        out = dream(image, lite0, LAYERS, TINY).images
    assert bool(torch.isfinite(out).all()) and "10 NaN or infinite" in caplog.text


def test_grey_and_rgba_images_from_other_nodes(pack_nodes, lite0):
    node = pack_nodes["OctaveDream"]()
    args = dict(octaves=1, iterations=1, jitter=0)
    grey = node.execute(torch.rand(2, 48, 40, 1), lite0, **args)[0]
    rgba = node.execute(torch.rand(1, 48, 40, 4), lite0, **args)[0]
    assert grey.shape == (2, 48, 40, 3) and rgba.shape == (1, 48, 40, 3)
    with pytest.raises(Exception, match="1, 3 or 4 channels"):  # the pack's own DreamError class
        node.execute(torch.rand(1, 48, 40, 2), lite0, **args)


def test_masks_of_another_size_and_squeezed_masks(lite0):
    image = torch.rand(2, 3, 40, 48)
    for mask in (torch.ones(7, 9), torch.ones(1, 100, 100), torch.ones(2, 1, 40, 48)):
        assert dream(image, lite0, LAYERS, TINY, mask=mask).images.shape == image.shape
    with pytest.raises(DreamError, match="mask must be"):
        dream(image, lite0, LAYERS, TINY, mask=torch.ones(2, 2, 2, 2, 2))


def test_zero_negative_and_empty_layer_weights(lite0, caplog):
    image = torch.rand(1, 3, 40, 40)
    with caplog.at_level(logging.WARNING):
        same = dream(image, lite0, {"blocks.3": 0.0}, TINY).images
    assert torch.equal(same, image) and "zero" in caplog.text
    negative = dream(image, lite0, {"blocks.3": -1.0}, TINY.with_options(iterations=3)).images
    from dream_core import objective_value

    assert objective_value(lite0, negative, {"blocks.3": 1.0}) < objective_value(lite0, image, {"blocks.3": 1.0})
    with pytest.raises(DreamError, match="No layers"):
        dream(image, lite0, {}, TINY)


# ---------------------------------------------------------------- model files


def _lite_state() -> dict[str, torch.Tensor]:
    net = load_feature_model("efficientnet_lite0", "random", fold_batchnorm=False).net
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def test_corrupted_files_give_clear_errors(tmp_path):
    from dream_core import WeightsMismatchError

    good = tmp_path / "good.safetensors"
    save_file(_lite_state(), str(good))
    flipped = bytearray(good.read_bytes())
    flipped[20:60] = b"\xff" * 40  # the JSON header
    (tmp_path / "header.safetensors").write_bytes(bytes(flipped))
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello")
    for name in ("header.safetensors", "empty.pth", "text.pt"):
        with pytest.raises(WeightsMismatchError):
            load_feature_model("efficientnet_lite0", tmp_path / name)


def test_path_traversal_in_a_workflow_reads_nothing_outside_the_model_folders(tmp_path, monkeypatch, pack):
    """A crafted workflow names '../../secret.safetensors': the node resolves model
    names only inside the model folders, as ComfyUI's folder_paths does."""
    bridge = sys.modules[f"{pack.__name__}.nodes.comfy_bridge"]
    models = tmp_path / "models" / "deepdream"
    models.mkdir(parents=True)
    save_file(_lite_state(), str(tmp_path / "secret.safetensors"))

    class FolderPaths:  # ComfyUI's resolution: a name is made relative before joining
        @staticmethod
        def get_full_path(folder, name):
            import os

            candidate = os.path.join(models, os.path.relpath(os.path.join("/", name), "/"))
            return candidate if os.path.isfile(candidate) else None

        @staticmethod
        def get_folder_paths(folder):
            return [str(models)]

        @staticmethod
        def get_input_directory():
            return str(tmp_path / "input")

    monkeypatch.setattr(bridge, "folder_paths", FolderPaths)
    node = pack.nodes.NODE_CLASS_MAPPINGS["LoadFeatureModel"]()
    for name in ("../../secret.safetensors", "../secret.safetensors", str(tmp_path / "secret.safetensors")):
        with pytest.raises(FileNotFoundError, match="not in the DeepDream model folders"):
            node.execute("efficientnet_lite0", name)
    train = pack.nodes.NODE_CLASS_MAPPINGS["TrainFeatureModel"]()
    for folder in ("../", "/etc", "../../somewhere"):
        with pytest.raises(ValueError, match="sub-folder of ComfyUI's input folder"):
            train.execute(folder, "efficientnet_lite0", "imagenet", "x", **ONE_EPOCH)
    with pytest.raises(ValueError, match="no folders"):
        train.execute("ok", "efficientnet_lite0", "imagenet", "../evil", **ONE_EPOCH)


# ---------------------------------------------------------------- runtime


def test_cancel_inside_a_tiled_step_and_the_model_still_works(lite0):
    image = torch.rand(1, 3, 200, 200)
    calls = []

    def stop_on_the_third_tile() -> bool:
        calls.append(1)
        return len(calls) == 3

    tiled = TINY.with_options(tile_size=64)
    with pytest.raises(DreamCancelled):
        dream(image, lite0, LAYERS, tiled, should_stop=stop_on_the_third_tile)
    assert len(calls) == 3  # once before the step, then inside it between tiles
    assert not any(m._forward_hooks for m in lite0.net.modules())
    a = dream(image, lite0, LAYERS, tiled).images
    b = dream(image, lite0, LAYERS, tiled).images
    assert torch.equal(a, b)


def test_two_dreams_sharing_a_model_at_once_get_their_own_results(lite0):
    # ComfyUI runs one prompt at a time, but scripts may use threads: results must
    # still match what each dream gives alone, and the weights stay bit-identical.
    before = {k: v.clone() for k, v in lite0.net.state_dict().items()}
    images = [torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    alone = [dream(im, lite0, LAYERS, TINY.with_options(iterations=2)).images for im in images]
    results: list = [None, None]
    lock = threading.Lock()

    def run(i: int) -> None:
        with lock:  # the model's taps are not thread-safe: serialise, as ComfyUI does
            results[i] = dream(images[i], lite0, LAYERS, TINY.with_options(iterations=2)).images

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(r, a) for r, a in zip(results, alone, strict=True))
    assert all(torch.equal(before[k], v) for k, v in lite0.net.state_dict().items())


def test_unknown_layer_from_a_shared_workflow_names_the_valid_ones(lite0):
    with pytest.raises(UnknownLayerError, match="blocks.6"):
        dream(torch.rand(1, 3, 40, 40), lite0, {"mixed4": 1.0}, TINY)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pack():
    import build_workflows

    return build_workflows.load_pack()


@pytest.fixture(scope="module")
def pack_nodes(pack):
    return pack.nodes.NODE_CLASS_MAPPINGS


@pytest.mark.parametrize(
    "text",
    [
        "blocks.6[0-99999999999]:1",
        "blocks.6[0-9999999]: 1",
        "blocks.6[5,99999999]:1",
        "blocks.6[" + ",".join(map(str, range(70000, 70100))) + "]:1",
    ],
)
def test_a_huge_channel_range_is_refused_at_once_in_the_cli_and_the_node(text, capsys):
    import time
    import tracemalloc

    from conftest import pack_module

    from dream_core.cli import main

    node = pack_module("nodes.model_nodes").LayerWeights()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        assert main(["dream", "samples/astronaut.png", "-o", "never.png", "--layers", text]) == 2
        with pytest.raises(DreamError, match="beyond any layer"):
            node.execute(text, 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5 << 20, peak  # flat: nothing expanded (the old parser grew to 24 GB)
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and len(message[0]) < 300 and "beyond any layer" in message[0]
    assert not Path("never.png").exists()
