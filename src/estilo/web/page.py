"""The page behind ``estilo serve`` (Gradio): upload, choose, watch the image form, download.

Only layout and wiring live here; what each control does is in ``handlers.py``. The option
menus come from :class:`StyleConfig`'s fields and the registries, like the CLI's flags, so the
two never drift. Imported only when Gradio is installed (``estilo[web]``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ..core.config import FIELDS, PRESETS, resolve
from ..errors import EstiloError
from ..image.samples import DEMO_CONTENT, DEMO_STYLE, SAMPLES
from .handlers import (
    OPTIONS,
    forget_session,
    list_models,
    loss_curve,
    paint_instant,
    preset_values,
    run_ticket,
    start,
)
from .jobs import JobQueue
from .limits import Limits

log = logging.getLogger(__name__)
#: How long shutdown waits for the running run to reach its next iteration and stop.
SHUTDOWN_SECONDS = 60.0


def build(
    queue: JobQueue,
    limits: Limits,
    workdir: Path,
    models: Path | None = None,
    instant: bool = True,
) -> gr.Blocks:
    """Lay out the page and connect it to the handlers; with ``instant``, an instant mode below
    paints with the networks shipped with estilo and, with ``models``, a folder's fast-mode
    model files."""
    defaults = resolve()

    def widget(name: str) -> Any:
        meta = FIELDS[name].metadata
        label, info = name.replace("_", " ").capitalize(), meta["help"]
        info += " (0: the default)" if name == "lr" else ""
        value = getattr(defaults, name)
        if "choices" in meta:
            return gr.Dropdown(list(meta["choices"]), value=value, label=label, info=info,
                               elem_id=name)  # fmt: skip
        if name == "size":
            return gr.Slider(64, limits.max_size, value=min(value, limits.max_size), step=16,
                             label=label, info=info, elem_id=name)  # fmt: skip
        precision = 0 if FIELDS[name].type == "int" else None
        return gr.Number(value, label=label, info=info, precision=precision, elem_id=name)

    page: gr.Blocks
    keep = max(60, int(limits.keep_minutes * 60))  # Gradio's copies age out with our runs
    with gr.Blocks(title="estilo", delete_cache=(keep, keep)) as page:
        gr.Markdown(
            "# estilo\nNeural style transfer: a photo repainted in the manner of a painting. "
            "Upload a content image and one or more style images (or use the samples), "
            "then Stylize and watch the picture form."
        )
        with gr.Row():
            with gr.Column():
                content = gr.File(
                    label="Content image (the photo)", file_types=["image"], elem_id="content"
                )
                styles = gr.File(
                    label="Style image(s) (the paintings)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="styles",
                )
                samples = gr.Button("Use the sample images", elem_id="samples")
                preset = gr.Dropdown(list(PRESETS), value="default", label="Preset",
                                     elem_id="preset")  # fmt: skip
                widgets = [widget(name) for name in OPTIONS]
                with gr.Row():
                    run = gr.Button("Stylize", variant="primary", elem_id="start")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
            with gr.Column():
                status = gr.Markdown("Ready.", elem_id="status")
                live = gr.Image(label="Progress", interactive=False, type="pil", elem_id="live")
                curve = gr.HTML(loss_curve([]), elem_id="curve")
                files = gr.File(
                    label="Download: the image and its settings (estilo stylize --config)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="files",
                )
                # The run's secret, held by this page only: Cancel sends it back.
                token = gr.Textbox(visible=False, elem_id="token")

        if instant:
            _instant(models, limits)

        # Gradio passes a dict when the inputs are a set, and injects the request by its type.
        def on_start(data: dict[Any, Any], request: gr.Request) -> Iterator[Any]:
            yield from start(
                queue,
                limits,
                workdir,
                request.session_hash or "",
                data[content],
                data[styles],
                data[preset],
                [data[w] for w in widgets],
                client=_client(request),
            )

        def on_cancel(secret: str) -> None:
            queue.cancel(secret or "")

        def on_unload(request: gr.Request) -> None:
            session = request.session_hash or ""
            queue.cancel_session(session)
            forget_session(queue, workdir, session)

        run.click(
            on_start,
            {content, styles, preset, *widgets},
            [status, live, curve, files, token],
            concurrency_limit=limits.max_waiting + 2,  # our queue decides; Gradio's never waits
            show_progress="hidden",
        )
        cancel.click(on_cancel, token, None, concurrency_limit=None, show_progress="hidden")
        samples.click(lambda: (str(DEMO_CONTENT), [str(DEMO_STYLE)]), None, [content, styles])
        preset.change(preset_values, preset, widgets)
        page.unload(on_unload)  # the tab closed: stop its run, free the line and the disk
    return page


def _instant(models: Path | None, limits: Limits) -> None:
    """The instant mode's controls: a shipped or saved model, a photo, the picture in one
    pass."""
    gr.Markdown(
        "## Instant: a trained network\nA network trained for one style (`estilo train`, or "
        "the one shipped with estilo) paints the photo in one pass, in seconds."
    )
    with gr.Row():
        with gr.Column():
            names = list_models(models)  # the shipped network first: chosen until changed
            choice = gr.Dropdown(
                names, value=names[0] if names else None, label="Model", elem_id="instant-model"
            )
            photo = gr.File(label="Photo", file_types=["image"], elem_id="instant-photo")
            paint = gr.Button("Paint", variant="primary", elem_id="instant-paint")
        with gr.Column():
            message = gr.Markdown("", elem_id="instant-status")
            painted = gr.Image(label="Painted", interactive=False, type="pil", elem_id="painted")

    def on_paint(name: str, upload: Any) -> tuple[str, Any]:
        try:
            return "", paint_instant(models, name, upload, limits)
        except EstiloError as exc:
            return f"**{exc}**", None

    paint.click(on_paint, [choice, photo], [message, painted], concurrency_limit=1)


def theme() -> gr.themes.Base:
    """Gradio's default theme with local fonts: the stock one fetches Google Fonts."""
    default: gr.themes.Base = gr.themes.Default(
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    )
    return default


def _client(request: gr.Request) -> str:
    """Who a request comes from, for the per-client share of the line: the signed-in user
    with --auth, else the address."""
    if request.username:
        return f"user:{request.username}"
    return f"host:{request.client.host}" if request.client else ""


def serve(
    host: str,
    port: int,
    limits: Limits,
    *,
    block: bool = True,
    auth: tuple[str, str] | None = None,
    models: Path | None = None,
    instant: bool = True,
) -> tuple[gr.Blocks, JobQueue]:
    """Start the server; with ``block`` serve until Ctrl-C (or SIGTERM), then shut down and
    delete every file the server made."""
    workdir = Path(tempfile.mkdtemp(prefix="estilo-serve-"))  # 0700
    # Gradio's uploads and its copies of results go in there too: private, counted in the
    # disk budget, aged out by delete_cache and removed at exit.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workdir / "gradio"))
    queue = JobQueue(run_ticket, limits.max_waiting, limits.max_per_client)
    page = build(queue, limits, workdir, models, instant)
    page.queue(default_concurrency_limit=None)
    page.launch(
        auth=auth,
        server_name=host,
        server_port=port,
        max_file_size=f"{limits.max_upload_mb:g}mb",
        allowed_paths=[str(SAMPLES), str(workdir)],
        theme=theme(),
        ssr_mode=False,
        footer_links=[],
        show_error=True,
        quiet=True,
        prevent_thread_lock=True,  # we block below, where Ctrl-C can stop the run cleanly
    )
    if block:
        try:
            while True:
                time.sleep(0.5)  # Ctrl-C arrives here, in the main thread
        except KeyboardInterrupt:
            pass
        finally:
            shutdown(page, queue, workdir)
    return page, queue


def shutdown(page: gr.Blocks, queue: JobQueue, workdir: Path | None = None) -> None:
    """Stop the run at its next iteration, tell every page, then close the server.

    Exiting with the worker thread still inside torch aborts the process ("terminate called
    without an active exception"), so the worker is joined first; one that does not stop in
    time (a very long L-BFGS step) ends with the process, skipping the interpreter's cleanup.
    """
    stopped = queue.close(SHUTDOWN_SECONDS, "the server is shutting down; your run was stopped")
    queue.wait_for_watchers(5.0)  # each page gets its last view before the server goes
    page.close()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    if not stopped:
        log.warning("the run did not stop within %.0f s; exiting without it", SHUTDOWN_SECONDS)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
