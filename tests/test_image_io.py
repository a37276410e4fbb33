"""Reading every kind of image correctly, refusing bad ones, writing atomically."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estilo.errors import ImageError
from estilo.formats import WRITE_FORMATS
from estilo.image import io as image_io
from estilo.image.io import load_image, save_image


def test_rgb_values_are_scaled_to_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 3), (255, 0, 51)).save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (3, 3, 4) and loaded.alpha is None
    assert loaded.rgb[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_greyscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (5, 5), 128).save(path)
    rgb = load_image(path).rgb
    assert rgb.shape == (3, 5, 5)
    assert torch.equal(rgb[0], rgb[1]) and rgb[0, 0, 0].item() == pytest.approx(128 / 255)


def test_sixteen_bit_greyscale_keeps_its_range(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535 // 2, dtype=np.uint16)).save(path)
    rgb = load_image(path).rgb
    assert rgb.max().item() == pytest.approx(0.5, abs=1e-3)


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.rgb[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert loaded.alpha is not None and loaded.alpha.min().item() == 1.0


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # pure red ink mix
    rgb = load_image(path).rgb
    assert rgb.shape == (3, 8, 8)
    red, green, blue = rgb[:, 4, 4].tolist()
    assert red > 0.8 and green < 0.2 and blue < 0.2


def test_rgba_alpha_is_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (4, 4), (0, 255, 0, 64)).save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (3, 4, 4)
    assert loaded.alpha is not None and loaded.alpha[0, 0, 0].item() == pytest.approx(64 / 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, exif=exif)
    assert load_image(path).rgb.shape == (3, 40, 20)


@pytest.mark.parametrize("suffix", list(WRITE_FORMATS))
def test_every_output_format_round_trips(tmp_path: Path, suffix: str) -> None:
    rgb = torch.zeros(3, 6, 8)
    rgb[0] = 1.0
    path = save_image(rgb, tmp_path / f"out{suffix}")
    back = load_image(path).rgb
    assert back.shape == (3, 6, 8)
    assert back[0].mean().item() > 0.9 and back[1:].mean().item() < 0.1


def test_alpha_is_written_where_the_format_holds_it(tmp_path: Path) -> None:
    rgb, alpha = torch.rand(3, 5, 5), torch.full((1, 5, 5), 0.5)
    assert load_image(save_image(rgb, tmp_path / "a.png", alpha)).alpha is not None
    assert load_image(save_image(rgb, tmp_path / "a.jpg", alpha)).alpha is None


def write_png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims a huge size (a decompression bomb's header) with no real data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: write_png_header(p, 100_000, 100_000), "over the limit"),
    ],
    ids=["missing", "empty", "not-image", "folder", "bomb"],
)
def test_bad_inputs_are_refused(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "input.png"
    make(path)
    with pytest.raises(ImageError, match=message):
        load_image(path, what="content image")


def test_truncated_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path, quality=90)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(path)


def test_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    with pytest.raises(ImageError, match="10,000 pixels, over the limit of 9,999"):
        load_image(path, max_pixels=9_999)


def test_failed_write_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"previous result")

    def broken_save(self: Image.Image, handle, format: str, **kw: object) -> None:  # type: ignore[no-untyped-def]
        handle.write(b"half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match="No space left"):
        save_image(torch.rand(3, 4, 4), path)
    assert path.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Image.Image, handle, format: str, **kw: object) -> None:  # type: ignore[no-untyped-def]
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.rand(3, 4, 4), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_unknown_output_extension(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"unknown image extension '\.gif2'"):
        image_io.output_format(tmp_path / "x.gif2")


def test_a_dead_writers_temporary_is_removed_a_live_ones_kept(tmp_path: Path) -> None:
    import os

    from estilo.image.io import save_image

    dead = tmp_path / ".out.png.999999999.k3j2.tmp"  # no such pid: killed mid-write
    live = tmp_path / f".out.png.{os.getpid()}.a1b2.tmp"  # a writer still at work
    other = tmp_path / ".other.png.999999999.k3j2.tmp"  # another file's: not ours to judge
    for path in (dead, live, other):
        path.write_bytes(b"")
    save_image(torch.rand(3, 8, 8), tmp_path / "out.png")
    assert not dead.exists() and live.exists() and other.exists()
    assert (tmp_path / "out.png").exists()


def test_quick_png_keeps_the_pixels_and_compresses_at_the_fastest_level(tmp_path: Path) -> None:
    # Video frames kept for resuming are quick PNGs; they must read back exactly.
    rgb = torch.rand(3, 24, 40)
    quick, plain = tmp_path / "quick.png", tmp_path / "plain.png"
    save_image(rgb, quick, quick=True)
    save_image(rgb, plain)
    assert torch.equal(load_image(quick).rgb, load_image(plain).rgb)

    def zlib_level(path: Path) -> int:  # FLEVEL, the top bits of the zlib stream's 2nd byte
        data = path.read_bytes()
        return data[data.index(b"IDAT") + 5] >> 6

    assert zlib_level(quick) == 0 and zlib_level(plain) == 2
