"""The pack as a guest of ComfyUI: samples provided on a fresh install, memory asked of the host.

ComfyUI is not installed here: its prompt server and model management are replaced by
stand-ins that record what the pack asks of them.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy
import pytest
import torch
from conftest import pack_module

from dream_core import DreamSettings
from dream_core.memory import IMAGE_COPIES, estimate_dream_memory, model_bytes

ONE_EPOCH = {"epochs": 1, "learning_rate": 1e-3, "unfreeze_blocks": 0, "seed": 0}  # Train Feature Model's widgets

ROOT = Path(__file__).resolve().parents[1]
samples = pack_module("nodes.samples")
comfy_bridge = pack_module("nodes.comfy_bridge")
dream_nodes = pack_module("nodes.dream_nodes")
SAMPLE = "deepdream_samples/astronaut.png"
TRAINING = "deepdream_samples/shapes"


def _request(*values: str) -> dict:
    """A POST /prompt body whose nodes' inputs carry these values."""
    prompt = {str(i): {"class_type": "LoadImage", "inputs": {"image": value}} for i, value in enumerate(values)}
    prompt["x"] = {"class_type": "Other", "inputs": {"link": ["0", 0], "number": 3}}
    return {"prompt": prompt, "client_id": "test"}


def test_a_prompt_naming_samples_gets_them_copied_into_an_empty_input_folder(tmp_path):
    written = samples.provide_samples(_request(SAMPLE, f"{TRAINING} [input]", "deepdream_samples/coffee.jpg"), tmp_path)
    copied = tmp_path / "deepdream_samples"
    assert (copied / "astronaut.png").read_bytes() == (ROOT / "samples" / "astronaut.png").read_bytes()
    assert (copied / "coffee.jpg").is_file()
    bundled = sorted(p.relative_to(ROOT / "samples") for p in (ROOT / "samples" / "shapes").rglob("*") if p.is_file())
    assert sorted(p.relative_to(copied) for p in (copied / "shapes").rglob("*") if p.is_file()) == bundled
    assert len(written) == len(bundled) + 2
    assert not list(tmp_path.rglob("*.partial"))
    assert samples.provide_samples(_request(SAMPLE), tmp_path) == []  # the second time: nothing to do


def test_pictures_and_clips_are_named_at_the_top_of_the_input_folder_the_only_level_the_core_lists(tmp_path):
    """`deepdream_NAME` is `samples/NAME` copied to the top of input/ (the 2026 frontend flags a Load Image value
    that the core's list lacks, and the core lists no sub-folder); the earlier names keep working."""
    request = _request("deepdream_astronaut.png", "deepdream_pan.mp4 [input]", "deepdream_samples\\coffee.jpg")
    written = samples.provide_samples(request, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "deepdream_astronaut.png",
        "deepdream_pan.mp4",
        "deepdream_samples/coffee.jpg",
    ]
    assert (tmp_path / "deepdream_astronaut.png").read_bytes() == (ROOT / "samples" / "astronaut.png").read_bytes()
    mine = tmp_path / "deepdream_coffee.jpg"
    mine.write_bytes(b"my own coffee")
    assert samples.provide_samples(_request("deepdream_coffee.jpg", "deepdream_astronaut.png"), tmp_path) == []
    assert mine.read_bytes() == b"my own coffee"  # a user's file of that name is theirs


def test_files_the_user_already_has_are_never_overwritten_or_deleted(tmp_path):
    mine = tmp_path / "deepdream_samples" / "astronaut.png"
    mine.parent.mkdir()
    mine.write_bytes(b"my own picture")
    other = tmp_path / "holiday.png"
    other.write_bytes(b"holiday")
    samples.provide_samples(_request(SAMPLE, "holiday.png"), tmp_path)
    assert mine.read_bytes() == b"my own picture"
    assert other.read_bytes() == b"holiday"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["astronaut.png", "deepdream_samples", "holiday.png"]


@pytest.mark.parametrize(
    "value",
    [
        "astronaut.png",
        "example.png",
        "deepdream_samples/../samples/astronaut.png",
        "deepdream_samples/..",
        "/deepdream_samples/astronaut.png",
        "deepdream_samples/README.md",
        "deepdream_samples/missing.png",
        "deepdream_samples",
        "other/deepdream_samples/astronaut.png",
        "deepdream_",
        "deepdream_README.md",
        "deepdream_shapes",
        "deepdream_../samples/astronaut.png",
        "deepdream_missing.png",
        "sub/deepdream_astronaut.png",
        7,
        None,
    ],
)
def test_values_that_name_no_bundled_sample_copy_nothing(tmp_path, value):
    assert samples.sample_path(value) is None
    request = _request("x")
    request["prompt"]["0"]["inputs"]["image"] = value
    samples.provide_samples(request, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_opening_a_workflow_in_the_frontend_provides_its_samples_too(tmp_path):
    assert (ROOT / "web" / "js" / "samples.js").read_text().count(samples.ROUTE) == 1  # the extension's call
    written = samples.provide_for_values(["deepdream_samples/coffee.jpg", 3, None, "my.png"], tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["deepdream_samples/coffee.jpg"]


def test_a_malformed_request_is_passed_through_untouched(tmp_path):
    for request in ({}, {"prompt": "nonsense"}, {"prompt": {"1": "not a node"}}, []):
        assert samples.provide_samples(request, tmp_path) == []


def test_the_handler_is_registered_with_comfyuis_prompt_server_and_runs_before_validation(monkeypatch, tmp_path):
    handlers = []
    server = types.ModuleType("server")
    server.PromptServer = type("PromptServer", (), {})
    server.PromptServer.instance = types.SimpleNamespace(add_on_prompt_handler=handlers.append)
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_input_directory = lambda: str(tmp_path)
    monkeypatch.setitem(sys.modules, "server", server)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    samples.register_sample_provider()
    assert len(handlers) == 1
    request = _request(SAMPLE)
    assert handlers[0](request) is request  # ComfyUI queues what the handler returns
    assert (tmp_path / SAMPLE).is_file()


def test_outside_comfyui_registering_does_nothing():
    assert "server" not in sys.modules
    samples.register_sample_provider()  # no error, no files


def test_every_example_workflow_names_only_pictures_a_fresh_comfyui_has_or_the_pack_provides(tmp_path):
    for path in sorted((ROOT / "example_workflows").glob("*.json")):
        workflow = json.loads(path.read_text())
        values = [v for node in workflow["nodes"] for v in node.get("widgets_values", []) if isinstance(v, str)]
        request = {"prompt": {str(i): {"inputs": {"value": v}} for i, v in enumerate(values)}}
        samples.provide_samples(request, tmp_path)
        for node in workflow["nodes"]:
            if node["type"] == "LoadImage":
                assert (tmp_path / node["widgets_values"][0]).is_file() or node["widgets_values"][0] == "example.png"
            if node["type"] == "TrainFeatureModel":
                assert len(list((tmp_path / node["widgets_values"][0]).rglob("*.jpg"))) >= 30


# --- memory -------------------------------------------------------------------------------------------------------


class StandInModelManagement:
    """Records what the pack asks of ComfyUI's model management."""

    def __init__(self, vram_state: str = "NORMAL_VRAM") -> None:
        self.vram_state = types.SimpleNamespace(name=vram_state)
        self.calls: list[tuple] = []
        self.model = None

    def get_torch_device(self):
        return torch.device("cpu")

    def intermediate_device(self):
        return torch.device("cpu")

    def free_memory(self, memory_required, device, keep_loaded=()):
        self.calls.append(("free_memory", int(memory_required), torch.device(device)))

    def soft_empty_cache(self, force=False):
        self.calls.append(("soft_empty_cache",))

    def unet_offload_device(self):
        return torch.device("cpu")

    def load_models_gpu(
        self, models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False
    ):
        self.calls.append(
            ("load_models_gpu", tuple(models), int(memory_required), force_full_load, torch.is_inference_mode_enabled())
        )
        for patcher in models:  # as ComfyUI's ModelPatcher.load does: the module moved as a whole
            patcher.model.to(patcher.load_device)

    def throw_exception_if_processing_interrupted(self):
        pass


class StandInModelPatcher:
    """comfy.model_patcher.ModelPatcher's constructor, as the pack calls it."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device


@pytest.fixture(scope="module")
def random_lite0():
    from dream_core.loading import load_feature_model

    return load_feature_model("efficientnet_lite0", "random")


def test_the_estimate_counts_weights_activations_of_the_largest_tile_and_images(random_lite0):
    settings = DreamSettings(precision="fp32")
    cpu = torch.device("cpu")
    small = estimate_dream_memory(random_lite0, ["blocks.8"], settings, (1, 3, 256, 256), cpu)
    assert (
        small.weights
        == model_bytes(random_lite0)
        == sum(t.numel() * t.element_size() for t in random_lite0.net.state_dict().values())
    )
    assert 4_000_000 < small.weights < 40_000_000  # Lite0: 4.65 M parameters
    assert small.images == IMAGE_COPIES * 3 * 256 * 256 * 4
    double = estimate_dream_memory(random_lite0, ["blocks.8"], settings, (2, 3, 256, 256), cpu)
    assert double.activations == 2 * small.activations
    deeper = estimate_dream_memory(random_lite0, ["blocks.8", "blocks.12"], settings, (1, 3, 256, 256), cpu)
    assert deeper.activations > small.activations
    same = [["block8"], ["blocks.8[3,17]"], ["blocks.8[top8]"]]
    for terms in same:  # aliases and channel selections cost what their layer costs
        assert estimate_dream_memory(random_lite0, terms, settings, (1, 3, 256, 256), cpu) == small
    whole = estimate_dream_memory(random_lite0, ["class:107", "blocks.8"], settings, (1, 3, 256, 256), cpu)
    assert whole.activations > deeper.activations  # a class runs the whole network
    # Past the tile size the activations stop growing: the dream tiles.
    tiled = settings.with_options(tile_size=256)
    big = estimate_dream_memory(random_lite0, ["blocks.8"], tiled, (1, 3, 1024, 1024), cpu)
    assert big.activations == small.activations and big.images == 16 * small.images
    half = estimate_dream_memory(
        random_lite0, ["blocks.8"], settings.with_options(precision="bf16"), (1, 3, 256, 256), cpu
    )
    assert 0.5 * small.activations < half.activations < 0.85 * small.activations  # bf16 activations, fp32 losses
    assert half.weights == small.weights * 3 // 2  # and the weights' bf16 copy


@pytest.mark.parametrize(
    ("name", "layer", "size"),
    [
        ("efficientnet_lite0", "blocks.10", 256),
        ("googlenet", "inception4c", 256),
        ("inception_v3", "mixed7", 299),
        ("vgg16", "conv5_1", 224),
    ],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.slow
def test_the_estimate_is_within_1_3x_of_what_a_dream_really_holds(name, layer, size, precision):
    from dream_core import dream
    from dream_core.loading import load_feature_model
    from dream_core.memory import LiveTensorBytes

    model = load_feature_model(name, "random")
    settings = DreamSettings(octaves=2, iterations=1, precision=precision)
    source = torch.rand(1, 3, size, size)
    tracker = LiveTensorBytes("cpu")  # every tensor the dream makes, on the CPU as on a device
    with tracker:
        image = source.clone()  # the input's copy on the device counts too
        dream(image, model, {layer: 1.0}, settings)
        del image
    estimate = estimate_dream_memory(model, [layer], settings, (1, 3, size, size), torch.device("cpu"))
    needed = estimate.total - model_bytes(model)  # the weights were there before
    assert tracker.peak <= needed <= 1.3 * tracker.peak, (tracker.peak / 2**20, needed / 2**20)


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("googlenet", ["inception4c"]),
        ("inception_v3", ["mixed4", "mixed7"]),
        ("vgg19", ["conv5_1"]),
        ("efficientnet_lite0", ["blocks.10"]),
    ],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_8k_dream_does_not_ask_comfyui_to_empty_a_24_gb_card(monkeypatch, name, layers, precision):
    from dream_core import memory
    from dream_core.feature_model import FeatureModel
    from dream_core.zoo import get_spec

    card = 24 << 30
    monkeypatch.setattr(memory, "total_memory", lambda device: card)
    monkeypatch.setattr(memory, "free_memory", lambda device: card - (2 << 30))
    spec = get_spec(name)
    with torch.device("meta"):  # only shapes matter
        model = FeatureModel(spec, spec.build(1000), "random")
    estimate = estimate_dream_memory(
        model, layers, DreamSettings(precision=precision), (1, 3, 4320, 7680), torch.device("cuda", 0)
    )
    assert estimate.total < card // 2, estimate.describe()
    assert estimate.tile_size >= 1024  # still large tiles: a GPU runs them as fast as larger ones


def test_the_estimate_covers_what_autograd_really_keeps(random_lite0):
    image = torch.rand(1, 3, 192, 192, requires_grad=True)
    saved = {}

    def pack(tensor):  # a tensor saved by two operations (a ReLU's output, the next conv's input) is kept once
        saved[id(tensor.untyped_storage())] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), random_lite0.tap(["blocks.8"]) as tap:
        activation = tap(image)["blocks.8"]
    activation.square().mean().backward()
    estimate = estimate_dream_memory(
        random_lite0, ["blocks.8"], DreamSettings(precision="fp32"), (1, 3, 192, 192), torch.device("cpu")
    )
    kept = sum(saved.values())
    assert kept <= estimate.activations <= 2 * kept, (kept, estimate.activations)


def test_comfyuis_model_management_holds_the_model_loaded_with_the_dreams_memory(
    monkeypatch, random_lite0, small_photo
):
    stand_in = StandInModelManagement()
    monkeypatch.setattr(comfy_bridge, "model_management", stand_in)
    monkeypatch.setattr(comfy_bridge, "ModelPatcher", StandInModelPatcher)
    image = small_photo.permute(0, 2, 3, 1)
    settings = {"octaves": 1, "iterations": 1, "precision": "fp32"}
    with torch.inference_mode():  # as ComfyUI runs nodes
        for _ in range(2):
            dream_nodes.OctaveDream.execute(image, random_lite0, {"blocks.8": 1.0}, **settings)
    loads = [call for call in stand_in.calls if call[0] == "load_models_gpu"]
    expected = estimate_dream_memory(
        random_lite0, ["blocks.8"], DreamSettings(**settings), tuple(small_photo.shape), torch.device("cpu")
    )
    assert len(loads) == 2 and loads[0][1] == loads[1][1]  # one patcher for the model, reused
    (patcher,) = loads[0][1]
    assert patcher.model is random_lite0.net and patcher.load_device == torch.device("cpu")
    # The dream's own memory is asked for (ComfyUI adds the weights), the whole model loaded,
    # outside inference mode; nobody moves it back afterwards.
    assert loads[0][2:] == (expected.activations + expected.images, True, False)
    assert [call[0] for call in stand_in.calls] == ["load_models_gpu", "load_models_gpu"]
    assert not any(t.is_inference() for t in random_lite0.net.state_dict().values())


@pytest.mark.parametrize(("vram_state", "tile"), [("NORMAL_VRAM", 0), ("LOW_VRAM", 1024), ("NO_VRAM", 512)])
def test_lowvram_and_novram_cap_the_automatic_tiles(monkeypatch, random_lite0, small_photo, vram_state, tile):
    stand_in = StandInModelManagement(vram_state)
    monkeypatch.setattr(comfy_bridge, "model_management", stand_in)
    seen = []
    real_dream = dream_nodes.dream

    def spy(images, model, layers, settings, **kwargs):
        seen.append(settings)
        return real_dream(images, model, layers, settings, **kwargs)

    monkeypatch.setattr(dream_nodes, "dream", spy)
    dream_nodes.OctaveDream.execute(small_photo.permute(0, 2, 3, 1), random_lite0, None, octaves=1, iterations=1)
    assert seen[0].tile_size == tile
    chosen = dream_nodes.OctaveDream.execute
    seen.clear()
    chosen(small_photo.permute(0, 2, 3, 1), random_lite0, None, octaves=1, iterations=1, tile_size=2048)
    assert seen[0].tile_size == 2048  # a tile size the user chose is kept


def test_training_asks_comfyui_for_room_before_it_starts(monkeypatch, tmp_path):
    from dream_core.memory import estimate_training_memory

    train_nodes = pack_module("nodes.train_nodes")
    stand_in = StandInModelManagement()
    monkeypatch.setattr(comfy_bridge, "model_management", stand_in)
    started = []

    class Stop(Exception):
        pass

    def fake_train(*args, **kwargs):
        started.append(list(stand_in.calls))
        raise Stop

    monkeypatch.setattr(train_nodes, "train_classifier", fake_train)
    with pytest.raises(Stop):
        train_nodes.TrainFeatureModel.execute(str(tmp_path), "efficientnet_lite0", "imagenet", "x", **ONE_EPOCH)
    need = estimate_training_memory("efficientnet_lite0", 16, 224)
    assert started == [[("free_memory", need, torch.device("cpu"))]]
    assert estimate_training_memory("efficientnet_lite0", 32, 224) > need > 4 * 4_000_000 * 4


# --- progress -----------------------------------------------------------------------------------------------------


class StandInProgressBar:
    """comfy.utils.ProgressBar: records every update and its preview."""

    updates: list[tuple] = []

    def __init__(self, total):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        StandInProgressBar.updates.append((value, total, preview))


def test_progress_moves_every_step_with_a_small_preview_at_most_four_times_a_second(monkeypatch):
    monkeypatch.setattr(comfy_bridge, "comfy_utils", types.SimpleNamespace(ProgressBar=StandInProgressBar))
    StandInProgressBar.updates = []
    clock = [100.0]
    monkeypatch.setattr(comfy_bridge.time, "monotonic", lambda: clock[0])
    report = comfy_bridge.progress_reporter(200)
    image = torch.rand(1, 3, 1536, 2048)
    for step in range(1, 201):
        clock[0] += 0.01  # 100 steps a second
        report(step, 200, image)
    updates = StandInProgressBar.updates
    assert [u[0] for u in updates] == list(range(1, 201))  # the bar moves every step
    previews = [u[2] for u in updates if u[2] is not None]
    assert 7 <= len(previews) <= 9  # 2 s of dreaming: about 4 previews a second, not 200
    kind, picture, size = previews[0]
    assert kind == "JPEG" and picture.size == (512, 384)  # shrunk before leaving the device
    expected = torch.nn.functional.interpolate(image, size=(384, 512), mode="area")[0]
    got = torch.from_numpy(numpy.array(picture)).permute(2, 0, 1).float() / 255
    assert (got - expected).abs().max() <= 0.5 / 255 + 1e-6
