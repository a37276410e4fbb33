"""A trained fast-mode network and its file: the weights, the style(s) and the options.

The file is ``torch.save`` of plain containers (tensors, numbers, strings, lists, dicts), read
back with ``torch.load(weights_only=True)``: a model file from someone else never runs code.
Loading checks the format, the options (they must resolve as a configuration would) and that
the weights fit a network of the recorded width; each problem is one line naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import __version__
from ..core.config import (
    TRAINING_FIELDS,
    StyleConfig,
    TrainConfig,
    resolve,
    resolve_training,
)
from ..errors import EstiloError
from ..files import atomic_write, read_regular
from ..image import color
from ..image.samples import SAMPLES
from ..pipeline import (
    TransformerNet,
    compute_dtype,
    computing_in,
    paint_tiled,
    pick_device,
)

#: What the file says it is, and the layout of its contents (raise on any change to them).
MODEL_KIND = "estilo-fast-model"
MODEL_FORMAT = 1
#: A full-width network is 7 MB, with Adam's state for resuming 20 MB; nothing real is larger.
MODEL_BYTES = 256 * 2**20
#: The largest tile the network paints at once (pixels a side): about 1.5 GB of activations at
#: full width; larger pictures are painted in overlapping tiles.
TILE = 2048
#: Networks shipped with estilo, by name: the half-width network for the bundled painting,
#: trained as BENCHMARKS.md says (fast mode), 1.7 MB.
BUNDLED = {"starry-night": SAMPLES / "starry_night.pt"}


class ModelError(EstiloError):
    """A model file that is missing, not one of ours, damaged or made with other options."""


@dataclass(frozen=True)
class StyleSource:
    """A style image a network was trained for: its name, the SHA-256 of its pixels' source
    (the file's bytes, or the tensor's for images given from Python) and its blend weight."""

    name: str
    sha256: str
    weight: float


@dataclass
class FastModel:
    """A trained network with what made it. Call it on (B, 3, H, W) images in [0, 1] (on any
    device; they come back on the same one, the same size): the video work and the web UI use
    this, ``estilo.apply`` wraps it for files and PIL images."""

    net: TransformerNet
    styles: tuple[StyleSource, ...]
    config: StyleConfig
    training: TrainConfig
    steps: int
    version: str = __version__

    def __call__(self, images: Tensor, tile: int = TILE, precision: str = "auto") -> Tensor:
        """The painted ``images``. ``precision``: float32; bfloat16 (the network's weights and
        activations; the colour steps stay float32); auto: bfloat16 on a CUDA GPU that has it
        and on a CPU with native bfloat16 instructions, float32 elsewhere (``compute_dtype``;
        on a 2-core AVX512-BF16 CPU 2.3x faster, the picture within 0.002 on average)."""
        device = next(self.net.parameters()).device
        resolve(precision=precision)  # checks the name
        paint = computing_in(self.net, compute_dtype(precision, device))
        with torch.inference_mode():
            x = images.to(device, torch.float32)
            luminance = self.config.preserve_colors == "luminance"
            if luminance:  # trained on luma: paint the luma, put the photo's chroma back
                x = torch.stack([color.luminance(one) for one in x])
            out = paint_tiled(paint, x, tile).clamp(0, 1)
            if luminance:
                out = torch.stack(
                    [
                        color.restore_chroma(o, i)
                        for o, i in zip(out, images.to(device), strict=True)
                    ]
                )
        return out.to(images.device)

    def to(self, device: str | torch.device) -> FastModel:
        """The model on ``device`` (``auto``, ``cpu``, ``cuda``, ``mps`` or a torch.device)."""
        self.net.to(pick_device(device) if isinstance(device, str) else device)
        return self

    def describe(self) -> str:
        """One line: the styles, the width and the steps trained."""
        styles = " + ".join(f"{s.name}:{s.weight:g}" for s in self.styles)
        return (
            f"{styles}, width {self.net.width}, {self.steps} steps, "
            f"{self.config.style_loss} style loss (estilo {self.version})"
        )

    def to_state(self, **extra: Any) -> dict[str, Any]:
        """The file's contents: plain containers only (``extra``: the training state)."""
        return {
            "kind": MODEL_KIND,
            "format": MODEL_FORMAT,
            "estilo": self.version,
            "styles": [dataclasses.asdict(s) for s in self.styles],
            "config": {name: getattr(self.config, name) for name in TRAINING_FIELDS},
            "training": self.training.to_dict(),
            "steps": self.steps,
            "state": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            **extra,
        }

    @classmethod
    def from_state(cls, state: Any, label: str) -> FastModel:
        """The model in a loaded file's ``state``; ModelError naming ``label`` if it is not
        one, or not one this version reads."""
        if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
            raise ModelError(f"{label} is not an estilo fast-mode model")
        if state.get("format") != MODEL_FORMAT:
            raise ModelError(
                f"{label} has format {state.get('format')!r} (written by estilo "
                f"{state.get('estilo')}); estilo {__version__} reads format {MODEL_FORMAT}"
            )
        try:
            config = resolve(**_table(state, "config", label))
            training = resolve_training(**_table(state, "training", label))
            styles = tuple(
                StyleSource(str(s["name"]), str(s["sha256"]), float(s["weight"]))
                for s in state["styles"]
            )
            steps = int(state["steps"])
        except EstiloError as exc:
            raise ModelError(f"{label}: {exc}") from None
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{label} is damaged: its styles or steps are malformed") from None
        if not styles:
            raise ModelError(f"{label} names no style")
        net = TransformerNet(training.width)
        weights = state.get("state")
        if not isinstance(weights, dict):
            raise ModelError(f"{label} holds no weights")
        try:
            net.load_state_dict(weights)
        except (RuntimeError, TypeError):
            raise ModelError(
                f"{label}: its weights do not fit a network of width {training.width}"
            ) from None
        return cls(net, styles, config, training, steps, str(state.get("estilo", "?")))


def _table(state: dict[str, Any], key: str, label: str) -> dict[str, Any]:
    table = state.get(key)
    if not isinstance(table, dict):
        raise ModelError(f"{label} is damaged: it has no {key} table")
    return table


def read_state(path: str | Path, what: str = "model file") -> dict[str, Any]:
    """A model or checkpoint file's contents, loaded without running any code from it."""
    label = f"{what} {str(path)!r}"
    data = read_regular(path, MODEL_BYTES, label, ModelError)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign or damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{label} cannot be read as a model ({reason[:120]})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{label} is not an estilo fast-mode model")
    return state


def bundled(path: str | Path) -> Path:
    """``path``, or the network shipped with estilo that it names (BUNDLED). A bare shipped
    name always means the shipped network, whatever the current folder holds (an output
    folder of that name, or a planted file); a file of one's own is ``./starry-night``."""
    name = str(path)
    return BUNDLED[name] if name in BUNDLED else Path(path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> FastModel:
    """Read a model file written by ``estilo train`` (or :func:`save_model`), or a network
    shipped with estilo by name (BUNDLED: ``starry-night``).

    Raises:
        ModelError: missing, not a model, a format this version does not read, options that
            do not resolve, or weights that do not fit.
    """
    model = FastModel.from_state(read_state(bundled(path)), f"model file {str(path)!r}")
    return model.to(device)


def save_model(model: FastModel, path: Path, **extra: Any) -> None:
    """Write the model file atomically (``extra``: training state kept in checkpoints)."""
    state = model.to_state(**extra)
    atomic_write(path, lambda handle: torch.save(state, handle))


def source_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
