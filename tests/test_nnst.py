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


def centred_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def brute_force_neighbours(queries: torch.Tensor, bank: torch.Tensor) -> list[int]:
    """For each query column, the bank column at the smallest 1 - cos(q - μ_q, b - μ_b), each
    set centred on its own mean column, one pair at a time."""
    query_centre, bank_centre = queries.mean(1), bank.mean(1)
    found = []
    for i in range(queries.shape[1]):
        q = queries[:, i] - query_centre
        similarities = [centred_cosine(q, bank[:, j] - bank_centre) for j in range(bank.shape[1])]
        found.append(max(range(len(similarities)), key=similarities.__getitem__))
    return found


def nnst(
    output: torch.Tensor,
    style: torch.Tensor,
    photo: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of ``output`` with the neighbours chosen for ``photo``'s features."""
    statistic = losses.nnst_loss
    assert statistic.anchor is not None
    target = statistic.anchor(statistic.target(style), photo)
    return statistic.distance(statistic.represent(output, weights), target)


def test_nearest_neighbours_match_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "NNST_CHUNK", 40)  # 2 rows per chunk: the chunks are exercised
    queries, bank = random(6, 23), random(6, 17, seed=1)
    *_, chosen = losses.nnst_anchor(losses.nnst_bank(bank), queries)
    assert chosen.tolist() == brute_force_neighbours(queries, bank)


def test_loss_is_zero_on_the_chosen_style_features_and_positive_elsewhere() -> None:
    style, photo = random(8, 30), random(8, 50, seed=2)
    chosen = brute_force_neighbours(photo, style)
    assert nnst(style[:, chosen], style, photo).item() == pytest.approx(0.0, abs=1e-9)
    assert nnst(random(8, 50, seed=3), style, photo).item() > 0.1
    # Style features, but not the ones chosen for the photo there: the targets are fixed.
    assert nnst(style[:, chosen[::-1]], style, photo).item() > 0.1
    # The right directions at twice the length: the cosine alone would not see it.
    doubled = nnst(2 * style[:, chosen], style, photo).item()
    assert doubled == pytest.approx(losses.NNST_LENGTH_WEIGHT)


def test_loss_is_the_mean_distance_to_the_photos_neighbour() -> None:
    """Cosine distance plus the squared relative error of the length, averaged."""
    output, style, photo = random(5, 12, seed=4), random(5, 9, seed=5), random(5, 12, seed=11)
    expected = 0.0
    for i, j in enumerate(brute_force_neighbours(photo, style)):
        a, b = output[:, i], style[:, j]
        ratio = float(a.norm() / b.norm())
        expected += (1 - centred_cosine(a, b) + losses.NNST_LENGTH_WEIGHT * (ratio - 1) ** 2) / 12
    assert nnst(output, style, photo).item() == pytest.approx(expected)


def test_bank_is_capped_by_an_even_stride(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "NNST_BANK", 10)
    style = random(4, 40, seed=6)
    directions, lengths, search = losses.nnst_bank(style)
    kept = style[:, ::4]  # 0, 4, 8...
    assert directions.shape == search.shape == (4, 10)
    assert torch.allclose(directions * lengths, kept)


def test_gradients_are_finite_even_at_zero() -> None:
    style, photo = random(6, 20, seed=7), random(6, 15, seed=12)
    output = random(6, 15, seed=8)
    output[:, 0] = 0  # its direction is undefined
    output.requires_grad_(True)
    loss = nnst(output, style, photo)
    loss.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()
    assert output.grad.abs().sum() > 0


def test_a_mask_weighs_the_positions() -> None:
    style, photo = random(5, 20, seed=9), random(5, 20, seed=13)
    chosen = brute_force_neighbours(photo, style)
    output = torch.cat([style[:, chosen[:10]], random(5, 10, seed=10)], dim=1)
    left = torch.cat([torch.ones(10), torch.zeros(10)]).double() / 10
    assert nnst(output, style, photo, left).item() == pytest.approx(0.0, abs=1e-9)
    assert nnst(output, style, photo, left.flip(0)).item() > 0.1


def test_objective_builds_hypercolumns_over_rotated_styles(weights: Weights) -> None:
    config = resolve(size=64, style_loss="nnst", device="cpu")
    net = VGG19Features(weights, {*config.style_layers, *config.content_layers})
    content = synthetic_content(48, 64)[None]
    style = synthetic_style(64, 40)[None]
    objective = Objective(net, RunInputs.make(content, style), config)
    (field,) = objective.style_fields(net(content))
    assert field.shape == (1, 64 + 128 + 256 + 512 + 512, 12, 16)  # the image's grid / 4
    target = objective.style_targets[0][0]
    directions, lengths, chosen = target  # the bank: four rotations of a 16 x 10 grid
    assert directions.shape == (field.shape[1], 4 * 16 * 10)
    # One neighbour per position of the photo, chosen once for the photo's hypercolumns.
    assert chosen.shape == (12 * 16,) and 0 <= int(chosen.min()) <= int(chosen.max()) < 640
    # The photo's positions painted with their neighbours cost nothing; the photo does.
    painted = directions[:, chosen] * lengths[chosen]
    stat = objective.statistic.represent(painted, None)
    assert objective.statistic.distance(stat, target).item() == pytest.approx(0, abs=1e-5)
    assert objective.style_loss(net(content)).item() > 0.01


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
