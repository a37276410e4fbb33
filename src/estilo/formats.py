"""The image formats estilo writes, and the settings it embeds in its PNGs.

Plain Python (no PIL, no torch), so that every floor may use it: the CLI names the formats in
its help without loading Pillow, ``image.io`` writes them, and ``core.config`` reads a run's
settings back out of a PNG (``--config out.png``) without an image library.

A PNG that estilo writes carries the run's configuration as TOML in an iTXt chunk with the
keyword :data:`SETTINGS_KEYWORD`, placed before the pixel data (Pillow writes text chunks
there), so reading it back never has to walk through the image itself.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from .errors import ConfigError, ImageError

#: Extensions we write, and the Pillow format for each.
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".avif": "AVIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
#: Formats whose ``quality`` means something (the others are lossless).
LOSSY_FORMATS = ("JPEG", "WEBP", "AVIF")
#: JPEG, WebP and AVIF quality unless one is given; WebP at 100 is lossless.
DEFAULT_QUALITY = 95
#: The PNG text keyword under which a run's settings (TOML) are stored.
SETTINGS_KEYWORD = "estilo:config"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG keywords are 1 to 79 bytes; with its NUL, a keyword fits in this many.
KEYWORD_BYTES = 80


def check_quality(quality: int | None, fmt: str) -> None:
    """Refuse a quality outside 1..100, or one given for a lossless format."""
    if quality is None:
        return
    if not 1 <= quality <= 100:
        raise ImageError(f"quality must be between 1 and 100, not {quality}")
    if fmt not in LOSSY_FORMATS:
        raise ImageError(f"quality applies to JPEG, WebP and AVIF outputs; {fmt} is lossless")


def read_settings(handle: BinaryIO, limit: int, label: str) -> str:
    """The settings text (at most ``limit`` bytes) of the estilo PNG open in ``handle``.

    Only the chunks before the first IDAT are read (a few hundred bytes in our files), so a
    huge or hostile PNG costs no more than a small one. ``label`` names the file in errors.

    Raises:
        ConfigError: not a PNG, a damaged chunk, or no settings before the pixel data.
    """
    if handle.read(8) != PNG_SIGNATURE:
        raise ConfigError(f"{label} is not a PNG")
    ours = SETTINGS_KEYWORD.encode("latin-1") + b"\0"
    while True:
        header = handle.read(8)
        if len(header) < 8:
            raise ConfigError(f"{label} is a truncated PNG")
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):
            raise ConfigError(
                f"{label} is a PNG without estilo settings (estilo stores them in the PNGs "
                "it writes)"
            )
        start = handle.read(min(length, KEYWORD_BYTES)) if kind == b"iTXt" else b""
        if not start.startswith(ours):
            handle.seek(length - len(start) + 4, 1)  # the rest of the data, and its CRC
            continue
        if length > limit + KEYWORD_BYTES + 8:  # the text, plus keyword, flags and tags
            raise ConfigError(f"{label} has estilo settings over {limit:,} bytes")
        data = start + handle.read(length - len(start))
        if len(data) < length:
            raise ConfigError(f"{label} is a truncated PNG")
        return _itxt_text(data[len(ours) :], limit, label)


def _itxt_text(data: bytes, limit: int, label: str) -> str:
    """The text of an iTXt chunk after its keyword (PNG spec, 11.3.4.5): compression flag,
    method, language tag, NUL, translated keyword, NUL, text (zlib-compressed if flagged)."""
    compressed, body = data[:1], data[2:]
    _language, _, body = body.partition(b"\0")
    _translated, _, body = body.partition(b"\0")
    if compressed == b"\1":
        try:
            body = zlib.decompressobj().decompress(body, limit + 1)  # bounded: no zip bomb
        except zlib.error:
            raise ConfigError(f"{label} has damaged estilo settings") from None
    if len(body) > limit:
        raise ConfigError(f"{label} has estilo settings over {limit:,} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label} has estilo settings that are not UTF-8 text") from None
