"""How a fine-tuning run went, for people: the training curve and the held-out confusion matrix as pictures, and
the one-line summary of a fine-tuned model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .outputs import written_whole

SIZE = 480
BACKGROUND, INK, GRID = (255, 255, 255), (30, 30, 30), (225, 225, 225)
LOSS, ACCURACY, KEPT = (200, 60, 40), (40, 110, 200), (60, 160, 60)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed size
        return ImageFont.load_default()


def curve_picture(history: Sequence[dict[str, float]], best_epoch: int = 0) -> Image.Image:
    """Training loss (red, its own scale) and held-out accuracy (blue, 0-100%) per epoch; the kept epoch in green."""
    picture = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    left, top, right, bottom = 56, 40, SIZE - 56, SIZE - 48
    font, small = _font(16), _font(12)
    draw.text((left, 10), "training loss and held-out accuracy", font=font, fill=INK)
    for tenth in range(11):
        y = bottom - (bottom - top) * tenth / 10
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((right + 6, y - 7), f"{tenth * 10}%", font=small, fill=ACCURACY)
    epochs = [h["epoch"] for h in history]
    losses = [h["loss"] for h in history]
    accuracies = [h.get("accuracy", float("nan")) for h in history]
    if not history:
        return picture
    top_loss = max(max(losses), 1e-6)
    for tenth in range(0, 11, 2):
        draw.text((8, bottom - (bottom - top) * tenth / 10 - 7), f"{top_loss * tenth / 10:.2f}", font=small, fill=LOSS)

    def x_of(epoch: float) -> float:
        return left + (right - left) * ((epoch - 1) / max(len(epochs) - 1, 1))

    if best_epoch:
        draw.line([(x_of(best_epoch), top), (x_of(best_epoch), bottom)], fill=KEPT, width=2)
        draw.text((x_of(best_epoch) + 4, top + 2), f"kept: epoch {best_epoch}", font=small, fill=KEPT)
    for values, colour, scale in ((losses, LOSS, top_loss), (accuracies, ACCURACY, 1.0)):
        points = [(x_of(e), bottom - (bottom - top) * v / scale) for e, v in zip(epochs, values, strict=True) if v == v]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((left, bottom + 12), f"epoch 1 .. {len(epochs)}", font=small, fill=INK)
    final = accuracies[best_epoch - 1] if best_epoch else accuracies[-1]
    draw.text((left + 150, bottom + 12), f"held-out accuracy {final:.1%}", font=small, fill=ACCURACY)
    return picture


def confusion_picture(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> Image.Image:
    """The held-out confusion matrix: rows the true class, columns the prediction, each row's share as colour."""
    count = len(class_names)
    picture = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font, small = _font(16), _font(max(8, min(12, 260 // max(count, 1))))
    draw.text((8, 10), "held-out pictures: true class (rows) -> predicted (columns)", font=_font(13), fill=INK)
    label_width, top = 120, 40
    cell = (SIZE - label_width - 16) / max(count, 1)
    for row, name in enumerate(class_names):
        total = sum(confusion[row]) or 1
        y = top + row * cell
        right_share = confusion[row][row] / total if sum(confusion[row]) else float("nan")
        label = f"{name[:14]} {right_share:.0%}" if right_share == right_share else f"{name[:14]} -"
        draw.text((4, y + cell / 2 - 6), label, font=small, fill=INK)
        for column in range(count):
            share = confusion[row][column] / total
            x = label_width + column * cell
            shade = (
                (int(255 - 215 * share), int(255 - 145 * share), 255)
                if row == column
                else (255, int(255 - 195 * share), int(255 - 215 * share))
            )
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=shade, outline=GRID)
            if confusion[row][column]:
                draw.text((x + cell / 2 - 5, y + cell / 2 - 6), str(confusion[row][column]), font=small, fill=INK)
    draw.text((label_width, top + count * cell + 6), "columns in the same order as the rows", font=small, fill=INK)
    del font
    return picture


def save_report(curve: Image.Image, confusion: Image.Image, model_path: str | Path) -> tuple[Path, Path]:
    """Write the two pictures next to a model file: NAME.curve.png and NAME.confusion.png."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    paths = (stem.with_name(stem.name + ".curve.png"), stem.with_name(stem.name + ".confusion.png"))
    for picture, path in zip((curve, confusion), paths, strict=True):
        with written_whole(path) as partial:
            picture.save(partial)
    return paths


def side_by_side(*pictures: Image.Image) -> Image.Image:
    """The pictures in a row (all of one height)."""
    width = sum(p.width for p in pictures)
    row = Image.new("RGB", (width, max(p.height for p in pictures)), BACKGROUND)
    x = 0
    for picture in pictures:
        row.paste(picture, (x, 0))
        x += picture.width
    return row


def per_class_text(per_class: Mapping[str, float]) -> str:
    """'dots 100%, stripes 92%': held-out accuracy per class (classes without held-out pictures left out)."""
    return ", ".join(f"{name} {share:.0%}" for name, share in per_class.items() if share == share)


def describe_training(name: str, class_names: Sequence[str], report: Mapping) -> str:
    """One line on a fine-tuned model: its classes and held-out accuracy, overall and per class."""
    per_class = per_class_text(report.get("per_class") or {})
    return f"{name}: trained on {', '.join(class_names)}; held-out accuracy {report['accuracy']:.1%}" + (
        f" (per class: {per_class})" if per_class else ""
    )
