"""Contact sheets, the zoom transform and animations, and the LayerSweep / DreamFrames / DreamZoom nodes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import pack_module

from dream_core import DreamCancelled, DreamError, DreamSettings, UnknownLayerError, dream
from dream_core.animation import FrameCollector, dream_frames, dream_zoom, zoom_transform
from dream_core.imageops import resize
from dream_core.sheet import contact_sheet, layer_sweep, parse_sweep

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = DreamSettings(octaves=2, iterations=3, step=0.02, jitter=8, seed=3)
NODE_OPTIONS = dict(octaves=2, octave_scale=1.4, iterations=3, step=0.02, jitter=8, seed=3)


@pytest.fixture(scope="module")
def creative():
    """nodes/creative_nodes.py as the pack imports it (relative imports inside the package)."""
    return pack_module("nodes.creative_nodes")


@pytest.fixture(scope="module")
def photo(astronaut) -> torch.Tensor:
    """The sample photo at 96 x 112 px: small enough for many dreams per test."""
    return F.interpolate(astronaut, size=(96, 112), mode="area")


def _bhwc(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 2, 3, 1).contiguous()


def _bchw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2)


def _flat_images(count: int, height: int = 48, width: int = 64) -> torch.Tensor:
    """`count` images of one distinct colour each, so each can be found on a sheet."""
    levels = torch.linspace(0.2, 0.8, count).view(count, 1, 1, 1)
    return torch.cat([levels, 1 - levels, levels.flip(0)], dim=1).expand(count, 3, height, width).contiguous()


# --- contact_sheet -----------------------------------------------------------------------------


def _cell_origins(sheet: torch.Tensor, count: int, columns: int, height: int, width: int):
    """Where each cell's image lies, from the layout rule: equal cells, `gap` px around each."""
    gap = max(2, width // 64)
    rows = math.ceil(count / columns)
    assert sheet.shape[-1] == columns * width + (columns + 1) * gap
    cell_height, remainder = divmod(sheet.shape[-2] - (rows + 1) * gap, rows)
    assert remainder == 0 and cell_height > height  # a label strip under every image
    return [(gap + (i // columns) * (cell_height + gap), gap + (i % columns) * (width + gap)) for i in range(count)], (
        cell_height - height
    )


def test_contact_sheet_is_one_image_with_every_input_in_its_grid_cell():
    images = _flat_images(5)
    sheet = contact_sheet(images, [f"image {i}" for i in range(5)], columns=2)
    assert sheet.shape[:2] == (1, 3) and sheet.dtype == torch.float32
    origins, _ = _cell_origins(sheet[0], 5, 2, 48, 64)
    for i, (top, left) in enumerate(origins):
        assert torch.equal(sheet[0, :, top : top + 48, left : left + 64], images[i])  # pixels kept exactly
    wide = contact_sheet(images, [""] * 5, columns=3)
    _cell_origins(wide[0], 5, 3, 48, 64)
    assert contact_sheet(images, [""] * 5, columns=9).shape[-1] == 5 * 64 + 6 * 2  # never more columns than images


def test_contact_sheet_with_columns_0_is_about_square():
    sheet = contact_sheet(_flat_images(4, 64, 64), ["a", "b", "c", "d"])
    _cell_origins(sheet[0], 4, 2, 64, 64)  # 2 x 2
    height, width = sheet.shape[-2:]
    assert 0.7 < width / height < 1.4
    single = contact_sheet(_flat_images(1), ["only"])
    _cell_origins(single[0], 1, 1, 48, 64)


def test_contact_sheet_labels_are_drawn_under_their_own_image():
    images = _flat_images(2)
    blank = contact_sheet(images, ["", ""], columns=2)[0]
    labelled = contact_sheet(images, ["blocks.6: 1", ""], columns=2)[0]
    other = contact_sheet(images, ["mixed4: 2", ""], columns=2)[0]
    assert blank.shape == labelled.shape == other.shape
    origins, strip = _cell_origins(labelled, 2, 2, 48, 64)
    (top0, left0), (top1, left1) = origins
    first_strip = (slice(None), slice(top0 + 48, top0 + 48 + strip), slice(left0, left0 + 64))
    second_strip = (slice(None), slice(top1 + 48, top1 + 48 + strip), slice(left1, left1 + 64))
    assert (labelled[first_strip] - blank[first_strip]).abs().sum() > 5  # the text is there...
    assert not torch.equal(labelled[first_strip], other[first_strip])  # ...and depends on the label
    assert torch.equal(labelled[second_strip], blank[second_strip])  # the other cell is untouched
    assert torch.equal(labelled[:, top0 : top0 + 48, left0 : left0 + 64], images[0])


def test_contact_sheet_wraps_long_labels_and_rejects_a_wrong_label_count():
    images = _flat_images(2)
    short = contact_sheet(images, ["a", "b"], columns=2)
    long = contact_sheet(images, ["blocks.6: 1, blocks.8: 1.5, blocks.10: 1", "b"], columns=2)
    assert long.shape[-1] == short.shape[-1] and long.shape[-2] > short.shape[-2]  # taller strips, not wider cells
    with pytest.raises(DreamError, match="labels"):
        contact_sheet(images, ["a"])


def test_parse_sweep_gives_one_entry_per_line():
    entries = parse_sweep("mixed4: 1\n\n  mixed3: 1, mixed5: 0.5  \n# a note\nmixed6")
    assert [(label, {str(t): w for t, w in weights.items()}) for label, weights in entries] == [
        ("mixed4: 1", {"mixed4": 1.0}),
        ("mixed3: 1, mixed5: 0.5", {"mixed3": 1.0, "mixed5": 0.5}),
        ("mixed6", {"mixed6": 1.0}),
    ]
    with pytest.raises(DreamError):
        parse_sweep("\n  \n")


# --- zoom_transform ----------------------------------------------------------------------------


def test_zoom_transform_without_zoom_turn_or_shift_is_the_identity(photo):
    batch = torch.cat([photo, 1 - photo])[..., :95, :]  # odd height, batch of 2
    assert (zoom_transform(batch, 1.0, 0.0, 0.0, 0.0) - batch).abs().max() < 1e-5


def test_zoom_2_enlarges_the_centre_half(photo):
    zoomed = zoom_transform(photo, 2.0, 0.0, 0.0, 0.0)
    centre = photo[..., 24:72, 28:84]  # the middle half of 96 x 112
    expected = F.interpolate(centre, size=(96, 112), mode="bilinear", align_corners=False)
    # Inside, the same bilinear samples; the outermost pixel differs only in what lies beyond the crop.
    assert (zoomed - expected)[..., 1:-1, 1:-1].abs().max() < 1e-4
    assert (zoomed - photo).abs().mean() > 0.02


def test_zoom_transform_turns_counter_clockwise_and_shifts_in_pixels(photo):
    square = photo[..., :, 8:104]
    turned = zoom_transform(square, 1.0, 90.0)
    assert (turned - torch.rot90(square, 1, dims=(-2, -1))).abs().max() < 1e-4  # counter-clockwise on screen
    moved = zoom_transform(photo, 1.0, 0.0, shift_x=5.0, shift_y=3.0)
    assert (moved[..., 3:, 5:] - photo[..., :-3, :-5]).abs().max() < 1e-4
    # What comes into view is the image mirrored at its edge, not a black border.
    assert (moved[..., :3, 5:] - photo[..., :3, :-5].flip(-2)).abs().max() < 1e-4


# --- dream_zoom --------------------------------------------------------------------------------


def test_dream_zoom_is_deterministic_and_each_frame_dreams_the_previous_zoomed_in(lite0, photo):
    layers = dict(lite0.spec.default_layers)
    reports, finished = [], []
    frames = dream_zoom(
        photo,
        lite0,
        layers,
        SETTINGS,
        frames=3,
        zoom=1.1,
        angle=2.0,
        shift_x=1.0,
        on_progress=lambda step, total, image: reports.append((step, total)),
        on_frame=lambda index, frame: finished.append(index),
    )
    assert frames.shape == (3, 3, 96, 112)
    assert torch.equal(frames, dream_zoom(photo, lite0, layers, SETTINGS, frames=3, zoom=1.1, angle=2.0, shift_x=1.0))
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert (frames[a] - frames[b]).abs().mean() > 0.01
    # The recipe: frame 0 = dream(image); frame k = dream(zoom(frame k-1)) with seed + k.
    assert torch.equal(frames[:1], dream(photo, lite0, layers, SETTINGS).images)
    moved = zoom_transform(frames[1:2], 1.1, 2.0, 1.0, 0.0)
    assert torch.equal(frames[2:3], dream(moved, lite0, layers, SETTINGS.with_options(seed=5)).images)
    # One progress count over all frames, and a callback per frame.
    total = 3 * 2 * 3
    assert reports == [(step, total) for step in range(1, total + 1)]
    assert finished == [0, 1, 2]


def test_dream_zoom_stops_when_asked(lite0, photo):
    with pytest.raises(DreamCancelled):
        dream_zoom(photo, lite0, dict(lite0.spec.default_layers), SETTINGS, frames=2, should_stop=lambda: True)
    with pytest.raises(DreamError, match="frames"):
        dream_zoom(photo, lite0, dict(lite0.spec.default_layers), SETTINGS, frames=0)


# --- frames every N steps ----------------------------------------------------------------------


def test_frame_collector_keeps_one_image_per_multiple_and_ends_with_the_final_image():
    collector = FrameCollector(every=3)
    for step, size in ((2, 8), (3, 8), (7, 12), (8, 12), (10, 12)):  # 7: jumped past 6 (max_loss)
        collector(step, 10, torch.full((1, 3, size, size), float(step)))
    final = torch.full((1, 3, 12, 12), 99.0)
    frames = collector.frames(final)
    assert frames.shape == (3, 3, 12, 12)  # steps 3 and 7 (enlarged to 12 px), then the final image
    assert [float(f.mean()) for f in frames] == [3.0, 7.0, 99.0]
    with pytest.raises(DreamError):
        FrameCollector(every=0)


def test_dream_frames_keeps_the_image_every_n_steps_in_order(lite0, photo):
    layers = dict(lite0.spec.default_layers)
    settings = SETTINGS.with_options(iterations=5)  # 10 steps over 2 octaves
    seen = {}

    def record(step, total, image):
        seen[step] = image.detach().clone()

    reference = dream(photo, lite0, layers, settings, on_progress=record).images
    result, frames = dream_frames(photo, lite0, layers, settings, every=3)
    assert frames.shape == (math.ceil(10 / 3), 3, 96, 112)
    assert torch.equal(result.images, reference) and torch.equal(frames[-1], reference[0])
    for index, step in enumerate((3, 6, 9)):  # step 3 lies in the first, smaller octave
        assert torch.equal(frames[index], resize(seen[step], (96, 112))[0])


def test_dream_frames_node_returns_ceil_total_over_every_frames_per_image(creative, lite0, photo):
    batch = torch.cat([photo, photo.flip(-1)])
    options = dict(NODE_OPTIONS, iterations=4)  # 8 steps
    image, frames = creative.DreamFrames.execute(_bhwc(batch), lite0, every_n_steps=3, **options)
    assert image.shape == (2, 96, 112, 3) and frames.shape == (2 * 3, 96, 112, 3)  # ceil(8 / 3) = 3 per image
    assert torch.equal(frames[2], image[0]) and torch.equal(frames[5], image[1])  # image-major, final last
    assert (frames[0] - frames[2]).abs().mean() > 0.005
    _, one = creative.DreamFrames.execute(_bhwc(photo), lite0, every_n_steps=100, **options)
    assert one.shape == (1, 96, 112, 3)  # every >= all steps: just the final image


# --- LayerSweep --------------------------------------------------------------------------------


def test_layer_sweep_node_dreams_once_per_line_and_returns_a_sheet(creative, lite0, photo):
    lines = "blocks.6: 1\nblocks.10: 1\nblocks.6: 1, blocks.10: 0.5"
    images, sheet = creative.LayerSweep.execute(_bhwc(photo), lite0, layers=lines, columns=0, **NODE_OPTIONS)
    assert images.shape == (3, 96, 112, 3)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert (images[a] - images[b]).abs().mean() > 0.005, (a, b)
    # The first line is a plain dream with that line's layers.
    plain = dream(_bchw(_bhwc(photo)), lite0, {"blocks.6": 1.0}, SETTINGS).images  # the node's memory layout
    assert torch.equal(images[0], _bhwc(plain)[0])
    assert sheet.ndim == 4 and sheet.shape[0] == 1 and sheet.shape[-1] == 3
    assert sheet.shape[1] > 96 and sheet.shape[2] > 112
    # Every dream is on the sheet, pixel for pixel, in line order.
    columns, remainder = divmod(sheet.shape[2] - 2, 112 + 2)
    assert remainder == 0
    origins, _ = _cell_origins(_bchw(sheet)[0], 3, columns, 96, 112)
    for i, (top, left) in enumerate(origins):
        assert torch.equal(sheet[0, top : top + 96, left : left + 112], images[i]), i


def test_layer_sweep_of_a_batch_is_image_major_with_a_row_per_image(creative, lite0, photo):
    batch = torch.cat([photo, photo.flip(-1)])
    options = dict(NODE_OPTIONS, octaves=1, iterations=2)
    settings = SETTINGS.with_options(octaves=1, iterations=2)
    images, sheet = creative.LayerSweep.execute(_bhwc(batch), lite0, layers="blocks.6\nblocks.10", **options)
    assert images.shape == (4, 96, 112, 3)
    alone = dream(photo.flip(-1), lite0, {"blocks.6": 1.0}, settings).images
    assert (_bchw(images[2:3]) - alone).abs().mean() < 1e-3  # image 1, line 1 (batched convs round differently)
    assert (_bchw(images[1:2]) - alone).abs().mean() > 0.01
    assert sheet.shape[2] == 2 * 112 + 3 * 2  # columns = lines: one row per input image


def test_layer_sweep_checks_every_line_before_dreaming(lite0, photo):
    steps = []
    with pytest.raises(UnknownLayerError, match="nope"):
        layer_sweep(photo, lite0, [{"blocks.6": 1.0}, {"nope": 1.0}], SETTINGS, on_progress=lambda *a: steps.append(a))
    assert steps == []


# --- node specs and ComfyUI's conditions --------------------------------------------------------


def test_creative_nodes_are_well_formed_and_reuse_octave_dream_options(creative):
    octave_dream = pack_module("nodes.dream_nodes").OctaveDream
    octave = octave_dream.INPUT_TYPES()["required"]
    settings_fields = set(vars(DreamSettings()))
    for cls in (creative.LayerSweep, creative.DreamFrames, creative.DreamZoom):
        assert cls.CATEGORY == "DeepDream" and len(cls.DESCRIPTION) > 40
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        types = cls.INPUT_TYPES()
        for inputs in types.values():
            for name, spec in inputs.items():
                options = spec[1]
                assert len(options.get("tooltip", "")) > 10, f"{cls.__name__}.{name}"
                if spec[0] in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"], f"{cls.__name__}.{name}"
        required = types["required"]
        assert settings_fields & set(octave) <= set(required)
        for name in settings_fields & set(octave):
            expected = {"octaves": 2, "iterations": 10} if cls is creative.DreamZoom else {}
            assert required[name][1]["default"] == expected.get(name, octave[name][1]["default"]), name
            assert required[name][1]["tooltip"] == octave[name][1]["tooltip"]
        for name, spec in types.get("optional", {}).items():  # layer_weights, mask, guide, regions: OctaveDream's
            if name not in ("schedule", "loop"):  # Dream Zoom's own
                assert spec == octave_dream.INPUT_TYPES()["optional"][name], f"{cls.__name__}.{name}"
    assert octave["octaves"][1]["default"] == DreamSettings().octaves  # OctaveDream's own default untouched
    default_lines = creative.LayerSweep.INPUT_TYPES()["required"]["layers"][1]["default"].splitlines()
    assert len(default_lines) == 4 and default_lines[-1].count(":") == 3  # each default layer, then all


def test_dream_zoom_node_runs_under_inference_mode_and_matches_the_engine(creative, lite0, photo):
    with torch.inference_mode():  # as ComfyUI runs nodes: the input is an inference tensor
        image = _bhwc(photo.clone())
        (frames,) = creative.DreamZoom.execute(image, lite0, frames=2, zoom=1.08, angle=1.0, **NODE_OPTIONS)
    assert frames.shape == (2, 96, 112, 3)
    # The node hands the engine ComfyUI's [B, H, W, C] memory layout; so does the reference.
    layout = _bchw(_bhwc(photo))
    expected = dream_zoom(layout, lite0, dict(lite0.spec.default_layers), SETTINGS, frames=2, zoom=1.08, angle=1.0)
    assert torch.equal(_bchw(frames), expected)


def test_the_nodes_pass_mask_and_guide_to_every_dream(creative, lite0, photo):
    options = dict(NODE_OPTIONS, octaves=1)
    image, frames = creative.DreamFrames.execute(
        _bhwc(photo), lite0, every_n_steps=1, mask=torch.zeros(1, 96, 112), **options
    )
    assert (image - _bhwc(photo)).abs().max() < 1e-6 and (frames - _bhwc(photo)).abs().max() < 1e-6
    guide = _bhwc(photo.flip(-2).flip(-1))
    (plain,) = creative.DreamZoom.execute(_bhwc(photo), lite0, frames=1, **options)
    (guided,) = creative.DreamZoom.execute(_bhwc(photo), lite0, frames=1, guide=guide, guide_mix=1.0, **options)
    assert (plain - guided).abs().mean() > 0.005
