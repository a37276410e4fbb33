"""What the outputs carry: the run's settings in PNGs, the sRGB tag, quality, compression, AVIF
out and HEIC in."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin, PngImagePlugin, features

import estilo
from estilo import cli
from estilo.core.config import resolve
from estilo.errors import ConfigError, ImageError
from estilo.formats import SETTINGS_KEYWORD, WRITE_FORMATS
from estilo.image import io as image_io
from estilo.image.io import load_image, save_image, srgb_profile

from .conftest import synthetic_content, synthetic_style

FAST = ["--size", "48", "--iterations", "2", "--device", "cpu"]
AVIF = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")


def noise(height: int = 24, width: int = 32) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))


# --- the settings in a PNG ---


def test_a_png_carries_the_config_and_reads_back_as_one(tmp_path: Path) -> None:
    config = resolve("paper", size=300, lr=0.2, style_layers="relu1_1,relu3_1")
    path = save_image(noise(), tmp_path / "out.png", settings=config.to_toml())
    with Image.open(path) as image:
        assert image.text[SETTINGS_KEYWORD] == config.to_toml()  # type: ignore[attr-defined]
    assert resolve(file=path) == config
    assert resolve(file=path, lr=0.5) == config.replace(lr=0.5)  # flags still win


def test_compressed_settings_are_read_too(tmp_path: Path) -> None:
    config = resolve(size=200, tolerance=0.0)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(SETTINGS_KEYWORD, config.to_toml(), zip=True)
    path = tmp_path / "zipped.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert resolve(file=path) == config


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: Image.new("RGB", (8, 8)).save(p), "a PNG without estilo settings"),
        (lambda p: p.write_text("size = 10\n"), "is not a PNG"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x20iT"), "truncated PNG"),
        (
            lambda p: p.write_bytes(
                b"\x89PNG\r\n\x1a\n"
                + png_chunk(b"iTXt", SETTINGS_KEYWORD.encode() + b"\0\1\0\0\0" + b"not zlib")
            ),
            "damaged estilo settings",
        ),
    ],
    ids=["no-settings", "text", "truncated", "bad-zlib"],
)
def test_a_png_without_usable_settings_is_one_line(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "picture.png"
    make(path)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve(file=path)
    assert "picture.png" in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_embeds_the_settings_and_reads_them_back(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    flags = [*FAST, "--style-weight", "0.2", "--tv-weight", "0", "--save-every", "1"]
    assert cli.main(["stylize", *map(str, image_pair), "-o", str(out), *flags]) == 0
    capsys.readouterr()
    code = cli.main(["stylize", "a", "b", "-o", "x.png", "--config", str(out), "--print-config"])
    printed = capsys.readouterr().out
    assert code == 0 and "style_weight = 0.2\n" in printed and "tv_weight = 0.0\n" in printed
    flagged = {"size": 48, "iterations": 2, "device": "cpu", "style_weight": 0.2}
    assert resolve(file=out) == resolve(**flagged, tv_weight=0.0, save_every=1)
    assert resolve(file=tmp_path / "out_00001.png") == resolve(file=out)  # snapshots too
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code = cli.main(["stylize", "a", "b", "-o", "x.png", "--config", str(plain)])
    err = capsys.readouterr().err
    assert code == 2 and "without estilo settings" in err and err.count("\n") == 1


def test_the_api_result_saves_its_config(tmp_path: Path) -> None:
    result = estilo.stylize(synthetic_content(), synthetic_style(), size=32, iterations=1)
    assert resolve(file=result.save(tmp_path / "r.png")) == result.config


# --- colour profile, quality, compression ---


@pytest.mark.parametrize("suffix", [s for s in WRITE_FORMATS if s != ".bmp"])
def test_outputs_are_tagged_srgb(tmp_path: Path, suffix: str) -> None:
    if suffix == ".avif" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    path = save_image(noise(), tmp_path / f"out{suffix}")
    with Image.open(path) as image:
        assert image.info["icc_profile"] == srgb_profile()


def test_srgb_outputs_read_back_unchanged_and_are_reproducible(tmp_path: Path) -> None:
    rgb = noise()
    first = save_image(rgb, tmp_path / "a.png", settings="size = 32\n")
    second = save_image(rgb, tmp_path / "b.png", settings="size = 32\n")
    assert first.read_bytes() == second.read_bytes()  # no creation time in the profile
    expected = rgb.mul(255).round().div(255)
    assert torch.allclose(load_image(first).rgb, expected, atol=1e-6)


def test_jpeg_quality_and_full_resolution_colour(tmp_path: Path) -> None:
    rgb = noise(64, 64)
    high = save_image(rgb, tmp_path / "high.jpg")  # the default, 95
    low = save_image(rgb, tmp_path / "low.jpg", quality=30)
    assert low.stat().st_size < high.stat().st_size
    with Image.open(high) as image:
        assert isinstance(image, JpegImagePlugin.JpegImageFile)
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4


def test_webp_at_quality_100_is_lossless(tmp_path: Path) -> None:
    rgb = noise()
    exact = load_image(save_image(rgb, tmp_path / "a.webp", quality=100)).rgb
    lossy = load_image(save_image(rgb, tmp_path / "b.webp", quality=50)).rgb
    assert torch.equal(exact, rgb.mul(255).round().div(255))
    assert not torch.equal(lossy, exact)


def test_tiff_is_deflate_compressed(tmp_path: Path) -> None:
    path = save_image(torch.zeros(3, 64, 64), tmp_path / "flat.tif")
    with Image.open(path) as image:
        assert image.info["compression"] == "tiff_adobe_deflate"
    assert path.stat().st_size < 64 * 64 * 3 / 4


@AVIF
def test_avif_round_trips_with_alpha_and_quality(tmp_path: Path) -> None:
    rgb, alpha = noise(), torch.full((1, 24, 32), 0.5)
    path = save_image(rgb, tmp_path / "out.avif", alpha)
    back = load_image(path)
    assert back.rgb.shape == (3, 24, 32) and back.alpha is not None
    assert (back.rgb - rgb).abs().mean() < 0.1
    small = save_image(rgb, tmp_path / "small.avif", quality=10)
    assert small.stat().st_size < path.stat().st_size


def test_avif_without_a_codec_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_io.features, "check", lambda name: False)
    with pytest.raises(ImageError, match=r"cannot write AVIF; pip install 'pillow>=11\.3'"):
        save_image(noise(), tmp_path / "out.avif")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "quality", "message"),
    [
        ("out.png", 90, "quality applies to JPEG, WebP and AVIF outputs; PNG is lossless"),
        ("out.jpg", 0, "quality must be between 1 and 100, not 0"),
        ("out.webp", 101, "quality must be between 1 and 100, not 101"),
    ],
)
def test_a_bad_quality_is_refused_before_the_run(
    tmp_path: Path,
    image_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    quality: int,
    message: str,
) -> None:
    argv = ["stylize", *map(str, image_pair), "-o", str(tmp_path / name), *FAST]
    code = cli.main([*argv, "--quality", str(quality)])
    out, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1
    assert "iteration" not in out and not (tmp_path / name).exists()


def test_the_cli_writes_jpeg_at_the_quality_asked(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stylize", *map(str, image_pair), *FAST, "--quality"]
    assert cli.main([*argv, "20", "-o", str(tmp_path / "low.jpg")]) == 0
    assert cli.main([*argv, "98", "-o", str(tmp_path / "high.jpg")]) == 0
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


# --- HEIC in ---


def heic_header() -> bytes:
    """The start of an iPhone photo: an ftyp box with major brand heic."""
    return struct.pack(">I", 28) + b"ftypheic" + b"\0\0\0\0" + b"mif1heicmiaf"


def test_heic_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_io, "_heif_opener", lambda: False)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic_header() + b"\0" * 100)
    with pytest.raises(ImageError, match=r"is a HEIC image; .*pip install 'estilo\[heic\]'"):
        load_image(path, what="content image")


def test_heic_is_read_with_the_extra(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "photo.heic"
    colour = np.zeros((32, 48, 3), np.uint8)
    colour[..., 0] = 200
    pillow_heif.from_pillow(Image.fromarray(colour)).save(path, quality=95)
    rgb = load_image(path).rgb
    assert rgb.shape == (3, 32, 48)
    assert rgb[0].mean() > 0.7 and rgb[1:].mean() < 0.1
