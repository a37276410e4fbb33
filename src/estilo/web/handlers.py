"""What the web page does, as plain functions: check a request, run it, describe its progress.

Everything a handler decides lives here, without Gradio, so the tests call it directly;
``page.py`` only lays out Gradio components and wires them to these functions.
"""

from __future__ import annotations

import html
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import StyleConfig, resolve
from ..errors import ConfigError, EstiloError, ImageError
from ..image.io import atomic_write, load_image, to_pil
from ..pipeline import stylize
from .jobs import Busy, JobQueue, Snapshot, Ticket
from .limits import Limits

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
    overrides = dict(zip(OPTIONS, values, strict=True))
    if not overrides["lr"]:  # 0 or an empty box: the optimiser's own rate
        overrides["lr"] = None
    for name in ("size", "iterations", "seed", "style_weight"):
        if overrides[name] is None:
            raise ConfigError(f"{name.replace('_', ' ')} is empty")
    config = resolve(preset, **overrides, max_pixels=limits.max_pixels, log_every=0)
    if config.size > limits.max_size:
        raise ConfigError(f"size is limited to {limits.max_size} px on this server")
    if config.iterations > limits.max_iterations:
        raise ConfigError(f"iterations are limited to {limits.max_iterations} on this server")
    what = ["content image"] + [f"style image {i}" for i in range(1, len(style_paths) + 1)]
    for path, name in zip([*content_paths, *style_paths], what, strict=True):
        if path.stat().st_size > limits.max_upload_mb * 2**20:
            raise ImageError(f"the {name} is larger than {limits.max_upload_mb:g} MB")
        load_image(path, limits.max_pixels, name)  # a broken file fails here, not in the queue
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    return RunRequest(content_paths[0], tuple(style_paths), config, folder)


def run_ticket(ticket: Ticket) -> None:
    """The queue's runner: stylize, then save the image and its configuration atomically."""
    request: RunRequest = ticket.payload
    try:
        result = stylize(
            request.content,
            list(request.styles),
            request.config,
            ticket.report,
            notify=ticket.notes.append,
        )
    except EstiloError as exc:
        ticket.error = str(exc)
        return
    image = result.save(request.folder / "estilo.png")
    settings = request.folder / "estilo.toml"
    atomic_write(settings, lambda handle: handle.write(request.config.to_toml().encode()))
    ticket.outputs = [str(image), str(settings)]
    ticket.status = result.status


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
    """Views of a ticket until it finishes. If the page goes away, Gradio closes this
    generator and the ``finally`` cancels the run (the unload handler does too)."""
    try:
        with queue.watching():
            while not ticket.finished.wait(interval):
                yield view(queue.snapshot(ticket))
            yield view(queue.snapshot(ticket))
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
) -> Iterator[Any]:
    """The Stylize button: check, queue, then stream the views. Bad input and a full line
    are answered in the page; nothing is queued for them."""
    try:
        request = make_request(content, styles, preset, values, limits, workdir)
        ticket = queue.submit(request, session)
    except EstiloError as exc:
        yield f"Error: {exc}", None, loss_curve([]), None
        return
    except Busy:
        yield (
            f"The server is busy ({queue.waiting} runs waiting, the most it takes): "
            "please try again later.",
            None,
            loss_curve([]),
            None,
        )
        return
    yield from follow(queue, ticket)


def preset_values(preset: str) -> list[Any]:
    """The option values a preset sets, in ``OPTIONS`` order (for the preset menu)."""
    config = resolve(preset)
    return [getattr(config, name) for name in OPTIONS]
