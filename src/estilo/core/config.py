"""One source of truth for every option: the frozen :class:`StyleConfig` and its presets.

The CLI builds its flags from these fields (help text in each field's metadata), the web UI
builds its menus from them, and ``--print-config`` writes them back out in a form ``--config``
reads. No torch here: resolving and checking a configuration must be instant.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import open_regular, read_regular
from ..formats import read_settings
from .layers import canonical_layer
from .registry import CONTENT_LOSSES, OPTIMIZERS, STYLE_LOSSES, lookup

POOLINGS = ("max", "avg")
LAYER_WEIGHTINGS = ("gatys", "equal")
COLOR_MODES = ("none", "luminance", "histogram")  # implemented in estilo.image.color
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "bfloat16")
RECOMPUTE_MODES = ("auto", "on", "off")
INIT_MODES = ("content", "noise", "style-stats")  # or a path to an image
BIT_DEPTHS = (8, 16)
#: Print-size units and how many of each make an inch.
PRINT_UNITS = {"in": 1.0, "cm": 2.54, "mm": 25.4}
MAX_DPI = 10_000
MAX_SIZE = 16384
MAX_ITERATIONS = 1_000_000
MAX_SCALES = 12
#: A configuration or spec file is a few hundred bytes; anything over this is not one.
CONFIG_BYTES = 2**20


#: The groups ``estilo stylize --help`` shows the options in, in order: each field names its
#: own, and the CLI puts its flags that are no field (the output file, the mask) in them too.
GROUPS = {
    "content": "content: the photo, and how much of it the picture keeps",
    "style": "style: the paintings, and how their style is matched",
    "optimisation": "optimisation: what is minimised, from where, how and for how long",
    "output": "output: what is written and printed",
    "device": "device and memory",
    "video": "video: how each frame is held to the one before",
}
#: Groups that only some commands show: a still has no frame before it, so ``estilo stylize``
#: leaves out the video group (a config file may still set its fields; a still ignores them).
COMMAND_GROUPS = {
    "stylize": ("content", "style", "optimisation", "output", "device"),
    "video": tuple(GROUPS),
}
#: The group of TrainConfig's fields in ``estilo train --help``, after the GROUPS above.
TRAINING_GROUP = "training: the network fast mode learns (estilo train)"


def _opt(default: Any, help: str, group: str, metavar: str = "", **meta: Any) -> Any:
    """A field with its help text, its ``GROUPS`` key and its CLI metavar (none for booleans
    and fields with ``choices``). A field whose default is empty (None, '', ()) says in its
    help what the empty value means; the CLI shows the others' defaults itself."""
    metadata = {"help": help, "group": group, "metavar": metavar, **meta}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class StyleConfig:
    """Everything that decides what a run computes. The defaults are the ``default`` preset."""

    size: int = _opt(
        512,
        "output size in pixels: the longest side, or both sides with --square",
        "content",
        "PX",
    )
    square: bool = _opt(
        False, "resize both images to --size x --size, as the paper does", "content"
    )
    print_size: str = _opt(
        "",
        "print size WxH in cm, mm or in (e.g. 30x40cm): with --dpi it sets the pixels in place "
        "of --size, the largest picture with the content's aspect ratio that fits the print, "
        "turned to the content's orientation (default: none, --size decides)",
        "content",
        "WxH{cm,mm,in}",
        aliases=("--print",),
    )
    iterations: int = _opt(
        500,
        "optimiser steps per scale, at most (the paper's 'epochs'); --tolerance may stop sooner",
        "optimisation",
        "N",
        aliases=("--epochs",),
    )
    optimizer: str = _opt(
        "lbfgs",
        "optimiser of the image",
        "optimisation",
        choices=tuple(OPTIMIZERS),
        aliases=("--optimiser",),
    )
    lr: float | None = _opt(
        None,
        "learning rate (default: the optimiser's own, see README)",
        "optimisation",
        "RATE",
    )
    content_weight: float = _opt(1.0, "weight of the content loss", "content", "W")
    # 2e7: with meanstd (the default style loss) it keeps every photo of docs/quality.md's eight
    # over the photo-survives floor (coarse SSIM >= 0.5; without it the astronaut under Monet
    # fell to 0.31) for the least cost in style (Seurat's dots, 0.208 -> 0.225 at 2e7, 0.238 at
    # 5e7). A departure (docs/method.md §2.1); 0 turns it off.
    layout_weight: float = _opt(
        2e7,
        "weight of the layout term: holds where the photo is lighter and darker than its "
        "overall tone, at the scale of its objects (0: off)",
        "content",
        "W",
    )
    # 0.04, not 0.05, since the default paints coarse to fine from 256 px: the coarse start
    # makes bolder pictures, and at 0.05 one photo of docs/quality.md's eight (astronaut /
    # Monet) fell under the photo-survives floor with wasserstein (coarse SSIM 0.485).
    style_weight: float = _opt(0.04, "weight of the style loss", "style", "W")
    tv_weight: float = _opt(
        3e6,
        "weight of the total-variation smoothness loss (keeps pixel speckle out)",
        "optimisation",
        "W",
    )
    temporal_weight: float = _opt(
        1e8,
        "weight of the temporal loss that holds each frame to the previous one warped by the "
        "optical flow (0: every frame painted on its own)",
        "video",
        "W",
    )
    content_layers: tuple[str, ...] = _opt(
        ("relu4_2",), "comma-separated content layers", "content", "LAYERS"
    )
    style_layers: tuple[str, ...] = _opt(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "comma-separated style layers",
        "style",
        "LAYERS",
    )
    style_layer_weights: tuple[float, ...] = _opt(
        (),
        "comma-separated weight per style layer (default: from --layer-weighting)",
        "style",
        "W,...",
    )
    layer_weighting: str = _opt(
        "gatys",
        "style layer weights when none are given: equal, or gatys (1/channels²)",
        "style",
        choices=LAYER_WEIGHTINGS,
    )
    # Departure from the paper (whose Gram matrices --preset paper keeps): each layer's channel
    # means and deviations, with the layout term. On the eight pairs of docs/quality.md
    # (fourteenth run) it came nearer the painting than wasserstein (the default before, means
    # and covariances) on 6 by the independent style distance, kept more of the photo on 5 and
    # beat pastiche's 1000-step picture on 5 (wasserstein: 3), every photo kept.
    style_loss: str = _opt("meanstd", "style representation", "style", choices=tuple(STYLE_LOSSES))
    content_loss: str = _opt(
        "mse",
        "how the photo is kept: its features, or their self-similarity (the layout)",
        "content",
        choices=tuple(CONTENT_LOSSES),
    )
    pooling: str = _opt("max", "VGG19 pooling", "optimisation", choices=POOLINGS)
    init: str = _opt(
        "content",
        "starting image: content, noise, style-stats or an image path",
        "optimisation",
        "{" + ",".join(INIT_MODES) + "}|PATH",
    )
    preserve_colors: str = _opt(
        "none",
        "keep the content's colours: luminance (transfer on luma only) or histogram "
        "(recolour the style first)",
        "style",
        choices=COLOR_MODES,
        aliases=("--preserve-colours",),
    )
    style_scale: float = _opt(
        1.0, "style image size relative to the output (longest sides)", "style", "F"
    )
    scales: int = _opt(
        0,
        "coarse-to-fine scales, about sqrt(2) apart, ending at --size "
        "(0: automatic, from --min-scale up; 1: off)",
        "optimisation",
        "N",
    )
    min_scale: int = _opt(
        256,
        "with --scales 0: the first scale's longest side in pixels; pictures from it up to twice "
        "it are painted at twice it and resized down, so a preview looks like the larger picture",
        "optimisation",
        "PX",
    )
    # 20, where each scale used to run until --tolerance stopped it: the later scales add
    # detail, not style (docs/quality.md, eighth run: 40 steps a scale took 1.3-1.8x the time
    # and came no nearer the painting), so most steps go where they are cheap.
    refine_iterations: int = _opt(
        20,
        "optimiser steps at each scale after the first, at most (the first runs --iterations)",
        "optimisation",
        "N",
    )
    # Gatys et al. 2017 refine a coarse picture against the photo at the finer scale. Above
    # the supersampled size that brought the photo's fine detail back over the coarse scales'
    # style: a 1024 px picture came out 12.7% further from the painting than the 512 px one,
    # compared at one size, over the quality goal's 10%; holding halfway, 1.2% (holding fully:
    # 5.2% nearer, windows painted over at 1:1). docs/quality.md, eleventh run. Departure:
    # those scales' content term half holds the picture.
    refine_hold: float = _opt(
        0.5,
        "with --scales 0, at the scales larger than twice --min-scale: how far the content "
        "term holds the previous scale's picture, upsampled, instead of the photo (1: the "
        "picture, so a larger picture is the same picture; 0: the photo's fine detail)",
        "optimisation",
        "F",
    )
    ema: float = _opt(
        0.0,
        "output an exponential moving average of the image (decay; 0: off)",
        "optimisation",
        "DECAY",
    )
    tolerance: float = _opt(
        0.01,
        "stop a scale early once the loss fell by less than this fraction over the last "
        "--tolerance-window iterations (0: never)",
        "optimisation",
        "F",
    )
    tolerance_window: int = _opt(
        20, "iterations over which --tolerance measures the progress", "optimisation", "N"
    )
    seed: int = _opt(0, "random seed (noise start, stochastic losses)", "optimisation", "N")
    device: str = _opt("auto", "compute device", "device", choices=DEVICES)
    precision: str = _opt(
        "auto",
        "VGG19 arithmetic: float32, or bfloat16 autocast with the losses in float32, 1.6x "
        "faster on a CPU with AVX512-BF16 (auto: bfloat16 on a CUDA GPU or a CPU that has it "
        "in hardware, float32 elsewhere)",
        "device",
        choices=PRECISIONS,
    )
    recompute: str = _opt(
        "auto",
        "recompute activations in the backward pass instead of storing them: less memory, "
        "more time (auto: only when the run would not fit in free memory)",
        "device",
        choices=RECOMPUTE_MODES,
    )
    tile: str = _opt(
        "auto",
        "optimise the finest scales in overlapping tiles of this many pixels a side, one tile "
        "at a time, so memory stops growing with the image (auto: only when the run would not "
        "fit; off: never)",
        "device",
        "auto|off|PX",
    )
    adam_beta1: float = _opt(0.9, "Adam's beta_1", "optimisation", "BETA")
    adam_beta2: float = _opt(0.999, "Adam's beta_2", "optimisation", "BETA")
    adam_eps: float = _opt(1e-7, "Adam's epsilon", "optimisation", "EPS")
    log_every: int = _opt(100, "print the loss every N iterations (0: never)", "output", "N")
    bit_depth: int = _opt(
        8, "bits per colour channel of the output: 8, or 16 (PNG and TIFF only)", "output", "8|16"
    )
    dpi: int = _opt(
        0,
        "pixels per inch written into the output (PNG, TIFF, JPEG, BMP), and the resolution "
        "--print-size is made at (0: none written)",
        "output",
        "N",
    )
    save_every: int = _opt(
        0, "save the image every N iterations next to the output (0: never)", "output", "N"
    )
    checkpoint_every: int = _opt(
        0,
        "save the run's state every N iterations next to the output (OUTPUT.estilo-checkpoint), "
        "to continue it after a crash with --resume (0: never)",
        "output",
        "N",
    )
    max_pixels: int = _opt(
        64_000_000, "refuse input images with more pixels than this", "device", "N"
    )
    weights: str = _opt(
        "",
        "VGG19 weights file, .bin from pastiche or Keras .h5 (default: the bundled file)",
        "device",
        "PATH",
    )

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimiser's default learning rate when it is unset (scaled for the
        style loss where the optimiser steps by the raw gradient)."""
        if self.lr is not None:
            return self.lr
        info = OPTIMIZERS[self.optimizer]
        return info.default_lr * (
            STYLE_LOSSES[self.style_loss].sgd_scale if info.raw_gradient else 1
        )

    def replace(self, **changes: Any) -> StyleConfig:
        """A copy with some fields changed, checked."""
        return resolve(base=self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_toml(self) -> str:
        """The configuration as TOML, readable back with ``--config``."""
        return "".join(
            f"{key} = {_toml_value(value)}\n"
            for key, value in self.to_dict().items()
            if value is not None  # TOML has no null: an absent key means "default"
        )


#: The StyleConfig fields that mean the same when a network is trained (``estilo train``): the
#: objective, the colours, the device. The rest steer the optimisation of one picture.
TRAINING_FIELDS = (
    "content_weight",
    "layout_weight",
    "style_weight",
    "tv_weight",
    "content_layers",
    "style_layers",
    "style_layer_weights",
    "layer_weighting",
    "style_loss",
    "content_loss",
    "pooling",
    "preserve_colors",
    "style_scale",
    "seed",
    "device",
    "precision",
    "max_pixels",
    "weights",
)
#: Departure: where training's objective leaves the optimiser's defaults. A network paints
#: every photo with one set of weights, so at the optimiser's style weight it learns the
#: painting's texture and loses the photo (coarse SSIM 0.17-0.21 on held-aside photos, against the
#: optimiser's 0.72); at 0.003 it keeps the layout (0.65) at the same independent style
#: distance (BENCHMARKS.md, fast mode). Training keeps the Gram loss and no layout term: its
#: balance and the shipped network were measured so, and a network has no iterations to save.
TRAINING_DEFAULTS: dict[str, Any] = {
    "style_weight": 0.003,
    "style_loss": "gram",
    "layout_weight": 0.0,
}


@dataclass(frozen=True)
class TrainConfig:
    """How fast mode trains its network (``estilo train``); what it minimises is the
    StyleConfig's objective (TRAINING_FIELDS). Defaults follow Johnson et al. 2016 (256 px
    crops, batches of 4, Adam at 1e-3) but for far fewer steps: a folder of photos, not COCO."""

    steps: int = _opt(2000, "training steps (batches)", "training", "N")
    batch_size: int = _opt(4, "photos per step", "training", "N")
    crop: int = _opt(256, "side of the random square crops trained on, in pixels", "training", "PX")
    width: int = _opt(
        32, "channels of the network's first layer: 32 full, 16 half width", "training", "N"
    )
    train_lr: float = _opt(1e-3, "Adam's learning rate for the network", "training", "RATE")
    checkpoint_every: int = _opt(
        100,
        "save a checkpoint every N steps, for --resume (0: only at the end and on Ctrl-C)",
        "training",
        "N",
    )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


TRAIN_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f for f in dataclasses.fields(TrainConfig)
}


def resolve_training(**overrides: Any) -> TrainConfig:
    """A checked TrainConfig from the defaults and ``overrides`` (numbers or their text).

    Raises:
        ConfigError: an unknown field or a value out of range.
    """
    unknown = sorted(set(overrides) - set(TRAIN_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; valid: {', '.join(TRAIN_FIELDS)}")
    kinds = typing.get_type_hints(TrainConfig)
    values = {}
    for name, value in overrides.items():
        try:
            values[name] = _convert(kinds[name], value)
        except (TypeError, ValueError):
            kind = kinds[name].__name__
            raise ConfigError(f"option {name}: {value!r} is not a valid {kind}") from None
    config = TrainConfig(**values)
    for name, low, high in (
        ("steps", 1, MAX_ITERATIONS),
        ("batch_size", 1, 256),
        ("crop", 32, 4096),
        ("width", 1, 256),
        ("checkpoint_every", 0, MAX_ITERATIONS),
    ):
        if not low <= getattr(config, name) <= high:
            raise ConfigError(f"{name} must be between {low} and {high}")
    if not (math.isfinite(config.train_lr) and config.train_lr > 0):
        raise ConfigError("train_lr must be a positive number")
    return config


# Presets override the defaults above. Sources are in the README's "Presets" section.
# Carvalho & Oliveira, "Neural style transfer", Section 3. Where the paper is silent we take
# what its TensorFlow/Keras stack did (the TF "Neural style transfer" tutorial, whose layers,
# clipping and per-100-epoch printing the paper follows): Gram matrices divided by the number of
# positions, mean squared errors averaged over layers.
_PAPER: dict[str, Any] = {
    "size": 1024,
    "square": True,
    "init": "content",
    "optimizer": "adam",
    "lr": 0.01,
    "iterations": 4000,
    "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "content_layers": ("relu5_2",),
    "content_weight": 1e-2,
    "layout_weight": 0.0,  # no such term in the paper
    "style_weight": 1e-2,
    "tv_weight": 0.0,
    "style_layer_weights": (),
    "layer_weighting": "equal",
    "style_loss": "gram",
    "content_loss": "mse",
    "pooling": "max",
    # The paper used Keras and names no Adam constants, so Keras's defaults: with them estilo's
    # loss is within 1.4% of a Keras rebuild of the paper at 100, 200 and 300 epochs (128 px),
    # where the TF tutorial's constants (paper-tf-tutorial below) give 2.1x at 100.
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_eps": 1e-7,
    "log_every": 100,
    "precision": "float32",  # the paper's arithmetic; the default uses bf16 where native
    "tolerance": 0.0,  # the paper runs every epoch it names
    "scales": 1,  # the paper optimises at its output size: no pyramid, no supersampling
}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": _PAPER,
    # The other reading of the paper's silence: the TF tutorial's Adam(beta_1=0.99,
    # epsilon=0.1), which the paper preset took until issue 12.
    "paper-tf-tutorial": {**_PAPER, "adam_beta1": 0.99, "adam_eps": 0.1},
}

FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(StyleConfig)}
#: Each field's type as a real type: the annotations are strings (``from __future__``).
TYPES: dict[str, Any] = typing.get_type_hints(StyleConfig)


def resolve(
    preset: str = "default",
    file: str | Path | None = None,
    base: StyleConfig | None = None,
    **overrides: Any,
) -> StyleConfig:
    """Build a checked configuration: preset, then a config file, then explicit overrides.

    A config file (TOML or JSON) may name a ``preset`` of its own; explicit ``preset`` wins only
    when the file names none.

    Raises:
        ConfigError: an unknown preset, field or value out of range.
    """
    values: dict[str, Any] = {}
    if file is not None:
        values = load_file(file)
        preset = values.pop("preset", preset)
    if base is None:
        start = {**StyleConfig().to_dict(), **lookup(PRESETS, preset, "preset")}
    else:
        start = base.to_dict()
    values = {**values, **overrides}
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; valid: {', '.join(FIELDS)}")
    merged = {**start, **{k: _coerce(k, v) for k, v in values.items()}}
    config = StyleConfig(**merged)
    return _check(config)


def training_objective(**overrides: Any) -> StyleConfig:
    """The objective ``estilo train`` minimises: the default preset, TRAINING_DEFAULTS, then
    ``overrides`` (TRAINING_FIELDS)."""
    return resolve(**{**TRAINING_DEFAULTS, **overrides})


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON configuration file, or the settings stored in a PNG that estilo
    wrote, into a dict (unchecked)."""
    path = Path(path)
    label = f"config file {str(path)!r}"
    if path.suffix.lower() == ".png":
        # Only the chunks before the pixels are read, so the image's size does not matter.
        with open_regular(path, sys.maxsize, label, ConfigError) as handle:
            try:
                text = read_settings(handle, CONFIG_BYTES, label)
            except OSError as exc:
                raise ConfigError(f"{label}: cannot read ({exc.strerror or exc})") from None
    else:
        data = read_regular(path, CONFIG_BYTES, label, ConfigError)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{label} is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else _toml_loads(text)
    except ValueError as exc:
        raise ConfigError(f"{label} is not valid: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{label} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _coerce(name: str, value: Any) -> Any:
    """Turn a value from a file, the CLI or the API into the field's type."""
    kind = TYPES[name]
    try:
        return _convert(kind, value)
    except (TypeError, ValueError):
        shown = kind.__name__ if isinstance(kind, type) else str(kind)
        raise ConfigError(f"option {name}: {value!r} is not a valid {shown}") from None


def _convert(kind: Any, value: Any) -> Any:
    """``value`` as an instance of ``kind``: a scalar type, ``tuple[T, ...]`` (from a sequence
    or a comma-separated string) or ``T | None``. Raises ValueError or TypeError."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        (item, _) = typing.get_args(kind)
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(
            _convert(item, v.strip() if isinstance(v, str) else v) for v in items if str(v).strip()
        )
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        return _convert(inner, value)
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return value.lower() in ("true", "1", "yes")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return kind(value)


def _check(config: StyleConfig) -> StyleConfig:
    """Range checks; returns the config with layer names made canonical."""

    def require(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    require(16 <= config.size <= MAX_SIZE, f"size must be between 16 and {MAX_SIZE} pixels")
    require(
        1 <= config.iterations <= MAX_ITERATIONS,
        f"iterations must be between 1 and {MAX_ITERATIONS}",
    )
    lookup(OPTIMIZERS, config.optimizer, "optimizer")
    lookup(STYLE_LOSSES, config.style_loss, "style loss")
    lookup(CONTENT_LOSSES, config.content_loss, "content loss")
    for name, choices in (
        ("pooling", POOLINGS),
        ("layer_weighting", LAYER_WEIGHTINGS),
        ("preserve_colors", COLOR_MODES),
        ("device", DEVICES),
        ("precision", PRECISIONS),
        ("recompute", RECOMPUTE_MODES),
    ):
        require(getattr(config, name) in choices, f"{name} must be one of {', '.join(choices)}")
    require(
        config.lr is None or (math.isfinite(config.lr) and config.lr > 0),
        "lr must be a positive number",
    )
    for name in ("content_weight", "layout_weight", "style_weight", "tv_weight", "temporal_weight"):
        value = getattr(config, name)
        require(math.isfinite(value) and value >= 0, f"{name} must be a finite number >= 0")
    require(
        config.content_weight + config.style_weight > 0,
        "content_weight and style_weight cannot both be 0",
    )
    require(bool(config.style_layers), "give at least one style layer")
    require(bool(config.content_layers), "give at least one content layer")
    weights = config.style_layer_weights
    if weights:
        require(
            len(weights) == len(config.style_layers),
            f"style_layer_weights has {len(weights)} values for "
            f"{len(config.style_layers)} style layers",
        )
        require(
            all(math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0,
            "style_layer_weights must be >= 0 and not all 0",
        )
    for name in ("adam_beta1", "adam_beta2"):
        require(0 <= getattr(config, name) < 1, f"{name} must be in [0, 1)")
    require(config.adam_eps > 0, "adam_eps must be > 0")
    for name in ("log_every", "save_every", "checkpoint_every"):
        require(getattr(config, name) >= 0, f"{name} must be >= 0")
    require(config.max_pixels > 0, "max_pixels must be > 0")
    require(-(2**63) <= config.seed < 2**63, "seed must fit in 64 bits (-2^63 to 2^63-1)")
    require(bool(config.init.strip()), "init must be content, noise, style-stats or an image path")
    require(
        math.isfinite(config.style_scale) and 0.05 <= config.style_scale <= 8,
        "style_scale must be between 0.05 and 8",
    )
    require(config.bit_depth in BIT_DEPTHS, "bit_depth must be 8 or 16")
    require(0 <= config.dpi <= MAX_DPI, f"dpi must be between 0 (none) and {MAX_DPI}")
    if config.print_size:
        require(bool(config.dpi), "print_size needs a dpi to make its pixels at (e.g. 300)")
        require(not config.square, "print_size and square disagree; give one of them")
        width, height = print_pixels(config.print_size, config.dpi)
        require(
            min(width, height) >= 16 and max(width, height) <= MAX_SIZE,
            f"print_size {config.print_size} at {config.dpi} dpi is {width}x{height} px; "
            f"each side must be between 16 and {MAX_SIZE}",
        )
    require(0 <= config.scales <= MAX_SCALES, f"scales must be between 0 and {MAX_SCALES}")
    require(16 <= config.min_scale <= MAX_SIZE, f"min_scale must be between 16 and {MAX_SIZE}")
    require(
        1 <= config.refine_iterations <= MAX_ITERATIONS,
        f"refine_iterations must be between 1 and {MAX_ITERATIONS}",
    )
    require(
        math.isfinite(config.refine_hold) and 0 <= config.refine_hold <= 1,
        "refine_hold must be between 0 and 1",
    )
    require(
        config.tile in ("auto", "off") or (config.tile.isdigit() and int(config.tile) >= 32),
        "tile must be auto, off or a number of pixels >= 32",
    )
    require(0 <= config.ema < 1, "ema must be in [0, 1)")
    require(0 <= config.tolerance < 1, "tolerance must be in [0, 1)")
    require(config.tolerance_window >= 1, "tolerance_window must be >= 1")
    return dataclasses.replace(
        config,
        content_layers=tuple(canonical_layer(n) for n in config.content_layers),
        style_layers=tuple(canonical_layer(n) for n in config.style_layers),
    )


def print_pixels(text: str, dpi: int) -> tuple[int, int]:
    """The (width, height) in pixels of a print ``WxH`` in cm, mm or in, at ``dpi``.

    Raises:
        ConfigError: not of the form ``30x40cm``, ``8.5x11in`` or ``210x297mm``.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*x\s*(\d+(?:\.\d*)?)\s*([a-z]+)\s*", text.lower())
    if match is None or match.group(3) not in PRINT_UNITS or 0 in map(float, match.groups()[:2]):
        raise ConfigError(
            f"print_size {text!r} is not WxH with a unit, e.g. 30x40cm, 8x10in or 210x297mm"
        )
    per_inch = PRINT_UNITS[match.group(3)]
    width, height = (round(float(side) / per_inch * dpi) for side in match.groups()[:2])
    return width, height


def fit_print(config: StyleConfig, height: int, width: int) -> StyleConfig:
    """``config`` with ``size`` set so that a ``height`` x ``width`` picture, aspect ratio kept,
    is the largest that fits its print (turned to the picture's orientation); unchanged
    without ``print_size``."""
    if not config.print_size:
        return config
    box_long, box_short = sorted(print_pixels(config.print_size, config.dpi), reverse=True)
    scale = min(box_long / max(height, width), box_short / min(height, width))
    # Rounded down, so neither side passes the print's; the short side rounds to at most its own.
    return dataclasses.replace(config, size=max(16, math.floor(max(height, width) * scale)))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)
