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
    #: Runs one client (address, or user with --auth) may have running or waiting: one client
    #: cannot fill the whole line.
    max_per_client: int = 2
    #: Style images one run may blend (each is decoded, held and resized).
    max_styles: int = 4
    #: Disk the server's uploads and results may use; oldest finished runs go first.
    max_disk_mb: float = 2048.0
    #: Minutes a finished run's files are kept for download.
    keep_minutes: float = 60.0
