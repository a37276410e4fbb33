"""The browser front end, ``estilo serve`` (extra ``estilo[web]``: Gradio)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import EstiloError
from .limits import Limits

__all__ = ["Limits", "serve"]


def serve(
    host: str,
    port: int,
    limits: Limits,
    *,
    block: bool = True,
    auth: tuple[str, str] | None = None,
    models: Path | None = None,
    instant: bool = True,
) -> Any:
    """Serve the page (see ``page.serve``); a clear error when Gradio is not installed."""
    # Set before Gradio is first imported: it reads this at import time.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        from . import page
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "gradio":
            raise EstiloError("the web UI needs Gradio: pip install 'estilo[web]'") from None
        raise
    return page.serve(host, port, limits, block=block, auth=auth, models=models, instant=instant)
