"""Shrink the example workflows' outputs into web/docs/gallery/ for the README and the node help pages.

The pictures are made by the pack itself on a real ComfyUI: run every example
workflow with ../shared/tools/comfy_host/run_workflow.py --download DIR, then

    python tools/make_gallery.py DIR [DIR ...]

Each output's newest file (by its SaveImage / SaveAnimatedWEBP prefix) is scaled
down: stills to 320 px JPEG, animations to 256 px WEBP.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "web" / "docs" / "gallery"
PREFIXES = [
    "sample",
    "upscaled",
    "masked",
    "guided",
    "jellyfish",
    "colors_kept",
    "colors_classic",
    "regions",
    "sweep_sheet",
    "octaves",
    "forming",
    "zoom",
    "looping_zoom",
    "trained_dots",
    "trained_stripes",
    "video_coherent",
    "video_frame_by_frame",
    "video_to_music",
    "training_report",
    "look_classic",
    "look_lapnorm",
    "look_whitened",
    "networks",
    "channel_sheet",
    "seamless_2x2",
]


def newest(folders: list[Path], prefix: str) -> Path | None:
    found = [p for folder in folders for p in folder.glob(f"{prefix}_0*")]
    return max(found, key=lambda p: p.name) if found else None


def main() -> None:
    folders = [Path(arg) for arg in sys.argv[1:]]
    GALLERY.mkdir(parents=True, exist_ok=True)
    for prefix in PREFIXES:
        source = newest(folders, prefix)
        if source is None:
            print(f"missing: {prefix}")
            continue
        if source.suffix.lower() == ".mp4":  # a video: its frames as an animated WEBP at the clip's size
            import av

            with av.open(str(source)) as container:
                rate = container.streams.video[0].average_rate or 12
                frames = [frame.to_image().convert("RGB") for frame in container.decode(video=0)]
            target = GALLERY / f"{prefix}.webp"
            frames[0].save(
                target, save_all=True, append_images=frames[1:], duration=round(1000 / float(rate)), loop=0, quality=70
            )
            print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KB)")
            continue
        with Image.open(source) as image:
            if getattr(image, "is_animated", False):
                frames = [
                    frame.convert("RGB").resize((256, 256), Image.LANCZOS) for frame in ImageSequence.Iterator(image)
                ]
                duration = image.info.get("duration", 125)
                target = GALLERY / f"{prefix}.webp"
                frames[0].save(target, save_all=True, append_images=frames[1:], duration=duration, loop=0, quality=70)
            else:
                width = 784 if prefix in ("sweep_sheet", "training_report", "channel_sheet") else 320
                width = 512 if prefix == "seamless_2x2" else width
                still = image.convert("RGB")
                still = still.resize((width, round(still.height * width / still.width)), Image.LANCZOS)
                target = GALLERY / f"{prefix}.jpg"
                still.save(target, quality=85)
        print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
