"""Print output: 16-bit PNG and TIFF made from the floats, DPI metadata, print sizes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estilo import cli
from estilo.core.config import fit_print, print_pixels, resolve
from estilo.errors import ConfigError, ImageError
from estilo.image.io import load_image, save_image, srgb_profile

FAST = ["--iterations", "2", "--device", "cpu"]


def gradient(width: int = 1000) -> torch.Tensor:
    """A smooth ramp, (3, 4, width): 8 bits would band it into 256 steps."""
    ramp = torch.linspace(0, 1, width).expand(4, width)
    return torch.stack([ramp, ramp.flip(-1), torch.full_like(ramp, 0.25)])


def png_levels(path: Path) -> np.ndarray:
    """The (H, W, C) uint16 samples of a 16-bit PNG, decoded here (Pillow reads 8 bits)."""
    data, header, offset = path.read_bytes(), b"", 8
    idat = b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 16
    channels = {2: 3, 6: 4}[colour]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    rows = np.zeros((height, raw.shape[1] - 1), np.uint8)
    for y in range(height):
        assert raw[y, 0] in (0, 2)  # none or Up: what the writer uses
        rows[y] = raw[y, 1:] + (rows[y - 1] if raw[y, 0] == 2 and y else 0)
    return rows.view(">u2").reshape(height, width, channels).astype(np.uint16)


def tiff_levels(path: Path) -> np.ndarray:
    """The (H, W, C) uint16 samples of a deflate, predictor-2 16-bit TIFF, decoded here."""
    with Image.open(path) as image:
        tags = image.tag_v2  # type: ignore[attr-defined]
        width, height = image.size
        assert set(tags[258]) == {16} and tags[259] == 8 and tags[317] == 2
        channels, offsets, counts = tags[277], tags[273], tags[279]
    data = path.read_bytes()
    strips = b"".join(
        zlib.decompress(data[o : o + n]) for o, n in zip(offsets, counts, strict=True)
    )
    delta = np.frombuffer(strips, "<u2").reshape(height, width, channels)
    return np.cumsum(delta, axis=1, dtype=np.uint16)  # undo the differencing, modulo 2^16


@pytest.mark.parametrize(("suffix", "levels"), [(".png", png_levels), (".tif", tiff_levels)])
def test_16_bit_output_keeps_the_floats_levels(tmp_path: Path, suffix: str, levels) -> None:  # type: ignore[no-untyped-def]
    image = gradient()
    path = save_image(image, tmp_path / f"ramp{suffix}", bit_depth=16, dpi=300)
    samples = levels(path)
    assert samples.shape == (4, 1000, 3)
    assert len(np.unique(samples[..., 0])) > 256  # 8 bits scaled up would have at most 256
    expected = image.permute(1, 2, 0).numpy()
    assert np.abs(samples / 65535 - expected).max() <= 0.5 / 65535 + 1e-7
    with Image.open(path) as opened:  # a valid file to an independent reader, tagged
        opened.load()
        assert opened.info["icc_profile"] == srgb_profile()
        assert opened.info["dpi"] == pytest.approx(
            (300, 300), abs=0.05
        )  # PNG and BMP store whole pixels per metre
    assert load_image(path).rgb.shape == (3, 4, 1000)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_output_keeps_alpha(tmp_path: Path, suffix: str) -> None:
    alpha = torch.linspace(0, 1, 1000).expand(1, 4, 1000)
    path = save_image(gradient(), tmp_path / f"a{suffix}", alpha, bit_depth=16)
    samples = png_levels(path) if suffix == ".png" else tiff_levels(path)
    assert samples.shape == (4, 1000, 4)
    assert samples[0, -1, 3] == 65535 and samples[0, 0, 3] == 0


def test_a_16_bit_png_carries_the_settings(tmp_path: Path) -> None:
    config = resolve(size=64, bit_depth=16, dpi=240)
    path = save_image(gradient(), tmp_path / "s.png", settings=config.to_toml(), bit_depth=16)
    assert resolve(file=path) == config


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_dpi_is_written_in_8_bit_outputs(tmp_path: Path, suffix: str) -> None:
    path = save_image(gradient(64), tmp_path / f"d{suffix}", dpi=150)
    with Image.open(path) as opened:
        assert opened.info["dpi"] == pytest.approx(
            (150, 150), abs=0.05
        )  # PNG and BMP store whole pixels per metre


@pytest.mark.parametrize(
    ("name", "flags", "message"),
    [
        ("out.jpg", ["--bit-depth", "16"], "16-bit output needs a PNG or TIFF; JPEG holds 8 bits"),
        ("out.webp", ["--dpi", "300"], "dpi is written into PNG, TIFF, JPEG and BMP outputs"),
        ("out.png", ["--bit-depth", "12"], "bit_depth must be 8 or 16"),
        ("out.png", ["--print", "30x40cm"], "print_size needs a dpi"),
        ("out.png", ["--print", "30x40", "--dpi", "300"], "is not WxH with a unit"),
        ("out.png", ["--print", "0x4in", "--dpi", "300"], "is not WxH with a unit"),
        ("out.png", ["--print", "2x2m", "--dpi", "300"], "is not WxH with a unit"),
        ("out.png", ["--print", "100x100in", "--dpi", "300"], "each side must be between 16"),
        ("out.png", ["--print", "2x2in", "--dpi", "32", "--square"], "and square disagree"),
    ],
)
def test_bad_print_options_are_one_line_before_the_run(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    flags: list[str],
    message: str,
) -> None:
    code = cli.main(["stylize", *map(str, image_pair), "-o", str(tmp_path / name), *FAST, *flags])
    out, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1
    assert "iteration" not in out and not (tmp_path / name).exists()


@pytest.mark.parametrize(
    ("text", "dpi", "pixels"),
    [("30x40cm", 300, (3543, 4724)), ("8.5x11in", 100, (850, 1100)), ("210x297mm", 72, (595, 842))],
)
def test_print_sizes_in_pixels(text: str, dpi: int, pixels: tuple[int, int]) -> None:
    assert print_pixels(text, dpi) == pixels


@pytest.mark.parametrize(
    ("height", "width", "size"),
    [
        (300, 400, 85),  # 3:4 landscape in a 2x3 in print at 32 dpi (96x64 px): 85x64
        (400, 300, 85),  # portrait: the print turns with it, 64x85
        (100, 400, 96),  # a panorama: the long side fills, the short one is under 64
        (400, 400, 64),  # a square: the short side of the print limits it
    ],
)
def test_a_print_size_fits_the_picture_inside_the_print(height: int, width: int, size: int) -> None:
    config = fit_print(resolve(print_size="2x3in", dpi=32), height, width)
    assert config.size == size
    with pytest.raises(ConfigError):
        resolve(print_size="2x3in")  # no dpi


def test_the_cli_makes_a_print(tmp_path: Path, image_pair: tuple[Path, Path]) -> None:
    out = tmp_path / "print.tif"
    flags = ["--print", "1.5x2in", "--dpi", "40", "--bit-depth", "16", "--scales", "1"]
    assert cli.main(["stylize", *map(str, image_pair), "-o", str(out), "-q", *FAST, *flags]) == 0
    with Image.open(out) as opened:  # the 48x64 content, landscape, fitted in 80x60 px
        assert opened.size == (80, 60) and opened.info["dpi"] == (40, 40)
    assert len(np.unique(tiff_levels(out))) > 256


def test_an_8_bit_image_scaled_up_is_not_what_16_bits_means(tmp_path: Path) -> None:
    """The check above can fail: an 8-bit ramp saved at 16 bits has at most 256 levels."""
    coarse = (gradient() * 255).round() / 255
    samples = png_levels(save_image(coarse, tmp_path / "coarse.png", bit_depth=16))
    assert len(np.unique(samples[..., 0])) <= 256
    with pytest.raises(ImageError):
        save_image(coarse, tmp_path / "x.webp", bit_depth=16)
