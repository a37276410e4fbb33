"""estilo: neural style transfer that reproduces Carvalho & Oliveira's system, then improves on it.

>>> import estilo
>>> result = estilo.stylize("photo.jpg", "art.jpg", progress=True)  # doctest: +SKIP
>>> result.save("out.png")  # doctest: +SKIP

Heavy modules (torch, PIL) load on first use, so ``import estilo`` and ``estilo --help`` are
instant; ``dir(estilo)`` and ``help(estilo)`` still list every public name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.config import PRESETS, StyleConfig, resolve, training_objective
from .errors import ConfigError, EstiloError, ImageError

if TYPE_CHECKING:
    from .core.records import Iterate, LossRecord, Status
    from .fast import FastModel, apply, export, load_model, train
    from .image.io import load_image, save_image
    from .pipeline import Stylized, stylize
    from .video import PaintedFrame, stylize_video

__version__ = "0.1.0"
__all__ = [
    "PRESETS",
    "ConfigError",
    "EstiloError",
    "FastModel",
    "ImageError",
    "Iterate",
    "LossRecord",
    "PaintedFrame",
    "Status",
    "StyleConfig",
    "Stylized",
    "__version__",
    "apply",
    "export",
    "load_image",
    "load_model",
    "resolve",
    "save_image",
    "stylize",
    "stylize_video",
    "train",
    "training_objective",
]

_LAZY = {
    "Iterate": "core.records",
    "LossRecord": "core.records",
    "Status": "core.records",
    "load_image": "image.io",
    "save_image": "image.io",
    "Stylized": "pipeline",
    "stylize": "pipeline",
    "PaintedFrame": "video",
    "stylize_video": "video",
    # Fast mode: a network trained once per style paints in one pass (estilo.fast).
    "FastModel": "fast",
    "apply": "fast",
    "export": "fast",
    "load_model": "fast",
    "train": "fast",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'estilo' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names are not globals until first used; list them anyway.
    return sorted({*globals(), *__all__})
