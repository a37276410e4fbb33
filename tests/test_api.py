"""The Python API (estilo.stylize), the public names, and the import layering."""

from __future__ import annotations

import ast
import io
import logging
import pydoc
import re
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import estilo
from estilo.core.registry import OPTIMIZERS, STYLE_LOSSES
from estilo.errors import ConfigError, ImageError
from estilo.pipeline import read

from .conftest import synthetic_content, synthetic_style

SRC = Path(estilo.__file__).parent


def test_public_api_is_pinned() -> None:
    assert set(estilo.__all__) == {
        "PRESETS",
        "ConfigError",
        "EstiloError",
        "FastModel",
        "ImageError",
        "Iterate",
        "LossRecord",
        "PaintedFrame",
        "Status",
        "StyleConfig",
        "Stylized",
        "__version__",
        "apply",
        "export",
        "load_image",
        "load_model",
        "resolve",
        "save_image",
        "stylize",
        "stylize_video",
        "train",
        "training_objective",
    }
    for name in estilo.__all__:
        assert getattr(estilo, name) is not None


def test_dir_and_help_show_the_lazy_names() -> None:
    assert {"stylize", "Stylized", "Iterate", "load_image"} <= set(dir(estilo))
    page = pydoc.render_doc(estilo, renderer=pydoc.plaintext)
    assert "stylize(" in page and "class Stylized" in page


def test_statuses_are_a_literal_type() -> None:
    assert set(typing.get_args(estilo.Status)) == {
        "completed",
        "stopped",
        "diverged",
        "interrupted",
    }
    hints = typing.get_type_hints(estilo.Stylized)
    assert hints["status"] == estilo.Status


def test_numpy_arrays_and_uint8_tensors_read_as_the_same_image() -> None:
    config = estilo.resolve()
    floats = synthetic_content()
    as_uint8 = floats.mul(255).round().to(torch.uint8)
    expected = as_uint8.float() / 255
    hwc = as_uint8.permute(1, 2, 0).numpy()
    for source in (as_uint8, hwc, hwc.astype(np.float64) / 255, hwc.astype(np.float32) / 255):
        loaded = read(source, config, "content image")
        assert torch.allclose(loaded.rgb, expected, atol=1e-6), type(source)
        assert loaded.alpha is None
    rgba = np.concatenate([hwc, np.full((*hwc.shape[:2], 1), 128, np.uint8)], axis=2)
    alpha = read(rgba, config, "content image").alpha
    assert alpha is not None and alpha.shape == (1, *hwc.shape[:2])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (np.zeros((8, 8, 2), np.uint8), r"shape \(H, W, 3\) or \(H, W, 4\), not \(8, 8, 2\)"),
        (np.zeros((3, 8, 8), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.int32), "uint8 or float, not int32"),
        (np.full((8, 8, 3), 255.0), r"float array values must be finite and in \[0, 1\]"),
        (np.full((8, 8, 3), np.nan, np.float32), "finite"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "uint8 or float, not torch.int64"),
        (torch.zeros(8, 8, 3, dtype=torch.uint8), r"shape \(3, H, W\)"),
    ],
    ids=[
        "two-channels",
        "channels-first",
        "int32",
        "float-255",
        "nan",
        "int64-tensor",
        "hwc-tensor",
    ],
)
def test_wrong_arrays_are_one_line_errors(source: object, message: str) -> None:
    with pytest.raises(ImageError, match=message) as caught:
        estilo.stylize(source, synthetic_style(), size=32, iterations=1)  # type: ignore[arg-type]
    assert "content image" in str(caught.value) and "\n" not in str(caught.value)


def test_result_has_a_short_repr_and_shows_as_a_png(capsys: pytest.CaptureFixture[str]) -> None:
    pixels = synthetic_content().permute(1, 2, 0).numpy()  # (H, W, 3) floats
    result = estilo.stylize(pixels, synthetic_style(), size=32, iterations=3, progress=True)
    text = repr(result)
    assert len(text) < 120 and "32x24" in text and "completed" in text, text
    with Image.open(io.BytesIO(result._repr_png_())) as shown:
        assert shown.format == "PNG" and shown.size == (32, 24)
    bar = capsys.readouterr().err
    assert "3/3" in bar and "loss" in bar and ("it/s" in bar or "s/it" in bar), bar


def test_notices_are_logged_when_no_one_listens(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from estilo.core import memory

    config = estilo.resolve(size=32, iterations=1, device="cpu", precision="float32")
    needed = memory.estimate(config, (24, 32), [(32, 32)], autocast=False, recompute=False)
    monkeypatch.setattr(memory, "free_bytes", lambda device: needed - 1)  # recomputing fits
    with caplog.at_level(logging.WARNING, logger="estilo"):
        estilo.stylize(synthetic_content(), synthetic_style(), config)
    assert any("recomputing activations" in record.getMessage() for record in caplog.records)


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
    start = torch.zeros(3, 12, 16)  # smaller than the picture: resized to the first scale
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
    assert max(result.image.shape[-2:]) == 32


def test_api_errors_are_estilo_errors() -> None:
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        estilo.stylize(synthetic_content(), synthetic_style(), sise=10)
    with pytest.raises(ImageError, match=r"tensor values must be finite and in \[0, 1\]"):
        estilo.stylize(synthetic_content() * 2, synthetic_style())
    with pytest.raises(ImageError, match="shape"):
        estilo.stylize(torch.rand(4, 8, 8), synthetic_style())


def test_options_are_converted_by_their_fields_real_types() -> None:
    config = estilo.resolve(
        size="64",
        square="yes",
        lr="0.5",
        seed=7.0,
        style_layers=["relu1_1 ", "relu2_1"],
        style_layer_weights="3, 1",
    )
    assert (config.size, config.square, config.lr, config.seed) == (64, True, 0.5, 7)
    assert config.style_layers == ("relu1_1", "relu2_1")
    assert config.style_layer_weights == (3.0, 1.0)
    assert estilo.resolve(lr=0.5).replace(lr=None).lr is None
    for name, value, kind in (
        ("size", 64.5, "int"),
        ("square", "maybe", "bool"),
        ("lr", "fast", "float | None"),
        ("style_layer_weights", "1,x", "tuple[float, ...]"),
    ):
        with pytest.raises(
            ConfigError, match=rf"option {name}: .* is not a valid {re.escape(kind)}$"
        ):
            estilo.resolve(**{name: value})
    # Every field's type is one the conversion knows: each default converts to itself.
    defaults = estilo.StyleConfig().to_dict()
    assert estilo.resolve(**defaults).to_dict() == defaults


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
        ("progress.py", ("estilo.cli", "estilo.experiments", "estilo.web", "torch", "PIL")),
        ("formats.py", ("estilo.core", "estilo.image", "estilo.pipeline", "torch", "PIL")),
        ("quality", ("estilo.cli", "estilo.experiments", "estilo.web", "argparse")),
        ("experiments", ("estilo.cli", "estilo.web", "argparse")),
        ("video", ("estilo.cli", "estilo.web", "estilo.experiments", "argparse")),
        ("fast", ("estilo.cli", "estilo.web", "estilo.experiments", "argparse")),
    ],
)
def test_dependencies_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    files = [SRC / layer] if layer.endswith(".py") else sorted((SRC / layer).rglob("*.py"))
    for path in files:
        for module in imports_of(path):
            assert not module.startswith(forbidden), f"{path.name} imports {module}"


#: What every floor may use of the core: names and options, no torch.
VOCABULARY = ("estilo.core.config", "estilo.core.registry", "estilo.core.layers")


@pytest.mark.parametrize("layer", ["web", "experiments", "quality", "video", "fast"])
def test_front_ends_reach_the_core_through_the_pipeline(layer: str) -> None:
    for path in sorted((SRC / layer).rglob("*.py")):
        for module in imports_of(path):
            if module == "estilo.core" or module.startswith("estilo.core."):
                assert module.startswith(VOCABULARY), f"{path.name} imports {module}"


def test_core_never_prints() -> None:
    for path in (SRC / "core").rglob("*.py"):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print"
        ]
        assert not calls, path.name


@pytest.mark.parametrize("layer", ["core", "image"])
def test_core_and_image_errors_name_settings_not_flags(layer: str) -> None:
    """The web UI shows these messages too: they name a setting (``size``), never a flag."""
    for path in sorted((SRC / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [
                    n.value
                    for n in ast.walk(node.exc)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                # A pip command's flags are pip's, not estilo's settings.
                flags = [t for t in texts if re.search(r"--[a-z]", t) and "pip " not in t]
                assert not flags, f"{path.name}:{node.lineno} names {flags}"


def test_cited_sections_of_the_method_exist() -> None:
    """Every ``docs/method.md §N`` the code, tests and README cite is a heading there (the code
    once cited a document the repository did not have)."""
    root = Path(__file__).parents[1]
    method = (root / "docs" / "method.md").read_text()
    headings = set(re.findall(r"^#+ (\d+(?:\.\d+)*)\.? ", method, re.MULTILINE))
    files = [*SRC.rglob("*.py"), *(root / "tests").glob("*.py"), root / "README.md"]
    cited = {
        section
        for path in files
        for section in re.findall(r"docs/method\.md §(\d+(?:\.\d+)*)", path.read_text())
    }
    assert cited and cited <= headings, sorted(cited - headings)
