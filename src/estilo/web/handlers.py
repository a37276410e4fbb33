"""What the web page does, as plain functions: check a request, run it, describe its progress.

Everything a handler decides lives here, without Gradio, so the tests call it directly;
``page.py`` only lays out Gradio components and wires them to these functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.config import StyleConfig, resolve
from ..errors import CheckpointError, ConfigError, EstiloError, ImageError
from ..files import atomic_write
from ..formats import CHECKPOINT_SUFFIX
from ..image.io import load_image, save_image, to_pil
from ..pipeline import (
    Checkpoint,
    Iterate,
    load_checkpoint,
    resize,
    run_identity,
    save_checkpoint,
    stylize,
    supersampled,
    working_size,
)
from .jobs import Busy, JobQueue, Snapshot, Ticket
from .limits import Limits

log = logging.getLogger(__name__)

#: The options the page offers, in order; the rest keep the preset's values.
OPTIONS = (
    "size",
    "iterations",
    "optimizer",
    "lr",
    "style_weight",
    "style_loss",
    "preserve_colors",
    "seed",
)


@dataclass(frozen=True)
class RunRequest:
    """A checked run: input files, configuration, and the folder its outputs go to."""

    content: Path
    styles: tuple[Path, ...]
    config: StyleConfig
    folder: Path


def _paths(files: Any) -> list[Path]:
    """Gradio gives a path, a list of paths, or objects with ``.name``; None when empty."""
    if files is None:
        return []
    items = files if isinstance(files, (list, tuple)) else [files]
    return [Path(str(getattr(item, "name", item))) for item in items if item]


def make_request(
    content: Any,
    styles: Any,
    preset: str,
    values: Sequence[Any],
    limits: Limits,
    workdir: Path,
    session: str = "",
) -> RunRequest:
    """Check the uploads and options before a run joins the queue.

    Raises:
        EstiloError: with a message for the page (missing, too large or broken image, option
            out of range or over the server's limits).
    """
    content_paths, style_paths = _paths(content), _paths(styles)
    if not content_paths:
        raise ImageError("upload a content image (or use the samples)")
    if not style_paths:
        raise ImageError("upload at least one style image (or use the samples)")
    if len(style_paths) > limits.max_styles:
        raise ImageError(
            f"{len(style_paths)} style images: this server blends at most {limits.max_styles}"
        )
    overrides = dict(zip(OPTIONS, values, strict=True))
    if not overrides["lr"]:  # 0 or an empty box: the optimiser's own rate
        overrides["lr"] = None
    for name in ("size", "iterations", "seed", "style_weight"):
        if overrides[name] is None:
            raise ConfigError(f"{name.replace('_', ' ')} is empty")
    config = resolve(preset, **overrides, max_pixels=limits.max_pixels, log_every=0)
    if config.size > limits.max_size:
        raise ConfigError(f"size is limited to {limits.max_size} px on this server")
    if supersampled(config).size > limits.max_size:
        # The bound is on what the run computes: on a server limited under twice MIN_SCALE a
        # picture that would be supersampled past the limit is painted at its own size, in one
        # scale (a pyramid from half the limit would start where layouts were lost,
        # docs/quality.md, seventh run).
        config = replace(config, scales=1)
    painted = supersampled(config).size
    if config.iterations > limits.max_iterations:
        raise ConfigError(f"iterations are limited to {limits.max_iterations} on this server")
    what = ["content image"] + [f"style image {i}" for i in range(1, len(style_paths) + 1)]
    for path, name in zip([*content_paths, *style_paths], what, strict=True):
        # Messages name the user's file, never the server's path to the upload.
        if path.stat().st_size > limits.max_upload_mb * 2**20:
            raise ImageError(f"the {name} is larger than {limits.max_upload_mb:g} MB")
        # A broken file fails here, not in the queue; decoded small, as the run will.
        load_image(path, limits.max_pixels, name, shown=repr(path.name), max_side=painted)
    # 0700 (mkdtemp): results are the user's, not every local account's.
    folder = Path(tempfile.mkdtemp(prefix=_session_prefix(session), dir=workdir))
    return RunRequest(content_paths[0], tuple(style_paths), config, folder)


def run_ticket(ticket: Ticket) -> None:
    """The queue's runner: stylize, then save the image and its configuration atomically.

    While it runs, its state is saved every CHECKPOINT_SECONDS; a run that does not finish
    (cancelled, or the server stopped) is resumed by the next request with the same uploads
    and options, and a finished one deletes its checkpoint."""
    request: RunRequest = ticket.payload
    config = request.config
    saved_at, identity = _checkpoint_of(request)
    resume = _resumable(saved_at, identity)
    if resume is not None:
        ticket.notes.append(
            f"continued from iteration {resume.iteration}, where an earlier run of the same "
            "images and options stopped"
        )
    saved = [time.monotonic()]

    def report(step: Iterate) -> bool:
        if step.checkpoint is not None and time.monotonic() - saved[0] > CHECKPOINT_SECONDS:
            save_checkpoint(saved_at, step.checkpoint(), identity, PRIVATE)
            saved[0] = time.monotonic()
        return ticket.report(step)

    try:
        # Decoded no larger than the run needs: a 20-megapixel upload must not cost its full
        # size in float32 (16 of them took a server from 0.7 to 4.8 GB).
        # The size the run paints at: a supersampled picture needs its photo at that size.
        painted = supersampled(config).size
        content = _loaded(request.content, config, painted, "content image")
        side = max(16, math.ceil(painted * config.style_scale))
        styles = [
            _loaded(path, config, side, f"style image {i}")
            for i, path in enumerate(request.styles, 1)
        ]
        result = stylize(content, styles, config, report, resume=resume, notify=ticket.notes.append)
    except EstiloError as exc:
        ticket.error = _without_paths(str(exc), request)
        return
    if result.status == "completed":
        saved_at.unlink(missing_ok=True)
    text = config.to_toml()
    # The PNG carries the settings too, so the picture alone can reproduce the run.
    image = save_image(
        result.image, request.folder / "estilo.png", result.alpha, PRIVATE, settings=text
    )
    settings = request.folder / "estilo.toml"
    atomic_write(settings, lambda handle: handle.write(text.encode()), PRIVATE)
    ticket.outputs = [str(image), str(settings)]
    ticket.status = result.status


#: Results are readable by the server's account only.
PRIVATE = 0o600
#: Seconds between checkpoints of a running job: a cancel or a server restart loses at most
#: this much of it (short runs never checkpoint).
CHECKPOINT_SECONDS = 60.0
#: The folder, in the server's work folder, of unfinished runs' checkpoints. Each is named by
#: the digest of its run's identity, so the same request finds it from any session, after a
#: restart too; ``sweep`` ages them out like finished runs.
CHECKPOINTS = "checkpoints"


def _checkpoint_of(request: RunRequest) -> tuple[Path, dict[str, Any]]:
    """Where the run of ``request`` keeps its checkpoint, and the identity it must match."""
    styles = {f"style {i}": path for i, path in enumerate(request.styles, 1)}
    identity = run_identity(request.config, {"content": request.content, **styles})
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    folder = request.folder.parent / CHECKPOINTS
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / (digest + CHECKPOINT_SUFFIX), identity


def _resumable(path: Path, identity: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint at ``path``, or None if there is none or it cannot be trusted (then it
    goes, with a line in the server's log: the run starts afresh)."""
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, identity)
    except CheckpointError as exc:
        log.warning("%s; starting the run afresh", exc)
        path.unlink(missing_ok=True)
        return None


def _loaded(path: Path, config: StyleConfig, side: int, what: str) -> Any:
    loaded = load_image(path, config.max_pixels, what, shown=repr(path.name), max_side=side)
    return to_pil(loaded.rgb, loaded.alpha)


def _without_paths(message: str, request: RunRequest) -> str:
    """``message`` with the server's paths replaced by the user's file names."""
    for path in (request.content, *request.styles, request.folder):
        message = message.replace(str(path), path.name)
    return message


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def status_text(snap: Snapshot) -> str:
    """One line for the page: place in line, progress and ETA, or how the run ended."""
    if snap.state == "waiting":
        ahead = "you are next" if snap.position == 1 else f"{snap.position - 1} runs ahead of you"
        return f"Waiting in line: position {snap.position} ({ahead})."
    if snap.state == "running":
        if not snap.iteration:
            return "Starting: loading the images and computing the targets…"
        eta = snap.eta
        left = f", about {_clock(eta)} left" if eta is not None else ""
        loss = snap.losses[-1][1] if snap.losses else math.nan
        return f"Iteration {snap.iteration} of {snap.total}, loss {loss:.4g}{left}."
    if snap.error:
        return f"Error: {snap.error}"
    endings = {
        "completed": f"Done in {_clock(snap.seconds)}: download the image and its settings below.",
        "stopped": f"Cancelled at iteration {snap.iteration}: the best image so far is below.",
        "diverged": "The loss became NaN or infinite (try a smaller learning rate); the best "
        "finite image is below.",
        "interrupted": "Interrupted; the best image so far is below.",
    }
    if not snap.outputs and snap.status == "stopped":
        return "Cancelled before it started."
    return endings.get(snap.status, f"Finished: {snap.status}.")


def loss_curve(losses: Sequence[tuple[int, float]], width: int = 420, height: int = 140) -> str:
    """The loss against iteration as an inline SVG (log scale): no plotting library, no
    requests from the page."""
    points = [(i, math.log10(v)) for i, v in losses if math.isfinite(v) and v > 0]
    if len(points) < 2:
        return "<p class='estilo-curve'>The loss curve appears after two iterations.</p>"
    (x0, x1), (y0, y1) = (
        (min(p[0] for p in points), max(p[0] for p in points)),
        (min(p[1] for p in points), max(p[1] for p in points)),
    )
    spread_x, spread_y = max(x1 - x0, 1), max(y1 - y0, 1e-9)
    path = " ".join(
        f"{8 + (x - x0) / spread_x * (width - 16):.1f},"
        f"{8 + (y1 - y) / spread_y * (height - 16):.1f}"
        for x, y in points
    )
    label = f"loss {10**y1:.3g} → {10 ** points[-1][1]:.3g} (log scale)"
    return (
        f"<svg class='estilo-curve' width='{width}' height='{height}' role='img' "
        f"aria-label='{html.escape(label)}'><title>{html.escape(label)}</title>"
        f"<rect width='100%' height='100%' fill='none' stroke='#bbb'/>"
        f"<polyline points='{path}' fill='none' stroke='#c2410c' stroke-width='2'/></svg>"
        f"<p class='estilo-curve'>{html.escape(label)}</p>"
    )


def view(snap: Snapshot) -> tuple[str, Any, str, list[str] | None]:
    """(status, live image, loss curve, downloads) for the page's output components."""
    image = None if snap.image is None else to_pil(snap.image[0])
    notes = "".join(f"\n\n{note}" for note in snap.notes)
    return status_text(snap) + notes, image, loss_curve(snap.losses), snap.outputs or None


def follow(queue: JobQueue, ticket: Ticket, interval: float = 0.5) -> Iterator[Any]:
    """Views of a ticket until it finishes, each with the ticket's secret (the page's Cancel
    presents it). If the page goes away, Gradio closes this generator and the ``finally``
    cancels the run."""
    try:
        with queue.watching(ticket):
            while not ticket.finished.wait(interval):
                yield (*view(queue.snapshot(ticket)), ticket.secret)
            yield (*view(queue.snapshot(ticket)), ticket.secret)
    finally:
        ticket.cancel()


def start(
    queue: JobQueue,
    limits: Limits,
    workdir: Path,
    session: str,
    content: Any,
    styles: Any,
    preset: str,
    values: Sequence[Any],
    client: str = "",
) -> Iterator[Any]:
    """The Stylize button: check, queue, then stream the views. Bad input, a full line and
    a full disk are answered in the page; nothing is queued or kept for them."""
    if sweep(queue, limits, workdir) > limits.max_disk_mb * 2**20:
        yield _answer("The server's disk budget is full: please try again later.")
        return
    try:
        request = make_request(content, styles, preset, values, limits, workdir, session)
    except EstiloError as exc:
        yield _answer(f"Error: {exc}")
        return
    try:
        ticket = queue.submit(request, session, client)
    except Busy as exc:
        shutil.rmtree(request.folder, ignore_errors=True)
        yield _answer(
            f"The server is busy ({exc}; {queue.waiting} runs waiting): please try again later."
        )
        return
    yield from follow(queue, ticket)


def _answer(text: str) -> tuple[Any, ...]:
    return text, None, loss_curve([]), None, ""


def _session_prefix(session: str) -> str:
    return "run-" + hashlib.sha256(session.encode()).hexdigest()[:12] + "-"


def sweep(queue: JobQueue, limits: Limits, workdir: Path) -> int:
    """Delete the run folders of finished runs older than ``keep_minutes``, then the oldest
    finished ones while the server's files exceed ``max_disk_mb``; returns the bytes left."""
    active = {t.payload.folder for t in queue.tickets() if isinstance(t.payload, RunRequest)}
    # Unfinished runs' checkpoints age and go like finished runs; a running job's is
    # rewritten every CHECKPOINT_SECONDS, and losing it costs only the chance to resume.
    finished = sorted(
        [p for p in workdir.glob("run-*") if p.is_dir() and p not in active]
        + list((workdir / CHECKPOINTS).glob("*" + CHECKPOINT_SUFFIX)),
        key=lambda p: p.stat().st_mtime,
    )
    cutoff = time.time() - limits.keep_minutes * 60
    for entry in [p for p in finished if p.stat().st_mtime < cutoff]:
        _remove(entry)
        finished.remove(entry)
    used = _disk_usage(workdir)
    while finished and used > limits.max_disk_mb * 2**20:
        entry = finished.pop(0)
        used -= _disk_usage(entry)
        _remove(entry)
    return used


def _remove(entry: Path) -> None:
    """Delete a run folder or a checkpoint file."""
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def forget_session(queue: JobQueue, workdir: Path, session: str) -> int:
    """A page closed: delete the files of its finished runs (its running one is cancelled
    by the stream's end). Returns how many folders went."""
    active = {t.payload.folder for t in queue.tickets() if isinstance(t.payload, RunRequest)}
    gone = 0
    for folder in workdir.glob(_session_prefix(session) + "*"):
        if folder not in active:
            shutil.rmtree(folder, ignore_errors=True)
            gone += 1
    return gone


def _disk_usage(folder: Path) -> int:
    """The disk the files under ``folder`` (or the file ``folder``) take."""
    if folder.is_file():
        return folder.stat().st_blocks * 512
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def preset_values(preset: str) -> list[Any]:
    """The option values a preset sets, in ``OPTIONS`` order (for the preset menu)."""
    config = resolve(preset)
    return [getattr(config, name) for name in OPTIONS]


#: Model files the instant mode lists at most: a folder of thousands is no menu.
MAX_MODELS = 50


def _models(folder: Path | None) -> dict[str, Path]:
    """The instant mode's menu, name -> file: the networks shipped with estilo (by name, e.g.
    ``starry-night``, at their package paths, so the folder cannot shadow them), then the
    fast-mode model files (``*.pt``) directly in ``folder`` (``estilo serve --models DIR``),
    by file name, at most MAX_MODELS of them."""
    from ..fast.model import BUNDLED

    if folder is None or not folder.is_dir():
        return dict(BUNDLED)
    files = sorted(p for p in folder.glob("*.pt") if p.is_file())[:MAX_MODELS]
    return {**BUNDLED, **{p.name: p for p in files}}


def list_models(folder: Path | None) -> list[str]:
    """The names the instant mode offers (``_models``)."""
    return list(_models(folder))


def paint_instant(folder: Path | None, name: str, photo: Any, limits: Limits) -> Any:
    """The instant mode: paint an uploaded photo with a shipped or saved model, its longest
    side at most ``limits.max_size``; a PIL image.

    Raises:
        EstiloError: no such model (only names the folder lists are opened), no photo, a
            broken or oversized photo, a model file that does not load.
    """
    from ..fast import load_model

    path = _models(folder).get(name)  # only what the menu lists is opened
    if path is None:
        raise ConfigError("choose one of the saved models")
    paths = _paths(photo)
    if not paths:
        raise ImageError("upload a photo")
    config = resolve(size=limits.max_size)
    loaded = load_image(
        paths[0], limits.max_pixels, "photo", shown=repr(paths[0].name), max_side=config.size
    )
    height, width = loaded.rgb.shape[-2:]
    size = working_size(height, width, config) if max(height, width) > config.size else None
    rgb = loaded.rgb if size is None else resize(loaded.rgb, size)
    alpha = loaded.alpha if size is None or loaded.alpha is None else resize(loaded.alpha, size)
    model = load_model(path)
    return to_pil(model(rgb[None])[0], alpha)
