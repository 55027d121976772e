"""Build the UI-format example workflows in example_workflows/ from short descriptions.

Widget order comes from the nodes' own INPUT_TYPES (this pack) and from a saved copy
of ComfyUI's /object_info for the core nodes (tests/data/core_object_info.json), so a
changed input list shows up as a changed file. Run from the repository root:

    python tools/build_workflows.py
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "example_workflows"
CORE_INFO = ROOT / "tests" / "data" / "core_object_info.json"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def load_pack(name: str = "deepdream_pack"):
    """Import the repository as the package ComfyUI would see.

    The pack's engine is the installed `dream_core` itself, not a second copy: its
    modules are registered under the pack's name too, so the nodes' relative imports
    and `import dream_core` give the same module objects (one set of classes, one
    option table).
    """
    if name in sys.modules:
        return sys.modules[name]
    import dream_core

    for info in pkgutil.iter_modules(dream_core.__path__):
        if info.name != "__main__":
            importlib.import_module(f"dream_core.{info.name}")
    for key, module in list(sys.modules.items()):
        if key == "dream_core" or key.startswith("dream_core."):
            sys.modules[f"{name}.{key}"] = module
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def object_info() -> dict:
    """/object_info-like entries: saved core nodes plus this pack's nodes."""
    info = json.loads(CORE_INFO.read_text())
    for name, cls in load_pack().nodes.NODE_CLASS_MAPPINGS.items():
        types = cls.INPUT_TYPES()
        info[name] = {
            "input": {k: v for k, v in types.items() if k in ("required", "optional")},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        }
    return info


def is_widget(spec) -> bool:
    """Whether an input spec is a widget (combo or primitive) rather than a link."""
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES or (kind == "COMBO")


def widget_names(entry: dict) -> list[str]:
    """Names of an entry's widget inputs, in the order the frontend stores their values."""
    names = []
    for section in ("required", "optional"):
        for name, spec in entry["input"].get(section, {}).items():
            if is_widget(spec):
                names.append(name)
    return names


def stored_widgets(entry: dict) -> list[str]:
    """What each place of a saved node's widgets_values holds, in order: the widget names, 'NAME.control' for
    the frontend's control_after_generate widget after a seed, 'NAME.upload' for an upload button's slot."""
    specs = {**entry["input"].get("required", {}), **entry["input"].get("optional", {})}
    names = []
    for name in widget_names(entry):
        names.append(name)
        options = specs[name][1] if len(specs[name]) > 1 else {}
        if name in ("seed", "noise_seed") or options.get("control_after_generate"):
            names.append(f"{name}.control")
        if options.get("image_upload"):
            names.append(f"{name}.upload")
    return names


def widget_values(node_type: str, entry: dict, values: dict) -> list:
    """widgets_values for a node: given values, else the defaults; plus frontend-only slots."""
    out = []
    for section in ("required", "optional"):
        for name, spec in entry["input"].get(section, {}).items():
            if not is_widget(spec):
                continue
            options = spec[1] if len(spec) > 1 else {}
            if name in values:
                value = values[name]
            elif "default" in options:
                value = options["default"]
            elif isinstance(spec[0], list):
                value = spec[0][0]
            elif spec[0] == "COMBO":  # a file list that is empty here (e.g. LoadVideo's)
                value = (options.get("options") or [""])[0]
            else:
                raise KeyError(f"{node_type}.{name} has no default; give a value")
            out.append(value)
            if name in ("seed", "noise_seed") or options.get("control_after_generate"):
                out.append("fixed")  # the frontend's control_after_generate widget
            if options.get("image_upload"):
                out.append("image")  # the frontend's upload button
            # Load Video's file is stored alone: where the core gives Load Video more inputs (its optional
            # 'edit'), frontends 1.53-1.58 put an 'image' stored after the file on the next input.
    return out


class Graph:
    """A UI-format workflow under construction."""

    def __init__(self, info: dict) -> None:
        self.info = info
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(
        self,
        node_type: str,
        pos: tuple[int, int],
        values: dict | None = None,
        title: str | None = None,
        **inputs: tuple[int, int],
    ) -> int:
        entry = self.info[node_type]
        node_id = len(self.nodes) + 1
        node_inputs = []
        for section in ("required", "optional"):
            for name, spec in entry["input"].get(section, {}).items():
                if is_widget(spec):
                    if name in inputs:  # a widget fed by a link (its value stays in widgets_values)
                        src, slot = inputs[name]
                        link = len(self.links) + 1
                        self.links.append([link, src, slot, node_id, len(node_inputs), spec[0]])
                        self.nodes[src - 1]["outputs"][slot]["links"].append(link)
                        node_inputs.append({"name": name, "type": spec[0], "widget": {"name": name}, "link": link})
                    continue
                link = None
                if name in inputs:
                    src, slot = inputs[name]
                    link = len(self.links) + 1
                    self.links.append([link, src, slot, node_id, len(node_inputs), spec[0]])
                    self.nodes[src - 1]["outputs"][slot]["links"].append(link)
                elif section == "required":
                    raise KeyError(f"{node_type}.{name} needs a link")
                node_inputs.append({"name": name, "type": spec[0], "link": link})
        unknown = set(inputs) - {i["name"] for i in node_inputs}
        if unknown or set(values or {}) - set(widget_names(entry)):
            raise KeyError(f"{node_type}: unknown inputs {unknown | (set(values or {}) - set(widget_names(entry)))}")
        outputs = [
            {"name": name, "type": kind, "links": [], "slot_index": i}
            for i, (name, kind) in enumerate(
                zip(entry.get("output_name", entry["output"]), entry["output"], strict=True)
            )
        ]
        node = {
            "id": node_id,
            "type": node_type,
            "pos": list(pos),
            "size": [320, 60 + 26 * (len(node_inputs) + len(widget_names(entry)))],
            "flags": {},
            "order": node_id - 1,
            "mode": 0,
            "inputs": node_inputs,
            "outputs": outputs,
            "properties": {"Node name for S&R": node_type},
            "widgets_values": widget_values(node_type, entry, values or {}),
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node_id

    def to_json(self) -> dict:
        for node in self.nodes:
            for output in node["outputs"]:
                if not output["links"]:
                    output["links"] = None
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
            "version": 0.4,
        }


# Bundled samples, copied into input/ when a prompt names them (nodes/samples.py): pictures and clips at its top
# level (the only level the core lists), the training folder in input/deepdream_samples/.
SAMPLE = "deepdream_astronaut.png"
KERAS_LAYERS = "mixed4: 1.0\nmixed5: 1.5\nmixed6: 2.0\nmixed7: 2.5"
LITE_LAYERS = "blocks.6: 1.0\nblocks.8: 1.5\nblocks.10: 1.0"


def sample_dream(info: dict) -> dict:
    """(a) The sample photo dreamed with the offline default model."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    layers = g.add("LayerWeights", (0, 520), {"layers": LITE_LAYERS})
    dream = g.add(
        "OctaveDream", (380, 0), {"step": 0.015}, image=(image, 0), feature_model=(model, 0), layer_weights=(layers, 0)
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/sample"}, images=(dream, 0))
    return g.to_json()


def keras_inception(info: dict) -> dict:
    """(b) Keras' DeepDream example on InceptionV3 (needs torchvision's ImageNet weights)."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "inception_v3"})
    layers = g.add("LayerWeights", (0, 520), {"layers": KERAS_LAYERS})
    dream = g.add(
        "OctaveDream",
        (380, 0),
        {"octaves": 3, "octave_scale": 1.4, "iterations": 20, "step": 0.01, "max_loss": 15.0, "jitter": 0},
        image=(image, 0),
        feature_model=(model, 0),
        layer_weights=(layers, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/keras"}, images=(dream, 0))
    return g.to_json()


def dream_upscale_dream(info: dict) -> dict:
    """(c) Dream small, enlarge with a core upscaler, re-inject detail, dream again."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    small = g.add("ImageScaleBy", (0, 380), {"upscale_method": "area", "scale_by": 0.5}, image=(image, 0))
    model = g.add("LoadFeatureModel", (0, 520), {"architecture": "efficientnet_lite0"})
    first = g.add(
        "OctaveDream", (380, 0), {"step": 0.015}, title="Dream at half size", image=(small, 0), feature_model=(model, 0)
    )
    big = g.add("ImageScaleBy", (760, 0), {"upscale_method": "lanczos", "scale_by": 2.0}, image=(first, 0))
    reinject = g.add("DetailReinject", (760, 160), {}, dream=(first, 0), original=(image, 0), upscaled=(big, 0))
    second = g.add(
        "OctaveDream",
        (1140, 0),
        {"octaves": 2, "iterations": 10, "step": 0.01},
        title="Dream again at full size",
        image=(reinject, 0),
        feature_model=(model, 0),
    )
    g.add("SaveImage", (1520, 0), {"filename_prefix": "deepdream/upscaled"}, images=(second, 0))
    return g.to_json()


def masked_dream(info: dict) -> dict:
    """(d) Only the right half dreams; a feathered edge blends into the untouched left."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    empty = g.add("SolidMask", (0, 380), {"value": 0.0, "width": 512, "height": 512})
    half = g.add("SolidMask", (0, 520), {"value": 1.0, "width": 256, "height": 512})
    composite = g.add(
        "MaskComposite", (380, 380), {"x": 256, "y": 0, "operation": "add"}, destination=(empty, 0), source=(half, 0)
    )
    feather = g.add("FeatherMask", (380, 560), {"left": 48}, mask=(composite, 0))
    model = g.add("LoadFeatureModel", (0, 680), {"architecture": "efficientnet_lite0"})
    dream = g.add(
        "OctaveDream", (760, 0), {"step": 0.015}, image=(image, 0), feature_model=(model, 0), mask=(feather, 0)
    )
    g.add("SaveImage", (1140, 0), {"filename_prefix": "deepdream/masked"}, images=(dream, 0))
    return g.to_json()


def octave_animation(info: dict) -> dict:
    """(e) The image after each octave, saved as an animated WEBP."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    dream = g.add(
        "OctaveDream",
        (380, 0),
        {"octaves": 5, "octave_scale": 1.3, "iterations": 12, "step": 0.015},
        image=(image, 0),
        feature_model=(model, 0),
    )
    g.add(
        "SaveAnimatedWEBP",
        (760, 0),
        {"filename_prefix": "deepdream/octaves", "fps": 2.0, "lossless": False, "quality": 90},
        images=(dream, 1),
    )
    g.add("SaveImage", (760, 420), {"filename_prefix": "deepdream/octaves_final"}, images=(dream, 0))
    return g.to_json()


GUIDE = "deepdream_coffee.png"  # lossless: every core decodes it to the same pixels (0.33 reads a JPEG through FFmpeg)
TRAINING_FOLDER = "deepdream_samples/shapes"


def guided_dream(info: dict) -> dict:
    """(5.1) Dream toward a guide image's features (Google's guided dream)."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    guide = g.add("LoadImage", (0, 380), {"image": GUIDE}, title="Guide image")
    model = g.add("LoadFeatureModel", (0, 760), {"architecture": "efficientnet_lite0"})
    layers = g.add("LayerWeights", (0, 900), {"layers": "blocks.8: 1.0\nblocks.10: 1.0"})
    dream = g.add(
        "OctaveDream",
        (380, 0),
        {"step": 0.02, "guide_mix": 1.0},
        image=(image, 0),
        feature_model=(model, 0),
        layer_weights=(layers, 0),
        guide=(guide, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/guided"}, images=(dream, 0))
    return g.to_json()


def class_and_channels(info: dict) -> dict:
    """(5.2) "Dream a jellyfish": a class logit, plus the 8 strongest channels of a layer."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    layers = g.add("LayerWeights", (0, 520), {"layers": "class:jellyfish: 1.0\nblocks.6[top8]: 0.5"})
    dream = g.add(
        "OctaveDream",
        (380, 0),
        {"step": 0.015, "iterations": 30},
        image=(image, 0),
        feature_model=(model, 0),
        layer_weights=(layers, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/jellyfish"}, images=(dream, 0))
    return g.to_json()


def keep_colors(info: dict) -> dict:
    """(5.3, 5.4) The photo's colours kept (luminance only), with a smoothed gradient."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    dream = g.add(
        "OctaveDream",
        (380, 0),
        {"step": 0.015, "keep_colors": "luminance", "grad_blur": 1.0},
        title="Colours kept, gradient blurred",
        image=(image, 0),
        feature_model=(model, 0),
    )
    plain = g.add(
        "OctaveDream",
        (380, 560),
        {"step": 0.015},
        title="Classic, for comparison",
        image=(image, 0),
        feature_model=(model, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/colors_kept"}, images=(dream, 0))
    g.add("SaveImage", (760, 560), {"filename_prefix": "deepdream/colors_classic"}, images=(plain, 0))
    return g.to_json()


def layer_sweep(info: dict) -> dict:
    """(5.5) Each layer alone, then a combination: a labelled contact sheet."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    small = g.add("ImageScaleBy", (0, 380), {"upscale_method": "area", "scale_by": 0.5}, image=(image, 0))
    model = g.add("LoadFeatureModel", (0, 520), {"architecture": "efficientnet_lite0"})
    lines = (
        "blocks.3: 1\nblocks.6: 1\nblocks.8: 1\nblocks.10: 1\nblocks.13: 1\nblocks.6: 1, blocks.8: 1.5, blocks.10: 1"
    )
    sweep = g.add(
        "LayerSweep",
        (380, 0),
        {"layers": lines, "step": 0.02, "iterations": 15, "columns": 3},
        image=(small, 0),
        feature_model=(model, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/sweep_sheet"}, images=(sweep, 1))
    return g.to_json()


def dream_frames(info: dict) -> dict:
    """(5.6) Watch the dream form: the image every 4 steps as an animated WEBP."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    frames = g.add(
        "DreamFrames", (380, 0), {"step": 0.015, "every_n_steps": 4}, image=(image, 0), feature_model=(model, 0)
    )
    g.add(
        "SaveAnimatedWEBP",
        (760, 0),
        {"filename_prefix": "deepdream/forming", "fps": 6.0, "lossless": False, "quality": 85},
        images=(frames, 1),
    )
    return g.to_json()


def _zoom(info: dict, values: dict, prefix: str, schedule: str | None = None) -> dict:
    """The sample photo at half size into Dream Zoom (with a Dream Schedule if `schedule`), saved as a WEBP."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    small = g.add("ImageScaleBy", (0, 380), {"upscale_method": "area", "scale_by": 0.5}, image=(image, 0))
    model = g.add("LoadFeatureModel", (0, 520), {"architecture": "efficientnet_lite0"})
    timed = {}
    if schedule is not None:
        timed["schedule"] = (g.add("DreamSchedule", (0, 680), {"schedule": schedule}, title="Swell and settle"), 0)
    frames = g.add("DreamZoom", (380, 0), values, image=(small, 0), feature_model=(model, 0), **timed)
    g.add(
        "SaveAnimatedWEBP",
        (760, 0),
        {"filename_prefix": prefix, "fps": 8.0, "lossless": False, "quality": 85},
        images=(frames, 0),
    )
    return g.to_json()


def dream_zoom(info: dict) -> dict:
    """(5.6) The classic infinite zoom: each frame zoomed, turned and dreamed again."""
    values = {"frames": 24, "zoom": 1.05, "angle": 1.0, "step": 0.015, "octaves": 2, "iterations": 8}
    return _zoom(info, values, "deepdream/zoom")


def scheduled_zoom(info: dict) -> dict:
    """(issue 29) A zoom whose dream swells and settles, the camera easing in: Dream Schedule into Dream Zoom."""
    values = {"frames": 24, "zoom": 1.05, "step": 0.015, "octaves": 2, "iterations": 8}
    schedule = "step: 0=0.002, 12=0.03, 23=0.008\nzoom~: 0=1.0, 23=1.08"
    return _zoom(info, values, "deepdream/scheduled_zoom", schedule)


def looping_zoom(info: dict) -> dict:
    """(issue 29) A zoom that loops forever without a jump: Dream Zoom's loop input on."""
    values = {"frames": 24, "zoom": 1.05, "angle": 1.0, "step": 0.015, "octaves": 2, "iterations": 8, "loop": True}
    return _zoom(info, values, "deepdream/looping_zoom")


def regions(info: dict) -> dict:
    """(5.7) Two regions dreamed at once: fine strokes on the left, objects on the right."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    empty = g.add("SolidMask", (0, 380), {"value": 0.0, "width": 512, "height": 512})
    half = g.add("SolidMask", (0, 520), {"value": 1.0, "width": 256, "height": 512})
    right = g.add(
        "MaskComposite", (0, 660), {"x": 256, "y": 0, "operation": "add"}, destination=(empty, 0), source=(half, 0)
    )
    left = g.add("InvertMask", (0, 840), {}, mask=(right, 0))
    model = g.add("LoadFeatureModel", (0, 960), {"architecture": "efficientnet_lite0"})
    low = g.add("LayerWeights", (380, 380), {"layers": "blocks.3: 1.0"}, title="Left: low layer")
    high = g.add("LayerWeights", (380, 600), {"layers": "blocks.11: 1.0\nblocks.12: 1.0"}, title="Right: high layers")
    first = g.add("DreamRegion", (760, 380), {}, mask=(left, 0), layer_weights=(low, 0))
    both = g.add("DreamRegion", (760, 560), {}, mask=(right, 0), layer_weights=(high, 0), regions=(first, 0))
    dream = g.add(
        "OctaveDream", (1140, 0), {"step": 0.02}, image=(image, 0), feature_model=(model, 0), regions=(both, 0)
    )
    g.add("SaveImage", (1520, 0), {"filename_prefix": "deepdream/regions"}, images=(dream, 0))
    return g.to_json()


def train_and_dream(info: dict) -> dict:
    """(6) Train on the bundled training folder (three generated classes), then dream two classes."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add(
        "TrainFeatureModel", (0, 380), {"folder": TRAINING_FOLDER, "epochs": 6, "save_as": "deepdream_shapes"}
    )
    settings = {"octaves": 4, "octave_scale": 1.5, "iterations": 20, "step": 0.02, "grad_blur": 1.0}
    for row, name in enumerate(("dots", "stripes")):
        layers = g.add(
            "LayerWeights", (380, 420 + 220 * row), {"layers": f"class:{name}: 1.0"}, title=f"Dream the class '{name}'"
        )
        dream = g.add(
            "OctaveDream",
            (760, 420 * row),
            settings,
            title=f"Dream: {name}",
            image=(image, 0),
            feature_model=(model, 0),
            layer_weights=(layers, 0),
        )
        g.add("SaveImage", (1140, 420 * row), {"filename_prefix": f"deepdream/trained_{name}"}, images=(dream, 0))
    g.add(
        "SaveImage",
        (380, 880),
        {"filename_prefix": "deepdream/training_report"},
        title="How training went",
        images=(model, 2),
    )
    return g.to_json()


VIDEO = "deepdream_pan.mov"  # PNG frames: every core decodes the same pixels (not so for H.264)
BEAT_VIDEO = "deepdream_beat.mov"  # the same frames, with a soundtrack: silent, then four drum hits


def dream_video(info: dict) -> dict:
    """(7) A bundled clip dreamed coherently, and frame by frame beside it; audio and frame rate kept."""
    g = Graph(info)
    clip = g.add("LoadVideo", (0, 0), {"file": VIDEO})
    parts = g.add("GetVideoComponents", (0, 300), {}, video=(clip, 0))
    model = g.add("LoadFeatureModel", (0, 480), {"architecture": "efficientnet_lite0"})
    for row, (carry, prefix, title) in enumerate(
        (
            (1.0, "video_coherent", "Dream Video: patterns follow the motion"),
            (0.0, "video_frame_by_frame", "Frame by frame (carry 0): boils"),
        )
    ):
        dreamed = g.add(
            "DreamVideo",
            (380, 560 * row),
            {"step": 0.015, "carry": carry},
            title=title,
            frames=(parts, 0),
            feature_model=(model, 0),
        )
        video = g.add(
            "CreateVideo", (760, 560 * row), {"fps": 12.0}, images=(dreamed, 0), audio=(parts, 1), fps=(parts, 2)
        )
        g.add("SaveVideo", (1140, 560 * row), {"filename_prefix": f"deepdream/{prefix}"}, video=(video, 0))
    return g.to_json()


def dream_video_file(info: dict) -> dict:
    """(15) A long clip the streaming way: Load Video -> Dream Video File -> Save Video, nothing held whole."""
    g = Graph(info)
    clip = g.add("LoadVideo", (0, 0), {"file": VIDEO})
    model = g.add("LoadFeatureModel", (0, 300), {"architecture": "efficientnet_lite0"})
    dreamed = g.add(
        "DreamVideoFile",
        (380, 0),
        {"step": 0.015},
        title="Dream Video File: any length, streamed",
        video=(clip, 0),
        feature_model=(model, 0),
    )
    g.add("SaveVideo", (760, 0), {"filename_prefix": "deepdream/video_streamed"}, video=(dreamed, 0))
    return g.to_json()


def seamless_texture(info: dict) -> dict:
    """(issue 29) A dream that tiles: Octave Dream with seamless on, and the tile stitched 2x2 to show no seam."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    small = g.add("ImageScaleBy", (0, 380), {"upscale_method": "area", "scale_by": 0.5}, image=(image, 0))
    model = g.add("LoadFeatureModel", (0, 520), {"architecture": "efficientnet_lite0"})
    tile = g.add(
        "OctaveDream",
        (380, 0),
        {"step": 0.02, "iterations": 20, "seamless": True},
        title="Octave Dream: seamless",
        image=(small, 0),
        feature_model=(model, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/seamless_tile"}, images=(tile, 0))
    row = g.add(
        "ImageStitch", (760, 340), {"direction": "right", "spacing_width": 0}, image1=(tile, 0), image2=(tile, 0)
    )
    grid = g.add("ImageStitch", (760, 560), {"direction": "down", "spacing_width": 0}, image1=(row, 0), image2=(row, 0))
    g.add("SaveImage", (1140, 340), {"filename_prefix": "deepdream/seamless_2x2"}, images=(grid, 0))
    return g.to_json()


def dream_to_music(info: dict) -> dict:
    """(issue 29) A clip dreamed to its own soundtrack: Audio Envelope hears the clip, Dream Video File follows."""
    g = Graph(info)
    clip = g.add("LoadVideo", (0, 0), {"file": BEAT_VIDEO})
    model = g.add("LoadFeatureModel", (0, 300), {"architecture": "efficientnet_lite0"})
    envelope = g.add(
        "AudioEnvelope",
        (0, 440),
        {"setting": "step", "low": 0.002, "high": 0.03, "release": 0.25},
        title="Step follows the beat",
        video=(clip, 0),
    )
    dreamed = g.add(
        "DreamVideoFile",
        (380, 0),
        {"step": 0.015},
        title="Dream Video File: dreams to the music",
        video=(clip, 0),
        feature_model=(model, 0),
        schedule=(envelope, 0),
    )
    g.add("SaveVideo", (760, 0), {"filename_prefix": "deepdream/video_to_music"}, video=(dreamed, 0))
    return g.to_json()


def looks(info: dict) -> dict:
    """(16) The classic step beside lapnorm and whitened steps (with random scale and rotation): same photo,
    same layers, same strength."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    model = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    layers = g.add("LayerWeights", (0, 520), {"layers": LITE_LAYERS})
    for row, (name, extra) in enumerate(
        (
            ("classic", {}),
            ("lapnorm", {"precondition": "lapnorm", "scale_jitter": 0.1, "rotate_jitter": 5.0}),
            ("whitened", {"precondition": "whitened", "scale_jitter": 0.1, "rotate_jitter": 5.0}),
        )
    ):
        dream = g.add(
            "OctaveDream",
            (380 + 380 * row, 0),
            {"step": 0.015, **extra},
            title=f"Dream: {name}",
            image=(image, 0),
            feature_model=(model, 0),
            layer_weights=(layers, 0),
        )
        g.add("SaveImage", (380 + 380 * row, 1000), {"filename_prefix": f"deepdream/look_{name}"}, images=(dream, 0))
    return g.to_json()


def two_networks(info: dict) -> dict:
    """(17) Two networks in one dream: the ImageNet network's eyes and a network trained on the bundled shapes
    dreaming its class 'dots', on the same picture at every step."""
    g = Graph(info)
    image = g.add("LoadImage", (0, 0), {"image": SAMPLE})
    imagenet = g.add("LoadFeatureModel", (0, 380), {"architecture": "efficientnet_lite0"})
    eyes = g.add("LayerWeights", (0, 520), {"layers": "blocks.10: 1.0"}, title="ImageNet network: eyes")
    trained = g.add(
        "TrainFeatureModel", (380, 380), {"folder": TRAINING_FOLDER, "epochs": 6, "save_as": "deepdream_shapes"}
    )
    dots = g.add("LayerWeights", (760, 520), {"layers": "class:dots: 10"}, title="Trained network: dots")
    networks = g.add("DreamNetwork", (760, 380), {}, feature_model=(trained, 0), layer_weights=(dots, 0))
    dream = g.add(
        "OctaveDream",
        (1140, 0),
        {"step": 0.02, "octaves": 4, "octave_scale": 1.5, "grad_blur": 1.0},
        image=(image, 0),
        feature_model=(imagenet, 0),
        layer_weights=(eyes, 0),
        networks=(networks, 0),
    )
    g.add("SaveImage", (1520, 0), {"filename_prefix": "deepdream/networks"}, images=(dream, 0))
    return g.to_json()


def channel_sheet(info: dict) -> dict:
    """(18) What single channels see: 8 channels of a middle layer grown from noise, on a labelled sheet."""
    g = Graph(info)
    model = g.add("LoadFeatureModel", (0, 0), {"architecture": "efficientnet_lite0"})
    pictures = g.add(
        "ChannelPictures",
        (380, 0),
        {"layer": "blocks.8", "channels": "0-7", "columns": 4, "size": 160, "steps": 128},
        feature_model=(model, 0),
    )
    g.add("SaveImage", (760, 0), {"filename_prefix": "deepdream/channel_sheet"}, images=(pictures, 1))
    return g.to_json()


WORKFLOWS = {
    "01_dream_sample_photo": sample_dream,
    "02_keras_inception_v3": keras_inception,
    "03_dream_upscale_dream": dream_upscale_dream,
    "04_masked_dream": masked_dream,
    "05_octave_animation": octave_animation,
    "06_guided_dream": guided_dream,
    "07_dream_a_jellyfish": class_and_channels,
    "08_keep_colors_smooth": keep_colors,
    "09_layer_sweep": layer_sweep,
    "10_dream_frames": dream_frames,
    "11_infinite_zoom": dream_zoom,
    "12_two_regions": regions,
    "13_train_and_dream": train_and_dream,
    "14_dream_a_video": dream_video,
    "15_dream_a_long_video": dream_video_file,
    "16_lapnorm_vs_classic": looks,
    "17_two_networks": two_networks,
    "18_channel_sheet": channel_sheet,
    "19_scheduled_zoom": scheduled_zoom,
    "20_dream_to_music": dream_to_music,
    "21_looping_zoom": looping_zoom,
    "22_seamless_texture": seamless_texture,
}


def main() -> None:
    info = object_info()
    for name, build in WORKFLOWS.items():
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(build(info), indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
