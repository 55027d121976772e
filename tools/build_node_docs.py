"""Build the node help pages, web/docs/NODE.md, that ComfyUI's node library shows.

The frontend asks the pack's web directory for `docs/NODE.md` (NODE: the key in
NODE_CLASS_MAPPINGS) and resolves a page's relative picture links against `docs/`.
Each page is made from the node itself, its DESCRIPTION, every input's type, default,
range and tooltip, and its outputs' tooltips, plus a picture and a few lines of use
written here. Run from the repository root after changing a node:

    python tools/build_node_docs.py

A test fails when a page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_workflows import load_pack  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "web" / "docs"

PAGES: dict[str, tuple[list[tuple[str, str]], str]] = {
    # node: ([(picture under docs/, caption)], how it is used)
    "LoadFeatureModel": (
        [
            ("gallery/learning_inference.jpg", "learning_phase inference: the classic dream, eyes and objects."),
            ("gallery/learning_training.jpg", "learning_phase training: BatchNorm on the picture's own statistics."),
        ],
        "Start every dream here. `efficientnet_lite0` works offline; the torchvision networks download their "
        "ImageNet weights once into `models/deepdream` (offline, the error names the file to put there). A "
        "checkpoint you trained with **Train Feature Model** appears in `weights`; its class names work as "
        "`class: NAME` in **Layer Weights**.",
    ),
    "LayerWeights": (
        [("gallery/sweep_sheet.jpg", "What single layers of EfficientNet-Lite0 add, then a mix of them.")],
        "Low layers give fine strokes and textures, middle layers eyes and patterns, high layers whole objects. "
        "Syntax, one term per line: `mixed4: 1.0` (a layer, by name, module path or alias), `mixed4[3,17,40-47]: 1` "
        "(channels), `mixed4[top8]: 1` (the 8 most active channels on this image), `class:jellyfish: 1` (a "
        "class of the classifier). A negative weight suppresses what a layer sees. List a model's layers with "
        "`deepdream layers MODEL` on the command line.",
    ),
    "OctaveDream": (
        [
            ("gallery/sample.jpg", "The sample photo with the default settings."),
            ("gallery/octaves.webp", "The `octave_images` output: the dream after each octave."),
            ("gallery/look_classic.jpg", "The classic step (workflow 16)."),
            (
                "gallery/look_lapnorm.jpg",
                "precondition lapnorm, scale_jitter 0.1, rotate_jitter 5: the same "
                "strength, larger smoother structures.",
            ),
            (
                "gallery/look_whitened.jpg",
                "precondition whitened, same jitter: smooth patterns in the photo's colours.",
            ),
            ("gallery/seamless_2x2.jpg", "seamless on, the tile stitched 2x2 (workflow 22): no seam where they meet."),
        ],
        "The classic recipe: `octaves` scales dreamed smallest first, `iterations` steps per octave of size "
        "`step`, the lost detail put back between octaves. Larger `step` or more `iterations` dream harder; "
        "more `octaves` or a larger `octave_scale` grow larger patterns. Connect a `mask` to dream only part of "
        "the picture, a `guide` image to dream toward what the network sees in it, `regions` to dream "
        "different layers in different places, and `networks` (from **Dream Network**) to dream with more "
        "networks at once. `precondition` lapnorm or whitened, with some `scale_jitter` and `rotate_jitter`, "
        "grows larger, smoother patterns than the classic step. Turn `seamless` on for a texture that tiles "
        "edge to edge (the picture is made to wrap around first, and the dream wraps around). Long dreams show a "
        "preview in the progress bar and stop within one step when you press Cancel.",
    ),
    "DetailReinject": (
        [("gallery/upscaled.jpg", "Dreamed at half size, upscaled, detail re-injected, dreamed again.")],
        "Put it between two dreams: dream small (fast, large patterns), enlarge with an upscaler (connect its "
        "output to `upscaled`) or let this node enlarge, and dream again at full size; the photo's detail "
        "that the small dream never had comes back.",
    ),
    "DreamRegion": (
        [("gallery/regions.jpg", "A low layer on the left, high layers on the right, dreamed at once.")],
        "Chain several regions and connect the last to **Octave Dream**'s `regions`. Masks from any mask node "
        "work; they are resized to the image. Layer weights connected to Octave Dream itself apply everywhere.",
    ),
    "DreamNetwork": (
        [
            (
                "gallery/networks.jpg",
                "The ImageNet network's eyes (blocks.10) with a network trained on the bundled "
                "shapes dreaming its class 'dots' (weight 10), on one picture.",
            )
        ],
        "Load a second network (another architecture, or one you trained with **Train Feature Model**), give it "
        "its own **Layer Weights**, and connect this node to a dream node's `networks` input; chain several to "
        "dream with more. Every step runs each network on the same jittered, scaled and turned picture and adds "
        "their objectives, so the gradient flows through all of them. Layers of different networks, and classes "
        "against layers, pull with different strengths: raise a weight until its network shows (a class near "
        "10 against a layer at 1). Each network adds its own time and memory per step.",
    ),
    "ChannelPictures": (
        [
            ("gallery/channel_sheet.jpg", "Channels 0-7 of blocks.8 of EfficientNet-Lite0, each grown from noise."),
            (
                "gallery/channel_goals.jpg",
                "`5,-5,5@centre,5x4,3+0.5*17-40,class:jellyfish`: a channel, what turns it off, its neuron, a "
                "diverse batch, a direction and a class.",
            ),
        ],
        "Pick a layer and what each picture shows: channels (`0-7`, `3,17,40-47`), a negative channel (`-5`: "
        "what turns it off), a neuron (`5@centre`, `5@3:4`: the channel at one position of the layer's grid), a "
        "diverse batch (`5x4`: four different pictures of channel 5), a direction (`3+0.5*17-40`), a class "
        "(`class:jellyfish`), or `top8` with an image connected: the channels that fire most on it. Each picture "
        "starts from the same kind of grey noise and climbs its own goal as lucid's pictures do: through a "
        "sigmoid, so nothing clips, with `whitened` steps and random shifts, scales and turns (the defaults), "
        "which grow clear, colourful shapes rather than high-frequency noise. Each picture is labelled with what "
        "it shows; a plain channel's label (`blocks.8[3]`) is what **Layer Weights** takes (`blocks.8[3]: 1`) "
        "to dream that channel into a photo. Connect `pictures` to see them one by one, `sheet` to save them "
        "together. A saved workflow keeps its own `step`: one saved before the pictures grew through a sigmoid "
        "(its step 0.01) now grows paler pictures; 0.08 is the new default.",
    ),
    "LayerSweep": (
        [("gallery/sweep_sheet.jpg", "The contact sheet: each line of layers dreamed on its own.")],
        "One line per dream, e.g. `blocks.4: 1`, `blocks.8: 1`, `blocks.4: 1, blocks.8: 1`: see what each layer "
        "adds before you mix them. The `contact_sheet` output labels every dream with its line; `images` gives them "
        "as a batch.",
    ),
    "DreamFrames": (
        [("gallery/forming.webp", "The dream forming, one frame every few steps.")],
        "Connect `frames` to **Save Animated WEBP** (or a video node) to watch the dream form. Frames are "
        "kept off the GPU while the dream runs.",
    ),
    "DreamZoom": (
        [
            ("gallery/zoom.webp", "The infinite zoom, 24 frames."),
            ("gallery/looping_zoom.webp", "loop on (workflow 21): it plays forever without a jump."),
        ],
        "Every frame is a whole dream, so keep `octaves` and `iterations` low (1-2 octaves, 5-10 iterations). "
        "`zoom` above 1 flies in; `angle` and the shifts turn and drift. Seeded: the same inputs give the same "
        "animation. Turn `loop` on for a WEBP or GIF that plays forever: the zoom goes on a quarter longer and its "
        "first frames fade from that continuation into themselves (dreamed again lightly, so each is one dream), "
        "so the last frame leads into the first as any "
        "frame into the next (`21_looping_zoom`). Connect Dream Schedule or Audio Envelope to `schedule` to change "
        "settings over the frames.",
    ),
    "DreamSchedule": (
        [
            (
                "gallery/schedule.webp",
                "A zoom of 24 frames with `step: 0=0, 23=0.04` and `zoom~: 0=1.0, 23=1.08`: the dream swells as the "
                "camera eases in.",
            )
        ],
        "Write one setting per line, e.g. `step: 0=0.005, 23=0.03` (the dream grows stronger over 24 frames) or "
        "`zoom~: 0=1.0, 12=1.1, 23=1.0` (flies in and settles, eased). Frames count from 0; between keys the value "
        "moves in a straight line, `~` eases in and out; outside the keys it holds. Any numeric dream setting "
        "(step, iterations, octave_scale, jitter, guide_mix, ...) and the zoom's motion (zoom, angle, shift_x, "
        "shift_y) can follow a schedule, and so can the layer weights: `weight(mixed4): 0=1, 23=3` sets one "
        "layer's weight frame by frame, and `blend: 0=0, 23=1` moves all of them toward the layer weights "
        "connected to `blend_to` (from one look to another). Connect it to the `schedule` input of Dream Zoom, "
        "Dream Video, Dream Video File or Dream Frames (there the batch is the sequence); chain several Dream "
        "Schedule nodes (or Audio Envelope) to keep settings apart.",
    ),
    "AudioEnvelope": (
        [
            (
                "gallery/video_to_music.webp",
                "`samples/beat.mov` dreamed with step following its soundtrack (0.002 in silence, 0.03 on the loudest "
                "frame): nothing for the silent first second, then the dream pulses with four drum hits.",
            )
        ],
        "Connect the clip's VIDEO (Load Video) to hear its own soundtrack at its own frame rate and frame count, or "
        "an AUDIO (Load Audio) with `fps` and `frames` for a zoom or an image sequence. Pick the `setting` and its "
        "range: silence gives `low`, the loudest frame `high`. `band` bass follows kicks, highs follows hats; a "
        "longer `release` lets each hit fade instead of snapping back. Connect `schedules` to the `schedule` input "
        "of Dream Video File (the audio is kept in its output), Dream Video, Dream Zoom or Dream Frames; chain it "
        "with Dream Schedule or another Audio Envelope for more settings. On the command line: `--react "
        "'step=0.002:0.03'` on `deepdream video` (the clip's audio) or `deepdream zoom --audio FILE`.",
    ),
    "DreamVideo": (
        [
            ("gallery/video_coherent.webp", "Dream Video: the patterns move with the picture."),
            ("gallery/video_frame_by_frame.webp", "The same clip dreamed frame by frame (carry 0): the patterns boil."),
        ],
        "Load Video -> Get Video Components gives the frames (and the audio and frame rate for Create Video -> Save "
        "Video afterwards). The first frame gets the full dream; every next one starts from the previous dream "
        "moved along the optical flow and gets `next_iterations` more steps, so a long clip costs little more per "
        "frame than a few steps. Flow `auto` uses OpenCV's DIS if OpenCV is installed, else scikit-image's; `raft` "
        "needs a GPU and downloads its weights once. Frames are dreamed one at a time, so memory does not grow with "
        "the clip.",
    ),
    "DreamVideoFile": (
        [("gallery/video_coherent.webp", "What it gives: the patterns move with the picture, shot by shot.")],
        "Load Video -> Dream Video File -> Save Video: the clip never becomes an IMAGE batch, so its length does "
        "not matter (a minute of 1080p as a batch is about 35 GB). Frames are decoded, dreamed and encoded one at a "
        "time into an MP4 in ComfyUI's temp folder, the audio and frame rate kept; Save Video keeps it. A cut starts "
        "a new shot with a fresh dream (`cut_threshold`), and `steady` holds the dream's strength over a shot. Use "
        "Dream Video instead to chain a short clip with image nodes.",
    ),
    "TrainFeatureModel": (
        [
            ("gallery/trained_dots.jpg", "A network trained on the sample shapes, dreaming `class:dots`."),
            ("gallery/trained_stripes.jpg", "The same network dreaming `class:stripes`."),
            (
                "gallery/training_report.jpg",
                "The report output: loss and held-out accuracy per epoch, and the confusion matrix.",
            ),
        ],
        "Put one sub-folder of pictures per class inside ComfyUI's `input` folder (e.g. `input/my_flowers/rose`, "
        "`input/my_flowers/tulip`) and give the folder's name. The default, `deepdream_samples/shapes`, is the "
        "pack's own set of three generated classes, copied there when you queue it. The trained model is saved "
        "to `models/deepdream` and returned ready to dream; `model_file` reports the held-out accuracy, overall and "
        "per class, and `report` shows how training went. The defaults need no tuning: epochs follow the folder's "
        "size, the head learns alone first, then the last blocks join, and the best held-out epoch is kept. Choose "
        "a model you trained before as `weights` to go on with more pictures or more classes.",
    ),
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _kind(spec) -> str:
    kind, options = spec[0], spec[1]
    if kind == "COMBO":
        choices = options["options"]
        shown = ", ".join(f"`{c}`" for c in choices[:8])
        return f"one of {shown}" + (", ..." if len(choices) > 8 else "")
    return f"`{kind}`"


def _value_range(options: dict) -> str:
    parts = ["advanced"] if options.get("advanced") else []
    if "default" in options and not (isinstance(options["default"], str) and "\n" in options["default"]):
        parts.append(f"default `{options['default']}`")
    if "min" in options and "max" in options:
        low, high = (v if isinstance(v, int) else f"{v:g}" for v in (options["min"], options["max"]))
        parts.append(f"{low} to {high}")
    return "; ".join(parts)


def page(name: str, cls, display_name: str) -> str:
    """The Markdown help page of one node."""
    pictures, usage = PAGES[name]
    lines = [f"# {display_name}", "", cls.DESCRIPTION, ""]
    for path, caption in pictures:
        lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    lines += [
        "## How to use it",
        "",
        usage,
        "",
        "## Inputs",
        "",
        "| input | type | value | what it does |",
        "| --- | --- | --- | --- |",
    ]
    types = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for input_name, spec in types.get(section, {}).items():
            options = spec[1] if len(spec) > 1 else {}
            value = _value_range(options) or ("optional" if section == "optional" else "")
            lines.append(f"| `{input_name}` | {_kind(spec)} | {_cell(value)} | {_cell(options.get('tooltip', ''))} |")
    lines += ["", "## Outputs", "", "| output | type | what it is |", "| --- | --- | --- |"]
    for output, kind, tip in zip(cls.RETURN_NAMES, cls.RETURN_TYPES, cls.OUTPUT_TOOLTIPS, strict=True):
        lines.append(f"| `{output}` | `{kind}` | {_cell(tip)} |")
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """Every node's page, by file name."""
    pack = load_pack()
    return {
        f"{name}.md": page(name, cls, pack.nodes.NODE_DISPLAY_NAME_MAPPINGS[name])
        for name, cls in pack.nodes.NODE_CLASS_MAPPINGS.items()
    }


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for file_name, text in pages().items():
        (DOCS / file_name).write_text(text)
        print(f"wrote {(DOCS / file_name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
