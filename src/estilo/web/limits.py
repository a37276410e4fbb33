"""What one browser may ask of an ``estilo serve`` server; the CLI's flags default to these.
No torch and no Gradio here, so ``estilo --help`` stays instant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one browser may ask of the server (``estilo serve`` flags)."""

    max_upload_mb: float = 20.0
    max_pixels: int = 25_000_000
    max_size: int = 1024
    max_iterations: int = 2000
    max_waiting: int = 4
