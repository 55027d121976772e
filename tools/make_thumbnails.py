"""Make the template browser's thumbnails, example_workflows/NAME.jpg, from real outputs.

ComfyUI's template browser shows `NAME.jpg` beside each pack workflow `NAME.json`. The
pictures come from the workflows themselves, run on a real ComfyUI started with
`--fresh-input` (its input folder as a new install has it). From the project's root:

    T=../shared/tools/comfy_host
    $T/start_host.sh --fresh-input .
    for name in $(cd example_workflows && ls *.json | sed 's/.json$//'); do
        python3 $T/run_workflow.py template:PACK/$name --download OUT/$name
    done
    python tools/make_thumbnails.py OUT

(PACK: the pack's folder name in custom_nodes/.) Each workflow's main output, a
still or the last frame of an animation, is cropped to a square and scaled to 384 px.
A dream of the sample photo or clip is shown before and after: the input on the left,
the dream on the right, split down the middle (what a 2026 template browser's
compare slider would show; for a pack's templates every frontend up to 1.58 reads
this one picture). Sheets and the zoom are shown whole.
A workflow without output here (02 needs InceptionV3's ImageNet weights, which this
machine cannot download) gets a card that says so, over its input photo, and never
anything that could pass for a dream.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps, ImageSequence

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "example_workflows"
SIDE = 384
MAIN_OUTPUT = {  # where a workflow saves several pictures, the one that shows it best
    "08_keep_colors_smooth": "colors_kept",
    "13_train_and_dream": "trained_dots",
    "09_layer_sweep": "sweep_sheet",
    "14_dream_a_video": "video_coherent",
    "15_dream_a_long_video": "video_streamed",
    "16_lapnorm_vs_classic": "look_lapnorm",
    "22_seamless_texture": "seamless_2x2",
}
WHOLE = {  # the rest: before | after
    "09_layer_sweep",
    "11_infinite_zoom",
    "18_channel_sheet",
    "19_scheduled_zoom",
    "21_looping_zoom",
    "22_seamless_texture",
}
CARDS = {
    "02_keras_inception_v3": "Keras' recipe on InceptionV3\n\nNeeds torchvision's ImageNet\nweights: downloaded into\n"
    "models/deepdream on first run",
}


def main_output(folder: Path, name: str) -> Path | None:
    """The workflow's main output among the files run_workflow.py downloaded."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".webp", ".jpg", ".mp4"))
    preferred = [p for p in files if p.name.startswith(MAIN_OUTPUT.get(name, "\0"))]
    return (preferred or files or [None])[-1]


def still(path: Path) -> Image.Image:
    """The picture, the last frame of an animation, or the middle frame of a video, as RGB."""
    if path.suffix.lower() == ".mp4":
        import av

        with av.open(str(path)) as container:
            frames = [frame.to_image() for frame in container.decode(video=0)]
        return frames[len(frames) // 2].convert("RGB")
    with Image.open(path) as image:
        frames = list(ImageSequence.Iterator(image)) if getattr(image, "is_animated", False) else [image]
        return frames[-1].convert("RGB")


def thumbnail(picture: Image.Image) -> Image.Image:
    """A square thumbnail: a centre crop, or the whole picture on black if it is far from square (a contact sheet)."""
    if max(picture.size) > 1.25 * min(picture.size):
        return ImageOps.pad(picture, (SIDE, SIDE), Image.LANCZOS, color=(16, 16, 16))
    return ImageOps.fit(picture, (SIDE, SIDE), Image.LANCZOS)


def before_after(before: Image.Image, after: Image.Image) -> Image.Image:
    """The input's left half beside the dream's right half, a white line between, each half labelled."""
    picture = ImageOps.fit(before.resize(after.size, Image.LANCZOS), (SIDE, SIDE), Image.LANCZOS)
    picture.paste(ImageOps.fit(after, (SIDE, SIDE), Image.LANCZOS).crop((SIDE // 2, 0, SIDE, SIDE)), (SIDE // 2, 0))
    draw = ImageDraw.Draw(picture)
    draw.line([(SIDE // 2, 0), (SIDE // 2, SIDE)], fill=(255, 255, 255), width=3)
    for text, x in (("before", 8), ("after", SIDE // 2 + 8)):
        box = draw.textbbox((x, SIDE - 24), text)
        draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
        draw.text((x, SIDE - 24), text, fill=(255, 255, 255))
    return picture


def card(text: str) -> Image.Image:
    """A labelled card over the dimmed sample photo, for a workflow that cannot run here."""
    photo = ImageOps.fit(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB"), (SIDE, SIDE))
    picture = ImageEnhance.Brightness(photo).enhance(0.3)
    draw = ImageDraw.Draw(picture)
    try:
        font = ImageFont.load_default(size=22)
    except TypeError:  # Pillow < 10.1: one fixed size
        font = ImageFont.load_default()
    draw.multiline_text((SIDE // 2, SIDE // 2), text, font=font, fill=(255, 255, 255), anchor="mm", align="center")
    return picture


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outputs = Path(sys.argv[1])
    for workflow in sorted(WORKFLOWS.glob("*.json")):
        name = workflow.stem
        source = main_output(outputs / name, name) if (outputs / name).is_dir() else None
        if source is not None and name not in WHOLE:
            sample = ROOT / "samples" / ("pan.mp4" if source.suffix == ".mp4" else "astronaut.png")
            picture = before_after(still(sample), still(source))
        elif source is not None:
            picture = thumbnail(still(source))
        elif name in CARDS:
            picture = card(CARDS[name])
        else:
            print(f"{name}: no output in {outputs / name}; thumbnail left as it was")
            continue
        target = WORKFLOWS / f"{name}.jpg"
        picture.save(target, quality=85)
        print(f"{name}: {source.name if source else 'card'} -> {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
