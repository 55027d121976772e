"""Hostile workflows against a running ComfyUI server with the DeepDream pack linked in.

Start a server with this pack linked in (see tools/host_checks.py), then run with the
pack's venv (numpy, Pillow, torch and safetensors are needed to write test models and
compare pixels):

    ../shared/tools/comfy_host/start_host.sh --fresh-input .
    .venv/bin/python tools/hostile_host.py --server http://127.0.0.1:8188 --comfy-dir /tmp/comfyhost/ComfyUI

`--comfy-dir` is the server's ComfyUI folder: damaged, foreign and malicious checkpoints
are written into its models/deepdream and a one-class training folder into its input
folder, all under a unique `hostile_<run>` prefix and removed at the end.

Checks that every bad workflow ends in an error (HTTP 400 from validation, or an
execution error in /history) whose message names the problem, that the server still
answers after each, that the workflows which must work (a 5-class checkpoint, a 1x1
image, a mask of another size) do, and that a dream queued before all of them and
again after (re-executed, not cached) gives identical pixels.

Prints `PASS name: ...` or `FAIL name: ...` per case, then `N passed, N failed`; exits 0
only if every case passed. ComfyUI imports the pack once, at start: restart the server
after changing the pack, or it tests the old code. About 10 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
from pathlib import Path

from PIL import Image

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS.parent))
import host_checks as hc  # noqa: E402
from host_checks import base, call, executed, images, maxdiff, messages, wait  # noqa: E402

PREFIX = f"hostile_{hc.RUN}"
MARKER = Path(f"/tmp/{PREFIX}_pickle_ran")
LITE0 = "efficientnet_lite0"


class Evil:
    """Unpickling this runs a shell command: a safe loader must refuse it."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


# ---- running prompts -------------------------------------------------------------------


def outcome(prompt: dict, timeout: float = 300) -> tuple[str, str, dict]:
    """('rejected', text, body) for HTTP 400, else ('error' | 'success', text, history entry)."""
    try:
        response = call("/prompt", {"prompt": prompt, "client_id": "hostile_host"})
    except urllib.error.HTTPError as err:
        body = json.loads(err.read().decode() or "{}")
        parts = [body.get("error", {}).get("message", ""), body.get("error", {}).get("details", "")]
        for node in body.get("node_errors", {}).values():
            parts += [f"{e.get('message', '')}: {e.get('details', '')}" for e in node.get("errors", [])]
        return "rejected", f"HTTP {err.code}: " + " | ".join(p for p in parts if p), body
    if response.get("node_errors"):  # some outputs invalid: ComfyUI runs the others
        return "rejected", f"node_errors: {json.dumps(response['node_errors'])[:400]}", response
    entry = wait(response["prompt_id"], timeout)
    if entry["status"]["status_str"] == "success":
        return "success", "", entry
    err = messages(entry).get("execution_error", {})
    kind = str(err.get("exception_type")).rsplit(".", 1)[-1]  # custom nodes' module names are file paths
    text = f"{err.get('node_type')} raised {kind}: {str(err.get('exception_message')).strip()}"
    return "error", text, entry


def expect_error(prompt: dict, *needles: str) -> str:
    """The prompt must fail with a message that contains every needle (in any case)."""
    kind, text, _ = outcome(prompt)
    if kind == "success":
        raise RuntimeError("the workflow succeeded, expected an error")
    missing = [n for n in needles if n.lower() not in text.lower()]
    if missing:
        raise RuntimeError(f"message lacks {missing}: {text[:500]!r}")
    return f"{kind}: {text[:200]!r}"


def expect_success(prompt: dict) -> dict:
    kind, text, entry = outcome(prompt)
    if kind != "success":
        raise RuntimeError(f"expected success, got {kind}: {text[:500]}")
    return entry


def save(image: list, name: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": f"hostile_host/{PREFIX}_{name}"}}


dream = hc.dream


def quick_dream(image: list, **options) -> dict:
    return dream(image, **{"octaves": 1, "iterations": 1, "jitter": 0, **options})


def model_prompt(weights: str, layers: str | None = None, **options) -> dict:
    """A small dream of the photo with efficientnet_lite0 and these weights (and LayerWeights text)."""
    prompt = base(64)
    prompt["3"]["inputs"]["weights"] = weights
    if layers is not None:
        prompt["L"] = {"class_type": "LayerWeights", "inputs": {"layers": layers, "strength": 1.0}}
        options["layer_weights"] = ["L", 0]
    prompt["4"] = quick_dream(["2", 0], **options)
    prompt["9"] = save(["4", 0], "m")
    return prompt


def train_prompt(folder: str, save_as: str) -> dict:
    prompt = base(64)
    prompt["T"] = {
        "class_type": "TrainFeatureModel",
        "inputs": {
            "folder": folder,
            "architecture": LITE0,
            "weights": "imagenet",
            "epochs": 1,
            "learning_rate": 0.003,
            "unfreeze_blocks": 0,
            "seed": 0,
            "save_as": save_as,
        },
    }
    prompt["4"] = quick_dream(["2", 0], feature_model=["T", 0])
    prompt["9"] = save(["4", 0], "t")
    return prompt


def reference_prompt(noop: bool) -> dict:
    """The normal dream compared before and after; `noop` adds an exact copy so it really runs."""
    prompt = base(noop=noop)
    prompt["4"] = dream(["2n" if noop else "2", 0], seed=int(hc.RUN, 16) % 10**6)
    prompt["9"] = save(["4", 0], "ref")
    return prompt


# ---- files the server must cope with --------------------------------------------------


def write_models(folder: Path) -> dict[str, str]:
    """Damaged, foreign and malicious checkpoints; returns {kind: file name}."""
    import torch
    from safetensors.torch import save_file

    from dream_core import load_feature_model

    def state(name: str) -> dict:
        return {
            k: v.contiguous().clone()
            for k, v in load_feature_model(name, "random", fold_batchnorm=False).net.state_dict().items()
        }

    folder.mkdir(parents=True, exist_ok=True)
    names = {kind: f"{PREFIX}_{kind}.safetensors" for kind in ("truncated", "bad_header", "resnet50", "classes5")}
    names["pickle"] = f"{PREFIX}_pickle.pth"
    lite0 = state(LITE0)
    real = folder / f"{PREFIX}_real.tmp"  # not a checkpoint suffix: never listed
    save_file(lite0, str(real))
    raw = real.read_bytes()
    real.unlink()
    (folder / names["truncated"]).write_bytes(raw[:1000])
    header_len = int.from_bytes(raw[:8], "little")
    (folder / names["bad_header"]).write_bytes(raw[:8] + b"{not json" + b"!" * (header_len - 9) + raw[8 + header_len :])
    save_file(state("resnet50"), str(folder / names["resnet50"]))
    lite0["_fc.weight"], lite0["_fc.bias"] = torch.randn(5, 1280) * 0.01, torch.zeros(5)
    save_file(lite0, str(folder / names["classes5"]))
    torch.save({"_fc.weight": torch.zeros(1), "payload": Evil()}, folder / names["pickle"])
    with open(folder / names["pickle"], "rb") as handle:  # sanity: the payload is really in the file
        assert b"system" in handle.read()
    return names


def write_one_class_folder(input_dir: Path) -> str:
    folder = input_dir / PREFIX / "onlyclass"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (16, 16), (200 * i, 80, 40)).save(folder / f"{i}.png")
    return PREFIX


# ---- the cases -------------------------------------------------------------------------


def cases(models: dict[str, str], one_class: str, comfy: Path) -> list[tuple[str, callable]]:
    def listed() -> str:
        choices = call("/object_info/LoadFeatureModel")["LoadFeatureModel"]["input"]["required"]["weights"][0]
        absent = [n for n in models.values() if n not in choices]
        if absent:
            raise RuntimeError(f"server does not list {absent}; restart it so that it rescans models/deepdream")
        return f"{len(models)} test checkpoints listed"

    def pickle_case() -> str:
        result = expect_error(model_prompt(models["pickle"]), "could run code", models["pickle"])
        if MARKER.exists():
            raise RuntimeError(f"the pickle ran code: {MARKER} exists")
        return result + f"; {MARKER.name} not created"

    def train_save_as() -> str:
        result = expect_error(train_prompt("deepdream_samples/shapes", "../evil"), "../evil", "no folders")
        strays = [p for p in (comfy / "models" / "evil.safetensors", comfy / "evil.safetensors") if p.exists()]
        if strays:
            raise RuntimeError(f"a file was written outside models/deepdream: {strays}")
        return result

    def succeeds(source: dict, options: dict, size: tuple[int, int], weights: str = "imagenet") -> str:
        """A dream of node "1" (plus `source`'s other nodes) must run and keep the size."""
        prompt = {**source, "3": base()["3"], "9": save(["4", 0], "ok")}
        prompt["3"]["inputs"]["weights"] = weights
        prompt["4"] = quick_dream(["1", 0], **options)
        out = images(expect_success(prompt), "9")
        if [o.shape[:2] for o in out] != [size[::-1]]:
            raise RuntimeError(f"output shapes {[o.shape for o in out]}, expected one {size[0]}x{size[1]} image")
        return f"ran, {size[0]}x{size[1]} out, mean {out[0].mean():.1f}"

    def dream_with(**options) -> dict:
        return {**base(64), "4": quick_dream(["2", 0], **options), "9": save(["4", 0], "bad")}

    def bad(prompt: dict, *needles: str):
        return lambda: expect_error(prompt, *needles)

    def layers(text: str) -> dict:
        return model_prompt("imagenet", layers=text)

    empty = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0x804020}}
    photo = {"class_type": "LoadImage", "inputs": {"image": "deepdream_samples/astronaut.png"}}
    small_photo = {"0": photo, "1": hc.scale(["0", 0], 64, "bilinear")}
    mask = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 17, "height": 5}}
    train_name = f"{PREFIX}_trained"
    return [
        ("models_listed", listed),
        ("weights_traversal", bad(model_prompt("../../../etc/passwd"), "not in list", "weights")),
        ("weights_absolute", bad(model_prompt("/etc/passwd"), "not in list", "weights")),
        ("truncated_safetensors", bad(model_prompt(models["truncated"]), models["truncated"], "truncated")),
        ("corrupt_header", bad(model_prompt(models["bad_header"]), models["bad_header"], "not a readable")),
        ("pickle_runs_code", pickle_case),
        ("other_architecture", bad(model_prompt(models["resnet50"]), "does not fit", LITE0)),
        ("five_classes_ok", lambda: succeeds(small_photo, {}, (64, 64), models["classes5"])),
        ("unknown_layer", bad(layers("mixed4: 1"), "no layer 'mixed4'", "blocks.6")),
        ("nan_weight", bad(layers("blocks.6: nan"), "finite")),
        ("bad_channel", bad(layers("blocks.6[500]: 1"), "[500]", "channels 0..")),
        ("unknown_class", bad(layers("class:notaclass: 1"), "unknown class 'notaclass'")),
        ("octaves_0", bad(dream_with(octaves=0), "smaller than min", "octaves")),
        ("step_negative", bad(dream_with(step=-1.0), "smaller than min", "step")),
        ("train_folder_escape", bad(train_prompt("../../", train_name), "inside ComfyUI's input folder", "../../")),
        ("train_one_class", bad(train_prompt(one_class, train_name), "at least two", "onlyclass")),
        ("train_save_as_escape", train_save_as),
        ("tiny_image_ok", lambda: succeeds({"1": empty}, {"iterations": 2, "octaves": 3}, (1, 1))),
        ("mask_other_size_ok", lambda: succeeds({"1": photo, "m": mask}, {"mask": ["m", 0]}, (512, 512))),
    ]


def alive() -> None:
    call("/system_stats", timeout=10)
    call("/queue", timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=hc.SERVER, help="ComfyUI address (default %(default)s)")
    parser.add_argument("--comfy-dir", required=True, type=Path, help="the server's ComfyUI folder")
    args = parser.parse_args()
    hc.SERVER = args.server.rstrip("/")
    comfy = args.comfy_dir.resolve()
    try:
        alive()
    except OSError as err:
        print(f"FAIL server: {hc.SERVER} unreachable ({err})")
        return 2
    hc.load_defaults()
    model_dir, input_dir = comfy / "models" / "deepdream", comfy / "input"
    passed = failed = 0
    started = time.time()

    def report(name: str, check) -> bool:
        nonlocal passed, failed
        t0 = time.time()
        try:
            figures = check()
        except Exception as err:  # one failing case must not stop the others
            figures, error = None, f"{type(err).__name__}: {err}"
        try:
            alive()
        except OSError as err:
            figures, error = None, f"server no longer answers ({err})"
        if figures is None:
            print(f"FAIL {name}: {error}", flush=True)
            failed += 1
            return False
        print(f"PASS {name}: {figures}; server answers [{time.time() - t0:.1f} s]", flush=True)
        passed += 1
        return True

    before: dict = {}

    def reference_before() -> str:
        before["e"] = expect_success(reference_prompt(False))
        return "the normal dream ran"

    report("reference_before", reference_before)
    try:
        models = write_models(model_dir)
        one_class = write_one_class_folder(input_dir)
        for name, check in cases(models, one_class, comfy):
            report(name, check)

        def same_after() -> str:
            after = expect_success(reference_prompt(True))
            if "e" not in before:
                raise RuntimeError("no reference dream from before")
            if not (executed(before["e"], "4") and executed(after, "4")):
                raise RuntimeError("a reference dream was served from the cache; the comparison would prove nothing")
            diff = maxdiff(images(before["e"], "9")[0], images(after, "9")[0])
            if diff:
                raise RuntimeError(f"the dream after the hostile workflows differs: max diff {diff}/255")
            return "re-executed after all hostile workflows, max diff 0 to the run before"

        report("reference_after", same_after)
    finally:
        for path in model_dir.glob(f"{PREFIX}*"):
            path.unlink()
        shutil.rmtree(input_dir / PREFIX, ignore_errors=True)
        MARKER.unlink(missing_ok=True)
    print(f"{passed} passed, {failed} failed ({time.time() - started:.0f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
