"""From files (or PIL images, or tensors) to a saved picture: load, resize, stylize, save.

This is the layer between the user-facing front ends (CLI, web, experiments) and the pure
``core``. It owns everything with side effects: reading inputs, checking an output can be
written *before* spending minutes of compute, intermediate snapshots, the history CSV, and the
atomic save of the best image whatever way the run ended.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .core.config import INIT_MODES, StyleConfig, fit_print, print_pixels, resolve

# Re-exported (``as``): the front ends, web, experiments, video and fast mode, reach the core
# through this module.
from .core.device import compute_dtype as compute_dtype
from .core.device import pick_device as pick_device
from .core.inputs import PixelTerm as PixelTerm
from .core.inputs import RunInputs as RunInputs
from .core.layers import min_input_size as min_input_size
from .core.memory import peak_resident as peak_resident
from .core.network import NetworkCache as NetworkCache
from .core.objective import Objective as Objective
from .core.pyramid import planned_iterations, resized, scale_sizes
from .core.pyramid import supersampled as supersampled
from .core.records import Checkpoint as Checkpoint
from .core.records import Iterate as Iterate
from .core.records import LossRecord as LossRecord
from .core.records import Result
from .core.records import Status as Status
from .core.stylize import stylize as optimise
from .core.transformer import TransformerNet as TransformerNet
from .core.transformer import computing_in as computing_in
from .core.transformer import paint_tiled as paint_tiled
from .core.vgg import VGG19Features as VGG19Features
from .core.vgg import Weights, file_sha256, load_weights
from .errors import CheckpointError, EstiloError, ImageError
from .files import atomic_write, open_regular
from .formats import check_print, check_quality, checkpoint_path
from .image import color
from .image.io import LoadedImage, load_image, output_format, save_image, to_pil

#: A path, a PIL image, a (3, H, W) or (1, 3, H, W) tensor (floats in [0, 1], or uint8) or an
#: (H, W, 3) or (H, W, 4) numpy array (uint8, or floats in [0, 1]).
ImageSource = str | Path | Image.Image | Tensor | np.ndarray
HISTORY_COLUMNS = ("iteration", "seconds", "loss", "content", "style", "tv")
#: Bigger than any checkpoint estilo makes (Adam at 16384 px keeps five 3.2 GB images): a
#: larger file is not one, and is refused before it is read.
CHECKPOINT_BYTES = 32 * 2**30
#: Settings a resumed run may change: they decide what is printed or written, or where the
#: run computes, not the picture. ``device`` and ``precision`` are checked by what they resolve
#: to instead (the identity's ``arithmetic``).
RESUME_MAY_CHANGE = frozenset(
    {
        "log_every",
        "save_every",
        "checkpoint_every",
        "bit_depth",
        "dpi",
        "device",
        "recompute",
        "precision",
    }
)

log = logging.getLogger(__name__)


@dataclass(repr=False)
class Stylized:
    """A finished run: the best image (3, H, W), the content's alpha if it had one, the loss
    history, how the run ended and the configuration that produced it.

    In a notebook it shows as the picture (``_repr_png_``)."""

    image: Tensor
    alpha: Tensor | None
    history: list[LossRecord]
    status: Status
    best_iteration: int
    seconds: float
    config: StyleConfig
    planned: int

    def to_pil(self) -> Image.Image:
        return to_pil(self.image, self.alpha)

    def save(self, path: str | Path, quality: int | None = None) -> Path:
        """Write the image atomically, in the format its extension names; a PNG carries the
        configuration, which ``estilo stylize --config`` reads back. ``quality`` (1-100):
        JPEG, WebP (100: lossless) and AVIF. The configuration's ``bit_depth`` and ``dpi``
        apply."""
        return save_config(self.image, path, self.config, quality, self.alpha)

    def __repr__(self) -> str:
        height, width = self.image.shape[-2:]
        loss = f", loss {self.history[-1].loss:.4g}" if self.history else ""
        return (
            f"<Stylized {width}x{height} {self.status} after {len(self.history)} of "
            f"{self.planned} iterations (best: {self.best_iteration}){loss}, "
            f"{self.seconds:.1f} s>"
        )

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.to_pil().save(buffer, format="PNG")
        return buffer.getvalue()


def save_config(
    image: Tensor,
    path: str | Path,
    config: StyleConfig,
    quality: int | None = None,
    alpha: Tensor | None = None,
) -> Path:
    """Save ``image`` as ``config`` asks (bit depth, DPI), with its settings in a PNG."""
    return save_image(
        image,
        path,
        alpha,
        quality=quality,
        settings=config.to_toml(),
        bit_depth=config.bit_depth,
        dpi=config.dpi,
    )


@functools.lru_cache(maxsize=2)
def cached_weights(path: str) -> Weights:
    """Weights are read once per process (the web UI and experiment runner reuse them)."""
    return load_weights(path or None)


@functools.lru_cache(maxsize=4)
def _feature_net(weights: str, layers: tuple[str, ...]) -> VGG19Features:
    return VGG19Features(cached_weights(weights), set(layers), "max")


def vgg_features(image: Tensor, layers: Sequence[str], weights: str = "") -> dict[str, Tensor]:
    """VGG19 features (max pooling, float32) of a (3, H, W) image in [0, 1], for measuring
    pictures (``estilo.quality``) rather than optimising them."""
    with torch.no_grad():
        features: dict[str, Tensor] = _feature_net(weights, tuple(sorted(layers)))(
            image[None].float()
        )
    return features


def read(source: ImageSource, config: StyleConfig, what: str) -> LoadedImage:
    """Any accepted image source (see :data:`ImageSource`) as a LoadedImage."""
    if isinstance(source, Tensor):
        rgb = source.detach().squeeze(0) if source.dim() == 4 else source.detach()
        if rgb.dim() != 3 or rgb.shape[0] != 3 or rgb.shape[-1] < 1 or rgb.shape[-2] < 1:
            raise ImageError(f"{what}: a tensor must have shape (3, H, W) or (1, 3, H, W)")
        if rgb.dtype == torch.uint8:
            return LoadedImage(rgb.float().cpu() / 255)
        if not rgb.is_floating_point():
            raise ImageError(f"{what}: a tensor must be uint8 or float, not {rgb.dtype}")
        rgb = rgb.float()
        if not torch.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
            raise ImageError(f"{what}: float tensor values must be finite and in [0, 1]")
        return LoadedImage(rgb.cpu())
    return load_image(source, config.max_pixels, what)


def working_size(
    height: int, width: int, config: StyleConfig, factor: float = 1.0
) -> tuple[int, int]:
    """(H, W) to optimise at: SIZE x SIZE with ``square`` (the paper), else the longest side
    scaled to SIZE with the aspect ratio kept; times ``factor`` (the style scale)."""
    target = max(1, round(config.size * factor))
    if config.square:
        return target, target
    scale = target / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(C, H, W) -> (C, h, w), antialiased bicubic, clipped to [0, 1]."""
    return resized(image[None], size)[0]


def style_list(style: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    if isinstance(style, (list, tuple)):
        return list(style)
    return [style]  # type: ignore[list-item]


def read_mask(
    source: ImageSource,
    content: LoadedImage,
    styles: int,
    config: StyleConfig,
    size: tuple[int, int],
) -> list[Tensor | None]:
    """Per-style masks (1, 1, h, w) at the working size from a greyscale or label image.

    One style: the grey level is a soft weight, where the style applies. Several styles: the
    mask holds one grey level (label) per style; labels sorted by value map to the styles in
    order (the darkest label is the first style)."""
    rgb = read(source, config, "mask").rgb
    mask = torch.einsum("c,chw->hw", torch.tensor([0.299, 0.587, 0.114]), rgb)  # grey level
    if tuple(mask.shape) != tuple(content.rgb.shape[-2:]):
        h, w = mask.shape
        ch, cw = content.rgb.shape[-2:]
        raise ImageError(f"the mask is {w}x{h} but the content image is {cw}x{ch}")
    if styles == 1:
        return [resize(mask[None], size)[None]]
    labels = torch.unique(mask)
    if len(labels) != styles:
        raise ImageError(
            f"the mask has {len(labels)} distinct grey levels but there are {styles} styles; "
            "use one level per style"
        )
    nearest = F.interpolate(mask[None, None], size=size, mode="nearest")
    return [(nearest == label).float() for label in labels]


def configured(config: StyleConfig | None, overrides: dict[str, Any]) -> StyleConfig:
    """``config`` (default: the ``default`` preset) with the API's keyword ``overrides``; a
    ``preset`` among them starts from that preset instead."""
    preset = overrides.pop("preset", None)
    if preset is not None:
        return resolve(preset, **overrides)
    return resolve(base=config or StyleConfig(), **overrides)


def stylize(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    config: StyleConfig | None = None,
    callback: Callable[[Iterate], bool | None] | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    mask: ImageSource | None = None,
    resume: Checkpoint | None = None,
    notify: Callable[[str], None] | None = None,
    progress: bool = False,
    start: Tensor | None = None,
    pixel: PixelTerm | None = None,
    networks: NetworkCache | None = None,
    **overrides: Any,
) -> Stylized:
    """Stylize ``content`` with one or more styles: the Python API.

    Args:
        content: a path, PIL image, (3, H, W) tensor (floats in [0, 1], or uint8) or
            (H, W, 3) numpy array (uint8, or floats in [0, 1]). Its alpha comes back.
        style: one image source, or a list of them to blend.
        config: a StyleConfig (default: the ``default`` preset).
        callback: gets an :class:`Iterate` each iteration; return True to stop.
        style_weights: one weight per style (normalised to sum 1; default equal).
        mask: a greyscale (one style) or label (several styles) image the size of the content:
            where each style applies.
        resume: continue a single-scale run from ``Iterate.checkpoint()``.
        notify: receives one-line notices before the run (e.g. a memory fallback); by
            default they are logged as warnings by the ``estilo.pipeline`` logger.
        progress: show a progress bar (tqdm: a widget in Jupyter, a line on a terminal).
        start: a (3, H, W) starting image in [0, 1] the content's size, instead of
            ``config.init`` (video starts each frame from the previous one, warped). It is
            taken as already painted: the run skips the coarse scales and paints at the last
            one only.
        pixel: an extra pixel-space term with target and mask the content's size (video's
            temporal loss).
        networks: keeps the VGG19 for the next run of the same settings and size (video's
            frames build it once).
        **overrides: any StyleConfig field, e.g. ``iterations=100``; ``preset="paper"`` too.

    Returns:
        A :class:`Stylized` with the best image and the loss history.
    """
    config = configured(config, overrides)
    sources = style_list(style)
    content_image = read(content, config, "content image")
    config = fit_print(config, *content_image.rgb.shape[-2:])
    wanted = working_size(content_image.rgb.shape[-2], content_image.rgb.shape[-1], config)
    output_config, config = config, supersampled(config)
    if start is not None:
        # A video frame starts from the previous one, warped: its composition is set, and the
        # coarse scales would blur what the temporal term holds (Ruder et al. 2016 paint each
        # frame at one scale from the warped previous).
        config = dataclasses.replace(config, scales=1)
    style_images = [read(s, config, "style image") for s in sources]
    init = start
    if init is None and config.init not in INIT_MODES:
        init = read(config.init, config, "init image").rgb

    size = working_size(content_image.rgb.shape[-2], content_image.rgb.shape[-1], config)
    masks = None if mask is None else read_mask(mask, content_image, len(sources), config, size)
    content_rgb = resize(content_image.rgb, size)
    styles = [
        resize(s.rgb, working_size(s.rgb.shape[-2], s.rgb.shape[-1], config, config.style_scale))
        for s in style_images
    ]
    if config.preserve_colors == "histogram":
        styles = [color.match_histogram(s, content_rgb) for s in styles]
    elif config.preserve_colors == "luminance":
        styles = [color.match_luminance(s, content_rgb) for s in styles]
    grey = config.preserve_colors == "luminance"
    if callback is not None and (grey or size != wanted):
        # Callbacks (progress views, snapshots) see the picture as the output will be: the
        # content's colours put back in luminance mode, at the output's size when supersampled.
        callback = _as_output(callback, content_rgb if grey else None, wanted)
    if init is not None:
        # At its own size: the loop resizes it to the first scale, and a copy at the working
        # size would be held through the run (768 MiB at 8192 px).
        init = color.luminance(init)[None] if grey else init[None]
    if pixel is not None:
        pixel = pixel.scaled(size)
        if grey:  # luminance mode optimises grey images: like with like
            pixel = dataclasses.replace(pixel, target=color.luminance(pixel.target[0])[None])
    inputs = RunInputs.make(
        color.luminance(content_rgb)[None] if grey else content_rgb[None],
        [s[None] for s in styles],
        style_weights,
        masks,
        init,
        pixel,
    )
    bar = None
    if progress:
        from .progress import Progress

        bar = Progress(config)
        callback = _with_bar(bar, callback)
    try:
        result: Result = optimise(
            inputs,
            config,
            callback=callback,
            weights=cached_weights(config.weights),
            resume=resume,
            notify=notify or log.warning,
            networks=networks,
        )
    finally:
        if bar is not None:
            bar.close()
    image = result.image[0].cpu()
    if grey:
        image = color.restore_chroma(image, content_rgb)
    alpha = None if content_image.alpha is None else resize(content_image.alpha, wanted)
    return Stylized(
        resize(image, wanted),
        alpha,
        result.history,
        result.status,
        result.best_iteration,
        result.seconds,
        output_config,
        result.planned,
    )


def _with_bar(
    bar: Callable[[Iterate], None], callback: Callable[[Iterate], bool | None] | None
) -> Callable[[Iterate], bool | None]:
    """``callback`` with the progress bar drawn first."""

    def both(step: Iterate) -> bool | None:
        bar(step)
        return callback(step) if callback is not None else None

    return both


def _as_output(
    callback: Callable[[Iterate], bool | None], content: Tensor | None, size: tuple[int, int]
) -> Callable[[Iterate], bool | None]:
    """``callback`` seeing each image with ``content``'s colours restored (luminance mode
    optimises grey images) and resized to ``size``."""

    def convert(step: Iterate) -> bool | None:
        image = step.image[0].cpu()
        if content is not None:
            image = color.restore_chroma(image, content)
        return callback(dataclasses.replace(step, image=resize(image, size)[None]))

    return convert


def check_output(
    output: Path, inputs: list[Path], config: StyleConfig, quality: int | None = None
) -> None:
    """Fail before any compute if ``output`` cannot be written, would clobber an input, or
    cannot take ``quality`` or the configuration's bit depth and DPI."""
    try:
        if output.is_dir():
            raise ImageError(f"output {str(output)!r} is a folder; give a file name")
    except OSError as exc:  # a name too long, a loop in its folder's path
        raise ImageError(f"output {str(output)!r}: {exc.strerror or exc}") from None
    check_quality(quality, output_format(output))
    check_print(output_format(output), config.bit_depth, config.dpi)
    folder = output.parent if str(output.parent) else Path(".")
    if folder.is_dir() and not os.access(folder, os.W_OK):
        raise ImageError(f"output folder {str(folder)!r} is not writable")
    check_writable(output)
    target = _entry(output)
    for source in inputs:
        if _entry(source) == target:
            raise ImageError(f"output {str(output)!r} is one of the inputs; refusing to overwrite")


def check_writable(path: Path, error: type[EstiloError] = ImageError) -> None:
    """Fail unless ``path``'s folder exists and holds a new file named after ``path``.

    An atomic save makes a temporary named after its target: make one now, so that a name the
    file system refuses (too long, say) fails before the run, not after it."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"output folder {str(folder)!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def check_writes(
    output: Path,
    inputs: Sequence[Path],
    config: StyleConfig,
    history: Path | None = None,
    quality: int | None = None,
) -> None:
    """Fail before any compute if any file the run will write would replace an input: the
    image, every ``--save-every`` snapshot the run can reach, and the history CSV; or if the
    output cannot take ``quality``.

    Files are replaced by renaming over their directory entry, so what matters is the entry:
    an input reached through a symlink counts as the entry the link resolves to."""
    check_output(output, list(inputs), config, quality)
    sources = {_entry(path): path for path in inputs}
    if history is not None and _entry(history) in sources:
        raise ImageError(f"history {str(history)!r} is one of the inputs; refusing to overwrite")
    if not config.save_every:
        return
    # The last iteration any scale can reach: the pyramid is largest for a square image, and
    # a print size sets the longest side in place of size.
    side = max(print_pixels(config.print_size, config.dpi)) if config.print_size else config.size
    last = planned_iterations(config, len(scale_sizes(side, side, config, 1)))
    folder, name = _entry(output.parent if str(output.parent) else Path(".")), output.name
    pattern = re.compile(re.escape(Path(name).stem) + r"_(\d{5,})" + re.escape(output.suffix))
    for entry, source in sources.items():
        match = pattern.fullmatch(entry.name) if entry.parent == folder else None
        if match is None:
            continue
        iteration = int(match.group(1))
        if (
            snapshot_path(output, iteration).name == entry.name
            and 0 < iteration <= last
            and iteration % config.save_every == 0
        ):
            raise ImageError(
                f"--save-every {config.save_every} would overwrite the input {str(source)!r} "
                f"(the snapshot of iteration {iteration}); choose another output name"
            )


def _entry(path: Path) -> Path:
    """``path`` with every symlink resolved, to compare what a write replaces with what an
    input reads."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: no input can be read through it anyway
        return path.absolute()


def snapshot_path(output: Path, iteration: int) -> Path:
    """Where ``--save-every`` puts iteration N: ``out.png`` -> ``out_00100.png``."""
    return output.with_name(f"{output.stem}_{iteration:05d}{output.suffix}")


def write_history(path: Path, history: list[LossRecord]) -> None:
    """The loss history as CSV (columns: HISTORY_COLUMNS), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for record in history:
        row = dataclasses.astuple(record)
        writer.writerow([row[0], *(f"{value:.6g}" for value in row[1:])])
    atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode()))


#: Settings added after checkpoints began, each with the value that paints as a checkpoint made
#: before it existed was painted: such a checkpoint resumes when the run asks for that value.
#: None: what it was is not known (``arithmetic``: ``auto`` chose by machine and version), so a
#: checkpoint without it resumes as it did before it was recorded.
SETTINGS_BEFORE: dict[str, str | None] = {
    "refine_hold": repr(0.0),
    "arithmetic": None,
    "layout_weight": repr(0.0),
}


def run_identity(
    config: StyleConfig, inputs: dict[str, Path], style_weights: Sequence[float] | None = None
) -> dict[str, dict[str, str]]:
    """What a checkpoint must match to be resumed: the settings that shape the picture, the
    styles' blend and the SHA-256 of each input file (named by its role: "content", ...)."""
    settings = {
        name: repr(value)
        for name, value in config.to_dict().items()
        if name not in RESUME_MAY_CHANGE
    }
    settings["style blend"] = repr(None if style_weights is None else list(style_weights))
    # What ``precision`` resolved to here: ``auto`` is float32 on one machine and bfloat16 on
    # another, and a run that changes arithmetic halfway paints another picture.
    dtype = compute_dtype(config.precision, pick_device(config.device)) or torch.float32
    settings["arithmetic"] = str(dtype).removeprefix("torch.")
    return {
        "settings": settings,
        "inputs": {role: file_sha256(path) for role, path in inputs.items()},
    }


def save_checkpoint(
    path: Path, checkpoint: Checkpoint, identity: dict[str, Any], mode: int | None = None
) -> None:
    """Write ``checkpoint`` and the identity of its run atomically (``mode``: see
    ``atomic_write``): a crash while saving leaves the previous checkpoint whole. Plain
    tensors, numbers and strings only, so that :func:`load_checkpoint` unpickles no code."""
    atomic_write(
        path,
        lambda handle: torch.save({**checkpoint.to_state(), "run": identity}, handle),
        mode,
        error=CheckpointError,
    )


def load_checkpoint(path: Path, identity: dict[str, Any]) -> Checkpoint:
    """The checkpoint at ``path``, once it is known to come from the run ``identity`` names.

    Read with ``torch.load(weights_only=True)``: a crafted file cannot run code.

    Raises:
        CheckpointError: no such file, not a checkpoint, damaged, or made with other inputs
            or settings (the message names the first difference).
    """
    label = f"checkpoint {str(path)!r}"
    with open_regular(path, CHECKPOINT_BYTES, label, CheckpointError) as handle:
        try:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as exc:  # whatever a damaged or foreign file makes torch raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{label} is damaged or not a checkpoint ({reason})") from None
    made = state.get("run") if isinstance(state, dict) else None
    if not isinstance(made, dict):
        raise CheckpointError(f"{label} is not the checkpoint of an estilo run")
    for part, differs in (("settings", "was made with {0} = {1}, not {2}"),
                          ("inputs", "was made from another {0} image")):  # fmt: skip
        then = made.get(part)
        then = then if isinstance(then, dict) else {}
        for key, value in identity[part].items():
            unrecorded = part == "settings" and key not in then and key in SETTINGS_BEFORE
            was = SETTINGS_BEFORE[key] if unrecorded else then.get(key)
            if unrecorded and was is None:
                continue
            if was != value:
                reason = differs.format(key, "(none)" if was is None else was, value)
                raise CheckpointError(f"{label} {reason}; delete it to start afresh")
    try:
        return Checkpoint.from_state(state)
    except ValueError as exc:
        raise CheckpointError(f"{label} is damaged: {exc}") from None


def run(
    content: Path,
    styles: Sequence[Path],
    output: Path,
    config: StyleConfig,
    callback: Callable[[Iterate], bool | None] | None = None,
    history: Path | None = None,
    style_weights: Sequence[float] | None = None,
    mask: Path | None = None,
    notify: Callable[[str], None] | None = None,
    quality: int | None = None,
    resume: bool = False,
) -> Stylized:
    """The CLI's job: check outputs, stylize, save snapshots, checkpoints, the image and the
    history.

    The best image is saved however the run ends (completed, stopped, diverged, interrupted);
    snapshots and image are saved with ``quality`` and, as PNGs, with the configuration.
    With ``config.checkpoint_every`` the run's state is saved next to the output
    (:func:`~estilo.formats.checkpoint_path`); ``resume`` continues from it. A completed run
    deletes its checkpoint; any other end keeps it.
    """
    roles = {"content": content, **{f"style {i}": s for i, s in enumerate(styles, 1)}}
    roles.update({"mask": mask} if mask else {})
    roles.update({"init": Path(config.init)} if config.init not in INIT_MODES else {})
    inputs = list(roles.values())
    check_writes(output, inputs, config, history, quality)
    saved_at = checkpoint_path(output)
    checkpoints = resume or bool(config.checkpoint_every)
    identity = run_identity(config, roles, style_weights) if checkpoints else {}
    previous = load_checkpoint(saved_at, identity) if resume else None
    if previous is None and checkpoints and (saved_at.exists() or saved_at.is_symlink()):
        raise CheckpointError(
            f"{str(saved_at)!r} holds an unfinished run: resume it, or delete it to start afresh"
        )
    if history is not None:
        if history.suffix.lower() != ".csv":
            raise ImageError(f"history {str(history)!r} must be a .csv file")
        folder = history.parent if str(history.parent) else Path(".")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ImageError(f"history folder {str(folder)!r} does not exist or is not writable")

    def on_iterate(step: Iterate) -> bool | None:
        if config.save_every and step.iteration % config.save_every == 0:
            path = snapshot_path(output, step.iteration)
            save_config(step.image, path, config, quality)
        every = config.checkpoint_every
        if every and step.iteration % every == 0 and step.checkpoint is not None:
            save_checkpoint(saved_at, step.checkpoint(), identity)
        return callback(step) if callback is not None else None

    result = stylize(
        content,
        list(styles),
        config,
        on_iterate,
        style_weights=style_weights,
        mask=mask,
        resume=previous,
        notify=notify,
    )
    result.save(output, quality)
    if checkpoints and result.status == "completed":
        saved_at.unlink(missing_ok=True)
    if history is not None:
        try:
            write_history(history, result.history)
        except EstiloError as exc:  # e.g. a full disk: the image is safe, say so
            raise ImageError(f"{exc}; the image was saved to {str(output)!r}") from None
    return result
