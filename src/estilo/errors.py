"""The one exception type that reaches users as a one-line message, and how notices do.

Every layer raises :class:`EstiloError` (or a subclass) for problems the user can fix: a bad
option, an unreadable image, an unwritable output. The CLI prints ``estilo: error: <message>``
and exits with status 2; anything else is a bug and keeps its traceback.

Notices that do not stop a run (a memory fallback, a checkpoint that cannot be trusted) are
logged as warnings by the module's logger (``estilo.pipeline``, ...). A Python user sees them
through ``logging`` as usual; the CLI and its worker processes call :func:`show_notices`.
"""

from __future__ import annotations

import logging
import sys


class EstiloError(Exception):
    """A problem with the user's input, described in one line."""


class ConfigError(EstiloError):
    """An option or preset that is unknown or out of range."""


class ImageError(EstiloError):
    """An image that is missing, unreadable, too large or cannot be written."""


class CheckpointError(EstiloError):
    """A checkpoint that is missing, damaged, or from another run (other inputs or settings)."""


class VideoError(EstiloError):
    """A video that is missing, not a video, damaged, too large or cannot be written."""


class _Notices(logging.Handler):
    """Writes each record as ``estilo: warning: <message>`` to the current ``sys.stderr``
    (looked up per line, so a redirected stderr is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"estilo: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:
            self.handleError(record)


def show_notices() -> None:
    """Show estilo's logged warnings on stderr, the way the CLI shows its errors; once per
    process however often it is called."""
    logger = logging.getLogger("estilo")
    if not any(isinstance(handler, _Notices) for handler in logger.handlers):
        logger.addHandler(_Notices(logging.WARNING))
