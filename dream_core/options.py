"""Every dream option in one table: name, default, range, choices and a user's one-line help.

`DreamSettings` is the table: each field carries its `Option`. Validation, the CLI
flags of every command that dreams, the ComfyUI widgets of every dream node and the
README's option table are all derived from it (`OPTIONS`, `Option.flag`,
`Option.widget`, `markdown_table`); nothing restates an option by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import DreamError
from .looks import PRECONDITIONS, looks_help
from .objectives import LOSS_MODES

NORMALIZATIONS = ("mean_abs", "std")
COLOR_MODES = ("off", "luminance", "transfer")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
SEED_MAX = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Option:
    """One dream option: what it is called, its default and what values it takes."""

    name: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    """The widget's increment (ComfyUI); no effect on what is valid."""
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Older command-line flags still accepted for it."""
    in_node: bool = True
    """Shown as a node widget (False: a command-line flag only)."""
    appended: bool = False
    """Added after the first release: its node widget comes after every other input, so the widget values of
    saved workflows still land where they belong."""
    nodes: tuple[str, ...] = ()
    """The only nodes that show it (each adds it last, itself); empty: every node that shows the table."""

    @property
    def kind(self) -> type:
        """bool, int, float or str."""
        return type(self.default)

    @property
    def flag(self) -> str:
        """The command-line flag: `--octave-scale`; booleans also take `--no-...`."""
        return "--" + self.name.replace("_", "-")

    def problem(self, value: Any) -> str | None:
        """Why `value` is not valid for this option, or None if it is."""
        if self.choices:
            return None if value in self.choices else f"{self.name} must be one of {', '.join(self.choices)}"
        if self.kind is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.name} must be a number"
        if self.kind is int and not isinstance(value, int):
            return f"{self.name} must be a whole number"
        if not math.isfinite(value):
            return f"{self.name} must be a finite number"
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{self.name} must be {_span(low, high)}"
        return None


def _span(low: float | None, high: float | None) -> str:
    if high is None:
        return f"{low:g} or more"
    if low is None:
        return f"{high:g} or less"
    return f"between {low:g} and {high:g}"


def check(settings: Any, options: tuple[Option, ...], what: str) -> Any:
    """`settings` itself if every option's value is valid; else a `DreamError` naming the first that is not."""
    for opt in options:
        problem = opt.problem(getattr(settings, opt.name))
        if problem:
            raise DreamError(f"Invalid {what}: {problem} (got {getattr(settings, opt.name)!r}).")
    return settings


def option(default: Any, help: str, **limits: Any) -> Any:  # noqa: A002  (the user's word)
    """A `DreamSettings` field that carries its `Option` (the name is filled in from the field)."""
    return field(default=default, metadata={"option": Option("", default, help, **limits)})


@dataclass(frozen=True)
class DreamSettings:
    """The options of one dream. Defaults are Keras' DeepDream example's numbers,
    except `max_loss` (off) and `jitter` (Google's 32 px)."""

    octaves: int = option(
        3, "Number of scales, dreamed smallest first. More octaves give larger patterns.", minimum=1, maximum=12
    )
    octave_scale: float = option(1.4, "Size ratio between successive octaves.", minimum=1.0, maximum=4.0, step=0.05)
    iterations: int = option(20, "Gradient-ascent steps per octave.", minimum=0, maximum=1000)
    step: float = option(
        0.01,
        "Step size on Keras' [-1, 1] pixel scale (Keras: 0.01). Larger steps dream harder and faster.",
        minimum=0.0,
        maximum=1.0,
        step=0.001,
    )
    max_loss: float = option(
        0.0,
        "An octave stops once its loss exceeds this; 0 = off. Keras used 15 with InceptionV3 mixed4..mixed7.",
        minimum=0.0,
        maximum=1e6,
        step=0.5,
    )
    jitter: int = option(
        32,
        "Largest random shift in pixels before each step; hides the network's pixel grid. 0 = none (Keras).",
        minimum=0,
        maximum=512,
    )
    seed: int = option(0, "Seed of the jitter: the same seed gives the same image.", minimum=0, maximum=SEED_MAX)
    loss: str = option(
        "l2",
        "l2: Keras (sum of squares / size, border cropped); mean: TensorFlow tutorial; mean_sq: mean of squares.",
        choices=LOSS_MODES,
    )
    normalize: str = option(
        "mean_abs",
        "Gradient normalisation: mean_abs (Keras, Google) or std (TensorFlow tutorial).",
        choices=NORMALIZATIONS,
    )
    reinject_detail: bool = option(
        True, "Add back, after each octave, the photo's detail that shrinking lost; keeps the photo crisp."
    )
    tile_size: int = option(
        0,
        "Largest tile (px) for the gradient: large images are dreamed tile by tile under a "
        "grid that moves every step, so memory stays bounded and no seams show. 0 = automatic "
        "(the largest that fits in memory).",
        minimum=0,
        maximum=16384,
        step=32,
    )
    keep_colors: str = option(
        "off",
        "Keep the photo's colours: 'luminance' dreams the brightness only; 'transfer' "
        "puts the original colours back on the dream. 'off': the network's colours.",
        choices=COLOR_MODES,
    )
    grad_blur: float = option(
        0.0,
        "Blur (sigma, px) of each step's gradient: larger = softer, less noisy patterns. 0 = off (classic).",
        minimum=0.0,
        maximum=20.0,
        step=0.1,
    )
    tv_weight: float = option(
        0.0,
        "Total-variation penalty: larger = smoother image, fewer speckles. 0 = off.",
        minimum=0.0,
        maximum=1e5,
        step=0.5,
    )
    guide_mix: float = option(
        1.0,
        "With a guide image: 1 = dream toward the guide's features only (Google's "
        "guided dream), 0 = ignore the guide, between = a mix with the layer weights' dream.",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    precision: str = option(
        "auto",
        "What the network computes in. fp32: full precision (on NVIDIA cards since Ampere its convolutions run as "
        "TF32, as PyTorch does by default). bf16 / fp16: the weights are cast once per dream and the network runs in "
        "16 bits, faster where the device has 16-bit units (1.3-1.5x on a CPU with bf16 units); the loss is still "
        "summed in fp32 (and scaled in fp16 so no gradient underflows); dreams look alike but are not pixel-equal. "
        "auto: bf16 on GPUs with bf16 units (NVIDIA compute capability 8.0+) and such CPUs, fp16 on older NVIDIA "
        "GPUs, fp32 elsewhere.",
        choices=PRECISION_CHOICES,
    )
    precondition: str = option(
        "off",
        "How each step's gradient is shaped before it moves the picture. " + looks_help(),
        choices=PRECONDITIONS,
        appended=True,
    )
    scale_jitter: float = option(
        0.0,
        "Random scale change before each gradient (0.1 = up to 10% larger or "
        "smaller): only patterns that survive it grow, for cleaner shapes. 0 = off.",
        minimum=0.0,
        maximum=0.5,
        step=0.01,
        appended=True,
    )
    rotate_jitter: float = option(
        0.0,
        "Random rotation (degrees, either way) before each gradient, for the same reason. 0 = off.",
        minimum=0.0,
        maximum=45.0,
        step=0.5,
        appended=True,
    )
    seamless: bool = option(
        False,
        "A picture that tiles edge to edge without a seam, for textures and wallpapers: the input is first made "
        "to wrap around (each edge cross-faded with the picture's middle), and the dream wraps around too (the "
        "network's view of the picture rolled anywhere on it each step, octaves resized around the wrap).",
        nodes=("OctaveDream",),
    )

    def validate(self) -> DreamSettings:
        """Raise a `DreamError` naming the first option out of its range."""
        return check(self, OPTIONS, "dream settings")

    def with_options(self, **options: Any) -> DreamSettings:
        """A copy with the given options changed (unknown names raise)."""
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise DreamError(f"Unknown dream options {sorted(unknown)}; known: {sorted(OPTION_NAMES)}.")
        return replace(self, **options)


def table(settings_class: type) -> tuple[Option, ...]:
    """The options of a settings dataclass whose fields were made with `option`, in field order."""
    return tuple(replace(f.metadata["option"], name=f.name) for f in fields(settings_class))


OPTIONS: tuple[Option, ...] = table(DreamSettings)
"""The table, in the order of `DreamSettings`' fields."""
OPTION_NAMES = tuple(opt.name for opt in OPTIONS)

FLOW_METHODS = ("auto", "dis", "ilk", "raft")


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is dreamed frame after frame: each next frame starts from the previous
    dream's change carried along the optical flow, so the patterns stay put."""

    carry: float = option(
        1.0,
        "How much of the previous frame's dream is carried over along the motion: 1 = "
        "all (steady patterns), 0 = none (each frame dreamed alone, the patterns boil).",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    next_iterations: int = option(
        4,
        "Ascent steps for every frame after the first (the first gets the full "
        "dream): what came into view grows in over the next frames.",
        minimum=0,
        maximum=1000,
    )
    next_octaves: int = option(
        1, "Octaves for every frame after the first; 1 dreams at full size only.", minimum=1, maximum=12
    )
    flow: str = option(
        "auto",
        "Optical flow: dis (OpenCV, CPU, fast), ilk (scikit-image, CPU), raft (torchvision, "
        "GPU, downloads its weights once); auto: dis if OpenCV is installed, else ilk.",
        choices=FLOW_METHODS,
    )
    occlusion_check: bool = option(
        True,
        "Dream pixels that the motion uncovered or hid afresh (forward-backward "
        "flow check) instead of carrying over a wrong pattern.",
    )
    cut_threshold: float = option(
        0.4,
        "Where a new shot starts: a frame whose picture matches the previous one "
        "(moved along the motion) less than this (a correlation, 1 = the same) gets a "
        "fresh full dream and carries nothing over. Fades and flashes keep their match. "
        "0 = never start a new shot.",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    steady: bool = option(
        True,
        "Hold the dream's strength over a shot where its first frame put it: without it "
        "every frame adds its steps on top of what was carried, and a still shot burns in.",
    )

    def validate(self) -> VideoSettings:
        """Raise a `DreamError` naming the first option out of its range."""
        return check(self, VIDEO_OPTIONS, "video settings")


VIDEO_OPTIONS: tuple[Option, ...] = table(VideoSettings)


@dataclass(frozen=True)
class TrainSettings:
    """The options of one fine-tuning run (`deepdream train`, Train Feature Model)."""

    epochs: int = option(
        0,
        "Passes over the training pictures; 0 = chosen from the folder's size (8 to 30). The "
        "epoch with the best held-out accuracy is kept.",
        minimum=0,
        maximum=500,
    )
    learning_rate: float = option(
        3e-3,
        "Step size of the optimiser for the new head (unfrozen blocks get a tenth of it).",
        minimum=1e-6,
        maximum=1.0,
        step=1e-4,
    )
    unfreeze_blocks: int = option(
        3,
        "How many of the network's last blocks learn too, after a quarter of the "
        "epochs with the new head alone, at a tenth of its learning rate. 0 = only the "
        "new head.",
        minimum=0,
        maximum=32,
        aliases=("--unfreeze",),
    )
    seed: int = option(0, "Seed of the split, the augmentation and the head's start.", minimum=0, maximum=SEED_MAX)
    batch_size: int = option(16, "Pictures per optimiser step.", minimum=1, maximum=1024, in_node=False)
    holdout: float = option(
        0.2, "Share of each class kept aside to measure the accuracy.", minimum=0.01, maximum=0.9, in_node=False
    )
    image_size: int = option(
        0,
        "Training crop side (px); 0 = from the pictures: three times their typical side, "
        "96 px at least and at most the network's own input size (224, InceptionV3 299).",
        minimum=0,
        maximum=1024,
        in_node=False,
    )
    keep_best: bool = option(
        True, "Keep the weights of the epoch with the best held-out accuracy, not the last.", in_node=False
    )
    patience: int = option(
        6,
        "Stop once the held-out accuracy has not improved for this many epochs (0 = never stop early).",
        minimum=0,
        maximum=1000,
        in_node=False,
    )

    def validate(self) -> TrainSettings:
        """Raise a `DreamError` naming the first option out of its range."""
        return check(self, TRAIN_OPTIONS, "training settings")


TRAIN_OPTIONS: tuple[Option, ...] = table(TrainSettings)


@dataclass(frozen=True)
class ChannelSettings:
    """How channel pictures are grown from noise (`deepdream channels`, Channel Pictures)."""

    size: int = option(224, "Side of each picture (px).", minimum=64, maximum=2048, step=8)
    steps: int = option(512, "Ascent steps: more give clearer, stronger patterns.", minimum=1, maximum=5000)
    step: float = option(
        0.08,
        "Step size of the latent picture the picture is the sigmoid of (a pixel at mid-grey moves a quarter of "
        "it on Keras' [-1, 1] scale): larger steps give brighter, more saturated colours, smaller ones paler.",
        minimum=0.0,
        maximum=1.0,
        step=0.005,
    )
    precondition: str = option(
        "whitened",
        "How each step's gradient is shaped (see the dream option): whitened "
        "(decorrelated colours, 1/frequency spectrum, lucid's choice) grows clear shapes; "
        "off grows high-frequency noise.",
        choices=PRECONDITIONS,
    )
    jitter: int = option(16, "Largest random shift (px) before each step.", minimum=0, maximum=512)
    scale_jitter: float = option(
        0.1, "Random scale change before each step (0.1 = up to 10%).", minimum=0.0, maximum=0.5, step=0.01
    )
    rotate_jitter: float = option(
        10.0, "Random rotation (degrees, either way) before each step.", minimum=0.0, maximum=45.0, step=0.5
    )
    seed: int = option(
        0,
        "Seed of the starting noise and the jitter: the same seed gives the same pictures.",
        minimum=0,
        maximum=SEED_MAX,
    )
    precision: str = option("auto", "What the network computes in (see the dream option).", choices=PRECISION_CHOICES)

    def validate(self) -> ChannelSettings:
        """Raise a `DreamError` naming the first option out of its range."""
        return check(self, CHANNEL_OPTIONS, "channel picture settings")


CHANNEL_OPTIONS: tuple[Option, ...] = table(ChannelSettings)


def markdown_table(overrides: dict[str, str] | None = None, options: tuple[Option, ...] | None = None) -> str:
    """The README's table of the dream options (or of `options`): flag, default, what it does.

    `overrides` adds a note to an option's default (e.g. the values presets give it).
    """
    lines = ["| flag / input | default | range | what it does |", "| --- | --- | --- | --- |"]
    for opt in options or OPTIONS:
        default = f"`{opt.default}`" + (f" ({overrides[opt.name]})" if overrides and opt.name in overrides else "")
        if opt.choices:
            values = ", ".join(f"`{c}`" for c in opt.choices)
        elif opt.kind is bool:
            values = f"`{opt.flag}` / `--no-{opt.flag[2:]}`"
        else:
            values = _span(opt.minimum, opt.maximum) if opt.maximum != SEED_MAX else "any whole number >= 0"
        names = f"`{opt.flag}` / `{opt.name}`" if opt.in_node else f"`{opt.flag}` (command line only)"
        if opt.nodes:
            names += f" ({', '.join(opt.nodes)} only)"
        lines.append(f"| {names} | {default} | {values} | {opt.help} |")
    return "\n".join(lines)
