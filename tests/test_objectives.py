"""Creative objectives: guide, channels, classes, colours, smoothing, regions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dream_core import DreamError, DreamSettings, UnknownLayerError, dream, objective_value
from dream_core.imageops import LUMA, transfer_colors
from dream_core.objectives import Objective, guide_features, guide_similarity, total_variation

LAYERS = {"blocks.6": 1.0, "blocks.8": 1.5}
FAST = DreamSettings(octaves=2, iterations=6, step=0.02, jitter=8, seed=2, precision="fp32")

from conftest import ASSETS  # noqa: E402

from dream_core.imageio import load_image  # noqa: E402


def _photo(name: str, size: int = 128) -> torch.Tensor:
    return F.interpolate(load_image(ASSETS / name), size=(size, size), mode="area")


def _similarity(model, image, guide, layer="blocks.8") -> float:
    with model.tap([layer]) as tap, torch.no_grad():
        reference = guide_features(tap(guide))[layer]
        return guide_similarity(tap(image)[layer], reference).item()


def test_a_guide_raises_the_match_to_the_guides_features(lite0, small_photo):
    guide = _photo("coffee.jpg")
    settings = FAST.with_options(iterations=12)
    plain = dream(small_photo, lite0, {"blocks.8": 1.0}, settings).images
    guided = dream(small_photo, lite0, Objective.of({"blocks.8": 1.0}, guide=guide), settings).images
    before = _similarity(lite0, small_photo, guide)
    assert _similarity(lite0, guided, guide) > 1.4 * before
    assert _similarity(lite0, guided, guide) > 1.2 * _similarity(lite0, plain, guide)


def test_guide_mix_zero_is_the_unguided_dream(lite0, small_photo):
    plain = dream(small_photo, lite0, LAYERS, FAST).images
    guided = Objective.of(LAYERS, guide=_photo("coffee.jpg"))
    ignored = dream(small_photo, lite0, guided, FAST.with_options(guide_mix=0.0)).images
    assert torch.equal(plain, ignored)


def _logits(model, image):
    with torch.no_grad():
        mean = torch.tensor(model.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(model.spec.std).view(1, 3, 1, 1)
        return model.net(((image - mean) / std).contiguous(memory_format=torch.channels_last))[0]


def test_a_class_objective_raises_that_class_logit_and_rank(lite0, small_photo):
    index = lite0.resolve_class("jellyfish")
    assert lite0.class_names[index] == "jellyfish" and lite0.resolve_class(str(index)) == index
    settings = FAST.with_options(iterations=10, octaves=1)
    dreamed = dream(small_photo, lite0, {"class:jellyfish": 1.0}, settings).images
    before, after = _logits(lite0, small_photo), _logits(lite0, dreamed)
    rank_before = int((before > before[index]).sum())
    rank_after = int((after > after[index]).sum())
    assert after[index] > before[index] + 2.0
    assert rank_after < rank_before and rank_after <= 5, (rank_before, rank_after)


def test_unknown_or_ambiguous_classes_are_explained(lite0):
    with pytest.raises(UnknownLayerError, match="did you mean"):
        lite0.resolve_class("jelyfish")
    with pytest.raises(UnknownLayerError, match="several"):
        lite0.resolve_class("cat")
    with pytest.raises(UnknownLayerError, match="1000 classes"):
        lite0.resolve_class("1000")


def test_channel_selections_dream_only_those_channels(lite0, small_photo):
    resolved = lite0.resolve_weights({"blocks.8[5, 1-3]": 1.0, "block8[top4]": 2.0})
    assert {str(term): weight for term, weight in resolved.items()} == {
        "blocks.8[1-3,5]": 1.0,
        "blocks.8[top4]": 2.0,
    }
    with pytest.raises(DreamError, match="0..111"):
        lite0.resolve_weights({"blocks.8[200]": 1.0})
    chosen = [7, 40]
    dreamed = dream(small_photo, lite0, {"blocks.8[7,40]": 1.0}, FAST).images
    with lite0.tap(["blocks.8"]) as tap, torch.no_grad():
        before, after = tap(small_photo)["blocks.8"][0], tap(dreamed)["blocks.8"][0]
    gain = after.square().mean(dim=(1, 2)) / before.square().mean(dim=(1, 2))
    others = [c for c in range(gain.numel()) if c not in chosen]
    assert gain[chosen].min() > 2 * gain[others].median()
    strongest = dream(small_photo, lite0, {"blocks.8[top4]": 1.0}, FAST).images
    assert objective_value(lite0, strongest, {"blocks.8[top4]": 1.0}) > 1.5 * objective_value(
        lite0, small_photo, {"blocks.8[top4]": 1.0}
    )


def _chroma(image: torch.Tensor) -> torch.Tensor:
    return image - (image * LUMA).sum(dim=1, keepdim=True)


def test_keeping_colours_keeps_the_originals_chroma(lite0, small_photo):
    """Measure: mean |(RGB - Y) of the dream - (RGB - Y) of the photo| (Y = BT.601 luma)."""
    plain = dream(small_photo, lite0, LAYERS, FAST).images
    drift = (_chroma(plain) - _chroma(small_photo)).abs().mean().item()
    for mode in ("luminance", "transfer"):
        kept = dream(small_photo, lite0, LAYERS, FAST.with_options(keep_colors=mode)).images
        kept_drift = (_chroma(kept) - _chroma(small_photo)).abs().mean().item()
        assert kept_drift < 0.25 * drift, (mode, kept_drift, drift)
        assert (kept - small_photo).abs().mean() > 0.01  # it still dreamed


def test_transfer_colors_keeps_luma_of_the_dream_and_colour_of_the_original():
    # Values in 0.4..0.6, so the result needs no clamping to stay in 0..1.
    generator = torch.Generator().manual_seed(0)
    dreamed, original = (torch.rand(2, 1, 3, 8, 8, generator=generator) * 0.2 + 0.4).unbind(0)
    out = transfer_colors(dreamed, original)
    assert torch.allclose((out * LUMA).sum(1), (dreamed * LUMA).sum(1), atol=1e-6)
    assert torch.allclose(_chroma(out), _chroma(original), atol=1e-6)


def _high_frequency(image: torch.Tensor) -> float:
    return (image - F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)).abs().mean().item()


def test_gradient_blur_and_total_variation_smooth_the_dream(lite0, small_photo):
    plain = dream(small_photo, lite0, LAYERS, FAST).images
    blurred = dream(small_photo, lite0, LAYERS, FAST.with_options(grad_blur=2.0)).images
    smooth = dream(small_photo, lite0, LAYERS, FAST.with_options(tv_weight=2000.0)).images
    assert _high_frequency(blurred) < 0.8 * _high_frequency(plain)
    assert total_variation(smooth).item() < total_variation(plain).item()
    for image in (blurred, smooth):
        assert (image - small_photo).abs().mean() > 0.005


def test_two_regions_each_raise_their_own_layers_inside_their_mask(lite0, small_photo):
    left = torch.zeros(1, 128, 121)
    left[..., :60] = 1.0
    right = 1.0 - left
    low, high = {"blocks.4": 1.0}, {"blocks.10": 1.0}
    dreamed = dream(small_photo, lite0, Objective.of({}, regions=[(left, low), (right, high)]), FAST).images

    def gain(layer: str, region: torch.Tensor) -> float:
        with lite0.tap([layer]) as tap, torch.no_grad():
            before, after = tap(small_photo)[layer], tap(dreamed)[layer]
        weight = F.interpolate(region[None], size=before.shape[-2:], mode="area")
        return ((after.square() * weight).sum() / (before.square() * weight).sum()).item()

    assert gain("blocks.4", left) > 1.2 * gain("blocks.4", right)
    assert gain("blocks.10", right) > 1.2 * gain("blocks.10", left)


def test_the_plain_and_the_region_path_share_each_loss_mode(monkeypatch):
    from dream_core import objectives

    activation = torch.randn(2, 5, 9, 11)
    ones = torch.ones(2, 1, 3, 3)  # any size: resized to the activation
    monkeypatch.setitem(objectives.LOSSES, "cube", objectives.LossMode("cube", lambda a: a**3, False, "a test mode"))
    for mode in objectives.LOSSES:
        plain = objectives.layer_loss(activation, mode, keras_border=False)
        region = objectives.layer_loss(activation, mode, weight_map=ones)
        assert torch.allclose(plain, region, atol=1e-5), mode
    half = torch.zeros(2, 1, 9, 11)
    half[..., :5] = 1.0
    cube = objectives.layer_loss(activation, "cube", weight_map=half)
    assert torch.allclose(cube, (activation[..., :5] ** 3).flatten(1).sum(1) / activation[0].numel(), atol=1e-5)


def test_terms_are_parsed_once_into_typed_values():
    from dream_core.objectives import Term, parse_layer_weights

    weights = parse_layer_weights("mixed4: 1, mixed4[3, 17, 40-42]: 2, mixed5[top8], class:jellyfish: 0.5, class:107")
    assert list(weights) == [
        Term("mixed4"),
        Term("mixed4", channels=(3, 17, 40, 41, 42)),
        Term("mixed5", top=8),
        Term("logits", class_name="jellyfish"),
        Term("logits", class_index=107),
    ]
    assert [str(term) for term in weights] == [
        "mixed4",
        "mixed4[3,17,40-42]",
        "mixed5[top8]",
        "class:jellyfish",
        "class:107",
    ]
    with pytest.raises(DreamError, match="runs backwards"):
        parse_layer_weights("mixed4[9-3]")
