"""Files a user names: opened without trusting them, written whole or not at all.

Reading: regular files only, size known first.

``open(path).read()`` on ``/dev/zero`` never ends, on a FIFO it blocks until a writer comes,
and on an 8 GB sparse file it asks for 8 GB of memory. :func:`open_regular` opens without
blocking (``O_NONBLOCK`` makes a FIFO's open return at once), then checks on the open handle
(no race with a rename) that it is a regular file no larger than the caller's limit.

Writing: :func:`atomic_write` fills a temporary file beside the target and renames it over, so
an output (image, history, checkpoint, report) is either complete or absent.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
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


def numbered(folder: Path, stem: str, suffix: str = ".png") -> Iterator[Path]:
    """``folder/STEM.png``, then ``STEM-2.png``, ``STEM-3.png``...: the names estilo gives an
    output the user did not name."""
    yield folder / f"{stem}{suffix}"
    for number in itertools.count(2):
        yield folder / f"{stem}-{number}{suffix}"


def unused_path(
    folder: Path, stem: str, suffix: str = ".png", busy: Callable[[Path], bool] | None = None
) -> Path:
    """The first of :func:`numbered` that does not exist (nor is ``busy``, e.g. an unfinished
    run's): an output the user did not name never replaces a file."""
    for candidate in numbered(folder, stem, suffix):
        if not (candidate.exists() or candidate.is_symlink() or (busy and busy(candidate))):
            return candidate
    raise AssertionError("unreachable: numbered() is endless")


def atomic_write(
    path: Path,
    write: Callable[[BinaryIO], object],
    mode: int | None = None,
    *,
    error: type[EstiloError] = EstiloError,
) -> None:
    """Call ``write(binary_handle)`` on a temporary file beside ``path``, then rename it over.

    A crash or interrupt leaves at most a hidden temporary file that is removed on failure,
    never a half-written ``path``. ``mode`` (e.g. 0o600) overrides the usual permissions.
    A file system's refusal (full disk, no permission) is a one-line ``error``.
    """
    folder = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(folder, path.name)
    try:
        # The pid in the name tells a later run whether the writer is still alive.
        prefix = f".{path.name}.{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"cannot write {str(path)!r}: {exc.strerror}") from None
    try:
        # mkstemp makes 0600; outputs get the usual mode unless the caller wants them private.
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise error(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
        raise


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete temporaries of ``name`` left by a writer that died (SIGKILL, power loss): those
    whose pid is not a running process. Those of live writers are left alone."""
    for tmp in folder.glob(f".{glob.escape(name)}.*.tmp"):
        pid = tmp.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
