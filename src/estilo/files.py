"""Opening files a user names without trusting them: regular files only, size known first.

``open(path).read()`` on ``/dev/zero`` never ends, on a FIFO it blocks until a writer comes,
and on an 8 GB sparse file it asks for 8 GB of memory. :func:`open_regular` opens without
blocking (``O_NONBLOCK`` makes a FIFO's open return at once), then checks on the open handle
(no race with a rename) that it is a regular file no larger than the caller's limit.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import EstiloError


@contextlib.contextmanager
def open_regular(
    path: str | Path, limit: int, label: str, error: type[EstiloError] = EstiloError
) -> Iterator[BinaryIO]:
    """A binary handle on ``path``, refused with a one-line ``error`` unless it is a regular
    file of at most ``limit`` bytes. ``label`` names the file in messages ("config file 'x'")."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(info.st_mode):
        problem = f"{label} is a folder, not a file"
    elif not stat.S_ISREG(info.st_mode):
        problem = f"{label} is not a regular file (a device, FIFO or socket)"
    elif info.st_size > limit:
        problem = f"{label} is {info.st_size:,} bytes, over the limit of {limit:,}"
    if problem is not None:
        os.close(fd)
        raise error(problem)
    with os.fdopen(fd, "rb") as handle:
        yield handle


def read_regular(
    path: str | Path, limit: int, label: str, error: type[EstiloError] = EstiloError
) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    with open_regular(path, limit, label, error) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew after the check
        raise error(f"{label} is over the limit of {limit:,} bytes")
    return data
