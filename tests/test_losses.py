"""Losses against hand-written references, and the registry's contract for style losses."""

from __future__ import annotations

import pytest
import torch

from estilo.core.losses import content_loss, gram_matrix, tv_loss
from estilo.core.registry import STYLE_LOSSES


def gram_reference(features: torch.Tensor) -> torch.Tensor:
    """G_ij = Σ_k F_ik F_jk / M, written as loops over channels."""
    _, c, h, w = features.shape
    flat = features[0].reshape(c, h * w)
    gram = torch.empty(c, c, dtype=features.dtype)
    for i in range(c):
        for j in range(c):
            gram[i, j] = (flat[i] * flat[j]).sum() / (h * w)
    return gram


def test_gram_matrix_matches_reference() -> None:
    features = torch.randn(1, 5, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(features)[0], gram_reference(features))


def test_gram_matrix_is_size_independent_for_repeated_texture() -> None:
    tile = torch.randn(1, 4, 3, 3)
    assert torch.allclose(gram_matrix(tile), gram_matrix(tile.repeat(1, 1, 4, 4)), atol=1e-5)


def test_gram_style_loss_matches_reference() -> None:
    x, y = torch.randn(1, 6, 5, 5), torch.randn(1, 6, 5, 5)
    stat = STYLE_LOSSES["gram"].load()
    got = stat.distance(stat.represent(x), stat.represent(y))
    gx, gy = gram_reference(x), gram_reference(y)
    expected = sum((gx[i, j] - gy[i, j]) ** 2 for i in range(6) for j in range(6)) / 36
    torch.testing.assert_close(got, torch.as_tensor(expected))


def test_content_loss_matches_reference() -> None:
    x, y = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    expected = sum(float(a - b) ** 2 for a, b in zip(x.flatten(), y.flatten(), strict=True)) / 48
    assert content_loss(x, y).item() == pytest.approx(expected, rel=1e-5)


def test_tv_loss_matches_reference() -> None:
    image = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    dy = [
        (image[0, c, i + 1, j] - image[0, c, i, j]) ** 2
        for c in range(3)
        for i in range(3)
        for j in range(5)
    ]
    dx = [
        (image[0, c, i, j + 1] - image[0, c, i, j]) ** 2
        for c in range(3)
        for i in range(4)
        for j in range(4)
    ]
    expected = sum(dy) / len(dy) + sum(dx) / len(dx)
    assert tv_loss(image).item() == pytest.approx(float(expected))
    assert tv_loss(torch.ones(1, 3, 4, 4)).item() == 0.0


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_style_loss_contract(name: str) -> None:
    stat = STYLE_LOSSES[name].load()
    torch.manual_seed(0)
    target = torch.rand(1, 8, 6, 6)
    other = torch.rand(1, 8, 6, 6, requires_grad=True)
    assert stat.distance(stat.represent(target), stat.represent(target)).item() == 0.0
    loss = stat.distance(stat.represent(other), stat.represent(target))
    assert loss.item() > 0 and torch.isfinite(loss)
    loss.backward()
    assert other.grad is not None and torch.isfinite(other.grad).all()
    assert other.grad.abs().sum() > 0
