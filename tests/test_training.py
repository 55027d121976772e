"""Fine-tuning on a folder of pictures, the saved file, and bad folders."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dream_core import DreamError, DreamSettings, WeightsMismatchError, dream, load_feature_model
from dream_core.training import TrainSettings, read_folder, train_classifier

ONE_EPOCH = {"epochs": 1, "learning_rate": 1e-3, "unfreeze_blocks": 0, "seed": 0}  # Train Feature Model's widgets

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "samples" / "shapes"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("trained") / "shapes.safetensors"
    return train_classifier(FOLDER, "efficientnet_lite0", "imagenet", TrainSettings(epochs=5, seed=0), path)


@pytest.mark.slow
def test_training_on_the_bundled_folder_reaches_90_percent(trained):
    assert trained.class_names == ["checkers", "dots", "stripes"]
    assert trained.holdout_count >= 9 and trained.train_count >= 40
    assert trained.accuracy >= 0.9
    assert trained.path.is_file()


@pytest.mark.slow
def test_the_saved_file_loads_in_a_fresh_process_without_running_code(trained):
    script = (
        "from dream_core import load_feature_model;"
        f"m = load_feature_model('efficientnet_lite0', {str(trained.path)!r});"
        "print(m.class_names, m.net._fc.out_features)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "['checkers', 'dots', 'stripes'] 3"
    # safetensors holds tensors and a JSON header only: nothing in it can execute.
    assert trained.path.read_bytes()[8:9] == b"{"


def test_the_file_refuses_another_architecture(trained):
    with pytest.raises(WeightsMismatchError, match="trained as efficientnet_lite0"):
        load_feature_model("resnet50", trained.path)


def _logits(model, image):
    mean = torch.tensor(model.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.net(((image - mean) / std).contiguous(memory_format=torch.channels_last))[0]


def test_dreaming_a_trained_class_raises_its_logit_and_rank(trained, small_photo):
    model = load_feature_model("efficientnet_lite0", trained.path)
    settings = DreamSettings(octaves=2, iterations=10, step=0.02, jitter=8, seed=0, precision="fp32")
    for name in ("dots", "stripes"):
        index = model.class_names.index(name)
        dreamed = dream(small_photo, model, {f"class:{name}": 1.0}, settings).images
        before, after = _logits(model, small_photo), _logits(model, dreamed)
        assert after[index] > before[index] + 1.0
        assert int((after > after[index]).sum()) == 0  # top of the softmax


def _write(path: Path, mode: str = "RGB", size=(64, 64), colour=128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode in ("L", "P", "1") else (colour,) * len(mode)).save(path)


def test_bad_folders_get_clear_errors_or_named_warnings(tmp_path, caplog):
    with pytest.raises(DreamError, match="does not exist"):
        read_folder(tmp_path / "missing")
    with pytest.raises(DreamError, match="no sub-folders"):
        read_folder(tmp_path)
    _write(tmp_path / "one" / "cats" / "a.png")
    with pytest.raises(DreamError, match="at least two"):
        read_folder(tmp_path / "one")

    mixed = tmp_path / "mixed"
    _write(mixed / "cats" / "grey.png", "L")
    _write(mixed / "cats" / "palette.png", "P")
    _write(mixed / "cats" / "alpha.png", "RGBA")
    _write(mixed / "dogs" / "cmyk.jpg", "CMYK")
    _write(mixed / "dogs" / "big.png", "RGB", size=(900, 300))
    (mixed / "dogs" / "broken.jpg").write_bytes(b"not a picture")
    (mixed / "empty").mkdir()
    with caplog.at_level(logging.WARNING):
        data = read_folder(mixed)
    assert data.class_names == ["cats", "dogs"] and len(data.images) == 5
    assert all(im.mode == "RGB" and max(im.size) <= 512 for im in data.images)
    assert any("broken.jpg" in s for s in data.skipped) and any(s.startswith("empty/") for s in data.skipped)
    assert "broken.jpg" in caplog.text and "empty" in caplog.text


def test_training_can_be_stopped_and_saves_nothing(tmp_path):
    from dream_core import DreamCancelled

    calls = []
    with pytest.raises(DreamCancelled):
        train_classifier(
            FOLDER,
            settings=TrainSettings(epochs=1),
            output=tmp_path / "x.safetensors",
            should_stop=lambda: calls.append(1) or len(calls) > 1,
        )
    assert not (tmp_path / "x.safetensors").exists()


def test_training_reports_each_epoch_and_writes_its_curve_and_confusion_next_to_the_model(trained, caplog):
    epochs = [h["epoch"] for h in trained.history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) <= 5
    if len(epochs) < 5:  # stopped early: only once every held-out picture was right two epochs running
        assert trained.accuracy == 1.0 and len(epochs) - trained.best_epoch >= 2
    assert all(h["loss"] > 0 and 0 <= h["accuracy"] <= 1 for h in trained.history)
    assert trained.accuracy == max(h["accuracy"] for h in trained.history)  # the best epoch is kept
    assert trained.history[trained.best_epoch - 1]["accuracy"] == trained.accuracy
    assert sum(map(sum, trained.confusion)) == trained.holdout_count
    assert set(trained.per_class) == set(trained.class_names)
    stem = trained.path.with_suffix("")
    for suffix in (".curve.png", ".confusion.png"):
        with Image.open(stem.with_name(stem.name + suffix)) as picture:
            assert picture.size == (480, 480) and len(set(picture.convert("L").getdata())) > 10  # drawn, not blank
    assert trained.report.size == (960, 480)
    with caplog.at_level(logging.INFO):
        loaded = load_feature_model("efficientnet_lite0", trained.path)
    assert loaded.training_report["per_class"] == pytest.approx(trained.per_class)
    assert f"held-out accuracy {trained.accuracy:.1%}" in caplog.text and "per class: checkers" in caplog.text


def test_training_goes_on_from_a_fine_tuned_model_keeping_its_classes(trained, tmp_path):
    import shutil

    folder = tmp_path / "more"
    shutil.copytree(FOLDER / "dots", folder / "dots")
    (folder / "rings").mkdir()
    for index, picture in enumerate(sorted((FOLDER / "dots").iterdir())[:12]):
        with Image.open(picture) as image:  # a new class: the dots pictures inverted
            Image.eval(image.convert("RGB"), lambda v: 255 - v).save(folder / "rings" / f"{index}.png")
    again = train_classifier(folder, "efficientnet_lite0", trained.path, TrainSettings(epochs=1, seed=0))
    assert again.class_names[:2] == ["dots", "rings"] and set(again.class_names) == {
        "dots",
        "rings",
        "checkers",
        "stripes",
    }
    assert again.model.class_names == again.class_names
    before = load_feature_model("efficientnet_lite0", trained.path, fold_batchnorm=False)
    old_head = before.net._fc.weight[before.class_names.index("stripes")]
    new_head = again.model.net._fc.weight[again.class_names.index("stripes")]
    assert torch.allclose(old_head, new_head, atol=0.05)  # carried over (only nudged by one epoch)


@pytest.mark.slow
def test_the_cli_shows_epochs_and_writes_the_pictures(tmp_path, capsys):
    from dream_core.cli import main

    out = tmp_path / "m.safetensors"
    assert main(["train", str(FOLDER), "-o", str(out), "--epochs", "2", "--unfreeze", "0"]) == 0
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.err and "held-out" in captured.err
    assert "per class: checkers" in captured.out
    assert (tmp_path / "m.curve.png").is_file() and (tmp_path / "m.confusion.png").is_file()


def test_the_train_node_under_inference_mode_leaves_a_model_that_dreams(tmp_path, small_photo):
    # As on a GPU host: ComfyUI's inference mode, and device moves that copy (the autouse
    # fixture); the trained model goes into ComfyUI's cache and must still dream.
    from conftest import pack_module

    train_nodes = pack_module("nodes.train_nodes")
    comfy_bridge = pack_module("nodes.comfy_bridge")
    folder = tmp_path / "shapes"
    for name in ("dots", "stripes"):
        (folder / name).mkdir(parents=True)
        for i, picture in enumerate(sorted((FOLDER / name).iterdir())[:6]):
            Image.open(picture).save(folder / name / f"{i}.png")
    with torch.inference_mode():
        node = train_nodes.TrainFeatureModel()
        original = comfy_bridge.model_save_path
        comfy_bridge.model_save_path = lambda name: str(tmp_path / f"{name}.safetensors")
        try:
            model, summary, report = node.execute(str(folder), "efficientnet_lite0", "imagenet", "mine", **ONE_EPOCH)
        finally:
            comfy_bridge.model_save_path = original
        assert not any(t.is_inference() for t in model.net.state_dict().values())
        dreamed = dream(
            small_photo, model, {"class:dots": 1.0}, DreamSettings(octaves=1, iterations=2, precision="fp32")
        ).images
    assert (dreamed - small_photo).abs().mean() > 1e-3 and report.ndim == 4
