"""The code's shape: short functions, no import circle, a current map, and extension points that take one file."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dream_core import DreamSettings, dream
from dream_core.objectives import Objective, Part

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60


def test_no_function_of_the_engine_or_the_nodes_is_longer_than_60_lines():
    long = []
    for path in sorted([*ROOT.glob("dream_core/**/*.py"), *ROOT.glob("nodes/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_there_is_no_import_circle_and_the_architecture_map_is_current():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import import_graph
    finally:
        sys.path.remove(str(ROOT / "tools"))
    graph = import_graph.edges()
    assert import_graph.circles(graph) == []
    assert "dream_core.objectives" in graph["nodes.base"] and "dream_core.job" in graph["dream_core.cluster.worker"]
    assert not any(
        target.startswith("nodes")
        for name, targets in graph.items()
        if name.startswith("dream_core")
        for target in targets
    ), "the engine must not import the nodes"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "import_graph.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_the_circle_finder_finds_a_circle():
    from importlib import util

    spec = util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert module.circles({"a": {"b"}, "b": set()}) == []


@dataclass(frozen=True)
class Centre(Part):
    """A new kind of objective term, written in this file only: one channel, counted in the middle half of the
    picture."""

    term: Any

    def terms(self):
        return {self.term: 1.0}

    def resolved(self, resolve_weights):
        return replace(self, term=next(iter(resolve_weights({self.term: 1.0}))))

    def value(self, features, image, whole):
        activation = features[self.term.layer][:, self.term.channels[0]].float()
        height, width = activation.shape[-2:]
        return activation[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].mean(dim=(1, 2))


def test_a_new_objective_term_is_added_in_one_file_and_composes(lite0, small_photo):
    settings = DreamSettings(octaves=1, iterations=8, jitter=0, step=0.05)
    centre = Objective((Centre("blocks.8[5]"),))
    dreamed = dream(small_photo, lite0, centre, settings).images

    def centre_and_edge(image):
        with lite0.tap(["blocks.8"]) as tap, torch.no_grad():
            channel = tap(image)["blocks.8"][0, 5]
        height, width = channel.shape
        middle = channel[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].mean()
        return middle.item(), (
            channel.sum() - channel[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].sum()
        ).item() / (channel.numel() - height // 2 * (width // 2))

    before, after = centre_and_edge(small_photo), centre_and_edge(dreamed)
    assert after[0] - before[0] > 2 * abs(after[1] - before[1])  # the middle rose, far more than the rest moved
    # It adds to the classic objective like any other part, and a seed gives the same picture again.
    both = Objective.of({"blocks.6": 1.0}) + centre
    first = dream(small_photo, lite0, both, settings).images
    assert torch.equal(first, dream(small_photo, lite0, both, settings).images)
    assert not torch.equal(first, dreamed)
