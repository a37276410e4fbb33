"""Training a fast-mode network for a style on a folder of photos (Johnson et al. 2016).

The network learns to minimise estilo's own objective (``Objective.batch``: the content,
style and TV terms of the configuration, with the style targets computed once) over random
square crops, flipped at random, of the user's photos. Departure from Johnson et al.: they
trained on COCO's 80 000 photos for two epochs; fast mode trains on whatever folder the user
has, for far fewer steps (``steps``), so the photos are resized once (shorter side 1.25 crops)
and every step draws fresh crops and flips from them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.config import (
    TRAIN_FIELDS,
    TRAINING_DEFAULTS,
    TRAINING_FIELDS,
    StyleConfig,
    TrainConfig,
    resolve,
    resolve_training,
    training_objective,
)
from ..core.registry import STYLE_LOSSES, lookup
from ..errors import ConfigError, ImageError
from ..files import read_regular
from ..image import color
from ..image.io import load_image
from ..pipeline import (
    ImageSource,
    Iterate,
    LossRecord,
    Objective,
    RunInputs,
    Status,
    TransformerNet,
    VGG19Features,
    cached_weights,
    compute_dtype,
    min_input_size,
    pick_device,
    read,
    resize,
    style_list,
)
from .model import FastModel, ModelError, StyleSource, read_state, save_model, source_hash

#: Photo files fast mode trains on, found in the folder and every folder below it.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Each photo is resized once so that its shorter side is this many crops: crops then cover
#: most of the picture, at about the scale the network will later see whole photos.
PHOTO_SCALE = 1.25
#: Options the checkpoint may differ in when resumed: where it runs and how long it trains.
RESUMABLE = {"device", "max_pixels", "steps", "checkpoint_every"}
#: A LossRecord's fields, in order: how the checkpoint stores the history.
_RECORD = ("iteration", "seconds", "loss", "content", "style", "tv")

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A finished training: the model (saved to the output), its loss history (one record
    per step) and how it ended (``completed``, ``stopped`` by the callback, ``diverged``:
    the output was not written, or ``interrupted``: saved as far as it got)."""

    model: FastModel
    history: list[LossRecord]
    status: Status


def find_photos(folder: str | Path) -> list[Path]:
    """The JPEG and PNG files in ``folder`` and its subfolders, sorted; ImageError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"photos folder {str(folder)!r} does not exist or is not a folder")
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        raise ImageError(f"photos folder {str(folder)!r} has no JPEG or PNG files")
    return paths


def load_photos(
    paths: Sequence[Path], crop: int, max_pixels: int, notify: Callable[[str], None]
) -> list[Tensor]:
    """Each readable photo as uint8 (3, h, w) with its shorter side PHOTO_SCALE crops;
    unreadable ones are skipped with a notice, and ImageError if none can be read."""
    side = round(crop * PHOTO_SCALE)
    photos, skipped = [], []
    for path in paths:
        try:
            rgb = load_image(path, max_pixels, "photo", max_side=side).rgb
        except ImageError as exc:
            skipped.append(str(exc))
            continue
        height, width = rgb.shape[-2:]
        scale = side / min(height, width)
        size = (max(crop, round(height * scale)), max(crop, round(width * scale)))
        photos.append(resize(rgb, size).mul(255).round().to(torch.uint8))
    if not photos:
        raise ImageError(f"none of the {len(paths)} photos could be read ({skipped[0]})")
    if skipped:
        notify(f"skipped {len(skipped)} unreadable photos ({skipped[0]})")
    return photos


def random_batch(photos: Sequence[Tensor], size: int, crop: int, seed: int) -> Tensor:
    """(size, 3, crop, crop) in [0, 1]: random crops of random photos, half of them flipped
    left to right; the same ``seed`` gives the same batch (a resumed run carries on)."""
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for index in torch.randint(len(photos), (size,), generator=generator).tolist():
        photo = photos[index]
        top = int(torch.randint(photo.shape[-2] - crop + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[-1] - crop + 1, (1,), generator=generator))
        piece = photo[:, top : top + crop, left : left + crop]
        if torch.rand((), generator=generator) < 0.5:
            piece = piece.flip(-1)
        crops.append(piece)
    return torch.stack(crops).float() / 255


def checkpoint_path(output: Path) -> Path:
    """Where training keeps its checkpoint: ``model.pt`` -> ``model.pt.ckpt``."""
    return output.with_name(output.name + ".ckpt")


def split_options(
    config: StyleConfig | None, training: TrainConfig | None, overrides: dict[str, Any]
) -> tuple[StyleConfig, TrainConfig]:
    """The objective's and the training's configurations from keyword overrides of either."""
    stray = sorted(set(overrides) - set(TRAINING_FIELDS) - set(TRAIN_FIELDS))
    if stray:
        raise ConfigError(
            f"option {stray[0]!r} does not apply to training; "
            f"valid: {', '.join((*TRAINING_FIELDS, *TRAIN_FIELDS))}"
        )
    style_options = {k: v for k, v in overrides.items() if k in TRAINING_FIELDS}
    train_options = {k: v for k, v in overrides.items() if k in TRAIN_FIELDS}
    config = (
        resolve(base=config, **style_options) if config else training_objective(**style_options)
    )
    if config.preserve_colors == "histogram":
        raise ConfigError(
            "preserve_colors histogram recolours the style to each photo, but a network is "
            "trained for one style: use luminance"
        )
    if lookup(STYLE_LOSSES, config.style_loss, "style loss").load().anchor is not None:
        raise ConfigError(
            f"style loss {config.style_loss} holds each position of one photo to its own style "
            "feature, but a network is trained on many photos: use another style loss"
        )
    base = (training or TrainConfig()).to_dict()
    return config, resolve_training(**{**base, **train_options})


def optimiser_balance(config: StyleConfig, overrides: dict[str, Any]) -> list[str]:
    """Notices for the fields of ``config`` that hold the optimiser's default where training
    has its own (TRAINING_DEFAULTS) and no override sets them: most likely a config made with
    ``resolve()`` for ``stylize``, whose balance loses the photo in a trained network."""
    optimiser = resolve()
    return [
        f"the config's {name} {getattr(config, name)!r} is the optimiser's default; "
        f"training's is {value!r} (build the config with estilo.training_objective(), or "
        f"give {name}= to keep this one)"
        for name, value in TRAINING_DEFAULTS.items()
        if name not in overrides and getattr(config, name) == getattr(optimiser, name) != value
    ]


def train(
    style: ImageSource | Sequence[ImageSource],
    photos: str | Path,
    output: str | Path,
    config: StyleConfig | None = None,
    training: TrainConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    resume: bool = False,
    callback: Callable[[Iterate], bool | None] | None = None,
    notify: Callable[[str], None] | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Trained:
    """Train a network that paints photos in ``style``; save it to ``output`` (a ``.pt``).

    Args:
        style: one image source (as ``estilo.stylize`` takes), or a list of them to blend.
        photos: a folder of JPEG and PNG photos (searched recursively) to train on.
        output: the model file; its checkpoint is kept beside it (``model.pt.ckpt``).
        config: the objective (TRAINING_FIELDS of a StyleConfig; default:
            ``training_objective()``, with training's own TRAINING_DEFAULTS; a config holding
            the optimiser's defaults for them gets a notice, see ``optimiser_balance``).
        training: steps, batch size, crop, width, learning rate, checkpoints.
        style_weights: one blend weight per style (normalised to sum 1).
        resume: carry on from the checkpoint beside ``output``, made with the same styles and
            options (only ``steps``, ``checkpoint_every`` and ``device`` may differ).
        callback: gets an :class:`Iterate` per step (``image``: the batch's first output);
            return True to stop (the model so far is saved).
        notify: receives notices (skipped photos); by default logged as warnings.
        progress: show a progress bar with the loss and the time left.
        **overrides: any field of TrainConfig or TRAINING_FIELDS, e.g. ``steps=500``.

    Raises:
        EstiloError: an empty or unreadable folder, bad options, an output that cannot be
            written, a checkpoint that is missing, foreign or made with other options.
    """
    notify = notify or log.warning
    if config is not None:
        for notice in optimiser_balance(config, overrides):
            notify(notice)
    config, training = split_options(config, training, overrides)
    output = Path(output)
    _check_output(output)
    ckpt = checkpoint_path(output)
    if not resume and (ckpt.exists() or ckpt.is_symlink()):
        raise ModelError(
            f"{str(ckpt)!r} holds an earlier training of this model: resume it, or delete it "
            "to start afresh"
        )
    styles = [_style_source(s, config, i) for i, s in enumerate(style_list(style))]
    paths = find_photos(photos)
    device = pick_device(config.device)
    objective = _objective(config, training, [s for _, _, s in styles], style_weights, device)
    named = tuple(
        StyleSource(name, digest, weight)
        for (name, digest, _), weight in zip(styles, objective.style_weights, strict=True)
    )
    torch.manual_seed(config.seed)
    model = FastModel(TransformerNet(training.width), named, config, training, 0)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=training.train_lr)
    history: list[LossRecord] = []
    if resume:
        history = _resume(ckpt, model, optimizer)
    pictures = load_photos(paths, training.crop, config.max_pixels, notify)
    model.net.to(device).train()
    for group in optimizer.state.values():  # Adam's moments follow the network's device
        for key, value in group.items():
            if isinstance(value, Tensor) and value.dim():
                group[key] = value.to(device)

    save = _saver(model, optimizer, history, output, ckpt)
    bar = None
    if progress:
        from ..progress import Progress

        bar = Progress(resolve(iterations=training.steps, tolerance=0))
    start = time.perf_counter() - (history[-1].seconds if history else 0.0)
    status: Status = "completed"
    try:
        for step in range(model.steps + 1, training.steps + 1):
            batch = random_batch(pictures, training.batch_size, training.crop, config.seed + step)
            batch = batch.to(device)
            if config.preserve_colors == "luminance":
                batch = torch.stack([color.luminance(one) for one in batch])
            out = model.net(batch)
            loss, parts = objective.batch(out, batch)
            if not math.isfinite(loss.item()):
                status = "diverged"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            model.steps = step
            record = Iterate(
                step,
                time.perf_counter() - start,
                loss.item(),
                parts["content"].item(),
                parts["style"].item(),
                parts["tv"].item(),
                total=training.steps,
                image=out[:1].detach(),
            )
            history.append(LossRecord(*(getattr(record, f) for f in _RECORD)))
            if bar is not None:
                bar(record)
            if training.checkpoint_every and step % training.checkpoint_every == 0:
                save(True)
            if callback is not None and callback(record):
                status = "stopped"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    if status != "diverged":
        save(True)
        save(False)
    model.net.eval()
    return Trained(model, history, status)


def _check_output(output: Path) -> None:
    """Fail before loading anything if the model cannot be written where asked."""
    if output.suffix.lower() != ".pt":
        raise ModelError(f"model file {str(output)!r} must end in .pt")
    if output.is_dir():
        raise ModelError(f"model file {str(output)!r} is a folder")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise ModelError(f"folder {str(folder)!r} for the model does not exist")


def _style_source(source: ImageSource, config: StyleConfig, index: int) -> tuple[str, str, Tensor]:
    """(name, SHA-256, (3, H, W) pixels) of a style image: a file's name and bytes, or for an
    image given from Python a number and the hash of its pixels."""
    rgb = read(source, config, "style image").rgb
    if isinstance(source, (str, Path)):
        data = read_regular(source, 2**31, f"style image {str(source)!r}", ImageError)
        return Path(source).name, source_hash(data), rgb
    pixels = rgb.mul(255).round().to(torch.uint8).numpy().tobytes()
    return f"style {index + 1}", source_hash(pixels), rgb


def _objective(
    config: StyleConfig,
    training: TrainConfig,
    styles: list[Tensor],
    weights: Sequence[float] | None,
    device: torch.device,
) -> Objective:
    """The objective with its style targets, each style at ``style_scale`` crops a side."""
    layers = set(config.content_layers) | set(config.style_layers)
    smallest = min_input_size(layers)
    sized = []
    for rgb in styles:
        height, width = rgb.shape[-2:]
        scale = training.crop * config.style_scale / max(height, width)
        size = (max(smallest, round(height * scale)), max(smallest, round(width * scale)))
        one = resize(rgb, size)
        if config.preserve_colors == "luminance":
            # Departure from the optimiser's luminance mode, which matches the style's luma
            # to the one photo's mean and deviation: a network serves every photo.
            one = color.luminance(one)
        sized.append(one[None].to(device))
    net = VGG19Features(
        cached_weights(config.weights),
        layers,
        config.pooling,
        autocast=compute_dtype(config.precision, device),
    ).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one crop size throughout: tune once
    probe = torch.full((1, 3, training.crop, training.crop), 0.5, device=device)
    return Objective(net, RunInputs.make(probe, sized, weights), config)


def _saver(
    model: FastModel,
    optimizer: torch.optim.Optimizer,
    history: list[LossRecord],
    output: Path,
    ckpt: Path,
) -> Callable[[bool], None]:
    """``save(True)`` writes the checkpoint (with Adam's state and the history), ``save(False)``
    the model file alone."""

    def save(checkpoint: bool) -> None:
        if not checkpoint:
            save_model(model, output)
            return
        rows = [[getattr(r, f) for f in _RECORD] for r in history]
        save_model(model, ckpt, optimizer=optimizer.state_dict(), history=rows)

    return save


def _resume(ckpt: Path, model: FastModel, optimizer: torch.optim.Optimizer) -> list[LossRecord]:
    """Load the checkpoint into ``model`` and ``optimizer`` once it is known to be of the same
    training; its history."""
    label = f"checkpoint {str(ckpt)!r}"
    if not ckpt.exists():
        raise ModelError(f"{label} does not exist: nothing to resume")
    state = read_state(ckpt, "checkpoint")
    saved = FastModel.from_state(state, label)
    if [(s.sha256, round(s.weight, 6)) for s in saved.styles] != [
        (s.sha256, round(s.weight, 6)) for s in model.styles
    ]:
        names = ", ".join(s.name for s in saved.styles)
        raise ModelError(f"{label} was trained for other style images ({names})")
    for name in (*TRAINING_FIELDS, *TRAIN_FIELDS):
        if name in RESUMABLE:
            continue
        source = model.config if name in TRAINING_FIELDS else model.training
        was = getattr(saved.config if name in TRAINING_FIELDS else saved.training, name)
        if was != getattr(source, name):
            since = (
                f" (estilo train's default {name} is {TRAINING_DEFAULTS[name]!r} since 0.1.0; "
                f"give --{name.replace('_', '-')} {was!r} to resume this one)"
                if name in TRAINING_DEFAULTS and was != TRAINING_DEFAULTS[name]
                else ""
            )
            raise ModelError(
                f"{label} was trained with {name} = {was!r}, not {getattr(source, name)!r}{since}"
            )
    if saved.steps >= model.training.steps:
        raise ModelError(f"{label} has trained {saved.steps} steps already; ask for more steps")
    rows = state.get("history")
    try:
        optimizer.load_state_dict(state["optimizer"])
        history = [LossRecord(int(r[0]), *map(float, r[1:])) for r in rows]  # type: ignore[union-attr]
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{label} is damaged: its training state is malformed") from None
    model.net.load_state_dict(saved.net.state_dict())
    model.steps = saved.steps
    return history
