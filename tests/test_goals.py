"""What channel pictures climb besides a channel: negative channels, neurons, directions, classes, diverse batches;
and how they are grown (a sigmoid-parametrised picture, no gradient floor, redirected ReLUs)."""

from __future__ import annotations

import build_workflows
import pytest
import torch
from conftest import node_widget_defaults, pack_module

channels = pack_module("dream_core.channels")
goals = pack_module("dream_core.goals")
relus = pack_module("dream_core.relus")
options = pack_module("dream_core.options")
errors = pack_module("dream_core.errors")
driver = pack_module("dream_core.cluster.driver")

FAST = dict(size=96, steps=64)
Goal = goals.Goal


def test_the_channel_list_names_each_kind_of_goal_and_labels_it():
    parsed, top = goals.parse_goals("0-1, -5, 5@centre, 5@3:4, 7x3, 3+0.5*17-40, class:jellyfish")
    assert top == 0
    assert parsed[:2] == goals.channel_goals((0, 1))
    assert parsed[2] == Goal(((5, -1.0),))
    assert parsed[3] == Goal(((5, 1.0),), at=(-1, -1)) and parsed[4] == Goal(((5, 1.0),), at=(3, 4))
    assert [g.member for g in parsed[5:8]] == [0, 1, 2] and {g.group for g in parsed[5:8]} == {0}
    assert parsed[8] == Goal(((3, 1.0), (17, 0.5), (40, -1.0)))
    assert parsed[9] == Goal(class_name="jellyfish")
    labels = [goal.label("blocks.8") for goal in parsed]
    assert labels == [
        "blocks.8[0]",
        "blocks.8[1]",
        "blocks.8[5] negative",
        "blocks.8[5] @centre",
        "blocks.8[5] @3:4",
        "blocks.8[7] diverse 1/3",
        "blocks.8[7] diverse 2/3",
        "blocks.8[7] diverse 3/3",
        "blocks.8[3+0.5*17-40]",
        "class:jellyfish",
    ]
    # Two diverse batches are two groups.
    assert [g.group for g in goals.parse_goals("1x2,2x2")[0]] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("5x1", "2 to 16"),
        ("5x40", "2 to 16"),
        ("3+x", "3\\+0.5\\*17-40"),
        ("3-1*3", "cancel out"),
        ("class:", "name the class"),
        ("1,top3", "alone"),
        ("5@", "indices"),
        ("99999999", "beyond any layer"),
        ("0-300", "at most 256"),
    ],
)
def test_a_bad_channel_list_says_what_to_write(text, message):
    with pytest.raises(errors.DreamError, match=message):
        goals.parse_goals(text)


def test_bad_goals_are_refused_against_the_network(lite0):
    settings = options.ChannelSettings(size=64, steps=1)
    with pytest.raises(errors.DreamError, match="channels 0..111"):
        channels.channel_pictures(lite0, "blocks.8", goals.parse_goals("3+500")[0], settings)
    with pytest.raises(errors.DreamError, match="grid of 4x4"):
        channels.channel_pictures(lite0, "blocks.8", goals.parse_goals("5@9:9")[0], settings)
    with pytest.raises(errors.DreamError, match="class"):
        channels.channel_pictures(lite0, "blocks.8", goals.parse_goals("class:no such thing")[0], settings)


@pytest.fixture(scope="module")
def grown(lite0):
    """One picture per kind of goal on blocks.8, and the plain channel beside them."""
    text = "5, -5, 5@centre, 3+0.5*17-40, class:jellyfish"
    return channels.channel_pictures(lite0, "blocks.8", goals.parse_goals(text)[0], options.ChannelSettings(**FAST))


def test_each_goal_climbs_its_own_value(lite0, grown):
    assert bool((grown.end > grown.start + 5).all()), (grown.start, grown.end)
    means = channels.channel_means(lite0, "blocks.8", grown.images)
    # The negative channel's picture turns channel 5 off: below what the noise gave it and far below its picture.
    assert means[1, 5] < -5 and means[1, 5] < means[0, 5] - 20
    assert torch.allclose(grown.end[1], -means[1, 5], atol=1e-3)
    # The neuron's picture makes the centre fire harder than the channel's own picture makes its average position.
    assert grown.end[2] > means[0, 5]
    # The direction's value is the mix of its channels' means.
    mix = means[3, 3] + 0.5 * means[3, 17] - means[3, 40]
    assert torch.allclose(grown.end[3], mix, rtol=1e-3, atol=1e-3)
    # The class picture is that class to the network.
    with torch.no_grad(), lite0.tap(["logits"]) as tap:
        logits = tap(grown.images[4:5])["logits"]
    assert int(logits.argmax()) == lite0.resolve_class("jellyfish")


def test_the_neuron_picture_is_strongest_at_its_centre(lite0, grown):
    with torch.no_grad(), lite0.tap(["blocks.8"]) as tap:
        activation = tap(grown.images[2:3])["blocks.8"][0, 5]
    height, width = activation.shape
    centre = activation[height // 2 - 1 : height // 2 + 2, width // 2 - 1 : width // 2 + 2].mean()
    assert centre > 2 * activation.mean()


def test_grown_pictures_never_clip(grown):
    assert grown.images.min() > 0 and grown.images.max() < 1
    levels = (grown.images * 255).round()
    assert float(((levels == 0) | (levels == 255)).float().mean()) < 0.005


@pytest.mark.slow
def test_a_diverse_batch_pushes_its_pictures_apart(lite0):
    settings = options.ChannelSettings(**FAST)
    plain = channels.channel_pictures(lite0, "blocks.8", goals.parse_goals("5,5,5")[0], settings)
    diverse = channels.channel_pictures(lite0, "blocks.8", goals.parse_goals("5x3")[0], settings)

    def gram_similarity(images: torch.Tensor) -> float:
        with torch.no_grad(), lite0.tap(["blocks.8"]) as tap:
            activation = tap(images)["blocks.8"].flatten(2)
        grams = torch.nn.functional.normalize((activation @ activation.transpose(1, 2)).flatten(1), dim=1)
        return float((grams @ grams.T)[~torch.eye(3, dtype=torch.bool)].mean())

    assert gram_similarity(diverse.images) < gram_similarity(plain.images) - 0.02
    assert bool((diverse.end > 0.7 * plain.end.mean()).all())
    assert diverse.labels[0] == "blocks.8[5] diverse 1/3"


def test_a_shut_channel_is_opened_by_the_redirected_relu():
    x = torch.tensor([[-1.0, -2.0, 3.0]], requires_grad=True)
    with relus.redirected_relus():
        y = torch.nn.ReLU()(x)
    # Everything blocked for this picture: what pushes the shut inputs up passes, what pushes them down does not.
    (grad,) = torch.autograd.grad((y * torch.tensor([[1.0, -1.0, 0.0]])).sum(), x)
    assert grad.tolist() == [[1.0, 0.0, 0.0]]
    with relus.redirected_relus():
        y = torch.nn.ReLU6(inplace=True)(x * 4)
    assert y.tolist() == [[0.0, 0.0, 6.0]]
    (grad,) = torch.autograd.grad((y * torch.tensor([[1.0, 1.0, 1.0]])).sum(), x)
    assert grad.tolist() == [[4.0, 4.0, 0.0]]  # up from below passes; further up above 6 does not
    # Something gets through: the ReLU's own gradient, unchanged.
    with relus.redirected_relus():
        y = torch.relu(x)
    (grad,) = torch.autograd.grad((y * torch.tensor([[1.0, 1.0, 1.0]])).sum(), x)
    assert grad.tolist() == [[0.0, 0.0, 1.0]]


def test_a_random_network_grows_pictures_where_its_gradient_is_tiny():
    """A random GoogLeNet's gradients are about 1e-10: under Keras' 1e-7 floor a picture would not move."""
    model = pack_module("dream_core").load_feature_model("googlenet", "random")
    settings = options.ChannelSettings(size=96, steps=24)
    result = channels.channel_pictures(model, "inception4c", (3, 4), settings)
    change = result.images - channels.starting_noise(2, 96, 0)  # (channel 3 is shut on the noise)
    assert float(change.abs().mean()) > 0.02
    assert bool((result.end > 3 * result.start.abs()).all()) and bool((result.end > 0).all())


def test_a_shut_channel_opens_under_the_random_shifts_scales_and_turns():
    """inception4c[1] of a random GoogLeNet is shut on every picture the moved views give it: its redirected
    gradient is taken on the picture itself (on the moved views it sank)."""
    model = pack_module("dream_core").load_feature_model("googlenet", "random")
    settings = options.ChannelSettings(size=96, steps=32)
    assert settings.jitter > 0 and settings.scale_jitter > 0 and settings.rotate_jitter > 0
    result = channels.channel_pictures(model, "inception4c", (1,), settings)
    assert float(result.start[0]) == 0.0 and float(result.end[0]) > 0


def test_a_cluster_never_splits_a_diverse_batch():
    parsed = goals.parse_goals("0,1,2x4,3,4,5")[0]  # 0 1 [2 2 2 2] 3 4 5
    parts = driver.goal_parts_for(parsed, 3)
    assert [first for first, _ in parts] == [0, 6]
    assert sum(len(part) for _, part in parts) == len(parsed)
    assert [first for first, _ in driver.goal_parts_for(goals.channel_goals(range(7)), 3)] == [0, 3, 6]


def test_the_cli_and_the_node_take_every_kind_of_goal(tmp_path, capsys, lite0):
    cli = pack_module("dream_core.cli")
    sheet, folder = tmp_path / "sheet.png", tmp_path / "pictures"
    text = "1,-1,1@centre,2x2,1+0.5*2,class:7"
    code = cli.main(
        ["channels", "-o", str(sheet), "--channels", text, "--size", "64", "--steps", "2"]
        + ["--pictures", str(folder), "--layer", "block6"]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "blocks.6_1.png",
            "blocks.6_1_negative.png",
            "blocks.6_1_at_centre.png",
            "blocks.6_2_diverse_1-2.png",
            "blocks.6_2_diverse_2-2.png",
            "blocks.6_1+0.5x2.png",
            "class-7.png",
        ]
    )
    nodes = build_workflows.load_pack().nodes.NODE_CLASS_MAPPINGS
    node = nodes["ChannelPictures"]()
    widgets = node_widget_defaults(node, ("feature_model", "layer", "channels", "columns"), size=64, steps=2)
    with torch.inference_mode():  # as ComfyUI runs nodes
        pictures, sheet_image = node.execute(lite0, "blocks.6", text, 0, **widgets)
    assert pictures.shape == (7, 64, 64, 3) and sheet_image.shape[0] == 1
    direct = channels.channel_pictures(
        lite0, "blocks.6", goals.parse_goals(text)[0], options.ChannelSettings(**widgets)
    )
    assert torch.allclose(pictures, direct.images.permute(0, 2, 3, 1), atol=1e-6)
