"""Reading and writing images safely.

Reading: any format Pillow knows (HEIC too, with the ``heic`` extra), EXIF orientation applied,
embedded ICC profiles converted to sRGB, greyscale/palette/CMYK/16-bit converted to RGB floats in
[0, 1], alpha kept apart; numpy arrays too. The pixel count is checked *before* decoding, which
also stops decompression bombs.
Writing: format from the extension, tagged with the sRGB profile, through
``estilo.files.atomic_write``, so an output is either complete or absent. PNGs can carry the
run's settings (see ``estilo.formats``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError, features
from torch import Tensor

from ..errors import ImageError
from ..files import atomic_write, open_regular
from ..formats import (
    DEFAULT_QUALITY,
    SETTINGS_KEYWORD,
    WRITE_FORMATS,
    check_print,
    check_quality,
)
from . import deep

_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "AVIF"}
DEFAULT_MAX_PIXELS = 64_000_000
#: ISO-BMFF brands of HEVC-coded HEIF files (ISO/IEC 23008-12), which Pillow cannot decode.
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}


@dataclass(frozen=True)
class LoadedImage:
    """An image as (3, H, W) float32 RGB in [0, 1] plus its alpha (1, H, W), if any."""

    rgb: Tensor
    alpha: Tensor | None = None


def load_image(
    source: str | Path | Image.Image | np.ndarray,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    what: str = "image",
    *,
    shown: str | None = None,
    max_side: int | None = None,
) -> LoadedImage:
    """Read an image file (or convert a PIL image or a numpy array).

    Args:
        source: a path, an open PIL image, or an (H, W, 3) or (H, W, 4) array: uint8, or
            floats in [0, 1].
        max_pixels: refuse images with more pixels than this.
        what: how to name the image in errors ("content image", ...).
        shown: the name errors give the file (default: its path); the web UI passes the
            user's file name so that messages never show server paths.
        max_side: decode no larger than needed for this working size: JPEGs decode at a
            reduced scale and other images are box-reduced, keeping at least twice the
            longest side and once the shortest (the resize that follows does the rest).

    Raises:
        ImageError: missing, empty, unreadable, truncated, not an image, or too large.
    """
    if isinstance(source, Image.Image):
        return _to_tensors(_normalise(source), what)
    if isinstance(source, np.ndarray):
        return from_array(source, what)
    path = Path(source)
    label = f"{what} {shown if shown is not None else str(path)!r}"
    # No image of max_pixels needs more bytes than 16-bit RGBA uncompressed plus metadata; a
    # larger file (an 8 GB sparse x.png) is refused before Pillow reads any of it.
    limit = max_pixels * 8 + 64 * 2**20
    with open_regular(path, limit, label, ImageError) as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageError(f"{label} is empty")
        if _is_heic(handle.read(64)):
            _register_heif(label)
        handle.seek(0)
        with _pillow_guard(label):
            image: Image.Image = Image.open(handle)  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{label} has {width}x{height} = {width * height:,} pixels, over the limit "
                    f"of {max_pixels:,} (max_pixels)"
                )
            if max_side:
                # JPEG: decode at 1/2 .. 1/8 scale, never below twice the working size
                image.draft(image.mode, (2 * max_side, 2 * max_side))
            image.load()
            if max_side:
                w, h = image.size
                factor = min(max(w, h) // (2 * max_side), min(w, h) // max_side)
                if factor > 1:
                    image = image.reduce(factor)
            return _to_tensors(_normalise(image), label)


def from_array(array: np.ndarray, what: str = "image") -> LoadedImage:
    """An (H, W, 3) RGB or (H, W, 4) RGBA array, uint8 or floats in [0, 1], as a LoadedImage.

    Raises:
        ImageError: another shape or dtype, or float values outside [0, 1].
    """
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ImageError(
            f"{what}: an array must have shape (H, W, 3) or (H, W, 4), not {array.shape}"
        )
    if array.dtype == np.uint8:
        values = torch.from_numpy(array.astype(np.float32) / 255.0)
    elif np.issubdtype(array.dtype, np.floating):
        values = torch.from_numpy(array.astype(np.float32))
        if not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageError(f"{what}: float array values must be finite and in [0, 1]")
    else:
        raise ImageError(f"{what}: an array must be uint8 or float, not {array.dtype}")
    tensor = values.permute(2, 0, 1).contiguous()
    if tensor.shape[0] == 4:
        return LoadedImage(tensor[:3].contiguous(), tensor[3:].contiguous())
    return LoadedImage(tensor)


def _is_heic(head: bytes) -> bool:
    """Whether a file starts with an ISO-BMFF ``ftyp`` box naming an HEVC brand (as major or
    compatible brand): the iPhone's HEIC photos."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = min(struct.unpack(">I", head[:4])[0], len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, size - 3, 4)]
    return any(brand in HEIC_BRANDS for brand in brands)


@functools.cache
def _heif_opener() -> bool:
    """Register pillow-heif's opener with Pillow, once; False if the extra is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _register_heif(label: str) -> None:
    if not _heif_opener():
        raise ImageError(f"{label} is a HEIC image; reading it needs pip install 'estilo[heic]'")


@contextlib.contextmanager
def _pillow_guard(label: str) -> Iterator[None]:
    """Turn Pillow's many failure modes into one-line ImageErrors."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # we check the pixel count ourselves, with a clear message
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image (or not a format Pillow can read)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{label} is damaged or truncated: {reason}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert to sRGB 'RGB' or 'RGBA' (16-bit greyscale kept as I)."""
    image = ImageOps.exif_transpose(image)
    icc = image.info.get("icc_profile")
    # Our own outputs are tagged sRGB: converting them to sRGB would be a costly no-op.
    if icc and icc[128:] != srgb_profile()[128:] and image.mode in ("RGB", "RGBA", "CMYK"):
        with contextlib.suppress(ImageCms.PyCMSError, OSError):
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = "RGBA" if image.mode == "RGBA" else "RGB"
            image = (
                ImageCms.profileToProfile(
                    image, source, ImageCms.createProfile("sRGB"), outputMode=mode
                )
                or image
            )
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return image  # high bit depth greyscale: scaled in _to_tensors
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")  # L, 1, CMYK (no profile), YCbCr, LAB, HSV
    return image


def _to_tensors(image: Image.Image, label: str) -> LoadedImage:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all():  # float TIFFs can hold NaN: bad input, not divergence
            raise ImageError(f"{label} has NaN or infinite pixel values")
        scale = 1.0 if image.mode == "F" else 255.0 if array.max(initial=0) <= 255 else 65535.0
        grey = torch.from_numpy(np.clip(array / scale, 0.0, 1.0))
        return LoadedImage(grey.unsqueeze(0).expand(3, -1, -1).contiguous())
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim != 3 or min(array.shape[:2]) < 1:
        raise ImageError(f"{label} has no pixels")
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if image.mode == "RGBA":
        return LoadedImage(tensor[:3].contiguous(), tensor[3:].contiguous())
    return LoadedImage(tensor)


def output_format(path: str | Path) -> str:
    """The Pillow format for an output path, from its extension, if this Pillow can write it."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ImageError(
            f"output {str(path)!r}: unknown image extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    fmt = WRITE_FORMATS[suffix]
    if fmt == "AVIF" and not features.check("avif"):
        raise ImageError(
            f"output {str(path)!r}: this Pillow cannot write AVIF; pip install 'pillow>=11.3' "
            "(its wheels include the AVIF codec)"
        )
    return fmt


@functools.cache
def srgb_profile() -> bytes:
    """The sRGB ICC profile that outputs are tagged with, with a fixed creation date (bytes
    24-36 of the header; the profile ID is unset), so one run gives the same file twice."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile[:24] + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) + profile[36:]


def save_options(
    fmt: str,
    quality: int | None = None,
    settings: str | None = None,
    dpi: int = 0,
    *,
    quick: bool = False,
) -> dict[str, Any]:
    """Pillow's save arguments for ``fmt``: the sRGB tag, quality, compression, settings, DPI.

    JPEG keeps full-resolution colour (4:4:4): the default 4:2:0 halves the chroma, which
    blurs the thin coloured strokes that style transfer paints. WebP at quality 100 is
    lossless. TIFF is deflate-compressed. ``settings`` goes into a PNG's iTXt chunk.
    ``quick`` PNGs (for files estilo reads back itself) use zlib's fastest level: the same
    pixels, 3x faster to write at 640x360 for 1% more bytes.
    """
    check_quality(quality, fmt)
    level = DEFAULT_QUALITY if quality is None else quality
    options: dict[str, Any] = {} if fmt == "BMP" else {"icc_profile": srgb_profile()}
    if dpi:
        options.update(dpi=(dpi, dpi))
    if fmt == "JPEG":
        options.update(quality=level, subsampling=0)
    elif fmt == "WEBP" and level == 100:
        options.update(lossless=True, quality=100)  # quality is the compression effort here
    elif fmt == "WEBP":
        options.update(quality=level)
    elif fmt == "AVIF":
        options.update(quality=level, subsampling="4:4:4")
    elif fmt == "TIFF":
        options.update(compression="tiff_adobe_deflate")
    if fmt == "PNG" and quick:
        options.update(compress_level=1)
    if fmt == "PNG" and settings is not None:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(SETTINGS_KEYWORD, settings)
        options.update(pnginfo=info)
    return options


def to_pil(rgb: Tensor, alpha: Tensor | None = None) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) floats in [0, 1] (and optional alpha) -> 8-bit PIL image."""
    array = _quantised(rgb, alpha, 255, torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB" if alpha is None else "RGBA")


def save_image(
    rgb: Tensor,
    path: str | Path,
    alpha: Tensor | None = None,
    mode: int | None = None,
    *,
    quality: int | None = None,
    settings: str | None = None,
    bit_depth: int = 8,
    dpi: int = 0,
    quick: bool = False,
) -> Path:
    """Write an image atomically; the format follows the extension (see :func:`save_options`).

    Alpha is written where the format holds it (PNG, WebP, AVIF, TIFF) and dropped otherwise.
    ``quality`` (1-100) applies to JPEG, WebP and AVIF; ``settings`` (a run's TOML) is stored
    in PNGs, where ``estilo stylize --config`` reads it back. ``bit_depth`` 16 (PNG, TIFF)
    writes the floats' own levels; ``dpi`` goes into PNG, TIFF, JPEG and BMP metadata;
    ``quick`` makes an 8-bit PNG faster to write and a little larger.

    Raises:
        ImageError: unknown extension, a quality out of range or for a lossless format, 16 bits
            or a DPI for a format without them, or a folder that cannot be written.
    """
    path = Path(path)
    fmt = output_format(path)
    check_print(fmt, bit_depth, dpi)
    write: Callable[[BinaryIO], object]
    if bit_depth == 16:
        check_quality(quality, fmt)
        pixels, icc = _levels(rgb, alpha), srgb_profile()
        if fmt == "PNG":
            write = functools.partial(
                deep.write_png, pixels=pixels, icc=icc, dpi=dpi, settings=settings
            )
        else:
            write = functools.partial(deep.write_tiff, pixels=pixels, icc=icc, dpi=dpi)
    else:
        options = save_options(fmt, quality, settings, dpi, quick=quick)
        image = to_pil(rgb, alpha if fmt in _ALPHA_FORMATS else None)
        write = functools.partial(image.save, format=fmt, **options)
    atomic_write(path, write, mode, error=ImageError)
    return path


def _levels(rgb: Tensor, alpha: Tensor | None) -> np.ndarray:
    """(3, H, W) floats in [0, 1] (and alpha) as an (H, W, 3 or 4) uint16 array."""
    levels = _quantised(rgb, alpha, 65535, torch.int32)
    return levels.permute(1, 2, 0).numpy().astype(np.uint16)


def _quantised(rgb: Tensor, alpha: Tensor | None, top: int, dtype: torch.dtype) -> Tensor:
    """(3 or 4, H, W) whole levels 0..``top`` of floats in [0, 1] (and alpha), as ``dtype``.

    In place after the one copy torch.cat makes: at print sizes each float temporary of the
    picture is 768 MiB (issue 14)."""
    channels = [rgb.detach().float().cpu().reshape(3, *rgb.shape[-2:])]
    if alpha is not None:
        channels.append(alpha.detach().float().cpu().reshape(1, *rgb.shape[-2:]))
    return torch.cat(channels).clamp_(0, 1).mul_(top).round_().to(dtype)
