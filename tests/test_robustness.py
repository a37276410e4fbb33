"""Hostile and broken inputs: every one is a single line on stderr and a non-zero exit, never a
traceback, a hang or a half-written file. Run in-process through cli.main where possible."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from estilo import cli

FAST = ["--size", "32", "--iterations", "2", "--device", "cpu"]


def _nan_tiff(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    array = np.full((size[1], size[0]), 0.5, dtype=np.float32)
    array[3, 4] = np.nan
    Image.fromarray(array, mode="F").save(path)
    return path


def _loop(path: Path) -> Path:
    path.symlink_to(path.name)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _sparse(path: Path) -> Path:
    with path.open("wb") as handle:
        handle.truncate(200 * 2**20)  # no disk used; over the limit for --max-pixels 1000
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# name -> (argv from the folder holding c.png and s.png, text expected in the message)
Case = Callable[[Path], list[str]]
STYLIZE: dict[str, tuple[Case, str]] = {
    "content-symlink-loop": (lambda d: [str(_loop(d / "loop.png")), str(d / "s.png")], "cannot"),
    "content-fifo": (lambda d: [str(_fifo(d / "f.png")), str(d / "s.png")], "not a regular"),
    "content-device": (lambda d: ["/dev/null", str(d / "s.png")], "not a regular file"),
    "content-sparse-huge": (
        lambda d: [str(_sparse(d / "x.png")), str(d / "s.png"), "--max-pixels", "1000"],
        "over the limit",
    ),
    "content-nan-tiff": (
        lambda d: [str(_nan_tiff(d / "n.tif")), str(d / "s.png")],
        "NaN or infinite",
    ),
    "style-nan-tiff": (
        lambda d: [str(d / "c.png"), str(_nan_tiff(d / "n.tif"))],
        "NaN or infinite",
    ),
    "mask-nan-tiff": (
        lambda d: [str(d / "c.png"), str(d / "s.png"), "--mask", str(_nan_tiff(d / "m.tif"))],
        "NaN or infinite",
    ),
    "mask-symlink-loop": (
        lambda d: [str(d / "c.png"), str(d / "s.png"), "--mask", str(_loop(d / "m.png"))],
        "cannot",
    ),
    "seed-2^63": (lambda d: [str(d / "c.png"), str(d / "s.png"), "--seed", str(2**63)], "seed"),
    "seed-2^64": (lambda d: [str(d / "c.png"), str(d / "s.png"), "--seed", str(2**64)], "seed"),
    "config-not-utf8": (
        lambda d: ["--config", str(_write(d / "c.toml", b"size = 64\n# \xff\xfe\n"))],
        "not UTF-8",
    ),
    "config-deep-json": (
        lambda d: ["--config", str(_write(d / "c.json", b"[" * 100_000 + b"]" * 100_000))],
        "nested too deeply",
    ),
    "config-deep-toml": (
        lambda d: ["--config", str(_write(d / "c.toml", b"a = " + b"[" * 100_000))],
        "config file",
    ),
    "config-fifo": (lambda d: ["--config", str(_fifo(d / "c.toml"))], "not a regular file"),
    "config-device": (lambda d: ["--config", "/dev/zero"], "not a regular file"),
    "config-huge": (
        lambda d: ["--config", str(_write(d / "c.toml", b"#" * (2**20 + 1)))],
        "over the limit",
    ),
    "weights-text-file": (
        lambda d: ["--weights", str(_write(d / "w.pt", b"root:x:0:0:root:/root:/bin/bash\n"))],
        "is not VGG19 weights",
    ),
    "output-name-too-long": (lambda d: ["-o", str(d / ("x" * 300 + ".png"))], "File name too long"),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 48), (10, 120, 30)).save(tmp_path / "c.png")
    Image.effect_noise((64, 64), 60).convert("RGB").save(tmp_path / "s.png")
    return tmp_path


@pytest.mark.parametrize("name", list(STYLIZE))
def test_bad_input_is_one_line_exit_2_no_traceback(
    folder: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    build, expected = STYLIZE[name]
    extra = build(folder)
    images = [] if extra[0].startswith("-") else extra[:2]
    rest = extra if not images else extra[2:]
    images = images or [str(folder / "c.png"), str(folder / "s.png")]
    out = folder / "out.png"
    argv = ["stylize", *images, "-o", str(out), *FAST, *rest]
    if "-o" in rest:  # the case names its own output
        argv = ["stylize", *images, *FAST, *rest]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.err.startswith("estilo: error: ") and captured.err.count("\n") == 1
    assert expected in captured.err and "Traceback" not in captured.err
    assert not out.exists()


def test_a_one_pixel_content_image_runs(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one.png")
    out = folder / "out.png"
    code = cli.main(["stylize", str(folder / "one.png"), str(folder / "s.png"), "-o", str(out),
                     *FAST])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert out.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port", "70000"], "is not a port number"),
        (["serve", "--port", "-1"], "is not a port number"),
        (["experiment", "report", "/dev/null"], "holds no experiment"),
    ],
)
def test_other_commands_refuse_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_serve_on_a_busy_port_refuses_before_announcing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "serving on" not in out and err.count("\n") == 1 and "cannot listen" in err


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"name = '\xff'", "not UTF-8"), (b"[grid]\nlr = " + b"[" * 50_000, "config file")],
)
def test_a_broken_spec_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, expected: str
) -> None:
    spec = _write(tmp_path / "study.toml", body)
    assert cli.main(["experiment", "run", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_info_into_a_closed_pipe_is_quiet() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # like 'estilo info | head -0': nobody reads
    with os.fdopen(writer, "w") as closed:
        done = subprocess.run(
            [sys.executable, "-m", "estilo", "info"],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert done.returncode == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
