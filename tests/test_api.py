"""The Python API (estilo.stylize), the public names, and the import layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from PIL import Image

import estilo
from estilo.core.registry import OPTIMIZERS, STYLE_LOSSES
from estilo.errors import ConfigError, ImageError

from .conftest import synthetic_content, synthetic_style

SRC = Path(estilo.__file__).parent


def test_public_api_is_pinned() -> None:
    assert set(estilo.__all__) == {
        "PRESETS",
        "ConfigError",
        "EstiloError",
        "ImageError",
        "Iterate",
        "LossRecord",
        "PaintedFrame",
        "StyleConfig",
        "Stylized",
        "__version__",
        "load_image",
        "resolve",
        "save_image",
        "stylize",
        "stylize_video",
    }
    for name in estilo.__all__:
        assert getattr(estilo, name) is not None


def test_stylize_accepts_tensors_pil_and_paths(tmp_path: Path) -> None:
    content = synthetic_content()
    style_path = tmp_path / "style.png"
    estilo.save_image(synthetic_style(), style_path)
    steps: list[int] = []
    result = estilo.stylize(
        content,
        style_path,
        callback=lambda step: steps.append(step.iteration) or None,
        size=32,
        iterations=3,
        log_every=0,
    )
    assert result.image.shape == (3, 24, 32)
    assert len(result.history) == 3 and steps == [1, 2, 3]
    assert result.status == "completed" and result.config.size == 32
    pil = result.to_pil()
    style_image = Image.open(style_path)
    again = estilo.stylize(
        pil,
        style_image,
        size=16,
        iterations=1,
        content_layers="relu2_1",
        style_layers="relu1_1,relu2_1",
    )
    assert again.image.shape == (3, 12, 16)
    with pytest.raises(ConfigError, match="relu5_1 needs at least 16 px on each side"):
        estilo.stylize(pil, style_image, size=16, iterations=1)
    style_image.close()


def test_stylize_with_preset_and_config() -> None:
    config = estilo.resolve("paper", size=32, iterations=2)
    result = estilo.stylize(synthetic_content(), synthetic_style(), config)
    assert result.config.optimizer == "adam" and result.image.shape == (3, 32, 32)  # square
    other = estilo.stylize(
        synthetic_content(), synthetic_style(), preset="paper", size=16, iterations=1
    )
    assert other.image.shape == (3, 16, 16)  # square: 16 px is enough for relu5_2


def test_init_from_an_image_file(tmp_path: Path) -> None:
    start = torch.zeros(3, 24, 32)
    start[1] = 1.0
    path = tmp_path / "start.png"
    estilo.save_image(start, path)
    result = estilo.stylize(
        synthetic_content(),
        synthetic_style(),
        size=32,
        iterations=1,
        init=str(path),
        optimizer="adam",
        lr=1e-4,
    )
    assert result.image[1].mean() > 0.9  # a tiny step away from the green start


def test_api_errors_are_estilo_errors() -> None:
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        estilo.stylize(synthetic_content(), synthetic_style(), sise=10)
    with pytest.raises(ImageError, match=r"values must be finite and in \[0, 1\]"):
        estilo.stylize(synthetic_content() * 2, synthetic_style())
    with pytest.raises(ImageError, match="shape"):
        estilo.stylize(torch.rand(4, 8, 8), synthetic_style())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_registry_builds_optimizers(name: str) -> None:
    param = torch.zeros(3, requires_grad=True)
    optimizer = OPTIMIZERS[name].load()([param], estilo.resolve(optimizer=name))
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.param_groups[0]["lr"] == estilo.resolve(optimizer=name).learning_rate


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_style_loss_registry_gives_statistics(name: str) -> None:
    from estilo.core.losses import StyleStatistic

    assert isinstance(STYLE_LOSSES[name].load(), StyleStatistic)


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved within estilo)."""
    package = ".".join(("estilo", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("core", ("PIL", "argparse", "estilo.image", "estilo.pipeline", "estilo.cli")),
        ("image", ("estilo.core", "estilo.pipeline", "estilo.cli", "argparse")),
        ("pipeline.py", ("estilo.cli", "estilo.experiments", "argparse")),
        ("quality", ("estilo.cli", "estilo.experiments", "estilo.web", "argparse")),
        ("experiments", ("estilo.cli", "estilo.web", "argparse")),
        (
            "video",
            ("estilo.cli", "estilo.web", "estilo.experiments", "estilo.core.stylize", "argparse"),
        ),
    ],
)
def test_dependencies_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    files = [SRC / layer] if layer.endswith(".py") else sorted((SRC / layer).rglob("*.py"))
    for path in files:
        for module in imports_of(path):
            assert not module.startswith(forbidden), f"{path.name} imports {module}"


def test_core_never_prints() -> None:
    for path in (SRC / "core").rglob("*.py"):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print"
        ]
        assert not calls, path.name
