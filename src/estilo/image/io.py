"""Reading and writing images safely.

Reading: any format Pillow knows, EXIF orientation applied, embedded ICC profiles converted to
sRGB, greyscale/palette/CMYK/16-bit converted to RGB floats in [0, 1], alpha kept apart. The
pixel count is checked *before* decoding, which also stops decompression bombs.
Writing: format from the extension, through ``estilo.files.atomic_write``, so an output is
either complete or absent.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from torch import Tensor

from ..errors import ImageError
from ..files import atomic_write, open_regular

#: Extensions we write, and the Pillow format for each.
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class LoadedImage:
    """An image as (3, H, W) float32 RGB in [0, 1] plus its alpha (1, H, W), if any."""

    rgb: Tensor
    alpha: Tensor | None = None


def load_image(
    source: str | Path | Image.Image,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    what: str = "image",
    *,
    shown: str | None = None,
    max_side: int | None = None,
) -> LoadedImage:
    """Read an image file (or convert a PIL image).

    Args:
        source: a path or an open PIL image.
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
    path = Path(source)
    label = f"{what} {shown if shown is not None else str(path)!r}"
    # No image of max_pixels needs more bytes than 16-bit RGBA uncompressed plus metadata; a
    # larger file (an 8 GB sparse x.png) is refused before Pillow reads any of it.
    limit = max_pixels * 8 + 64 * 2**20
    with open_regular(path, limit, label, ImageError) as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageError(f"{label} is empty")
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
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
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
    """The Pillow format for an output path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ImageError(
            f"output {str(path)!r}: unknown image extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    return WRITE_FORMATS[suffix]


def to_pil(rgb: Tensor, alpha: Tensor | None = None) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) floats in [0, 1] (and optional alpha) -> 8-bit PIL image."""
    rgb = rgb.detach().float().cpu().reshape(3, *rgb.shape[-2:])
    channels = (
        [rgb] if alpha is None else [rgb, alpha.detach().float().cpu().reshape(1, *rgb.shape[-2:])]
    )
    array = torch.cat(channels).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB" if alpha is None else "RGBA")


def save_image(
    rgb: Tensor, path: str | Path, alpha: Tensor | None = None, mode: int | None = None
) -> Path:
    """Write an image atomically; the format follows the extension.

    Alpha is written where the format holds it (PNG, WebP, TIFF) and dropped otherwise.

    Raises:
        ImageError: unknown extension or a folder that cannot be written.
    """
    path = Path(path)
    fmt = output_format(path)
    image = to_pil(rgb, alpha if fmt in _ALPHA_FORMATS else None)
    options = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}.get(fmt, {})
    atomic_write(
        path, lambda handle: image.save(handle, format=fmt, **options), mode, error=ImageError
    )
    return path
