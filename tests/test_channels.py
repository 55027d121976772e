"""Channel pictures: a picture grown from noise per channel, exciting its own channel."""

from __future__ import annotations

import sys
from pathlib import Path

import build_workflows
import pytest
import torch
from conftest import node_widget_defaults, pack_module
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from looks import high_frequency_share  # noqa: E402  (the benchmark's own measure)

channels = pack_module("dream_core.channels")
goals = pack_module("dream_core.goals")
options = pack_module("dream_core.options")
errors = pack_module("dream_core.errors")
cli = pack_module("dream_core.cli")

FAST = dict(size=96, steps=128)


@pytest.fixture(scope="module")
def eight(lite0):
    """Pictures of 8 channels of a middle layer of the default model (blocks.8 of 16 blocks)."""
    return channels.channel_pictures(lite0, "blocks.8", range(8), options.ChannelSettings(**FAST))


@pytest.mark.slow
def test_each_picture_excites_its_own_channel_far_more_than_its_noise_did(eight):
    print("start", eight.start.numpy().round(2), "end", eight.end.numpy().round(2))
    # The starting noise's activation can be negative: the picture must beat five times its size either way.
    assert bool((eight.end >= 5 * eight.start.abs()).all())
    assert bool((eight.end > 5).all())


def test_each_picture_is_its_own_channels_strongest_among_the_eight(lite0, eight):
    """The diagonal check: channel j fires hardest on picture j of the eight."""
    means = channels.channel_means(lite0, "blocks.8", eight.images)[:, :8]  # [picture, channel]
    assert means.argmax(dim=0).tolist() == list(range(8))
    assert torch.allclose(means.diagonal(), eight.end, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_the_pictures_are_patterns_not_noise_and_seeded(lite0, eight):
    images = eight.images
    assert images.shape == (8, 3, 96, 96) and images.min() >= 0 and images.max() <= 1
    change = images - channels.starting_noise(8, 96, 0)
    assert change.abs().mean() > 0.05
    # A pattern, not noise: white noise keeps 80% of its energy above half Nyquist.
    assert high_frequency_share(change) < 0.3
    # Distinct: no two pictures alike.
    flat = images.flatten(1)
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    assert distances[~torch.eye(8, dtype=torch.bool)].min() > 0.1
    again = channels.channel_pictures(lite0, "blocks.8", [2], options.ChannelSettings(**FAST, seed=0)).images
    other = channels.channel_pictures(lite0, "blocks.8", [2], options.ChannelSettings(**FAST, seed=1)).images
    alone = channels.channel_pictures(lite0, "blocks.8", [2], options.ChannelSettings(**FAST, seed=0)).images
    assert torch.equal(again, alone) and (again - other).abs().mean() > 0.05


def test_channels_are_chosen_and_checked(lite0, astronaut):
    assert goals.parse_goals("0-3, 7") == (goals.channel_goals((0, 1, 2, 3, 7)), 0)
    assert goals.parse_goals("top5") == ((), 5)
    for bad, message in (("bottom3", "topN"), ("0-999", "at most 256"), ("x", "indices"), ("top3,4", "alone")):
        with pytest.raises(errors.DreamError, match=message):
            goals.parse_goals(bad)
    with pytest.raises(errors.DreamError, match="channels 0..111"):
        channels.channel_pictures(lite0, "blocks.8", [112], options.ChannelSettings(**FAST))
    with pytest.raises(errors.UnknownLayerError, match="mixed4"):
        channels.channel_pictures(lite0, "mixed4", [0], options.ChannelSettings(**FAST))
    top = channels.top_channels(lite0, "blocks.8", astronaut, 4)
    means = channels.channel_means(lite0, "blocks.8", astronaut)[0]
    assert list(top) == means.argsort(descending=True)[:4].tolist()
    assert channels.default_layer(lite0) == "blocks.8"


def test_the_node_gives_the_batch_and_a_labelled_sheet(astronaut):
    nodes = build_workflows.load_pack().nodes.NODE_CLASS_MAPPINGS
    model = nodes["LoadFeatureModel"].execute("efficientnet_lite0", "imagenet")[0]
    node = nodes["ChannelPictures"]()
    widgets = node_widget_defaults(node, ("feature_model", "layer", "channels", "columns"), size=64, steps=8)
    photo = astronaut.permute(0, 2, 3, 1)
    with torch.inference_mode():  # as ComfyUI runs nodes
        pictures, sheet = node.execute(model, "blocks.6", "top3", 3, image=photo, **widgets)
    assert pictures.shape == (3, 64, 64, 3) and sheet.shape[0] == 1 and sheet.shape[2] > 3 * 64
    top = channels.top_channels(model, "blocks.6", astronaut, 3)
    direct = channels.channel_pictures(model, "blocks.6", top, options.ChannelSettings(**widgets)).images
    assert torch.allclose(pictures, direct.permute(0, 2, 3, 1), atol=1e-6)
    with pytest.raises(errors.DreamError, match="connect an image"):
        node.execute(model, "", "top3", 0, **widgets)


def test_the_cli_writes_the_sheet_and_each_picture(tmp_path, capsys):
    sheet, folder = tmp_path / "sheet.png", tmp_path / "pictures"
    code = cli.main(
        [
            "channels",
            "-o",
            str(sheet),
            "--channels",
            "1,4",
            "--size",
            "64",
            "--steps",
            "4",
            "--pictures",
            str(folder),
            "--layer",
            "block6",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "Growing 2 pictures of blocks.6 of efficientnet_lite0" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["blocks.6_1.png", "blocks.6_4.png"]
    with Image.open(sheet) as picture:
        assert picture.width > 2 * 64
    assert cli.main(["channels", "-o", str(tmp_path / "x.png"), "--channels", "top4"]) == 2
    assert "--image" in capsys.readouterr().err
    assert cli.main(["channels", "-o", str(sheet), "--channels", "1"]) == 2  # exists: refused without --overwrite
    assert "exists" in capsys.readouterr().err
