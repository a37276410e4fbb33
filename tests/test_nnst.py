"""Neural Neighbor Style Transfer (Kolkin et al. 2022): the neighbour search, the loss, and the
hypercolumns the objective builds for a joint statistic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import estilo
from estilo.core import losses
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.objective import Objective
from estilo.core.vgg import VGG19Features, Weights
from estilo.image.io import to_pil

from .conftest import synthetic_content, synthetic_style


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def brute_force_neighbours(queries: torch.Tensor, bank: torch.Tensor) -> list[int]:
    """For each query column, the bank column at the smallest 1 - cos(q - μ, b - μ), μ the
    bank's mean column, one pair at a time."""
    centre = bank.mean(1)
    found = []
    for i in range(queries.shape[1]):
        q = queries[:, i] - centre
        distances = [
            float(1 - q @ (bank[:, j] - centre) / (q.norm() * (bank[:, j] - centre).norm()))
            for j in range(bank.shape[1])
        ]
        found.append(min(range(len(distances)), key=distances.__getitem__))
    return found


def nnst(
    output: torch.Tensor, style: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    return losses.nnst_loss.distance(
        losses.nnst_loss.represent(output, weights), losses.nnst_loss.target(style)
    )


def test_nearest_neighbours_match_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "NNST_CHUNK", 40)  # 2 rows per chunk: the chunks are exercised
    queries, bank = random(6, 23), random(6, 17, seed=1)
    found = losses.nearest_neighbours(queries, *losses.nnst_bank(bank))
    assert found.tolist() == brute_force_neighbours(queries, bank)


def test_loss_is_zero_on_style_features_and_positive_elsewhere() -> None:
    style = random(8, 30)
    drawn = style[:, torch.randint(0, 30, (50,), generator=torch.Generator().manual_seed(2))]
    assert nnst(drawn, style).item() == pytest.approx(0.0, abs=1e-9)
    assert nnst(random(8, 50, seed=3), style).item() > 0.1


def test_loss_is_the_mean_distance_to_the_brute_force_neighbour() -> None:
    output, style = random(5, 12, seed=4), random(5, 9, seed=5)
    centre = style.mean(1)
    expected = 0.0
    for i, j in enumerate(brute_force_neighbours(output, style)):
        a, b = output[:, i] - centre, style[:, j] - centre
        expected += float(1 - a @ b / (a.norm() * b.norm())) / 12
    assert nnst(output, style).item() == pytest.approx(expected)


def test_bank_is_capped_by_an_even_stride(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "NNST_BANK", 10)
    style = random(4, 40, seed=6)
    assert nnst(style[:, ::4], style).item() == pytest.approx(0.0, abs=1e-9)  # kept: 0, 4, 8...
    assert nnst(style[:, 1::4], style).item() > 0


def test_gradients_are_finite_even_at_the_centre() -> None:
    style = random(6, 20, seed=7)
    output = random(6, 15, seed=8)
    output[:, 0] = style.mean(1)  # a zero vector once centred: its direction is undefined
    output.requires_grad_(True)
    loss = nnst(output, style)
    loss.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()
    assert output.grad.abs().sum() > 0


def test_a_mask_weighs_the_positions() -> None:
    style = random(5, 20, seed=9)
    output = torch.cat([style[:, :10], random(5, 10, seed=10)], dim=1)
    left = torch.cat([torch.ones(10), torch.zeros(10)]).double() / 10
    assert nnst(output, style, left).item() == pytest.approx(0.0, abs=1e-9)
    assert nnst(output, style, left.flip(0)).item() > 0.1


def test_objective_builds_hypercolumns_over_rotated_styles(weights: Weights) -> None:
    config = resolve(size=64, style_loss="nnst", device="cpu")
    net = VGG19Features(weights, {*config.style_layers, *config.content_layers})
    content = synthetic_content(48, 64)[None]
    style = synthetic_style(64, 40)[None]
    objective = Objective(net, RunInputs.make(content, style), config)
    (field,) = objective.style_fields(net(content))
    assert field.shape == (1, 64 + 128 + 256 + 512 + 512, 12, 16)  # the image's grid / 4
    bank, _ = objective.style_targets[0][0]  # four rotations of a 16 x 10 grid
    assert bank.shape == (field.shape[1], 4 * 16 * 10)
    # The style image's own hypercolumns are in the bank: as the output, it costs nothing.
    assert objective.style_loss(net(style)).item() == pytest.approx(0.0, abs=1e-5)


def test_stylize_with_nnst_lowers_the_loss() -> None:
    result = estilo.stylize(
        synthetic_content(64, 64),
        synthetic_style(),
        style_loss="nnst",
        size=64,
        iterations=5,
        tolerance=0.0,
        log_every=0,
        device="cpu",
    )
    assert result.status == "completed"
    assert result.history[-1].loss < result.history[0].loss
    assert torch.isfinite(result.image).all()


def test_nnst_blends_styles_under_a_mask(tmp_path: Path) -> None:
    labels = torch.zeros(64, 64)
    labels[:, 32:] = 1.0
    mask = tmp_path / "mask.png"
    to_pil(labels.expand(3, -1, -1)).convert("L").save(mask)
    result = estilo.stylize(
        synthetic_content(64, 64),
        [synthetic_style(), synthetic_style().flip(0)],
        mask=mask,
        style_loss="nnst",
        size=64,
        iterations=2,
        log_every=0,
        device="cpu",
    )
    assert result.status == "completed" and torch.isfinite(result.image).all()
