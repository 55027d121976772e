"""Several networks in one dream: each with its own layer weights, one combined objective."""

from __future__ import annotations

import build_workflows
import pytest
import torch
from conftest import pack_module

engine = pack_module("dream_core.engine")
loading = pack_module("dream_core.loading")
objectives = pack_module("dream_core.objectives")
options = pack_module("dream_core.options")
errors = pack_module("dream_core.errors")
cli = pack_module("dream_core.cli")

FP32 = dict(octaves=2, iterations=3, precision="fp32")


@pytest.fixture(scope="module")
def twin(lite0):
    """A second Lite0 with the same ImageNet weights: a separate network, not the same object."""
    return loading.load_feature_model("efficientnet_lite0", "imagenet")


def _dream(image, model, objective, **settings):
    return engine.dream(image, model, objective, options.DreamSettings(**{**FP32, **settings})).images


@pytest.mark.parametrize("extra", [{}, dict(tile_size=96, scale_jitter=0.1, rotate_jitter=5.0)])
def test_two_networks_climb_the_sum_of_their_objectives(lite0, twin, small_photo, extra):
    """A second network with the same weights dreaming blocks.10 gives the dream of one network climbing
    blocks.6 and blocks.10 together: the gradients add, through both networks, to the one picture (equal up
    to float rounding; jitter, tiles, scale and rotation are shared)."""
    together = _dream(small_photo, lite0, {"blocks.6": 1.0, "blocks.10": 2.0}, **extra)
    objective = objectives.Objective.of({"blocks.6": 1.0}, networks=[(twin, {"blocks.10": 2.0})])
    split = _dream(small_photo, lite0, objective, **extra)
    change = (together - small_photo).abs().mean()
    assert change > 0.005
    assert (together - split).abs().mean() < 0.002 * change  # float rounding, summed in another order
    assert (together - split).abs().max() < 0.01


def test_a_dream_of_another_network_alone_is_that_networks_dream(lite0, twin, small_photo):
    alone = _dream(small_photo, twin, {"blocks.10": 1.0})
    carried = _dream(small_photo, lite0, objectives.Objective.of({}, networks=[(twin, {"blocks.10": 1.0})]))
    assert torch.equal(alone, carried)


def test_a_different_network_changes_the_dream_and_is_left_clean(lite0, small_photo):
    other = loading.load_feature_model("efficientnet_lite0", "imagenet")
    with torch.no_grad():  # a different network: its deeper blocks perturbed
        for parameter in other.net._blocks[8:].parameters():
            parameter.mul_(1.0 + 0.5 * torch.randn_like(parameter))
    before = {k: v.clone() for k, v in other.net.state_dict().items()}
    own = _dream(small_photo, lite0, {"blocks.6": 1.0, "blocks.10": 1.0}, precision="auto")
    objective = objectives.Objective.of({"blocks.6": 1.0}, networks=[(other, {"blocks.10": 1.0})])
    both = _dream(small_photo, lite0, objective, precision="auto")
    assert (own - both).abs().mean() > 0.003
    assert not any(module._forward_hooks for module in other.net.modules())
    assert all(torch.equal(before[k], v) for k, v in other.net.state_dict().items())
    assert other.compute_dtype == torch.float32  # cast back after a bf16 dream


def test_each_network_resolves_its_own_terms(lite0, twin):
    with pytest.raises(errors.UnknownLayerError, match="blocks.99"):
        objectives.Objective.of({"blocks.6": 1.0}, networks=[(twin, {"blocks.99": 1.0})]).resolved(lite0)
    with pytest.raises(errors.DreamError, match="no layer weights"):
        objectives.Objective.of({"blocks.6": 1.0}, networks=[(twin, {})]).resolved(lite0)


def test_networks_on_different_devices_are_refused(lite0, small_photo):
    other = loading.load_feature_model("efficientnet_lite0", "imagenet", device="meta")
    objective = objectives.Objective.of({"blocks.6": 1.0}, networks=[(other, {"blocks.8": 1.0})])
    with pytest.raises(errors.DreamError, match="one device"):
        _dream(small_photo, lite0, objective)


def test_the_dream_network_node_feeds_every_dream_node(lite0, small_photo):
    nodes = build_workflows.load_pack().nodes.NODE_CLASS_MAPPINGS
    model = nodes["LoadFeatureModel"].execute("efficientnet_lite0", "imagenet")[0]
    twin = nodes["LoadFeatureModel"].execute("efficientnet_lite0", "imagenet")[0]
    weights = nodes["LayerWeights"].execute("blocks.10: 2", 1.0)[0]
    networks = nodes["DreamNetwork"].execute(twin, weights)[0]
    assert nodes["DreamNetwork"].execute(twin, weights, networks=networks)[0] != networks  # chained: one more
    for name in ("OctaveDream", "LayerSweep", "DreamFrames", "DreamZoom", "DreamVideo", "DreamVideoFile"):
        assert "networks" in nodes[name].INPUT_TYPES()["optional"], name
    image = small_photo.permute(0, 2, 3, 1).contiguous()
    args = dict(
        octaves=2,
        octave_scale=1.4,
        iterations=3,
        step=0.015,
        max_loss=0.0,
        jitter=8,
        seed=0,
        loss="l2",
        normalize="mean_abs",
        reinject_detail=True,
        precision="fp32",
    )
    own = nodes["LayerWeights"].execute("blocks.6: 1, blocks.10: 2", 1.0)[0]
    together = nodes["OctaveDream"].execute(image, model, layer_weights=own, **args)[0]
    six = nodes["LayerWeights"].execute("blocks.6: 1", 1.0)[0]
    with torch.inference_mode():  # as ComfyUI runs nodes
        split = nodes["OctaveDream"].execute(image, model, layer_weights=six, networks=networks, **args)[0]
    assert (together - split).abs().mean() < 1e-5 and (together - split).abs().max() < 0.01
    bad = nodes["LayerWeights"].execute("mixed4: 1", 1.0)[0]
    with pytest.raises(Exception, match="mixed4"):
        nodes["DreamNetwork"].execute(twin, bad)


def test_the_cli_takes_networks(tmp_path, capsys):
    out = tmp_path / "dream.png"
    code = cli.main(
        [
            "dream",
            str(build_workflows.ROOT / "samples" / "astronaut.png"),
            "-o",
            str(out),
            "--layers",
            "blocks.6",
            "--network",
            "efficientnet_lite0=blocks.10:2",
            "--octaves",
            "1",
            "--iterations",
            "1",
        ]
    )
    assert code == 0 and out.is_file()
    assert "blocks.6 of efficientnet_lite0 (imagenet weights) with blocks.10 x2 of efficientnet_lite0" in (
        capsys.readouterr().err
    )
    for spec, message in (
        ("efficientnet_lite0", "MODEL=LAYERS"),
        ("efficientnet_lite0=mixed4", "mixed4"),
        ("efficientnet_lite0@missing.safetensors=blocks.6", "missing.safetensors"),
    ):
        assert (
            cli.main(
                [
                    "dream",
                    str(build_workflows.ROOT / "samples" / "astronaut.png"),
                    "-o",
                    str(tmp_path / "x.png"),
                    "--network",
                    spec,
                ]
            )
            != 0
        )
        assert message in capsys.readouterr().err
    # A network's checkpoint is an input: never written over.
    checkpoint = tmp_path / "mine.png"
    checkpoint.write_bytes(b"not a picture")
    assert (
        cli.main(
            [
                "dream",
                str(build_workflows.ROOT / "samples" / "astronaut.png"),
                "-o",
                str(checkpoint),
                "--network",
                f"efficientnet_lite0@{checkpoint}=blocks.6",
            ]
        )
        != 0
    )
    assert checkpoint.read_bytes() == b"not a picture"


def test_networks_compose_with_masks_regions_guides_and_video(lite0, twin, small_photo):
    """Another network's part sits beside the others: a mask still holds, regions and a guide still pull, and a
    clip's frames are dreamed with it."""
    mask = torch.zeros(1, *small_photo.shape[-2:])
    mask[..., :, 60:] = 1.0
    left = torch.zeros_like(mask)
    left[..., :, :40] = 1.0
    objective = objectives.Objective.of(
        {"blocks.6": 1.0},
        regions=[(left, {"blocks.3": 1.0})],
        guide=small_photo.flip(-1),
        networks=[(twin, {"blocks.10": 1.0})],
    )
    settings = options.DreamSettings(**FP32)
    masked = engine.dream(small_photo, lite0, objective, settings, mask=mask).images
    assert (masked - small_photo)[..., :, :52].abs().max() < 1e-5  # the mask's zeros (off its resized edge) stay
    assert (masked - small_photo)[..., :, 60:].abs().mean() > 0.005
    without = engine.dream(
        small_photo,
        lite0,
        objectives.Objective.of({"blocks.6": 1.0}, regions=[(left, {"blocks.3": 1.0})], guide=small_photo.flip(-1)),
        settings,
        mask=mask,
    ).images
    assert (masked - without).abs().mean() > 0.002  # the other network still pulls
    video = pack_module("dream_core.video")
    frames = [small_photo, small_photo.roll(4, -1), small_photo.roll(8, -1)]
    dreamed = list(
        video.dream_video(
            frames,
            lite0,
            objectives.Objective.of({}, networks=[(twin, {"blocks.8": 1.0})]),
            settings,
            options.VideoSettings(flow="ilk"),
        )
    )
    assert len(dreamed) == 3 and all((d - f).abs().mean() > 0.003 for d, f in zip(dreamed, frames, strict=True))
