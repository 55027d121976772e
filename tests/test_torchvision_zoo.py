"""Every torchvision classification network by name (issue 30, first part): specs derived from the network's
structure, dreamed with random weights (no download here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dream_core import ZOO, dream, get_spec, layer_catalogue, load_feature_model
from dream_core.errors import UnknownModelError, WeightsMismatchError
from dream_core.objectives import Term
from dream_core.options import DreamSettings
from dream_core.torchvision_zoo import derivable, torchvision_families
from dream_core.zoo import imagenet_weights_file

FAST = DreamSettings(octaves=1, iterations=2, step=0.05, seed=1, precision="fp32")
QUICK = ("resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "regnet_y_400mf")
MORE = ("convnext_tiny", "densenet121", "efficientnet_b0", "mnasnet0_5", "alexnet", "vgg11_bn", "wide_resnet50_2")


def test_the_six_keep_their_entries_and_every_other_torchvision_network_is_derived():
    for name, spec in ZOO.items():
        assert get_spec(name) is spec  # hand-written names, aliases and defaults untouched
    families = torchvision_families()
    assert {
        "convnext",
        "densenet",
        "mobilenet",
        "regnet",
        "efficientnet",
        "resnet",
        "shufflenet",
        "vit",
        "swin",
    } <= set(families)
    assert sum(len(names) for names in families.values()) >= 60 and not set(ZOO) & set(sum(families.values(), []))
    assert {"vit_b_16", "swin_t", "swin_v2_t"} <= set(derivable()) and "maxvit_t" not in derivable()
    with pytest.raises(UnknownModelError, match="ViT or Swin"):
        get_spec("maxvit_t")
    with pytest.raises(UnknownModelError, match="every torchvision classification network"):
        get_spec("resnet5000")


@pytest.mark.parametrize("name", (*QUICK, *MORE))
def test_a_derived_catalogue_has_stages_blocks_and_a_default_at_stride_16(name):
    spec = get_spec(name)
    catalogue = layer_catalogue(name)
    by_name = {info.name: info for info in catalogue}
    (default,) = spec.default_layers
    assert default in by_name and by_name[default].stride == 16
    assert len(catalogue) >= 5 and all(info.channels > 0 for info in catalogue)
    strides = [info.stride for info in catalogue if info.stride]
    assert strides == sorted(strides)  # forward order: the picture only gets coarser
    file_name, url = imagenet_weights_file(spec)  # found or downloaded as the six's are
    assert url.startswith("https://download.pytorch.org/models/") and file_name.endswith(".pth")


def _random(name: str):
    """`name` with random weights, its BatchNorms (if any) on each picture's own statistics."""
    with torch.device("meta"):
        has_norms = any(isinstance(m, torch.nn.BatchNorm2d) for m in get_spec(name).build(1000).modules())
    return load_feature_model(name, "random", learning_phase="training" if has_norms else "inference")


@pytest.mark.parametrize("name", QUICK)
def test_a_derived_network_dreams_with_its_default_layers_and_a_channel_list(name, small_photo):
    # Random weights under eval-mode BatchNorm fade out through mobile networks (MobileNetV3's features.8 fires
    # at 4e-12): each picture's own statistics keep them alive, as a trained network's would.
    model = _random(name)
    image = small_photo[..., :72, :104]  # not square, not a multiple of 32
    plain = dream(image, model, dict(get_spec(name).default_layers), FAST).images
    (layer,) = get_spec(name).default_layers
    channels = dream(image, model, {f"{layer}[0-3]": 1.0}, FAST).images
    assert plain.shape == channels.shape == image.shape
    assert (plain - image).abs().mean() > 1e-3 and (channels - plain).abs().mean() > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", MORE)
def test_more_derived_networks_dream(name, small_photo):
    model = _random(name)
    image = small_photo[..., :72, :104]
    out = dream(image, model, dict(get_spec(name).default_layers), FAST).images
    assert out.shape == image.shape and (out - image).abs().mean() > 1e-3


def test_a_torchvision_state_dict_is_a_checkpoint_of_its_architecture_and_a_mismatch_says_so(tmp_path: Path):
    from dream_core import objective_value

    torch.manual_seed(0)  # as load_feature_model(..., "random", seed=0) builds it
    net = get_spec("resnet18").build(1000)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "resnet18.safetensors"))
    from_file = load_feature_model("resnet18", tmp_path / "resnet18.safetensors")
    same = load_feature_model("resnet18", "random", seed=0)
    probe = torch.rand(1, 3, 64, 64)
    assert torch.allclose(
        objective_value(from_file, probe, {"layer3": 1.0}), objective_value(same, probe, {"layer3": 1.0})
    )
    with pytest.raises(WeightsMismatchError, match="mobilenet_v3_small"):
        load_feature_model("mobilenet_v3_small", tmp_path / "resnet18.safetensors")


@pytest.mark.parametrize("name", ("vit_b_16", "swin_t"))
def test_a_wrapped_transformer_is_torchvisions_network_with_its_tokens_as_feature_maps(name):
    import torchvision

    torch.manual_seed(0)
    original = torchvision.models.get_model(name, weights=None).eval()
    torch.manual_seed(0)
    wrapped = get_spec(name).build(1000).eval()
    assert type(wrapped).__name__.startswith("Dream") and wrapped.state_dict().keys() == original.state_dict().keys()
    probe = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(wrapped(probe), original(probe), atol=1e-5)  # the training size: the same logits
    catalogue = layer_catalogue(name)
    assert all(info.channels >= 96 for info in catalogue if info.stride)
    if name == "vit_b_16":
        assert [info.name for info in catalogue[:3]] == ["blocks.0", "blocks.0.cls", "blocks.1"]
        assert catalogue[0].stride == 16 and dict(get_spec(name).default_layers) == {"blocks.7": 1.0}
        model = load_feature_model(name, "random")  # a block's class token: what the classifier reads after it
        with model.tap([Term("blocks.11.cls")]) as tap:
            token = next(iter(tap(probe).values()))
        assert token.shape == (1, 768, 1, 1)
        with torch.no_grad():
            logits = model.net.heads(model.net.encoder.ln(token.flatten(1)))
            mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.spec.mean, model.spec.std))
            assert torch.allclose(logits, model.net((probe - mean) / std), atol=1e-4)
    else:
        assert {info.stride for info in catalogue if info.stride} == {4, 8, 16, 32}
        assert layer_catalogue(name)[-2].name == "features.7"  # the last stage, before the class scores


@pytest.mark.parametrize("name", ("vit_b_16", "swin_t"))
def test_a_transformer_dreams_at_any_size_with_its_default_layers_and_a_channel_list(name, small_photo):
    model = load_feature_model(name, "random")
    for image in (small_photo[..., :72, :104], small_photo[..., :50, :61]):  # not multiples of a patch or window
        plain = dream(image, model, dict(get_spec(name).default_layers), FAST).images
        assert plain.shape == image.shape and (plain - image).abs().mean() > 1e-3
    (layer,) = get_spec(name).default_layers
    channels = dream(image, model, {f"{layer}[0-3]": 1.0}, FAST).images
    assert (channels - plain).abs().mean() > 1e-4


def test_load_feature_model_takes_any_network_by_name_with_random_weights_and_lists_those_with_weights():
    from conftest import pack_module

    from dream_core.torchvision_zoo import with_weights_in

    node = pack_module("nodes").NODE_CLASS_MAPPINGS["LoadFeatureModel"]
    inputs = node.GET_SCHEMA().inputs
    assert inputs[-1].id == "other_architecture" and "random" in inputs[1].options
    (model,) = node.execute("efficientnet_lite0", "random", other_architecture=" regnet_y_400mf ")
    assert model.name == "regnet_y_400mf" and model.weights == "random"
    (plain,) = node.execute("efficientnet_lite0", "random")
    assert plain.name == "efficientnet_lite0"
    assert with_weights_in(["resnet18-f37072fd.pth", "other.safetensors"]) == ["resnet18"]
    with pytest.raises(UnknownModelError, match="every torchvision"):
        node.execute("efficientnet_lite0", "random", other_architecture="lenet5")


@pytest.mark.slow
@pytest.mark.parametrize("name", ("resnet18", "vit_b_32"))
def test_a_derived_network_fine_tunes_and_its_file_loads_as_that_network(name, tmp_path):
    from dream_core.training import TrainSettings, train_classifier

    folder = Path(__file__).resolve().parents[1] / "samples" / "shapes"
    settings = TrainSettings(epochs=1, seed=0, unfreeze_blocks=1, batch_size=8)
    result = train_classifier(folder, name, "random", settings, tmp_path / f"{name}.safetensors")
    path = result.path
    assert path is not None and result.train_count > 0
    model = load_feature_model(name, path)
    assert model.name == name and model.class_names and len(model.class_names) == 3
    assert get_spec("squeezenet1_1").trainable is None  # its head is a convolution
    with pytest.raises(WeightsMismatchError):
        load_feature_model("resnet34", path) if name == "resnet18" else load_feature_model("vit_b_16", path)
