"""timm's networks as `timm:NAME` (issue 30): random weights, no download. timm is a test dependency only; the
pack never needs it (the message when it is missing is tested with its import made to fail)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dream_core import dream, get_spec, layer_catalogue, load_feature_model, objective_value
from dream_core.errors import UnknownModelError, WeightsMismatchError, WeightsNotFoundError
from dream_core.options import DreamSettings

timm = pytest.importorskip("timm")

FAST = DreamSettings(octaves=1, iterations=2, step=0.05, seed=1, precision="fp32")


def _original(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


@pytest.mark.parametrize(
    ("name", "layers", "default"),
    (
        ("resnet18", ["act1", "layer1", "layer2", "layer3", "layer4"], "layer3"),
        ("vit_tiny_patch16_224", [n for i in range(12) for n in (f"blocks.{i}", f"blocks.{i}.cls")], "blocks.7"),
    ),
)
def test_a_timm_network_is_its_own_class_with_its_feature_maps_as_layers(name, layers, default):
    spec = get_spec(f"timm:{name}")
    torch.manual_seed(0)
    wrapped = spec.build(1000).eval()
    original = _original(name)
    assert isinstance(wrapped, type(original)) and wrapped.state_dict().keys() == original.state_dict().keys()
    probe = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(wrapped(probe), original(probe), atol=1e-5)  # the same logits
    catalogue = [info for info in layer_catalogue(spec.name) if info.stride]
    assert [info.name for info in catalogue] == layers
    maps = [info for info in catalogue if not info.name.endswith(".cls")]  # a block's class token: [B, C, 1, 1]
    assert [info.channels for info in maps] == [f["num_chs"] for f in original.feature_info]
    assert dict(spec.default_layers) == {default: 1.0}
    assert spec.mean == tuple(original.pretrained_cfg["mean"]) and spec.std == tuple(original.pretrained_cfg["std"])
    assert spec.classifier_prefix == original.pretrained_cfg["classifier"]  # resnet18's fc, the ViT's head


def test_a_timm_vit_block_s_class_token_is_a_layer_that_dreams(small_photo):
    model = load_feature_model("timm:vit_tiny_patch16_224", "random")
    image = small_photo[..., :50, :61]
    for objective in ({"blocks.11.cls": 1.0}, {"blocks.4.cls[3,5]": 1.0}):
        out = dream(image, model, objective, FAST).images
        assert out.shape == image.shape and (out - image).abs().mean() > 1e-3


@pytest.mark.parametrize("name", ("timm:resnet18", "timm:vit_tiny_patch16_224", "timm:convnext_atto"))
def test_a_timm_network_dreams_at_any_size_with_its_default_layer_and_a_channel_list(name, small_photo):
    model = load_feature_model(name, "random", learning_phase="training" if "resnet" in name else "inference")
    (layer,) = get_spec(name).default_layers
    for image in (small_photo[..., :72, :104], small_photo[..., :50, :61]):  # not multiples of a patch
        plain = dream(image, model, {layer: 1.0}, FAST).images
        assert plain.shape == image.shape and (plain - image).abs().mean() > 1e-3
    channels = dream(image, model, {f"{layer}[0-3]": 1.0}, FAST).images
    assert (channels - plain).abs().mean() > 1e-4


def test_timms_batchnorm_with_its_activation_folds_without_losing_the_activation():
    from dream_core.zoo import fold_batchnorms

    net = _original("efficientnet_b0")
    for module in net.modules():  # statistics away from 0 and 1, so folding has something to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    probe = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        before = net(probe)
        assert fold_batchnorms(net) > 40
        assert torch.allclose(net(probe), before, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_a_timm_state_dict_is_a_checkpoint_of_its_architecture_and_a_mismatch_says_so(tmp_path: Path):
    net = _original("resnet18")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    from_file = load_feature_model("timm:resnet18", tmp_path / "r18.safetensors")
    same = load_feature_model("timm:resnet18", "random", seed=0, fold_batchnorm=False)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in same.net.state_dict().items())
    probe = torch.rand(1, 3, 64, 64)
    assert torch.allclose(
        objective_value(from_file, probe, {"layer3": 1.0}), objective_value(same, probe, {"layer3": 1.0}), atol=1e-5
    )
    assert from_file.name == "timm:resnet18" and from_file.class_names  # 1000 classes: ImageNet's names
    with pytest.raises(WeightsMismatchError, match="timm:resnet34"):
        load_feature_model("timm:resnet34", tmp_path / "r18.safetensors")


def test_timm_refuses_what_cannot_dream_and_says_how_to_get_what_is_missing(monkeypatch):
    with pytest.raises(UnknownModelError, match="training size only"):
        get_spec("timm:levit_128s")
    with pytest.raises(UnknownModelError, match="timm has no model 'resnet5000'"):
        get_spec("timm:resnet5000")
    spec = get_spec("timm:resnet18")
    import huggingface_hub

    def offline(**_kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsNotFoundError, match="huggingface.co/timm/resnet18"):
        load_feature_model(spec.name, "imagenet")
    from dream_core import timm_zoo

    real = importlib.import_module

    def no_timm(name, *args):
        if name == "timm":
            raise ImportError("No module named 'timm'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_timm)
    with pytest.raises(UnknownModelError, match="pip install timm"):
        timm_zoo.timm_spec.__wrapped__("timm:resnet34")


def test_timm_networks_with_weights_in_the_hub_cache_are_listed(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from dream_core.timm_zoo import cached_timm_models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert cached_timm_models() == []
    for folder in ("models--timm--convnext_tiny.fb_in1k", "models--timm--resnet18.a1_in1k", "models--other--x"):
        (tmp_path / folder).mkdir()
    assert cached_timm_models() == ["timm:convnext_tiny.fb_in1k", "timm:resnet18.a1_in1k"]
    assert dict(get_spec("timm:convnext_tiny.fb_in1k").default_layers) == {"stages.2": 1.0}


def test_a_timm_step_is_measured_for_the_memory_model():
    from dream_core.memory import step_bytes_per_pixel

    per_pixel = step_bytes_per_pixel("timm:resnet18", "layer3")
    assert 0.2e3 < per_pixel < 2e3  # a ResNet-18 through layer3: about 0.3 kB a pixel (torchvision's: 0.29 kB)


@pytest.mark.slow
def test_a_timm_network_fine_tunes_and_its_file_loads_as_that_network(tmp_path):
    from dream_core.training import TrainSettings, train_classifier

    folder = Path(__file__).resolve().parents[1] / "samples" / "shapes"
    settings = TrainSettings(epochs=1, seed=0, unfreeze_blocks=1, batch_size=8)
    result = train_classifier(folder, "timm:resnet18", "random", settings, tmp_path / "shapes.safetensors")
    assert result.path is not None and result.train_count > 0
    model = load_feature_model("timm:resnet18", result.path)
    assert model.name == "timm:resnet18" and model.class_names and len(model.class_names) == 3
    with pytest.raises(WeightsMismatchError, match="trained as timm:resnet18"):
        load_feature_model("resnet18", result.path)  # torchvision's: the file says which it was


def test_deepdream_models_says_what_timm_adds_or_how_to_install_it(monkeypatch):
    from dream_core import timm_zoo

    assert timm_zoo.timm_line().startswith(f"timm {timm.__version__}: ") and "any as timm:NAME" in timm_zoo.timm_line()
    monkeypatch.setattr(timm_zoo, "timm_installed", lambda: False)
    assert "not installed (pip install timm" in timm_zoo.timm_line()
