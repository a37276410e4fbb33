"""Painting with a trained network: pictures (``apply``), files and folders (``apply_files``)
and the ONNX export (``export``)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..core.config import StyleConfig
from ..errors import EstiloError, ImageError
from ..files import atomic_write, unused_path
from ..formats import WRITE_FORMATS
from ..image.io import save_image, to_pil
from ..pipeline import ImageSource, check_output, compute_dtype, read
from .model import TILE, FastModel, ModelError, bundled, load_model

#: The ONNX opset: 17 has every operator the network uses and runs on onnxruntime >= 1.13.
OPSET = 17
#: How much of the previous painted frame, warped into this one, a network's frame keeps where
#: the flow can be trusted (``estilo video --model``). Departure from Ruder et al. 2016, whose
#: temporal loss needs an optimiser: a network paints in one pass, so its frames are blended
#: along the flow instead, an exponential average over each tracked point's past (half-life one
#: frame). Measured in tests/test_fast.py: it lowers the warping error against no blending.
FRAME_BLEND = 0.5


def as_model(model: FastModel | str | Path, device: str = "auto") -> FastModel:
    """A loaded model on ``device``, from a FastModel or the path of a model file."""
    if isinstance(model, FastModel):
        return model.to(device)
    return load_model(model, device)


def apply(
    model: FastModel | str | Path,
    image: ImageSource,
    *,
    device: str = "auto",
    tile: int = TILE,
    max_pixels: int = StyleConfig().max_pixels,
    precision: str = "auto",
) -> Image.Image:
    """Paint ``image`` with a trained network in one forward pass: the Python API.

    Args:
        model: a model file written by ``estilo train`` or a loaded :class:`FastModel`.
        image: a path, PIL image, (3, H, W) tensor or (H, W, 3) array, as ``estilo.stylize``
            takes. Any size: pictures larger than ``tile`` pixels a side are painted in tiles.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        precision: ``auto``, ``float32`` or ``bfloat16`` (see :class:`FastModel`).

    Returns:
        The painted picture, the input's size, with its alpha channel if it had one.
    """
    fast = as_model(model, device)
    loaded = read(image, StyleConfig(max_pixels=max_pixels), "image")
    painted = fast(loaded.rgb[None], tile, precision)[0].cpu()
    return to_pil(painted, loaded.alpha)


class ModelPainter:
    """Paints video frames with a trained network: the :class:`estilo.video.Painter` of
    ``estilo video --model``. Each frame is one forward pass, then, where the previous painted
    frame warped into it can be trusted, moved ``blend`` of the way towards it."""

    #: A network does not iterate.
    iterations = 0

    def __init__(
        self,
        model: FastModel | str | Path,
        blend: float = FRAME_BLEND,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        self.source = model if isinstance(model, FastModel) else bundled(model)
        self.model, self.blend, self.precision = as_model(self.source, device), blend, precision

    def identity(self) -> list[Any]:
        # A model file stands for its bytes; a model in memory for its weights.
        weights = list(self.model.net.state_dict().values())
        source = self.source if isinstance(self.source, Path) else weights
        # The arithmetic the frames are painted in, not the name asked for: "auto" means
        # bfloat16 on one machine and float32 on another, and a resumed video must not mix them.
        device = next(self.model.net.parameters()).device
        return [source, self.blend, str(compute_dtype(self.precision, device))]

    def paint(self, frame: Tensor, previous: Tensor | None, mask: Tensor | None) -> Tensor:
        painted = self.model(frame[None], precision=self.precision)[0]
        if previous is None or mask is None or not self.blend:
            return painted
        return painted + self.blend * mask * (previous.to(painted) - painted)


def input_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The pictures to paint: files as given, and each folder's image files (not its
    subfolders), sorted; ImageError for a missing path or a folder without pictures."""
    files = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = sorted(
                p for p in given.iterdir() if p.suffix.lower() in WRITE_FORMATS and p.is_file()
            )
            if not found:
                raise ImageError(f"folder {str(given)!r} has no pictures")
            files += found
        elif given.exists():
            files.append(given)
        else:
            raise ImageError(f"input {str(given)!r}: no such file or folder")
    return files


def output_paths(files: Sequence[Path], output: Path | None, model_name: str) -> list[Path]:
    """Where each painted picture goes: ``output`` itself for one input given a file name;
    otherwise ``STEM-MODEL.png`` in the ``output`` folder (made if missing, its parent must
    exist) or the current one, numbered rather than replacing a file."""
    one_file = output is not None and output.suffix.lower() in WRITE_FORMATS
    if len(files) == 1 and output is not None and one_file and not output.is_dir():
        return [output]
    folder = output if output is not None else Path()
    if folder.exists() and not folder.is_dir():
        raise ImageError(f"output {str(folder)!r} is a file; give a folder for several inputs")
    if not folder.exists():
        if folder.suffix.lower() in WRITE_FORMATS:
            raise ImageError(
                f"output {str(folder)!r} is one file; give a folder for several inputs"
            )
        try:
            folder.mkdir()
        except OSError as exc:
            raise ImageError(f"cannot make folder {str(folder)!r}: {exc.strerror}") from None
    paths: list[Path] = []
    for path in files:
        stem, number = f"{path.stem}-{model_name}", 1
        target = unused_path(folder, stem)
        while target in paths:  # two inputs of the same name in different folders
            number += 1
            target = unused_path(folder, f"{stem}-{number}")
        paths.append(target)
    return paths


def apply_files(
    model: FastModel | str | Path,
    inputs: Sequence[str | Path],
    output: Path | None = None,
    *,
    device: str = "auto",
    quality: int | None = None,
    tile: int = TILE,
    precision: str = "auto",
    done: Callable[[Path, Path], None] | None = None,
) -> list[Path]:
    """Paint every input file (and every picture in each input folder) and save them: the
    CLI's ``estilo apply``. Every output is checked before the first picture is painted.
    ``done(input, output)`` is called after each save."""
    fast = as_model(model, device)
    files = input_files(inputs)
    name = Path(model).stem if not isinstance(model, FastModel) else "fast"
    targets = output_paths(files, output, name)
    config = StyleConfig()
    for target in targets:
        check_output(target, files, config, quality)
    for source, target in zip(files, targets, strict=True):
        loaded = read(source, config, "input")
        painted = fast(loaded.rgb[None], tile, precision)[0].cpu()
        save_image(painted, target, loaded.alpha, quality=quality)
        if done is not None:
            done(source, target)
    return targets


class _Exported(torch.nn.Module):
    """What the ONNX file computes: (B, 3, H, W) in [0, 1] to the same, H and W multiples of
    4 and at least 16 (the padding ``TransformerNet.forward`` adds is left to the caller)."""

    def __init__(self, model: FastModel) -> None:
        super().__init__()
        self.net = model.net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.paint(image)


def export(model: FastModel | str | Path, output: str | Path) -> Path:
    """Write the network as an ONNX file (needs ``estilo[onnx]``), with the batch, height and
    width free. A network trained in luminance mode is refused: its colour step is not part of
    the network.

    Raises:
        EstiloError: the onnx package missing, a luminance model, an unwritable output.
    """
    try:
        import onnx  # noqa: F401  (torch's exporter needs it; say so before torch fails)
    except ModuleNotFoundError:
        raise EstiloError("the ONNX export needs onnx: pip install 'estilo[onnx]'") from None
    fast = as_model(model, "cpu")
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise ModelError(f"output {str(output)!r} must end in .onnx")
    if fast.config.preserve_colors == "luminance":
        raise ModelError(
            "this model keeps the photo's colours (luminance), a step outside the network; "
            "the ONNX file would lack it"
        )
    buffer = io.BytesIO()
    sample = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        # The TorchScript exporter notes, for reflection padding, that it could not fold
        # some slices into constants: the graph is still exact (a test compares it).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Exported(fast).eval(),
            (sample,),
            buffer,  # type: ignore[arg-type]  # a file object works, the stub says a path
            input_names=["image"],
            output_names=["painted"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
            opset_version=OPSET,
            dynamo=False,
        )
    atomic_write(output, lambda handle: handle.write(buffer.getvalue()))
    return output
