"""The ComfyUI nodes, exercised without ComfyUI, and the example workflows' validity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import build_workflows
import pytest
import torch
from conftest import pack_module

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


samples = pack_module("nodes.samples")


@pytest.fixture(scope="module")
def pack():
    """The repository imported as ComfyUI imports a pack: a package from its __init__.py."""
    assert "comfy" not in sys.modules and "folder_paths" not in sys.modules
    return build_workflows.load_pack()


@pytest.fixture(scope="module")
def nodes(pack):
    return pack.nodes.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def model(nodes):
    return nodes["LoadFeatureModel"].execute("efficientnet_lite0", "imagenet")[0]


def _image_bhwc(small_photo: torch.Tensor) -> torch.Tensor:
    return small_photo.permute(0, 2, 3, 1).contiguous()


NODE_IDS = {
    "AudioEnvelope",
    "LoadFeatureModel",
    "LayerWeights",
    "OctaveDream",
    "DetailReinject",
    "DreamRegion",
    "DreamNetwork",
    "LayerSweep",
    "DreamFrames",
    "DreamZoom",
    "DreamVideo",
    "DreamVideoFile",
    "TrainFeatureModel",
    "ChannelPictures",
    "DreamSchedule",
}
"""Every node id a saved workflow may name: one renamed or lost breaks users' workflows."""


def test_the_pack_imports_without_comfyui_and_lists_its_nodes(pack):
    assert set(pack.nodes.NODE_CLASS_MAPPINGS) == NODE_IDS
    assert set(pack.nodes.NODE_DISPLAY_NAME_MAPPINGS) == NODE_IDS


def test_every_input_is_well_formed(nodes):
    for name, cls in nodes.items():
        assert cls.CATEGORY == "DeepDream" and len(cls.DESCRIPTION) > 40, name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES), name
        for inputs in cls.INPUT_TYPES().values():
            for input_name, spec in inputs.items():
                options = spec[1]
                assert len(options.get("tooltip", "")) > 10, f"{name}.{input_name} has no tooltip"
                if spec[0] in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"], f"{name}.{input_name}"
                if spec[0] == "COMBO":
                    assert options["default"] in options["options"], f"{name}.{input_name}"


def test_octave_dream_node_defaults_are_the_engine_defaults(nodes):
    from dream_core import DreamSettings

    types = nodes["OctaveDream"].INPUT_TYPES()
    widgets = {**types["required"], **types["optional"]}
    for field, value in vars(DreamSettings()).items():
        assert widgets[field][1]["default"] == value, field


def test_octave_dream_dreams_a_whole_batch_and_returns_octave_frames(nodes, model, small_photo):
    batch = _image_bhwc(torch.cat([small_photo, small_photo.flip(-1), 1 - small_photo]))
    out, frames = nodes["OctaveDream"].execute(
        batch,
        model,
        octaves=2,
        octave_scale=1.4,
        iterations=3,
        step=0.02,
        max_loss=0.0,
        jitter=8,
        seed=1,
        loss="l2",
        normalize="mean_abs",
        reinject_detail=True,
    )
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert frames.shape == (6, *batch.shape[1:])  # 3 images x 2 octaves, at the final size
    for i in range(3):
        assert (out[i] - batch[i]).abs().mean() > 0.005
        assert torch.allclose(frames[2 * i + 1], out[i])  # the last octave is the result


def test_octave_dream_masks_and_rgba_and_inference_mode(nodes, model, small_photo):
    image = _image_bhwc(small_photo)
    rgba = torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)
    args = dict(
        octaves=2,
        octave_scale=1.4,
        iterations=3,
        step=0.02,
        max_loss=0.0,
        jitter=8,
        seed=1,
        loss="l2",
        normalize="mean_abs",
        reinject_detail=True,
    )
    node = nodes["OctaveDream"]()
    with torch.inference_mode():  # as ComfyUI runs nodes
        plain = node.execute(image, model, **args)[0]
        ones = node.execute(rgba, model, **args, mask=torch.ones(1, 32, 32))[0]
        zeros = node.execute(image, model, **args, mask=torch.zeros(64, 64))[0]
    assert torch.equal(plain, ones)
    assert (zeros - image).abs().max() < 1 / 255


def test_layer_weights_parse_merge_and_never_mutate_their_input(nodes, model, small_photo):
    node = nodes["LayerWeights"]()
    first = node.execute("blocks.6: 1.0\nblocks.8: 1.5", 2.0)[0]
    assert {str(t): w for t, w in first.items()} == {"blocks.6": 2.0, "blocks.8": 3.0}
    frozen = dict(first)
    merged = node.execute("blocks.8: 1", 1.0, layer_weights=first)[0]
    assert {str(t): w for t, w in merged.items()} == {"blocks.6": 2.0, "blocks.8": 4.0}
    assert first == frozen and merged is not first
    bad = node.execute("mixed4: 1", 1.0)[0]
    from dream_core.errors import UnknownLayerError  # the pack's engine is this one, not a copy

    args = dict(
        octaves=1,
        octave_scale=1.4,
        iterations=1,
        step=0.01,
        max_loss=0.0,
        jitter=0,
        seed=0,
        loss="l2",
        normalize="mean_abs",
        reinject_detail=True,
    )
    with pytest.raises(UnknownLayerError, match="blocks.6"):
        nodes["OctaveDream"].execute(_image_bhwc(small_photo), model, **args, layer_weights=bad)


def test_a_dream_leaves_the_shared_feature_model_as_it_was(nodes, model, small_photo):
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    device = model.device
    args = dict(
        octaves=1,
        octave_scale=1.4,
        iterations=2,
        step=0.01,
        max_loss=0.0,
        jitter=4,
        seed=0,
        loss="l2",
        normalize="mean_abs",
        reinject_detail=True,
    )
    a = nodes["OctaveDream"].execute(_image_bhwc(small_photo), model, **args)[0]
    b = nodes["OctaveDream"].execute(_image_bhwc(small_photo), model, **args)[0]
    assert torch.equal(a, b)
    assert model.device == device and not any(m._forward_hooks for m in model.net.modules())
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())


def test_detail_reinject_node_enlarges_and_restores_detail(nodes, small_photo):
    original = _image_bhwc(small_photo)
    shrunk = torch.nn.functional.interpolate(small_photo, size=(64, 60), mode="bilinear")
    out = nodes["DetailReinject"].execute(_image_bhwc(shrunk), original, width=0, height=0, strength=1.0)[0]
    assert out.shape == original.shape
    assert (out - original).abs().max() < 1e-5
    sized = nodes["DetailReinject"].execute(_image_bhwc(shrunk), original, width=200, height=96, strength=1.0)[0]
    assert sized.shape == (1, 96, 200, 3)


def test_load_feature_model_names_the_folder_when_offline(nodes, monkeypatch):
    import urllib.error

    def offline(url, folder):
        raise urllib.error.URLError("no network")

    from dream_core import weights as pack_weights

    monkeypatch.setattr(pack_weights, "_download", offline)
    with pytest.raises(pack_weights.WeightsNotFoundError, match="vgg16-397923af.pth"):
        nodes["LoadFeatureModel"].execute("vgg16", "imagenet")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_example_workflows_use_only_existing_nodes_and_inputs(path):
    info = build_workflows.object_info()
    workflow = json.loads(path.read_text())
    assert {"nodes", "links"} <= set(workflow)  # UI format, which the template browser lists
    by_id = {node["id"]: node for node in workflow["nodes"]}
    for node in workflow["nodes"]:
        entry = info.get(node["type"])
        assert entry is not None, f"{path.name}: unknown node type {node['type']}"
        expected = build_workflows.widget_values(node["type"], entry, {})
        assert len(node["widgets_values"]) == len(expected), f"{path.name}: {node['type']} widgets"
        link_inputs = {
            name: spec[0]
            for section in ("required", "optional")
            for name, spec in entry["input"].get(section, {}).items()
            if not build_workflows.is_widget(spec)
        }
        widget_inputs = {
            name: spec[0]
            for section in ("required", "optional")
            for name, spec in entry["input"].get(section, {}).items()
        }
        for item in node["inputs"]:
            expected_type = widget_inputs.get(item["name"]) if "widget" in item else link_inputs.get(item["name"])
            assert expected_type == item["type"], f"{path.name}: {node['type']}.{item['name']}"
        for name, spec in entry["input"].get("required", {}).items():
            if not build_workflows.is_widget(spec):
                assert any(i["name"] == name and i["link"] for i in node["inputs"]), f"{node['type']}.{name}"
        if node["type"] == "LoadImage":  # on a fresh ComfyUI input/ holds example.png; the rest are samples
            image = node["widgets_values"][0]
            assert image == "example.png" or samples.sample_path(image).is_file(), f"{path.name}: {image}"
        if node["type"] == "TrainFeatureModel":
            assert samples.sample_path(node["widgets_values"][0]).is_dir(), f"{path.name}: training folder"
    for _link, src, slot, dst, dst_slot, kind in workflow["links"]:
        assert by_id[src]["outputs"][slot]["type"] == kind
        assert by_id[dst]["inputs"][dst_slot]["type"] == kind


def test_example_workflows_are_up_to_date_with_the_nodes():
    info = build_workflows.object_info()
    for name, build in build_workflows.WORKFLOWS.items():
        saved = json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())
        assert saved == json.loads(json.dumps(build(info))), f"run tools/build_workflows.py ({name})"


def test_every_node_has_an_up_to_date_help_page_whose_pictures_exist(pack):
    import re

    import build_node_docs as node_docs

    assert pack.WEB_DIRECTORY == "./web"
    pages = node_docs.pages()
    assert set(pages) == {f"{name}.md" for name in pack.nodes.NODE_CLASS_MAPPINGS}
    for file_name, text in pages.items():
        assert (ROOT / "web" / "docs" / file_name).read_text() == text, f"run tools/build_node_docs.py ({file_name})"
        pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
        assert pictures, file_name
        for picture in pictures:  # the frontend resolves them against docs/
            assert (ROOT / "web" / "docs" / picture).is_file(), f"{file_name}: {picture}"


def test_every_example_workflow_has_a_thumbnail_for_the_template_browser():
    from PIL import Image

    for path in WORKFLOWS:
        with Image.open(path.with_suffix(".jpg")) as thumbnail:
            assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 256, path.name


def test_changed_files_and_folders_make_comfyui_run_the_loaders_again(nodes, tmp_path):
    assert nodes["LoadFeatureModel"].fingerprint_inputs("efficientnet_lite0", "imagenet") == "imagenet"
    missing = nodes["LoadFeatureModel"].fingerprint_inputs("efficientnet_lite0", "gone.safetensors")
    assert missing != missing  # NaN: never cached, so the error is shown again
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.png").write_bytes(b"x")
    before = nodes["TrainFeatureModel"].fingerprint_inputs(str(tmp_path), epochs=1)
    assert before == nodes["TrainFeatureModel"].fingerprint_inputs(str(tmp_path), epochs=1)
    (tmp_path / "a" / "2.png").write_bytes(b"y")
    assert nodes["TrainFeatureModel"].fingerprint_inputs(str(tmp_path), epochs=1) != before


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_every_dreaming_node_runs_under_inference_mode_where_device_moves_copy(nodes, small_photo, precision):
    # As on a GPU host: ComfyUI's inference mode around the node, and moves that make new
    # tensors (the autouse fixture). The model in the cache must stay usable after.
    from dream_core.memory import step_bytes_per_pixel

    step_bytes_per_pixel.cache_clear()  # measured afresh here, under inference mode as in ComfyUI
    image = _image_bhwc(small_photo)
    fast = dict(octaves=1, iterations=2, precision=precision)
    with torch.inference_mode():
        model = nodes["LoadFeatureModel"].execute("efficientnet_lite0", "imagenet")[0]
        for _ in range(2):  # a second run finds the model where the first left it
            out = nodes["OctaveDream"].execute(image, model, **fast)[0]
            assert (out - image).abs().mean() > 0.002
        frames = nodes["DreamVideo"].execute(torch.cat([image, image]), model, **fast)[0]
        assert frames.shape == (2, *image.shape[1:])
        nodes["LayerSweep"].execute(image, model, "blocks.6: 1", **fast)
    assert not any(t.is_inference() for t in model.net.state_dict().values())
