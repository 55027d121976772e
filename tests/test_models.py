"""The model zoo: layer catalogues, truncated forward, weights and safe checkpoints."""

from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dream_core import (
    DreamError,
    UnknownLayerError,
    UnknownModelError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    WeightsNotFoundError,
    dream,
    layer_catalogue,
    load_feature_model,
)
from dream_core.options import DreamSettings
from dream_core.zoo import ZOO


def test_inception_v3_answers_to_keras_mixed_names():
    layers = {info.name: info for info in layer_catalogue("inception_v3")}
    torchvision_names = [
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
    for i, name in enumerate(torchvision_names):
        assert layers[name].aliases == (f"mixed{i}",)
    assert layers["Mixed_5b"].channels == 256 and layers["Mixed_7c"].channels == 2048


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_has_a_catalogue_with_its_default_layers(name):
    catalogue = layer_catalogue(name)
    assert len(catalogue) >= 5
    assert all(info.channels > 0 and info.stride >= 1 for info in catalogue if info.name != "logits")
    assert catalogue[-1].name == "logits" and catalogue[-1].channels == 1000
    known = {key for info in catalogue for key in (info.name, info.module_path, *info.aliases)}
    assert set(ZOO[name].default_layers) <= known


def test_unknown_layer_lists_the_valid_ones(lite0):
    with pytest.raises(UnknownLayerError) as err:
        lite0.resolve_layer("mixed4")
    message = str(err.value)
    assert "mixed4" in message and "blocks.6" in message and "head" in message


def test_unknown_model_lists_the_zoo():
    with pytest.raises(UnknownModelError, match="inception_v3"):
        load_feature_model("lenet5", "random")  # (alexnet is torchvision's: derived)


def test_aliases_of_one_layer_add_up_and_zero_weights_drop(lite0):
    resolved = lite0.resolve_weights({"block6": 1.0, "blocks.6": 0.5, "_blocks.8": 0.0})
    assert {str(term): weight for term, weight in resolved.items()} == {"blocks.6": 1.5}


def test_forward_stops_after_the_deepest_needed_layer(lite0):
    # Layers after the deepest requested one must never run.
    ran = []
    handle = lite0.net._head_act.register_forward_hook(lambda *a: ran.append("head"))
    try:
        with lite0.tap(["blocks.5"]) as tap:
            out = tap(torch.rand(1, 3, 64, 64))
        assert list(out) == ["blocks.5"] and ran == []
        with lite0.tap(["head"]) as tap:
            tap(torch.rand(1, 3, 64, 64))
        assert ran == ["head"]
    finally:
        handle.remove()
    assert not lite0.net._blocks[5]._forward_hooks  # the tap removed its hooks


def test_loaded_model_is_frozen_and_in_eval_mode(lite0):
    assert not lite0.net.training
    assert not any(p.requires_grad for p in lite0.net.parameters())


@pytest.mark.parametrize("name", ["inception_v3", "googlenet", "vgg16", "resnet50"])
@pytest.mark.slow
def test_torchvision_models_dream_with_random_weights(name):
    # Shapes and wiring only: real weights cannot be downloaded here.
    model = load_feature_model(name, "random")
    layer = next(iter(model.spec.default_layers))
    image = torch.rand(1, 3, 96, 96)
    settings = DreamSettings(octaves=1, iterations=1, jitter=0)
    out = dream(image, model, {layer: 1.0}, settings).images
    assert out.shape == image.shape and not torch.equal(out, image)


def test_offline_imagenet_weights_fail_naming_file_and_folder(tmp_path, monkeypatch):
    def no_network(url, folder):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("dream_core.weights._download", no_network)
    with pytest.raises(WeightsNotFoundError) as err:
        load_feature_model("inception_v3", "imagenet", weights_dir=tmp_path)
    message = str(err.value)
    assert "inception_v3_google-0cc3c7bd.pth" in message and str(tmp_path) in message
    assert "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth" in message


def test_imagenet_weights_already_in_the_folder_are_used_without_network(tmp_path, monkeypatch):
    # A file put by hand into the weights folder loads, with torchvision's key layout
    # (aux head included, which is dropped).
    monkeypatch.setattr("dream_core.weights._download", lambda *a: pytest.fail("must not download"))
    torch.manual_seed(0)
    import torchvision

    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    torch.save(reference.state_dict(), tmp_path / "googlenet-1378be20.pth")
    model = load_feature_model("googlenet", "imagenet", weights_dir=tmp_path, fold_batchnorm=False)
    assert torch.equal(model.net.conv1.conv.weight, reference.conv1.conv.weight)
    assert model.class_names is not None and len(model.class_names) == 1000


def _lite_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    model = load_feature_model("efficientnet_lite0", "random", seed=3, fold_batchnorm=False)
    state = {k: v.contiguous().clone() for k, v in model.net.state_dict().items()}
    state["_fc.weight"] = torch.randn(num_classes, 1280)
    state["_fc.bias"] = torch.randn(num_classes)
    return state


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt"])
def test_a_checkpoint_fine_tuned_to_other_classes_loads(tmp_path, suffix):
    state = _lite_state(num_classes=5)
    path = tmp_path / f"mine{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path), metadata={"class_names": '["a", "b", "c", "d", "e"]'})
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = load_feature_model("efficientnet_lite0", path, fold_batchnorm=False)
    assert model.net._fc.out_features == 5
    assert torch.equal(model.net._blocks[3]._project_conv.weight, state["_blocks.3._project_conv.weight"])
    if suffix == ".safetensors":
        assert model.class_names == ["a", "b", "c", "d", "e"]


def test_mismatched_feature_layers_name_the_keys(tmp_path):
    state = _lite_state()
    state["_blocks.4._project_conv.weight"] = torch.randn(7, 240, 1, 1)
    del state["_conv_head.weight"]
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsMismatchError) as err:
        load_feature_model("efficientnet_lite0", tmp_path / "bad.safetensors")
    assert "_blocks.4._project_conv.weight" in str(err.value) and "_conv_head.weight" in str(err.value)


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    save_file(_lite_state(), str(tmp_path / "lite.safetensors"))
    with pytest.raises(WeightsMismatchError, match="resnet50"):
        load_feature_model("resnet50", tmp_path / "lite.safetensors")


class _RunsCode:
    """Unpickling this calls os.system, as a malicious checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("architecture", ("efficientnet_lite0", "resnet18", "vit_b_16", "timm:resnet18"))
def test_a_pickle_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path, architecture):
    if architecture.startswith("timm:"):
        pytest.importorskip("timm")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _RunsCode(marker)}, f)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _RunsCode(marker)}, tmp_path / "evil2.pt")
    for bad in (path, tmp_path / "evil2.pt"):
        with pytest.raises(UnsafeCheckpointError, match="safetensors"):
            load_feature_model(architecture, bad)
    assert not marker.exists()


def test_truncated_and_missing_files_give_clear_errors(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file(_lite_state(), str(good))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(WeightsMismatchError, match="truncated"):
        load_feature_model("efficientnet_lite0", truncated)
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_feature_model("efficientnet_lite0", tmp_path / "nope.safetensors")
    (tmp_path / "weights.onnx").write_bytes(b"x")
    with pytest.raises(WeightsMismatchError, match="unsupported"):
        load_feature_model("efficientnet_lite0", tmp_path / "weights.onnx")


def test_two_open_taps_on_one_model_do_not_interfere(lite0):
    image = torch.rand(1, 3, 64, 64)
    with lite0.tap(["blocks.3"]) as shallow, lite0.tap(["blocks.5", "blocks.8"]) as deep:
        assert set(deep(image)) == {"blocks.5", "blocks.8"}
        assert set(shallow(image)) == {"blocks.3"}


@pytest.mark.parametrize("name", ["efficientnet_lite0", "inception_v3", "resnet50", "googlenet"])
def test_folding_batchnorm_into_convolutions_keeps_the_outputs(name):
    torch.manual_seed(1)
    weights = "imagenet" if name == "efficientnet_lite0" else "random"
    plain = load_feature_model(name, weights, fold_batchnorm=False)
    if weights == "random":  # give the BatchNorms statistics that are not the identity
        for module in plain.net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.2, 0.2)
    folded = load_feature_model(name, "random", fold_batchnorm=False)
    folded.net.load_state_dict(plain.net.state_dict())
    from dream_core.zoo import fold_batchnorms

    assert fold_batchnorms(folded.net) > 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.net.modules())
    layer = plain.layers[-2].name  # the deepest feature layer
    image = torch.rand(1, 3, 96, 96)
    with plain.tap([layer]) as a, folded.tap([layer]) as b, torch.no_grad():
        x, y = a(image)[layer], b(image)[layer]
    assert (x - y).abs().max() <= 1e-3 * x.abs().max()


def test_an_architecture_registered_in_one_place_lists_its_layers_through_the_cli_and_dreams(
    tmp_path, small_photo, capsys
):
    from torch import nn

    from dream_core.cli import main
    from dream_core.imageio import load_image, save_image
    from dream_core.zoo import ZOO, ModelSpec, fold_batchnorms, register_model

    class Tiny(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.conv1, self.bn1, self.act1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
            self.conv2, self.act2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, num_classes)

        def forward(self, x):
            x = self.act2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
            return self.fc(self.pool(x).flatten(1))

    folds = []

    def fold(net):
        folds.append(net)
        return fold_batchnorms(net)

    spec = ModelSpec(
        name="tiny_test_net",
        description="a two-layer test network",
        build=Tiny,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        layers=lambda net: [("low", "act1", ("first",)), ("high", "act2", ())],
        default_layers={"high": 1.0},
        classifier_prefix="fc",
        min_size=8,
        probe_size=64,
        fold=fold,
    )
    register_model(spec)
    try:
        assert main(["layers", "tiny_test_net"]) == 0
        listing = capsys.readouterr().out
        assert "low" in listing and "first" in listing and "high" in listing and "default: high:1.0" in listing
        source = save_image(small_photo[0], tmp_path / "in.png")
        args = ["--model", "tiny_test_net", "--weights", "random", "--octaves", "1", "--iterations", "3"]
        assert main(["dream", str(source), "-o", str(tmp_path / "out.png"), *args, "--layers", "first:1"]) == 0
        change = (load_image(tmp_path / "out.png") - load_image(source)).abs().mean()
        assert change > 2 / 255
        # Its own BatchNorm folding ran when it was loaded (and on the meta device, for the memory figure).
        assert [next(net.parameters()).device.type for net in folds].count("cpu") == 1
    finally:
        ZOO.pop("tiny_test_net", None)


@pytest.mark.slow
def test_the_training_learning_phase_uses_batch_statistics_and_never_changes_the_model(small_photo):
    from torch import nn

    classic = load_feature_model("efficientnet_lite0", "imagenet")
    batch = load_feature_model("efficientnet_lite0", "imagenet", learning_phase="training")
    norms = [m for m in batch.net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.training and not m.track_running_stats for m in norms)
    before = {k: v.clone() for k, v in batch.net.state_dict().items()}
    settings = DreamSettings(octaves=1, iterations=3, precision="fp32")
    first = dream(small_photo, batch, {"blocks.8": 1.0}, settings).images
    assert all(torch.equal(v, batch.net.state_dict()[k]) for k, v in before.items())  # learnt statistics kept
    assert torch.equal(first, dream(small_photo, batch, {"blocks.8": 1.0}, settings).images)
    assert (first - dream(small_photo, classic, {"blocks.8": 1.0}, settings).images).abs().mean() > 1e-3
    with pytest.raises(DreamError, match="no BatchNorm"):
        load_feature_model("vgg16", "random", learning_phase="training")
