"""The pack as V3 nodes: its entry point, workflows saved by its earlier V1 nodes, and the stand-in of
`comfy_api` (nodes/io_standin.py) that lets the node tests run without ComfyUI, checked against a real core's.

`tests/data/v1_widgets.json` is what the V1 nodes of release 0.2.0 stored, node by node: the order of a saved
node's widgets_values (written from those nodes' INPUT_TYPES before they became V3 nodes).
`tests/data/v1_saved_workflow.json` is a workflow of every pack node saved by them (every widget away from its
default; a seed's control set to 'increment'), made with tools/build_workflows.py's Graph over those nodes.

Run the check against a core with DEEPDREAM_COMFYUI=/path/to/ComfyUI (and DEEPDREAM_COMFYUI_PYTHON=its python,
which has torch); without them (CI) it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_workflows  # noqa: E402

sys.path.remove(str(ROOT / "tools"))

DATA = ROOT / "tests" / "data"
V1_WIDGETS = json.loads((DATA / "v1_widgets.json").read_text())
SAVED = [*sorted((ROOT / "example_workflows").glob("[0-9]*.json")), DATA / "v1_saved_workflow.json"]


@pytest.fixture(scope="module")
def pack():
    return build_workflows.load_pack()


def test_the_pack_is_a_v3_extension_listing_every_node(pack):
    # A core that finds NODE_CLASS_MAPPINGS on the pack reads it as V1 nodes and never asks the extension.
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and callable(pack.comfy_entrypoint)
    extension = asyncio.run(pack.comfy_entrypoint())
    assert isinstance(extension, pack.nodes.ComfyExtension)
    listed = asyncio.run(extension.get_node_list())
    ids = [cls.GET_SCHEMA().node_id for cls in listed]
    assert ids[: len(V1_WIDGETS)] == list(V1_WIDGETS)  # the V1 nodes' ids, in their order; new nodes after
    for cls in listed:
        schema = cls.GET_SCHEMA()
        assert issubclass(cls, pack.nodes.io.ComfyNode) and schema.display_name.endswith("(DeepDream)")
        assert schema.description and all(output.tooltip for output in schema.outputs), schema.node_id
        assert len(schema.search_aliases) >= 2, schema.node_id


def test_octave_dream_shows_its_essentials_and_folds_the_rest(pack):
    inputs = pack.nodes.NODE_CLASS_MAPPINGS["OctaveDream"].GET_SCHEMA().inputs
    shown = [i.id for i in inputs if not i.advanced and i.io_type in ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO")]
    assert shown == ["octaves", "octave_scale", "iterations", "step", "seed"]  # with seed's control: 6 widgets
    folded = [i.id for i in inputs if i.advanced]
    assert {"max_loss", "jitter", "precision", "precondition", "rotate_jitter"} <= set(folded)
    assert not any(i.advanced for i in inputs if i.io_type not in ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"))


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_a_workflow_saved_by_the_v1_nodes_loads_into_the_v3_nodes_with_every_value_in_place(path):
    """The frontend gives a saved node's widgets_values to its widgets in order: read by the V3 nodes' order,
    every value lands on the input the V1 nodes stored it for, and is a valid value of that input."""
    info = build_workflows.object_info()  # the V3 nodes, as /object_info gives them
    workflow = json.loads(path.read_text())
    checked = 0
    for node in workflow["nodes"]:
        if node["type"] not in V1_WIDGETS:
            continue
        stored = node["widgets_values"]
        entry = info[node["type"]]
        names_v1, names_now = V1_WIDGETS[node["type"]], build_workflows.stored_widgets(entry)
        # Widgets added since come after the V1 ones: a V1 workflow's values (fewer) land where they did, and the
        # new widgets keep their defaults; a workflow saved now has a value for each.
        assert names_now[: len(names_v1)] == names_v1, node["type"]
        assert len(stored) in (len(names_v1), len(names_now)), f"{path.name}: {node['type']}"
        v1 = dict(zip(names_v1, stored[: len(names_v1)], strict=True))
        v3 = dict(zip(names_now[: len(stored)], stored, strict=True))
        assert {name: v3[name] for name in names_v1} == v1, f"{path.name}: {node['type']}"
        specs = {**entry["input"].get("required", {}), **entry["input"].get("optional", {})}
        for name, value in v3.items():
            if name.endswith(".control"):
                continue
            kind, options = specs[name]
            if kind == "COMBO" and node["type"] not in ("LoadFeatureModel", "TrainFeatureModel"):  # file lists vary
                assert value in options["options"], f"{node['type']}.{name}"
            if kind in ("INT", "FLOAT"):
                assert options.get("min", value) <= value <= options.get("max", value), f"{node['type']}.{name}"
        checked += 1
    assert checked >= (13 if path.parent == DATA else 1)


def test_the_hand_saved_workflow_holds_values_away_from_every_default():
    info = build_workflows.object_info()
    for node in json.loads((DATA / "v1_saved_workflow.json").read_text())["nodes"]:
        if node["type"] not in V1_WIDGETS:
            continue
        defaults = build_workflows.widget_values(node["type"], info[node["type"]], {})
        names = V1_WIDGETS[node["type"]]
        for name, value, default in zip(names, node["widgets_values"], defaults[: len(names)], strict=True):
            if not name.endswith(".control") and name != "weights":  # a checkpoint list is empty without ComfyUI
                assert value != default, f"{node['type']}.{name}"


DESCRIBE = r"""
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
pack_dir = sys.argv[2]
try:  # a real core: describe on the CPU, whatever the machine has
    import comfy.options
    comfy.options.enable_args_parsing()
    sys.argv = [sys.argv[0], "--cpu"]
except ImportError:
    pass
spec = importlib.util.spec_from_file_location("deepdream_pack", pack_dir + "/__init__.py",
                                              submodule_search_locations=[pack_dir])
module = importlib.util.module_from_spec(spec)
sys.modules["deepdream_pack"] = module
spec.loader.exec_module(module)
nodes = sys.modules["deepdream_pack.nodes"]
described = {"standin": nodes.comfy_io.STANDIN, "folds": nodes.comfy_io.FOLDS, "nodes": {}}
for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
    schema = cls.GET_SCHEMA()
    described["nodes"][name] = {
        "input": cls.INPUT_TYPES(), "output": list(cls.RETURN_TYPES), "output_name": list(cls.RETURN_NAMES),
        "output_tooltips": list(cls.OUTPUT_TOOLTIPS), "description": cls.DESCRIPTION, "category": cls.CATEGORY,
        "function": cls.FUNCTION, "display_name": schema.display_name,
        "search_aliases": getattr(schema, "search_aliases", None),
    }
print(json.dumps(described, default=repr))
"""


def _describe(python: str, comfyui: str) -> dict:
    run = subprocess.run(
        [python, "-c", DESCRIBE, comfyui, str(ROOT)], capture_output=True, text=True, cwd=comfyui, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DEEPDREAM_COMFYUI"), reason="set DEEPDREAM_COMFYUI to a ComfyUI checkout")
def test_the_stand_in_describes_every_node_as_the_real_comfy_api_does():
    core = os.environ["DEEPDREAM_COMFYUI"]
    real = _describe(os.environ.get("DEEPDREAM_COMFYUI_PYTHON", sys.executable), core)
    mine = _describe(sys.executable, str(ROOT.parent))  # no comfy_api on this path: the stand-in
    assert not real["standin"] and mine["standin"]
    for name, described in mine["nodes"].items():
        expected = real["nodes"][name]
        for weights in (group.get("weights") for group in (*described["input"].values(), *expected["input"].values())):
            if weights:  # the core's checkpoint files are listed after 'imagenet'; none without a core
                weights[1]["options"] = weights[1]["options"][:1]
        if not real["folds"]:  # an older core: no folding, no search aliases; the same node otherwise
            for group in described["input"].values():
                for _kind, options in group.values():
                    options.pop("advanced", None)
            described["search_aliases"] = expected["search_aliases"]
        assert described == expected, name


def test_every_template_has_its_card_and_nothing_else_is_listed_as_a_template():
    """The core lists every JSON file in example_workflows/ as a template, and frontends up to 1.58 show a pack's
    template by its name and NAME.jpg only (an index.json would be a template called 'index' that fails to open)."""
    from PIL import Image

    folder = ROOT / "example_workflows"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(build_workflows.WORKFLOWS)
    for name in build_workflows.WORKFLOWS:
        with Image.open(folder / f"{name}.jpg") as card:
            assert card.format == "JPEG" and card.size == (384, 384), name


@pytest.mark.slow
def test_a_core_older_than_the_v3_api_is_told_which_version_to_update_to(tmp_path):
    """A ComfyUI without comfy_api.v0_0_2 (before 0.3.48): importing the nodes names the version it needs."""
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "__init__.py").write_text("")
    (tmp_path / "folder_paths.py").write_text("")
    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"spec = importlib.util.spec_from_file_location('pack', {str(ROOT / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(ROOT)!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['pack'] = module\n"
        "spec.loader.exec_module(module)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "need ComfyUI 0.3.48 or newer" in run.stderr, run.stderr[-2000:]
