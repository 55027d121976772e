"""Checks of the DeepDream nodes through a running ComfyUI server's HTTP API.

Start a server with this pack linked in, then run (numpy and Pillow are needed to
compare pixels, so use the pack's venv):

    ../shared/tools/comfy_host/start_host.sh --fresh-input .
    .venv/bin/python tools/host_checks.py --server http://127.0.0.1:8188

The photo is the bundled sample (`deepdream_samples/astronaut.png`, copied into the
server's input folder when a prompt names it). Prompts are built here in API
format, queued with POST /prompt and followed by polling /queue and /history/<id>
(no websocket). Outputs are fetched with /view and compared pixel by pixel.

ComfyUI caches node outputs by input signature (not by node id), so where a dream
must really run again, the image goes through one more ImageScale to the same size
(`nearest-exact`, an exact copy) and the history's `execution_cached` list is checked.

Prints `PASS name: figures` or `FAIL name: why` per check, then `N passed, N failed`;
exits 0 only if every check passed. Takes about 15 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import numpy as np
from PIL import Image

SERVER = "http://127.0.0.1:8188"
RUN = uuid.uuid4().hex[:8]  # makes every filename_prefix of this run unique
SMALL = 128


def call(path: str, body: dict | None = None, timeout: float = 30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SERVER + path, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def queue(prompt: dict) -> str:
    try:
        answer = call("/prompt", {"prompt": prompt, "client_id": "host_checks"})
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"prompt rejected (HTTP {err.code}): {err.read().decode()[:500]}") from None
    if answer.get("node_errors"):  # ComfyUI runs the valid outputs of a partly invalid prompt
        raise RuntimeError(f"prompt partly rejected: {json.dumps(answer['node_errors'])[:500]}")
    return answer["prompt_id"]


def wait(prompt_id: str, timeout: float = 300, poll: float = 0.1) -> dict:
    """The history entry of a prompt, once it has left the queue."""
    end = time.time() + timeout
    while time.time() < end:
        history = call(f"/history/{prompt_id}")
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(poll)
    call("/interrupt", {"prompt_id": prompt_id})
    raise RuntimeError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")


def messages(entry: dict) -> dict:
    return {event: data for event, data in entry["status"]["messages"]}


def run(prompt: dict, timeout: float = 300) -> dict:
    """Queue, wait, and raise unless the prompt succeeded."""
    entry = wait(queue(prompt), timeout)
    if entry["status"]["status_str"] != "success":
        err = messages(entry).get("execution_error", {})
        raise RuntimeError(f"{err.get('node_type')} failed: {err.get('exception_message', entry['status'])}"[:400])
    return entry


def executed(entry: dict, node_id: str) -> bool:
    """Whether a node really ran (was not served from the cache)."""
    return node_id not in messages(entry).get("execution_cached", {}).get("nodes", [])


def images(entry: dict, node_id: str) -> list[np.ndarray]:
    """The images a SaveImage node wrote, as uint8 arrays (H, W, 3)."""
    out = []
    for info in entry["outputs"][node_id]["images"]:
        query = urllib.parse.urlencode({k: info[k] for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{SERVER}/view?{query}", timeout=30) as response:
            out.append(np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB")))
    return out


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b).max())


def meandiff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b).mean())


# ---- prompt building -------------------------------------------------------------


def base(size: int = SMALL, noop: bool = False, model: str = "efficientnet_lite0") -> dict:
    """Photo at `size` px in node "2" (through a same-size no-op "2n" if `noop`), model in "3"."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "deepdream_samples/astronaut.png"}},
        "2": scale(["1", 0], size, "bilinear"),
        "3": {"class_type": "LoadFeatureModel", "inputs": {"architecture": model, "weights": "imagenet"}},
    }
    if noop:
        prompt["2n"] = scale(["2", 0], size, "nearest-exact")
    return prompt


def scale(image: list, size: int, method: str) -> dict:
    return {
        "class_type": "ImageScale",
        "inputs": {"image": image, "upscale_method": method, "width": size, "height": size, "crop": "disabled"},
    }


OCTAVE_DEFAULTS: dict = {}  # OctaveDream's widget defaults, read from the server's /object_info


def load_defaults() -> None:
    """Read OctaveDream's inputs from the server, so that new options need no edit here."""
    required = call("/object_info/OctaveDream")["OctaveDream"]["input"]["required"]
    OCTAVE_DEFAULTS.update({name: spec[1]["default"] for name, spec in required.items() if "default" in spec[1]})


def dream(image: list, **options) -> dict:
    inputs = {
        **OCTAVE_DEFAULTS,
        "image": image,
        "feature_model": ["3", 0],
        "octaves": 3,
        "iterations": 5,
        "step": 0.01,
        "seed": 0,
    }
    inputs.update(options)
    return {"class_type": "OctaveDream", "inputs": inputs}


def save(image: list, name: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": f"host_checks/{RUN}_{name}"}}


def dream_prompt(name: str, noop: bool = False, size: int = SMALL, **options) -> dict:
    prompt = base(size, noop)
    prompt["4"] = dream(["2n" if noop else "2", 0], **options)
    prompt["9"] = save(["4", 0], name)
    return prompt


# ---- checks ------------------------------------------------------------------------


def run_seconds(entry: dict) -> float:
    stamps = [data["timestamp"] for _, data in entry["status"]["messages"]]
    return (max(stamps) - min(stamps)) / 1000


def check_interrupt() -> str:
    reference = run(dream_prompt("int_ref", noop=True, seed=7))
    seed = int(time.time())  # fresh seeds: the long dreams must never come from the cache
    short, longer = (run(dream_prompt(f"int_{n}", size=512, octaves=1, iterations=n, seed=seed + n)) for n in (1, 6))
    step = (run_seconds(longer) - run_seconds(short)) / 5  # one 512 px ascent step
    long_id = queue(dream_prompt("int_long", size=512, octaves=1, iterations=400, seed=seed))
    try:
        end = time.time() + 120
        while not any(item[1] == long_id for item in call("/queue")["queue_running"]):
            if time.time() > end:
                raise RuntimeError("the long dream never started running")
            time.sleep(0.1)
        time.sleep(max(3.0, 5 * step))  # the model comes from the cache: at least 5 steps have run
        start = time.time()
        call("/interrupt", {"prompt_id": long_id})
        msgs = messages(wait(long_id, timeout=60, poll=0.02))
        latency = time.time() - start
    finally:  # never leave a 400-step dream in the queue
        call("/queue", {"delete": [long_id]})
        call("/interrupt", {"prompt_id": long_id})
    if "execution_interrupted" not in msgs:
        raise RuntimeError(f"no execution_interrupted message: {list(msgs)}")
    stopped_in = msgs["execution_interrupted"]["node_type"]
    if latency >= 5:
        raise RuntimeError(f"took {latency:.2f} s to stop (limit 5 s)")
    after = run(dream_prompt("int_after", seed=7))
    if not (executed(after, "4") and executed(reference, "4")):
        raise RuntimeError("a dream was served from the cache; the comparison would prove nothing")
    diff = maxdiff(images(after, "9")[0], images(reference, "9")[0])
    if diff:
        raise RuntimeError(f"run after the interrupt differs from the uninterrupted run: max diff {diff}")
    return (
        f"stopped {latency:.2f} s after /interrupt (in {stopped_in}; one 512 px step takes {step:.2f} s); "
        "next run ok, max diff 0 vs an uninterrupted run"
    )


def check_batch() -> str:
    prompt = base()
    prompt["5"] = {"class_type": "ImageFlip", "inputs": {"image": ["2", 0], "flip_method": "y-axis: horizontally"}}
    prompt["6"] = scale(["1", 0], 72, "bilinear")
    prompt["6b"] = scale(["6", 0], SMALL, "bilinear")  # a blurred copy
    prompt["7"] = {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["5", 0]}}
    prompt["7b"] = {"class_type": "ImageBatch", "inputs": {"image1": ["7", 0], "image2": ["6b", 0]}}
    prompt["4"] = dream(["7b", 0], seed=5)
    prompt["8"] = save(["7b", 0], "batch_in")
    prompt["9"] = save(["4", 0], "batch_out")
    entry = run(prompt)
    inputs, outputs = images(entry, "8"), images(entry, "9")
    if len(inputs) != 3 or len(outputs) != 3:
        raise RuntimeError(f"{len(inputs)} inputs and {len(outputs)} outputs saved, expected 3 and 3")
    if min(meandiff(inputs[i], inputs[j]) for i, j in ((0, 1), (0, 2), (1, 2))) < 1:
        raise RuntimeError("the three input images are not different")
    changes = [meandiff(i, o) for i, o in zip(inputs, outputs, strict=True)]
    if min(changes) < 1:
        raise RuntimeError(f"not every image was dreamed: mean abs change {changes}")
    return "3 files; mean abs change per image " + ", ".join(f"{c:.1f}" for c in changes) + " (of 255)"


def mask_prompt() -> dict:
    prompt = base()
    for node, value in (("m0", 0.0), ("m1", 1.0)):
        prompt[node] = {"class_type": "SolidMask", "inputs": {"value": value, "width": 64, "height": 48}}
    prompt["4"] = dream(["2", 0], seed=3)
    prompt["40"] = dream(["2", 0], seed=3, mask=["m0", 0])
    prompt["41"] = dream(["2", 0], seed=3, mask=["m1", 0])
    for node, source in (("8", "2"), ("9", "4"), ("90", "40"), ("91", "41")):
        prompt[node] = save([source, 0], f"mask_{node}")
    return prompt


def check_mask_zero(entry: dict) -> str:
    photo_, nomask, zero = images(entry, "8")[0], images(entry, "9")[0], images(entry, "90")[0]
    diff = maxdiff(zero, photo_)
    if diff > 1:
        raise RuntimeError(f"mask 0 changed the image: max diff {diff}/255")
    return f"max diff to the input {diff}/255 (unmasked dream changes it by up to {maxdiff(nomask, photo_)}/255)"


def check_mask_one(entry: dict) -> str:
    nomask, one = images(entry, "9")[0], images(entry, "91")[0]
    diff = maxdiff(one, nomask)
    if diff:
        raise RuntimeError(f"mask 1 differs from no mask: max diff {diff}/255, mean {meandiff(one, nomask):.3f}")
    change = meandiff(nomask, images(entry, "8")[0])
    return f"max diff to the unmasked dream 0 (the dream changed the photo by mean {change:.1f})"


def check_shared_model_repeat() -> str:
    first = run(dream_prompt("x1", seed=11, octaves=2))
    other = base(160)
    other["L"] = {"class_type": "LayerWeights", "inputs": {"layers": "blocks.3: 1\nhead: 0.5", "strength": 2.0}}
    other["4"] = dream(
        ["2", 0],
        seed=99,
        octaves=1,
        iterations=4,
        step=0.05,
        jitter=0,
        loss="mean",
        normalize="std",
        reinject_detail=False,
        layer_weights=["L", 0],
    )
    other["9"] = save(["4", 0], "y")
    middle = run(other)
    again = run(dream_prompt("x2", noop=True, seed=11, octaves=2))
    if not (executed(first, "4") and executed(middle, "4") and executed(again, "4")):
        raise RuntimeError("a dream was served from the cache; the comparison would prove nothing")
    shared = not executed(middle, "3") and not executed(again, "3")
    diff = maxdiff(images(first, "9")[0], images(again, "9")[0])
    if diff:
        raise RuntimeError(f"X after Y differs from X before: max diff {diff}/255 (model shared: {shared})")
    return f"X before and after Y identical (max diff 0); model object shared via cache: {shared}"


def expect_error(prompt: dict, needles: list[str], timeout: float = 300) -> str:
    entry = wait(queue(prompt), timeout)
    err = messages(entry).get("execution_error")
    if err is None:
        raise RuntimeError(f"no execution error; status {entry['status']['status_str']}")
    text = err["exception_message"]
    missing = [n for n in needles if n not in text]
    if missing:
        raise RuntimeError(f"message lacks {missing}: {text[:400]!r}")
    return f"{err['node_type']} raised {err['exception_type'].rsplit('.', 1)[-1]} naming {', '.join(needles)}"


def check_error_message() -> str:
    prompt = base(model="inception_v3")
    prompt["4"] = dream(["2", 0], seed=1, iterations=1, octaves=1)
    prompt["9"] = save(["4", 0], "inception")
    return expect_error(prompt, ["inception_v3_google-0cc3c7bd.pth", "models/deepdream"])


def check_unknown_layer() -> str:
    prompt = base()
    prompt["L"] = {"class_type": "LayerWeights", "inputs": {"layers": "mixed4: 1", "strength": 1.0}}
    prompt["4"] = dream(["2", 0], seed=1, iterations=1, octaves=1, layer_weights=["L", 0])
    prompt["9"] = save(["4", 0], "unknown_layer")
    return expect_error(prompt, ["mixed4", "blocks.6"])


def main() -> int:
    global SERVER
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=SERVER, help="ComfyUI address (default %(default)s)")
    SERVER = parser.parse_args().server.rstrip("/")
    try:
        call("/queue")
    except OSError as err:
        print(f"FAIL server: {SERVER} unreachable ({err})")
        return 2
    load_defaults()
    masked = functools.cache(lambda: run(mask_prompt()))  # one prompt serves both mask checks
    checks = [
        ("interrupt", check_interrupt),
        ("batch", check_batch),
        ("mask_zero", lambda: check_mask_zero(masked())),
        ("mask_one", lambda: check_mask_one(masked())),
        ("shared_model_repeat", check_shared_model_repeat),
        ("error_message", check_error_message),
        ("unknown_layer", check_unknown_layer),
    ]
    passed = failed = 0
    started = time.time()
    for name, check in checks:
        t0 = time.time()
        try:
            print(f"PASS {name}: {check()} [{time.time() - t0:.1f} s]", flush=True)
            passed += 1
        except Exception as err:  # one failing check must not stop the others
            print(f"FAIL {name}: {type(err).__name__}: {err}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed ({time.time() - started:.0f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
