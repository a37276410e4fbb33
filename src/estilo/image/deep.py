"""16-bit PNG and TIFF writers, for print work (``bit_depth = 16``).

Pillow holds RGB at 8 bits per channel only, so these write the files themselves from a
(H, W, 3 or 4) uint16 array made straight from the float result: a smooth sky keeps its 65536
levels instead of 256 scaled up. Both embed the sRGB ICC profile and, if given, the DPI; the
PNG also carries the run's settings where ``estilo.formats.read_settings`` finds them.
Specifications: PNG (W3C, 2003), sections 11.2-11.3; TIFF 6.0, sections 8 and 14 (predictor),
with Adobe's deflate compression (TIFF Technical Note 2).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from ..formats import PNG_SIGNATURE, SETTINGS_KEYWORD

#: Bytes of raw pixels compressed at a time: bounds the memory a print-size save needs.
BLOCK_BYTES = 2**22
INCH = 0.0254  # metres


def _chunk(handle: BinaryIO, kind: bytes, data: bytes) -> None:
    handle.write(struct.pack(">I", len(data)) + kind + data)
    handle.write(struct.pack(">I", zlib.crc32(kind + data)))


def write_png(
    handle: BinaryIO, pixels: np.ndarray, icc: bytes, dpi: int = 0, settings: str | None = None
) -> None:
    """A 16-bit RGB or RGBA PNG of ``pixels`` (H, W, C) uint16.

    Every row uses the Up filter (the byte above subtracted): on a picture's smooth areas it
    compresses far better than none, and it is one numpy subtraction per block of rows."""
    height, width, channels = pixels.shape
    handle.write(PNG_SIGNATURE)
    colour_type = 2 if channels == 3 else 6  # truecolour, truecolour with alpha
    _chunk(handle, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
    _chunk(handle, b"iCCP", b"sRGB\0\0" + zlib.compress(icc))
    if dpi:
        per_metre = round(dpi / INCH)
        _chunk(handle, b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
    if settings is not None:  # iTXt: keyword, uncompressed, no language or translation
        text = SETTINGS_KEYWORD.encode("latin-1") + b"\0\0\0\0\0" + settings.encode("utf-8")
        _chunk(handle, b"iTXt", text)
    rows = np.ascontiguousarray(pixels, ">u2").view(np.uint8).reshape(height, -1)
    step = max(1, BLOCK_BYTES // rows.shape[1])
    compressor = zlib.compressobj()
    above = np.zeros(rows.shape[1], np.uint8)
    for top in range(0, height, step):
        block = rows[top : top + step]
        filtered = np.empty((len(block), rows.shape[1] + 1), np.uint8)
        filtered[:, 0] = 2  # the Up filter
        filtered[:, 1:] = block - np.vstack([above, block[:-1]])  # wraps modulo 256
        above = block[-1]
        data = compressor.compress(filtered.tobytes())
        if data:
            _chunk(handle, b"IDAT", data)
    _chunk(handle, b"IDAT", compressor.flush())
    _chunk(handle, b"IEND", b"")


def write_tiff(handle: BinaryIO, pixels: np.ndarray, icc: bytes, dpi: int = 0) -> None:
    """A 16-bit RGB or RGBA TIFF of ``pixels`` (H, W, C) uint16: little-endian, deflate with
    the horizontal predictor, in strips of about BLOCK_BYTES, the IFD after the data."""
    height, width, channels = pixels.shape
    step = max(1, BLOCK_BYTES // (width * channels * 2))
    offsets, counts = [], []
    position = handle.write(b"II*\0" + struct.pack("<I", 0))  # the IFD offset, filled in last
    for top in range(0, height, step):
        block = pixels[top : top + step]
        delta = block.copy()
        delta[:, 1:] -= block[:, :-1]  # predictor 2: each sample less its left neighbour
        data = zlib.compress(np.ascontiguousarray(delta, "<u2").tobytes())
        offsets.append(position)
        counts.append(len(data))
        position += handle.write(data)

    def stored(data: bytes) -> int:
        """Write a value too long for its IFD entry; its offset (word-aligned, as TIFF asks)."""
        nonlocal position
        position += handle.write(b"\0" * (position % 2))
        start = position
        position += handle.write(data)
        return start

    short, long, rational, undefined = 3, 4, 5, 7
    entries = [
        (256, long, 1, struct.pack("<I", width)),
        (257, long, 1, struct.pack("<I", height)),
        (258, short, channels, struct.pack(f"<{channels}H", *[16] * channels)),
        (259, short, 1, struct.pack("<H", 8)),  # Adobe deflate
        (262, short, 1, struct.pack("<H", 2)),  # RGB
        (273, long, len(offsets), struct.pack(f"<{len(offsets)}I", *offsets)),
        (277, short, 1, struct.pack("<H", channels)),
        (278, long, 1, struct.pack("<I", step)),
        (279, long, len(counts), struct.pack(f"<{len(counts)}I", *counts)),
    ]
    if dpi:
        resolution = struct.pack("<II", dpi, 1)
        entries += [(282, rational, 1, resolution), (283, rational, 1, resolution)]
    entries += [(284, short, 1, struct.pack("<H", 1))]  # chunky: RGBRGB...
    if dpi:
        entries += [(296, short, 1, struct.pack("<H", 2))]  # inches
    entries += [(317, short, 1, struct.pack("<H", 2))]  # horizontal differencing
    if channels == 4:
        entries += [(338, short, 1, struct.pack("<H", 2))]  # unassociated alpha
    entries += [(34675, undefined, len(icc), icc)]
    fields = []
    for tag, kind, count, data in entries:
        value = data if len(data) <= 4 else struct.pack("<I", stored(data))
        fields.append(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0"))
    position += handle.write(b"\0" * (position % 2))
    ifd = position
    handle.write(struct.pack("<H", len(fields)) + b"".join(fields) + struct.pack("<I", 0))
    handle.seek(4)
    handle.write(struct.pack("<I", ifd))
