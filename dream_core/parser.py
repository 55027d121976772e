"""The `deepdream` command line: its flags (those of the option tables made from the tables), and the call each
command line becomes: a command of `commands` with plain values, a `job.Job` for the commands that dream.

This is the one module that knows argparse: below it nothing sees the parsed arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import calls
from . import options as option_table
from .animation import ZOOM_OPTIONS
from .audio import BANDS
from .feature_model import LEARNING_PHASE_HELP, LEARNING_PHASES
from .job import MAX_NETWORKS
from .options import Option
from .presets import PRESETS
from .zoo import DEFAULT_MODEL

OVERWRITE_HELP = (
    "replace output files that already exist (an input is never replaced; in a folder only the files this command "
    "writes there); without it an existing output is refused before any work"
)
WEIGHTS_HELP = "'imagenet' (default), 'random', or a .safetensors/.pt/.pth checkpoint file"
DREAM_COMMANDS = ("dream", "sweep", "zoom", "video")


class _Flags:
    """A parser's subcommands, with the flags each declares (the README's table is read from them)."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.declared: dict[str, list[argparse.Action]] = {}
        self.parsers: dict[str, argparse.ArgumentParser] = {}
        self.command = ""
        self.parser: argparse.ArgumentParser | None = None

    def start(self, name: str, help: str, call: Callable[[calls.Values], calls.Call]) -> None:  # noqa: A002
        self.command, self.parser = name, self.sub.add_parser(name, help=help)
        self.parsers[name] = self.parser
        self.parser.set_defaults(call=call)
        self.declared[name] = []

    def start_again(self, name: str) -> None:
        """Add more flags to a command started before."""
        self.command, self.parser = name, self.parsers[name]

    def add(self, *names: str, **how: Any) -> None:
        assert self.parser is not None
        self.declared[self.command].append(self.parser.add_argument(*names, **how))

    def options(self, table: Sequence[Option]) -> None:
        """A flag per option of a table; left out, it is None, so presets and defaults apply."""
        for opt in table:
            flags, named = (opt.flag, *opt.aliases), {"dest": opt.name, "help": _option_help(opt)}
            if opt.kind is bool:
                self.add(*flags, action=argparse.BooleanOptionalAction, default=None, **named)
            elif opt.choices:
                self.add(*flags, choices=opt.choices, **named)
            else:
                self.add(*flags, type=opt.kind, metavar=opt.name.upper(), **named)

    def network(self, default_model: str | None) -> None:
        """The flags that say which network, with which weights, where: declared once for every command."""
        model_help = f"architecture (default {DEFAULT_MODEL}); see 'models'"
        self.add("--model", default=default_model, help=model_help)
        self.add("--weights", default="imagenet", help=WEIGHTS_HELP)
        self.add(
            "--weights-dir",
            type=Path,
            default=None,
            help="folder for torchvision's ImageNet weights (default: torchvision's, $TORCH_HOME/hub/checkpoints)",
        )
        self.add("--device", help="torch device: cuda, mps (Apple GPUs) or cpu (default: cuda, else mps, else cpu)")
        self.add("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _preset_values(opt: Option) -> str:
    """Where presets give an option another value than the table: 'lite0: 0.015, google: 0.012'."""
    values = [
        f"{name}: {getattr(p.settings, opt.name)}"
        for name, p in PRESETS.items()
        if getattr(p.settings, opt.name, opt.default) != opt.default
    ]
    return ", ".join(values)


def _option_help(opt: Option) -> str:
    presets = _preset_values(opt) if opt in option_table.OPTIONS else ""  # presets set dream options only
    note = f"; presets set their own: {presets}" if presets else ""
    return f"{opt.help} (default {opt.default}{note})".replace("%", "%%")


def _dream_flags(flags: _Flags) -> None:
    """Every flag of the commands that dream: what to dream with, then one flag per option of the table."""
    flags.add(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a classic setting (model, layers, options); options given too override it",
    )
    flags.network(default_model=None)
    flags.add(
        "--layers", help="layer weights, e.g. 'mixed4:1,mixed5:1.5' (default: the model's own); see 'layers MODEL'"
    )
    flags.add("--learning-phase", choices=LEARNING_PHASES, help=LEARNING_PHASE_HELP + " (default inference)")
    flags.add("--guide", type=Path, help="guide image: dream toward its features (see --guide-mix)")
    flags.add("--mask", type=Path, help="grey image: dream strength per pixel (white = full)")
    flags.add(
        "--region",
        action="append",
        default=[],
        metavar="MASK=LAYERS",
        help="a mask image and the layer weights dreamed inside it, e.g. 'left.png=mixed3:1'; repeat for "
        "several regions",
    )
    flags.add(
        "--network",
        action="append",
        default=[],
        metavar="MODEL[@WEIGHTS]=LAYERS",
        help="one more network dreaming the same picture with its own layer weights, e.g. 'vgg16=conv4_3:1' "
        "or 'efficientnet_lite0@mine.safetensors=class:dots:2' (weights: imagenet, random or a checkpoint; "
        f"default imagenet); repeat for several (at most {MAX_NETWORKS}). The main network still dreams "
        "--layers (else its own layers)",
    )
    flags.options(option_table.OPTIONS)
    # Older spelling of --no-reinject-detail.
    flags.add(
        "--no-reinject", dest="reinject_detail", action="store_const", const=False, default=None, help=argparse.SUPPRESS
    )


def _ray_flags(flags: _Flags) -> None:
    flags.add(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help='spread the work over a Ray cluster (pip install "deepdream-nodes[ray]"): images, sweep lines, '
        "a clip's shots or channel pictures go to its workers, the results are the same files; ADDRESS of a "
        "running cluster ('auto': the one 'ray start' began here; none: RAY_ADDRESS, or a cluster started for "
        "this command). Give it after the inputs",
    )
    flags.add(
        "--workers",
        type=int,
        default=0,
        help="with --ray: how many workers (default: one per GPU of the cluster, else one per CPU)",
    )
    flags.add(
        "--worker-threads",
        type=int,
        default=0,
        help="with --ray: CPU threads per worker where there is no GPU (default 1)",
    )


def _image_commands(flags: _Flags) -> None:
    flags.start("dream", "dream image files or folders", calls.dream_call)
    flags.add("inputs", nargs="+", help="image files or folders of images")
    flags.add("-o", "--output", required=True, help="output file (one input) or folder")
    _dream_flags(flags)
    flags.add(
        "--frames-every",
        type=int,
        metavar="N",
        help="also write an animated WEBP of the image every N steps (NAME_frames.webp)",
    )
    flags.add("--save-octaves", action="store_true", help="also write the image after each octave")
    _ray_flags(flags)
    flags.start("sweep", "dream one image once per layer-weights line; write a contact sheet", calls.sweep_call)
    flags.add("input", help="image file")
    flags.add("-o", "--output", required=True, help="contact sheet file (PNG/JPEG)")
    flags.add(
        "--line",
        action="append",
        default=[],
        metavar="LAYERS",
        help="one dream's layer weights, e.g. 'mixed4:1' or 'mixed3:1,mixed5:1'; repeat. Default: each of "
        "the model's default layers alone, then all of them",
    )
    flags.add("--columns", type=int, default=0, help="columns of the sheet (default: about square)")
    _dream_flags(flags)
    _ray_flags(flags)
    flags.start("zoom", "the infinite zoom: dream, zoom in, dream again; write an animated WEBP", calls.zoom_call)
    flags.add("input", help="image file")
    flags.add("-o", "--output", required=True, help="animated .webp (or a folder for PNG frames)")
    for opt in ZOOM_OPTIONS:
        flags.add(
            opt.flag,
            type=opt.kind,
            default=opt.default,
            metavar=opt.name.upper(),
            help=f"{opt.help} (default {opt.default})",
        )
    flags.add("--fps", type=float, default=8.0, help="frames per second of the WEBP (default 8)")
    _schedule_flag(
        flags, "any numeric dream setting, zoom, angle, shift-x/-y as their option names (step, octave_scale, shift_x)"
    )
    flags.add(
        "--loop",
        action="store_true",
        help="a perfect loop: the last frame leads into the first as any frame into the next (the zoom goes on a "
        "quarter more and its first frames fade from that into themselves, dreamed again lightly)",
    )
    _react_flags(flags, audio_file=True)
    _dream_flags(flags)


def _react_flags(flags: _Flags, audio_file: bool) -> None:
    heard = "the sound file given with --audio" if audio_file else "the clip's own audio"
    flags.add(
        "--react",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help=f"a setting that follows the loudness of {heard}, frame by frame: LOW in silence, HIGH on the loudest "
        "frame, e.g. 'step=0.002:0.03'; any setting --schedule takes; repeat for several",
    )
    if audio_file:
        flags.add("--audio", help="a sound file (wav, mp3, flac, ...) for --react; frame i hears it from i/fps s")
    flags.add("--band", choices=tuple(BANDS), default="full", help="the frequencies --react follows (default full)")
    flags.add(
        "--attack", type=float, default=0.02, help="seconds --react's level takes to rise to a louder frame (0.02)"
    )
    flags.add(
        "--release", type=float, default=0.25, help="seconds --react's level takes to fall after a loud frame (0.25)"
    )


def _schedule_flag(flags: _Flags, settings: str) -> None:
    flags.add(
        "--schedule",
        action="append",
        default=[],
        metavar="'NAME: FRAME=VALUE, ...'",
        help="a setting that changes over the frames, e.g. 'step: 0=0.005, 23=0.03' (linear between keys, held "
        f"outside them; 'NAME~:' eases in and out); {settings}; a layer's weight as 'weight(mixed4): 0=1, 23=3'; "
        "'blend: 0=0, 23=1' moves the layer weights toward --blend-to's; repeat for several",
    )
    flags.add(
        "--blend-to",
        metavar="LAYERS",
        help="the layer weights a 'blend' schedule moves toward, e.g. 'mixed5:1' (0: the dream's own, 1: these)",
    )


def _other_commands(flags: _Flags) -> None:
    flags.start("video", "dream a video (file or folder of frames) so its patterns follow the motion", calls.video_call)
    flags.add("input", help="video file (mp4, webm, mov, mkv, gif) or a folder of frames")
    flags.add(
        "-o",
        "--output",
        required=True,
        help="video file (same kinds; audio and frame rate kept) or a folder for PNG frames",
    )
    flags.add("--fps", type=float, help="frame rate of a folder of frames (default 24), or to override a file's")
    flags.options(option_table.VIDEO_OPTIONS)
    _schedule_flag(
        flags, "any numeric dream setting by its option name (step, octave_scale, jitter), by the clip's frame index"
    )
    _react_flags(flags, audio_file=False)
    _dream_flags(flags)
    _ray_flags(flags)
    flags.start("train", "fine-tune a classifier on a folder (one sub-folder per class)", calls.train_call)
    flags.add("folder", help="folder with one sub-folder of pictures per class")
    flags.add("-o", "--output", required=True, help="the .safetensors file to write")
    flags.network(default_model=DEFAULT_MODEL)
    flags.options(option_table.TRAIN_OPTIONS)
    flags.start(
        "channels", "grow a picture from noise for each of a layer's channels; write a sheet", calls.channels_call
    )
    flags.add("-o", "--output", required=True, help="the labelled sheet (PNG/JPEG)")
    flags.add("--layer", help="the layer (default: the middle one of the model's default layers); see 'layers MODEL'")
    flags.add(
        "--channels",
        default="0-7",
        help="what each picture shows, comma-separated: channels '0-7' / '3,17'; a negative channel '-5' (what "
        "turns it off); a neuron '5@centre' / '5@3:4' (row 3, column 4 of the layer's grid); a diverse batch '5x4' "
        "(4 different pictures of channel 5); a direction '3+0.5*17-40'; a class 'class:jellyfish'; or 'top8' alone: "
        "the 8 most active on --image (default 0-7)",
    )
    flags.add("--image", help="picture whose most active channels 'topN' picks")
    flags.add("--pictures", help="also write each picture into this folder (LAYER_CHANNEL.png)")
    flags.add("--columns", type=int, default=0, help="columns of the sheet (default: about square)")
    flags.network(default_model=DEFAULT_MODEL)
    flags.options(option_table.CHANNEL_OPTIONS)
    _ray_flags(flags)
    flags.start("models", "list the networks: parameters, default layers, weights on disk", calls.models_call)
    flags.add(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder to look for ImageNet weights in (default: torchvision's, $TORCH_HOME/hub/checkpoints)",
    )
    flags.start(
        "layers",
        "list a model's layers, aliases and channels",
        calls.layers_call,
    )
    flags.add("model")
    flags.start("presets", "list the classic presets", calls.presets_call)


def _build() -> tuple[argparse.ArgumentParser, _Flags]:
    parser = argparse.ArgumentParser(prog="deepdream", description="DeepDream images from the command line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    flags = _Flags(parser.add_subparsers(dest="command", required=True))
    _image_commands(flags)
    _other_commands(flags)
    for name in list(flags.declared):  # -v after the command too (errors say "run with -v"); before it still works
        flags.start_again(name)
        flags.add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    return parser, flags


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `deepdream` command."""
    return _build()[0]


def parse(argv: Sequence[str] | None = None) -> calls.Call:
    """The call a command line asks for (argparse exits with its usage on a malformed line); a refused value
    raises `DreamError`, as the command itself would."""
    values = vars(build_parser().parse_args(argv))
    call = values["call"](values)
    call.verbose = values["verbose"]
    return call


def verbose_asked(argv: Sequence[str] | None) -> bool:
    """Whether a command line asks to log more, even one whose values are refused."""
    args, _ = build_parser().parse_known_args(argv)
    return bool(getattr(args, "verbose", False))


def flags_markdown() -> str:
    """The README's table of every flag of the commands that dream, read off the flags they declare."""
    _parser, flags = _build()
    rows: dict[str, list] = {}
    for command in DREAM_COMMANDS:
        for action in flags.declared[command]:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            names = " ".join(f"`{o}`" for o in action.option_strings)
            if action.choices and not isinstance(action, argparse.BooleanOptionalAction):
                names += " " + "/".join(f"`{c}`" for c in action.choices)
            text = action.help.replace("%%", "%")
            rows.setdefault(f"{names}\0{text}", [[], text])[0].append(command)
    lines = ["| flag | commands | what it does |", "| --- | --- | --- |"]
    for key, (used_by, text) in rows.items():
        names = key.split("\0")[0]
        where = "all" if len(used_by) == len(DREAM_COMMANDS) else ", ".join(used_by)
        lines.append(f"| {names} | {where} | {text.replace('|', '/')} |")
    return "\n".join(lines)
