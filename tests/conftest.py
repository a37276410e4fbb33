"""Shared fixtures: tiny synthetic images (no files from ../shared) and the real weights."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image

from estilo.core.vgg import Weights
from estilo.image.io import to_pil
from estilo.pipeline import cached_weights


def synthetic_content(height: int = 48, width: int = 64) -> torch.Tensor:
    """(3, H, W): smooth shapes, a 'photo' with structure the content loss can hold on to."""
    y = torch.linspace(0, 1, height).view(-1, 1).expand(height, width)
    x = torch.linspace(0, 1, width).view(1, -1).expand(height, width)
    disc = (((x - 0.35) ** 2 + (y - 0.5) ** 2) < 0.06).float()
    return torch.stack([0.2 + 0.6 * x, 0.3 + 0.5 * disc, 0.8 - 0.6 * y]).clamp(0, 1)


def synthetic_style(height: int = 64, width: int = 64) -> torch.Tensor:
    """(3, H, W): saturated diagonal stripes, a 'painting' with strong texture."""
    y = torch.arange(height).view(-1, 1).float()
    x = torch.arange(width).view(1, -1).float()
    phase = (x + y) * 2 * math.pi / 8
    return torch.stack(
        [
            0.5 + 0.5 * torch.sin(phase),
            0.5 + 0.5 * torch.sin(phase + 2.0) * torch.cos(y / 5),
            0.5 + 0.5 * torch.cos(x / 3).expand(height, width),
        ]
    ).clamp(0, 1)


@pytest.fixture(scope="session")
def weights() -> Weights:
    return cached_weights("")


@pytest.fixture
def content() -> torch.Tensor:
    return synthetic_content()


@pytest.fixture
def style() -> torch.Tensor:
    return synthetic_style()


@pytest.fixture
def image_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A content and a style image written as files."""
    content_path, style_path = tmp_path / "content.png", tmp_path / "style.jpg"
    to_pil(synthetic_content()).save(content_path)
    to_pil(synthetic_style()).save(style_path, quality=95)
    return content_path, style_path


def save_rgb(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB", **kw: object) -> Path:
    Image.new(mode, size, color=(10, 20, 30) if mode == "RGB" else None).save(path, **kw)
    return path


def default_sigint() -> None:
    """A ``preexec_fn`` for children that a test interrupts: a job started in the background by
    a non-interactive shell inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler; the child gets the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
