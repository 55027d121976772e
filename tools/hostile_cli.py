"""Every case of both hostile probes (issues 17 and 26), run as a user would, with a table of what happened.

    .venv/bin/python tools/hostile_cli.py [--only SUBSTRING] [--keep]

Each case runs the `deepdream` command line (`python -m dream_core`) in a fresh folder, or a node class the way
ComfyUI calls it, and checks what a user would: the exit status, that a refusal is one line saying what to do,
that every input is byte-identical afterwards (md5), that no hidden temporary file is left, and the result where
there is one. Run it the day a feature lands, and add that feature's cases here. About 3 minutes on 2 cores.
Prints one row per case and `N passed, N failed`; exits 0 only if every case passed. The full-disk case mounts a
2 MB tmpfs and needs root (it is reported as failed where it cannot).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--octaves", "1", "--iterations", "1"]
CASES: list[tuple[str, str, Callable]] = []


def case(probe: str, name: str):
    def register(function):
        CASES.append((probe, name, function))
        return function

    return register


class Run:
    """One command's result: exit status, output, seconds."""

    def __init__(self, args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> None:
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "dream_core", *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            )
            while (waited := os.wait4(process.pid, os.WNOHANG))[0] == 0:
                if time.monotonic() - started > timeout:
                    process.kill()
                time.sleep(0.05)
            process.returncode = os.waitstatus_to_exitcode(waited[1])
            out.seek(0), err.seek(0)
            self.out, self.err = out.read(), err.read()
        self.seconds = time.monotonic() - started
        self.code = process.returncode
        self.peak_gb = waited[2].ru_maxrss / 2**20
        """This command's own peak resident memory."""

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def refused(self, *words: str) -> bool:
        """A non-zero exit with exactly one error line holding every word, and no traceback."""
        return (
            self.code != 0
            and len(self.errors) == 1
            and "Traceback" not in self.err
            and all(word in self.errors[0] for word in words)
        )


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def hidden(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")]


def photo(folder: Path, name: str = "a.png", side: int = 64) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.open(ROOT / "samples" / "astronaut.png").convert("RGB").resize((side, side)).save(folder / name)
    return folder / name


def frames_folder(folder: Path, count: int = 3) -> Path:
    for i in range(count):
        photo(folder, f"f{i}.png")
    return folder


# --- issue 17: the first probe ------------------------------------------------------------------------------------


@case("17", "video over its own input clip")
def _(tmp: Path):
    clip = shutil.copy(ROOT / "samples" / "pan.mp4", tmp / "clip.mp4")
    before = md5(clip)
    run = Run(["video", "clip.mp4", "-o", "clip.mp4", *FAST, "--overwrite"], tmp)
    return run, run.refused("is the input") and md5(clip) == before


@case("17", "dream over its own input picture")
def _(tmp: Path):
    before = md5(photo(tmp))
    run = Run(["dream", "a.png", "-o", "a.png", *FAST, "--overwrite"], tmp)
    return run, run.refused("is the input") and md5(tmp / "a.png") == before


@case("17", "video of a frames folder into itself")
def _(tmp: Path):
    frames_folder(tmp / "frames")
    run = Run(["video", "frames", "-o", "frames", *FAST, "--overwrite"], tmp)
    return run, run.refused("holds the input")


@case("17", "pic.png and pic.jpg in one folder: two dreams")
def _(tmp: Path):
    photo(tmp / "in", "pic.png")
    photo(tmp / "in", "pic.jpg")
    run = Run(["dream", "in", "-o", "out", *FAST], tmp)
    return run, run.code == 0 and len(list((tmp / "out").iterdir())) == 2


@case("17", "an existing output without --overwrite")
def _(tmp: Path):
    photo(tmp)
    (tmp / "out.png").write_bytes(b"mine")
    run = Run(["dream", "a.png", "-o", "out.png", *FAST], tmp)
    return run, run.refused("--overwrite") and (tmp / "out.png").read_bytes() == b"mine"


@case("17", "a frames folder of a longer earlier run")
def _(tmp: Path):
    frames_folder(tmp / "frames", 2)
    (tmp / "out").mkdir()
    for i in range(5):
        (tmp / "out" / f"frame_{i:05d}.png").write_bytes(b"old")
    run = Run(["video", "frames", "-o", "out", *FAST, "--flow", "ilk", "--overwrite"], tmp)
    return run, run.code == 0 and len(list((tmp / "out").iterdir())) == 2


@case("17", "a channel range of 1e11 channels")
def _(tmp: Path):
    photo(tmp)
    run = Run(["dream", "a.png", "-o", "x.png", "--layers", "blocks.6[0-99999999999]:1"], tmp)
    return run, run.refused() and run.seconds < 30


@case("17", "a 16-bit grey PNG keeps its range")
def _(tmp: Path):
    import numpy as np
    from PIL import Image

    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp / "grey16.png")
    run = Run(["dream", "grey16.png", "-o", "x.png", "--octaves", "1", "--iterations", "0"], tmp)
    ok = run.code == 0 and abs(np.asarray(Image.open(tmp / "x.png").convert("L")).mean() / 255 - 0.5) < 0.05
    return run, ok


@case("17", "a layer weight of 1e38")
def _(tmp: Path):
    photo(tmp)
    run = Run(["dream", "a.png", "-o", "x.png", "--layers", "blocks.6:1e38", *FAST], tmp)
    return run, run.refused("too large") and not (tmp / "x.png").exists()


@case("17", "the bundled clip to .webm (AAC audio)")
def _(tmp: Path):
    shutil.copy(ROOT / "samples" / "pan.mp4", tmp / "pan.mp4")
    run = Run(["video", "pan.mp4", "-o", "pan.webm", "--octaves", "1", "--iterations", "0", "--flow", "ilk"], tmp)
    return run, run.code == 0 and "audio is left out" in run.err and (tmp / "pan.webm").is_file()


@case("17", "zoom --fps 0, train -o m.pt, dream -o x.xyz, video --fps 1e9")
def _(tmp: Path):
    photo(tmp)
    runs = [
        Run(["zoom", "a.png", "-o", "z.webp", "--fps", "0"], tmp),
        Run(["train", str(tmp), "-o", "m.pt"], tmp),
        Run(["dream", "a.png", "-o", "x.xyz"], tmp),
        Run(["video", str(ROOT / "samples" / "pan.mp4"), "-o", "v.mp4", "--fps", "1e9"], tmp),
    ]
    return runs[-1], all(run.refused() and run.seconds < 30 for run in runs)


@case("17", "SIGTERM during a video render")
def _(tmp: Path):
    shutil.copy(ROOT / "samples" / "pan.mp4", tmp / "pan.mp4")
    process = subprocess.Popen(
        [sys.executable, "-m", "dream_core", "video", "pan.mp4", "-o", "out.mp4", *FAST, "--flow", "ilk"],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp.glob(".out.mp4.work/frame_00001.png")):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1]
    ok = process.returncode == 143 and not (tmp / "out.mp4").exists() and "terminated" in err
    return f"exit {process.returncode}", ok


# --- issue 26: the second probe -----------------------------------------------------------------------------------


@case("26", "channels --pictures DIR --overwrite, the --image in DIR")
def _(tmp: Path):
    image = photo(tmp / "pics")
    (tmp / "pics" / "notes.txt").write_text("mine")
    before = md5(image)
    args = [
        "channels",
        "-o",
        "sheet.png",
        "--pictures",
        "pics",
        "--channels",
        "top2",
        "--image",
        "pics/a.png",
        "--size",
        "64",
        "--steps",
        "1",
        "--overwrite",
    ]
    run = Run(args, tmp)
    kept = md5(image) == before and (tmp / "pics" / "notes.txt").read_text() == "mine"
    return run, run.code == 0 and kept and len(list((tmp / "pics").glob("blocks*.png"))) == 2


@case("26", "video and zoom -o DIR --overwrite keep DIR's other files")
def _(tmp: Path):
    photo(tmp)
    frames_folder(tmp / "frames", 2)
    for out in ("v", "z"):
        (tmp / out / "mine").mkdir(parents=True)
        (tmp / out / "holiday.jpg").write_bytes(b"mine")
    runs = [
        Run(["video", "frames", "-o", "v", *FAST, "--flow", "ilk", "--overwrite"], tmp),
        Run(["zoom", "a.png", "-o", "z", *FAST, "--frames", "2", "--overwrite"], tmp),
    ]
    kept = all((tmp / out / "holiday.jpg").is_file() and (tmp / out / "mine").is_dir() for out in ("v", "z"))
    return runs[0], all(run.code == 0 for run in runs) and kept


@case("26", "a stopped --ray job's journal and another input folder")
def _(tmp: Path):
    sys.path.insert(0, str(ROOT))
    from dream_core import cluster, commands
    from dream_core.parser import parse

    photo(tmp / "first")
    photo(tmp / "second")
    (tmp / "out").mkdir()
    (tmp / "out" / "a_dream.png").write_bytes(b"first job's")
    stopped = parse(["dream", str(tmp / "first"), "-o", str(tmp / "out"), "--ray", "127.0.0.1:1"]).arguments
    identity = commands.dream_identity(stopped["job"], stopped["given"], stopped["output"])
    cluster.Journal(tmp / "out" / ".deepdream-job.json", identity).plan(["a_dream.png"])
    run = Run(["dream", str(tmp / "second"), "-o", str(tmp / "out"), "--ray", "127.0.0.1:1"], tmp)
    return run, run.refused("--overwrite") and (tmp / "out" / "a_dream.png").read_bytes() == b"first job's"


@case("26", "channels: 256 pictures of 2048 px")
def _(tmp: Path):
    run = Run(["channels", "-o", "s.png", "--channels", "0-255", "--size", "2048", "--layer", "blocks.15"], tmp)
    return run, run.refused("needs about") and run.seconds < 60


@case("26", "channels topN of a 4096 px photo, bounded")
def _(tmp: Path):
    photo(tmp, "big.png", 4096)
    run = Run(
        ["channels", "-o", "s.png", "--channels", "top4", "--image", "big.png", "--size", "64", "--steps", "1"], tmp
    )
    run.err += f"\n(peak {run.peak_gb:.1f} GB)"
    return run, run.code == 0 and run.peak_gb < 2.5


@case("26", "--network 40 times")
def _(tmp: Path):
    photo(tmp)
    run = Run(["dream", "a.png", "-o", "x.png", *FAST, *["--network", "efficientnet_lite0=blocks.10"] * 40], tmp)
    return run, run.refused("at most 8")


@case("26", "--network 3 times the same: loaded once, main layers kept")
def _(tmp: Path):
    photo(tmp)
    run = Run(["dream", "a.png", "-o", "x.png", *FAST, *["--network", "efficientnet_lite0=blocks.10"] * 3], tmp)
    return run, run.code == 0 and "blocks.6" in run.err


@case("26", "two video renders to one output at once")
def _(tmp: Path):
    shutil.copy(ROOT / "samples" / "pan.mp4", tmp / "pan.mp4")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-m", "dream_core", "video", "pan.mp4", "-o", "out", *FAST, "--flow", "ilk", "--seed", "1"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp.glob(".out.work/frame_00000.png")):
        time.sleep(0.2)
    second = Run(["video", "pan.mp4", "-o", "out", *FAST, "--flow", "ilk", "--seed", "2"], tmp)
    out, _ = first.communicate(timeout=300)
    frames = sorted(p.name for p in (tmp / "out").glob("frame_*.png"))
    whole = first.returncode == 0 and frames == [f"frame_{i:05d}.png" for i in range(len(frames))] and frames
    return second, second.refused("Another render") and bool(whole)


@case("26", "a phone clip: rotation and variable frame rate")
def _(tmp: Path):
    import av
    import torch

    sys.path.insert(0, str(ROOT))
    from fractions import Fraction

    from dream_core.imageio import load_image
    from dream_core.videoio import VideoSink

    upright = torch.nn.functional.interpolate(load_image(ROOT / "samples" / "astronaut.png"), size=(96, 64))
    times = [Fraction(t).limit_denominator(100) for t in (0, 0.1, 0.3, 0.35, 0.8, 1.0, 1.4, 2.08)]
    sink = VideoSink(tmp / "phone.mp4", Fraction(25), times=times)
    real_open = VideoSink._open

    def rotated(self, height, width):
        real_open(self, height, width)
        self.stream.set_display_rotation(-90)

    sink._open = rotated.__get__(sink)
    for _ in times[:-1]:
        sink.write(torch.rot90(upright, 1, dims=(-2, -1)))
    sink.close()
    run = Run(["video", "phone.mp4", "-o", "dream.mp4", "--octaves", "1", "--iterations", "0", "--flow", "ilk"], tmp)
    if run.code != 0:
        return run, False
    with av.open(str(tmp / "phone.mp4")) as source, av.open(str(tmp / "dream.mp4")) as result:
        first = next(result.decode(video=0))
        seconds = source.duration / 1e6, result.duration / 1e6
        shape = (first.height, first.width)
    duration_ok = abs(seconds[1] - seconds[0]) <= 0.02 * seconds[0]
    run.err += f"\n(in {seconds[0]:.2f} s, out {seconds[1]:.2f} s, frames {shape[0]}x{shape[1]} as shown)"
    return run, duration_ok and shape == (96, 64)


@case("26", "a clip changed with its size and time put back, on resume")
def _(tmp: Path):
    from PIL import Image

    frames = tmp / "frames"
    frames.mkdir()
    for i in range(4):  # BMP: the same size in bytes whatever the pixels
        Image.open(photo(tmp / "pictures", f"p{i}.png")).save(frames / f"f{i}.bmp")
    args = ["video", "frames", "-o", "out", *FAST, "--flow", "ilk"]
    _killed_after_state(args, tmp)
    first = frames / "f0.bmp"
    stat = first.stat()
    Image.open(first).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(first)
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r: size and time as before
    same = first.stat().st_size == stat.st_size and first.stat().st_mtime_ns == stat.st_mtime_ns
    run = Run(args, tmp)
    return run, same and run.code == 0 and "going on" not in run.err


def _killed_after_state(args: list[str], tmp: Path) -> None:
    """Start a video render and kill it (-9) once it saved its first state: a stopped render's work folder."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dream_core", *args],
        cwd=tmp,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp.glob(".*.work/state.pt")):
        time.sleep(0.05)
    process.kill()
    process.wait()


@case("26", "a damaged work folder, then a rerun")
def _(tmp: Path):
    frames_folder(tmp / "frames", 4)
    args = ["video", "frames", "-o", "out", *FAST, "--flow", "ilk"]
    _killed_after_state(args, tmp)
    for frame in (tmp / ".out.work").glob("frame_*.png"):
        frame.write_bytes(frame.read_bytes()[:40])  # cut short
    (tmp / ".out.work" / "stray.txt").write_text("?")
    run = Run(args, tmp)
    names = sorted(p.name for p in (tmp / "out").iterdir()) if (tmp / "out").is_dir() else []
    return run, run.code == 0 and names == [f"frame_{i:05d}.png" for i in range(4)]


@case("26", "--ray to an address where nothing listens")
def _(tmp: Path):
    photo(tmp)
    run = Run(["dream", "a.png", "-o", "x.png", "--ray", "127.0.0.1:1"], tmp, timeout=120)
    return run, run.refused("nothing answers") and run.seconds < 30


@case("26", "a 250-character output name, and a 300-character one")
def _(tmp: Path):
    photo(tmp)
    legal = Run(["dream", "a.png", "-o", "d" * 246 + ".png", *FAST], tmp)
    too_long = Run(["dream", "a.png", "-o", "d" * 296 + ".png", *FAST], tmp)
    return too_long, legal.code == 0 and too_long.refused("at most 255") and too_long.seconds < 30


@case("26", "a full disk during a video")
def _(tmp: Path):
    disk = tmp / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True).returncode:
        return "could not mount a small disk (needs root)", False
    try:
        for i in range(6):
            photo(tmp / "frames", f"f{i}.png", 256)  # 256 px: frames and state fill the 600 kB disk
        run = Run(
            [
                "video",
                str(tmp / "frames"),
                "-o",
                str(disk / "out"),
                "--octaves",
                "1",
                "--iterations",
                "0",
                "--flow",
                "ilk",
            ],
            tmp,
        )
        return run, run.refused("no space left")
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@case("26", "video -o . and -o an existing folder named x.mp4")
def _(tmp: Path):
    shutil.copy(ROOT / "samples" / "pan.mp4", tmp / "pan.mp4")
    (tmp / "x.mp4").mkdir()
    dot = Run(["video", "pan.mp4", "-o", ".", *FAST, "--overwrite"], tmp)
    folder = Run(["video", "pan.mp4", "-o", "x.mp4", *FAST, "--overwrite"], tmp)
    return folder, dot.refused("holds the input") and folder.refused("is a folder") and folder.seconds < 30


@case("26", "-v after the command")
def _(tmp: Path):
    run = Run(["models", "-v"], tmp)
    return run, run.code == 0


@case("26", "smaller: weights folder, unknown class, empty @weights, channels --help")
def _(tmp: Path):
    photo(tmp)
    runs = [
        Run(["dream", "a.png", "-o", "x.png", "--weights", "."], tmp),
        Run(["dream", "a.png", "-o", "x.png", "--layers", "class:zzqx"], tmp),
        Run(["dream", "a.png", "-o", "x.png", "--network", "efficientnet_lite0@=blocks.6"], tmp),
    ]
    helped = Run(["channels", "--help"], tmp)
    ok = (
        runs[0].refused("is a folder")
        and runs[1].refused("Unknown class")
        and runs[2].refused("after '@'")
        and "presets" not in helped.out
    )
    return runs[1], ok


def _nodes():
    """The pack's node classes, imported as ComfyUI imports the pack (a package named after its folder)."""
    sys.path.insert(0, str(ROOT.parent))
    return importlib.import_module(f"{ROOT.name}.nodes").NODE_CLASS_MAPPINGS


@case("26", "nodes: Channel Pictures topN of an empty batch, Detail Reinject to 4 x 16384 px")
def _(tmp: Path):
    import torch

    nodes, messages = _nodes(), []
    model = importlib.import_module(f"{ROOT.name}.dream_core").load_feature_model("efficientnet_lite0", "random")
    small = torch.rand(4, 64, 64, 3)
    for call in (
        lambda: nodes["ChannelPictures"].execute(model, "blocks.8", "top4", 0, image=torch.rand(0, 64, 64, 3)),
        lambda: nodes["DetailReinject"].execute(small, small, 16384, 16384, 1.0),
    ):
        try:
            call()
            messages.append("no error")
        except Exception as error:  # noqa: BLE001 - what the probe is about: a raw error, or the pack's own
            kind = type(error).__name__
            messages.append(f"{kind}: {str(error)[:80]}" if kind == "DreamError" else f"raw {kind}: {error}"[:120])
    return " / ".join(messages), all(m.startswith("DreamError") for m in messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the cases whose name holds this text")
    parser.add_argument("--keep", action="store_true", help="keep each case's folder (printed)")
    args = parser.parse_args()
    passed = failed = 0
    print("| probe | case | result | seconds | what it said |\n| --- | --- | --- | --- | --- |")
    for probe, name, function in CASES:
        if args.only and args.only not in name:
            continue
        tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
        started = time.monotonic()
        try:
            run, ok = function(tmp)
            leftovers = [p for p in hidden(tmp) if not p.startswith((".out", ".z", ".v"))]
            ok = ok and not [p for p in leftovers if ".partial-" in p or ".deepdream-check" in p]
        except Exception as error:  # noqa: BLE001 - a case that breaks is a failed case, and the rest go on
            run, ok = f"{type(error).__name__}: {error}", False
        said = (
            run
            if isinstance(run, str)
            else (
                (run.errors or [f"exit {run.code}"])[0]
                + (
                    ""
                    if not run.err.count("(peak") and not run.err.count("(in ")
                    else " " + run.err.strip().splitlines()[-1]
                )
            )
        )
        print(
            f"| {probe} | {name} | {'PASS' if ok else 'FAIL'} | {time.monotonic() - started:.1f} | "
            f"{said[:150].replace('|', '/')} |",
            flush=True,
        )
        passed, failed = passed + ok, failed + (not ok)
        if args.keep:
            print(f"    kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
