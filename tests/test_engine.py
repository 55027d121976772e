"""The dream loop: the Keras recipe's arithmetic, determinism, batches, callbacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dream_core import DreamCancelled, DreamError, DreamSettings, dream, objective_value, octave_shapes
from dream_core.imageops import resize

FAST = DreamSettings(octaves=2, octave_scale=1.4, iterations=3, step=0.02, max_loss=0.0, jitter=8, seed=1)
LAYERS = {"blocks.6": 1.0, "blocks.8": 1.5}


def test_octave_shapes_follow_keras_smallest_first():
    # Keras: int(dim / octave_scale**i), reversed so the smallest comes first.
    assert octave_shapes(512, 400, 3, 1.4) == [(261, 204), (365, 285), (512, 400)]
    assert octave_shapes(100, 80, 1, 1.4) == [(100, 80)]


def test_octaves_below_the_network_minimum_are_skipped():
    assert octave_shapes(100, 100, 4, 2.0, min_size=32) == [(50, 50), (100, 100)]


def test_zero_iterations_returns_the_input(lite0, small_photo):
    # The octave resizes and the detail re-injection must lose nothing.
    settings = FAST.with_options(iterations=0, octaves=4, octave_scale=1.3)
    result = dream(small_photo, lite0, LAYERS, settings)
    assert result.images.shape == small_photo.shape
    assert (result.images - small_photo).abs().max().item() < 1 / 255
    assert len(result.octave_images) == 4


def test_without_reinjection_zero_iterations_loses_detail(lite0, small_photo):
    # The counterpart of the test above: re-injection is what keeps the detail.
    settings = FAST.with_options(iterations=0, octaves=3, reinject_detail=False)
    result = dream(small_photo, lite0, LAYERS, settings)
    assert (result.images - small_photo).abs().max().item() > 1 / 255


def test_same_seed_is_bitwise_identical_and_another_seed_differs(lite0, small_photo):
    a = dream(small_photo, lite0, LAYERS, FAST).images
    b = dream(small_photo, lite0, LAYERS, FAST).images
    c = dream(small_photo, lite0, LAYERS, FAST.with_options(seed=2)).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - small_photo).abs().mean() > 0.005  # it did dream


def test_every_image_of_a_batch_is_dreamed_as_alone(lite0, small_photo):
    batch = torch.cat([small_photo, small_photo.flip(-1), 1 - small_photo])
    # One step per octave: later steps amplify float rounding chaotically (a ReLU
    # kink flips), so a batch-vs-alone comparison is only sharp before that.
    settings = FAST.with_options(iterations=1)
    together = dream(batch, lite0, LAYERS, settings).images
    assert together.shape == batch.shape
    for i in range(3):
        alone = dream(batch[i : i + 1], lite0, LAYERS, settings).images
        assert (together[i] - alone[0]).abs().mean().item() < 1e-4
        assert (together[i] - batch[i]).abs().mean().item() > 1e-3
    full = dream(batch, lite0, LAYERS, FAST).images
    for i in range(3):
        assert objective_value(lite0, full[i : i + 1], LAYERS) > 1.2 * objective_value(lite0, batch[i : i + 1], LAYERS)


def test_max_loss_ends_an_octave_before_the_step(lite0, small_photo):
    # A limit below the photo's own loss: Keras breaks before the first step.
    start = objective_value(lite0, small_photo, LAYERS).item()
    result = dream(small_photo, lite0, LAYERS, FAST.with_options(max_loss=start / 10))
    assert (result.images - small_photo).abs().max().item() < 1 / 255
    unlimited = dream(small_photo, lite0, LAYERS, FAST.with_options(max_loss=start * 100))
    assert (unlimited.images - small_photo).abs().mean().item() > 0.005


def test_max_loss_is_per_image_in_a_batch(lite0, small_photo):
    # A flat grey image has a far smaller loss than the photo: only the photo stops.
    grey = torch.full_like(small_photo, 0.5)
    losses = objective_value(lite0, torch.cat([small_photo, grey]), LAYERS)
    assert losses[0] > losses[1]
    limit = (losses[0].item() + losses[1].item()) / 2
    result = dream(
        torch.cat([small_photo, grey]), lite0, LAYERS, FAST.with_options(max_loss=limit, jitter=0, octaves=1)
    )
    assert (result.images[0] - small_photo[0]).abs().max().item() < 1 / 255
    assert (result.images[1] - grey[0]).abs().mean().item() > 1e-3


def test_progress_is_reported_every_step_and_stop_cancels(lite0, small_photo):
    calls = []
    dream(small_photo, lite0, LAYERS, FAST, on_progress=lambda s, t, img: calls.append((s, t, img.shape[0])))
    assert [c[0] for c in calls] == list(range(1, 7)) and all(c[1] == 6 for c in calls)

    seen = []

    def stop() -> bool:
        seen.append(1)
        return len(seen) > 2

    with pytest.raises(DreamCancelled):
        dream(small_photo, lite0, LAYERS, FAST, should_stop=stop)
    assert len(seen) == 3  # checked before every step, honoured at once


def test_dream_runs_inside_inference_mode(small_photo):
    # ComfyUI executes nodes under torch.inference_mode(); loading and dreaming there
    # must still work.
    from dream_core import load_feature_model

    with torch.inference_mode():
        model = load_feature_model("efficientnet_lite0", "imagenet")
        image = small_photo.clone()
        result = dream(image, model, LAYERS, FAST)
    assert (result.images - small_photo).abs().mean() > 0.005


def test_dreaming_leaves_the_model_weights_untouched(lite0, small_photo):
    before = {k: v.clone() for k, v in lite0.net.state_dict().items()}
    dream(small_photo, lite0, LAYERS, FAST)
    after = lite0.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in lite0.net.parameters())


def test_loss_modes_and_normalisations_all_raise_the_objective(lite0, small_photo):
    for loss in ("l2", "mean", "mean_sq"):
        for normalize in ("mean_abs", "std"):
            settings = FAST.with_options(loss=loss, normalize=normalize, jitter=0)
            out = dream(small_photo, lite0, LAYERS, settings).images
            before = objective_value(lite0, small_photo, LAYERS, loss).item()
            after = objective_value(lite0, out, LAYERS, loss).item()
            assert after > before, (loss, normalize, before, after)


def test_invalid_settings_name_the_option():
    with pytest.raises(DreamError, match="octave_scale"):
        DreamSettings(octave_scale=0.5).validate()
    with pytest.raises(DreamError, match="normalize"):
        DreamSettings(normalize="l1").validate()
    with pytest.raises(DreamError, match="Unknown dream options"):
        DreamSettings().with_options(octave=3)


def test_an_image_smaller_than_the_network_takes_is_dreamed_enlarged(lite0, caplog):
    image = torch.rand(1, 3, 16, 12)
    with caplog.at_level("WARNING"):
        out = dream(image, lite0, LAYERS, FAST).images
    assert out.shape == image.shape and (out - image).abs().mean() > 1e-3
    assert "smaller than the 32 px" in caplog.text
    with pytest.raises(DreamError, match="too thin"):
        dream(torch.rand(1, 3, 1, 600), lite0, LAYERS, FAST)


def test_resize_to_the_same_shape_is_the_identity():
    x = torch.rand(1, 3, 17, 23)
    assert resize(x, (17, 23)) is x
    assert resize(x, (34, 46)).shape[-2:] == (34, 46)


@pytest.mark.slow
def test_dream_on_the_sample_photo_raises_the_objective_and_keeps_the_photo(lite0, astronaut):
    """The README's main job: the default settings on the bundled photo.

    The objective at least doubles, while the photo stays recognisable: downscaled
    16x (area average, 32x32), the dream stays within a mean absolute difference of
    0.06 (0..1 scale) of the downscaled original.
    """
    from dream_core.presets import get_preset

    preset = get_preset("lite0")
    result = dream(astronaut, lite0, preset.layers, preset.settings)
    before = objective_value(lite0, astronaut, preset.layers).item()
    after = objective_value(lite0, result.images, preset.layers).item()
    assert after >= 2 * before, (before, after)
    small = F.interpolate(result.images, scale_factor=1 / 16, mode="area")
    small_original = F.interpolate(astronaut, scale_factor=1 / 16, mode="area")
    assert (small - small_original).abs().mean().item() < 0.06


def test_a_mask_sets_the_dream_strength_per_pixel(lite0, small_photo):
    no_mask = dream(small_photo, lite0, LAYERS, FAST).images
    ones = dream(small_photo, lite0, LAYERS, FAST, mask=torch.ones(64, 60)).images
    assert torch.equal(ones, no_mask)  # an all-one mask (of any size) is no mask
    zeros = dream(small_photo, lite0, LAYERS, FAST, mask=torch.zeros(1, 128, 121)).images
    assert (zeros - small_photo).abs().max().item() < 1 / 255
    half = torch.zeros(1, 128, 121)
    half[..., 64:] = 1.0
    out = dream(small_photo, lite0, LAYERS, FAST, mask=half).images
    assert (out - small_photo)[..., :56].abs().max().item() < 1 / 255  # left of the soft edge
    assert (out - small_photo)[..., 70:].abs().mean().item() > 0.005


def test_a_short_mask_batch_is_used_in_turn(lite0, small_photo, caplog):
    masks = torch.stack([torch.zeros(8, 8), torch.ones(8, 8)])
    with caplog.at_level("WARNING"):
        out = dream(torch.cat([small_photo] * 3), lite0, LAYERS, FAST, mask=masks).images
    assert "used in turn" in caplog.text
    assert (out[0] - small_photo[0]).abs().max() < 1 / 255 and (out[2] - small_photo[0]).abs().max() < 1 / 255
    assert (out[1] - small_photo[0]).abs().mean() > 0.005


def test_a_model_moved_under_inference_mode_by_someone_else_still_dreams(small_photo):
    # ComfyUI's model management may offload or reload the network inside a node's
    # inference mode; on a GPU that leaves inference tensors as parameters.
    from dream_core import load_feature_model

    model = load_feature_model("efficientnet_lite0", "imagenet")
    with torch.inference_mode():
        model.net.to("cpu")  # copies, as a GPU move does (the autouse fixture)
        assert all(p.is_inference() for p in model.net.parameters())
        result = dream(small_photo, model, LAYERS, FAST.with_options(precision="fp32"))
    assert (result.images - small_photo).abs().mean() > 0.005
    assert not any(t.is_inference() for t in model.net.state_dict().values())


class InterruptProcessingException(BaseException):
    """As newer ComfyUI raises on Cancel: a BaseException, which `except Exception` lets through."""


@pytest.mark.parametrize("tile_size", [0, 64])
def test_cancel_arriving_as_a_base_exception_stops_cleanly(lite0, small_photo, tile_size):
    calls = []

    def cancel_on_the_third_check():
        calls.append(1)
        if len(calls) == 3:
            raise InterruptProcessingException()
        return False

    before = {k: v.clone() for k, v in lite0.net.state_dict().items()}
    hooks = sum(len(m._forward_hooks) for m in lite0.net.modules())
    settings = FAST.with_options(tile_size=tile_size, precision="bf16")
    with pytest.raises(InterruptProcessingException):
        dream(small_photo, lite0, LAYERS, settings, should_stop=cancel_on_the_third_check)
    assert sum(len(m._forward_hooks) for m in lite0.net.modules()) == hooks  # the tap is gone
    after = lite0.net.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype for k in before)
    again = dream(small_photo, lite0, LAYERS, settings).images  # and the model dreams as before
    assert (again - small_photo).abs().mean() > 0.005


def test_the_plan_is_what_the_dream_does_and_reports(lite0, small_photo):
    from dream_core.engine import plan

    settings = FAST.with_options(octaves=4, octave_scale=2.0, iterations=3)
    the_plan = plan(lite0, *small_photo.shape[-2:], settings)
    assert the_plan.size == (128, 121) and the_plan.skipped == 2  # 16x15 and 32x30 px: under Lite0's 32
    assert the_plan.shapes == ((64, 60), (128, 121))
    seen = []
    result = dream(small_photo, lite0, LAYERS, settings, on_progress=lambda step, total, _: seen.append(total))
    assert set(seen) == {the_plan.steps} and result.steps_done == the_plan.steps == 6
    tiny = plan(lite0, 8, 16, settings)
    assert tiny.size == (32, 64) and tiny.steps == len(tiny.shapes) * 3  # enlarged to the least Lite0 takes
