"""The one exception type that reaches users as a one-line message.

Every layer raises :class:`EstiloError` (or a subclass) for problems the user can fix: a bad
option, an unreadable image, an unwritable output. The CLI prints ``estilo: error: <message>``
and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EstiloError(Exception):
    """A problem with the user's input, described in one line."""


class ConfigError(EstiloError):
    """An option or preset that is unknown or out of range."""


class ImageError(EstiloError):
    """An image that is missing, unreadable, too large or cannot be written."""


class VideoError(EstiloError):
    """A video that is missing, not a video, damaged, too large or cannot be written."""
