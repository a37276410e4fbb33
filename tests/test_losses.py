"""Losses against hand-written references, and the registry's contract for every style loss."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from estilo.core import losses
from estilo.core.losses import (
    LAYOUT_GRID,
    StyleStatistic,
    coarse_luma,
    content_loss,
    layout_loss,
    tv_loss,
    weighted_gram,
)
from estilo.core.registry import STYLE_LOSSES


def gram_reference(features: torch.Tensor) -> torch.Tensor:
    """G_ij = Σ_k F_ik F_jk / M for (C, M) features, written as loops over channels."""
    c, m = features.shape
    gram = torch.empty(c, c, dtype=features.dtype)
    for i in range(c):
        for j in range(c):
            gram[i, j] = (features[i] * features[j]).sum() / m
    return gram


def kernel_mmd2(x: torch.Tensor, y: torch.Tensor, kernel) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The biased MMD² estimator, sample by sample (docs/method.md §2.3): (C, M) feature sets."""

    def mean_k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [kernel(a[:, i], b[:, j]) for i in range(a.shape[1]) for j in range(b.shape[1])]
        ).mean()

    return mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y)


def features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def target_of(stat: StyleStatistic, style: torch.Tensor, photo: torch.Tensor) -> Any:
    """The target of ``style``'s features, made per position for ``photo``'s where the
    statistic is anchored (nnst), as the objective makes it."""
    target = stat.target(style)
    return target if stat.anchor is None else stat.anchor(target, photo)


def distance(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of features ``x`` against style features ``y`` (also the photo's)."""
    stat = STYLE_LOSSES[name].load()
    return stat.distance(stat.represent(x, None), target_of(stat, y, y))


def test_gram_matches_reference() -> None:
    x = features(5, 12)
    torch.testing.assert_close(weighted_gram(x), gram_reference(x))


def test_gram_is_size_independent_for_repeated_texture() -> None:
    tile = features(4, 9)
    torch.testing.assert_close(weighted_gram(tile), weighted_gram(tile.repeat(1, 16)))


def test_gram_loss_matches_reference() -> None:
    x, y = features(6, 25), features(6, 25, seed=1)
    gx, gy = gram_reference(x), gram_reference(y)
    expected = sum((gx[i, j] - gy[i, j]) ** 2 for i in range(6) for j in range(6)) / 36
    torch.testing.assert_close(distance("gram", x, y), torch.as_tensor(expected))


def test_mmd_poly_equals_kernel_mmd_and_gram() -> None:
    """Li et al. 2017: Σ(G - A)² = M²·MMD² with k = (xᵀy)²; with G = FFᵀ/M the M² cancels,
    and our Z = N² makes mmd-poly (c = 0) equal to gram exactly."""
    x, y = features(4, 10), features(4, 13, seed=2)
    brute = kernel_mmd2(x, y, lambda a, b: (a @ b) ** 2)
    torch.testing.assert_close(distance("mmd-poly", x, y) * 16, brute)
    torch.testing.assert_close(distance("mmd-poly", x, y), distance("gram", x, y))


def test_mmd_poly_with_offset_matches_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "MMD_POLY_C", 0.7)
    x, y = features(3, 8), features(3, 11, seed=3)
    brute = kernel_mmd2(x, y, lambda a, b: (a @ b + 0.7) ** 2)
    torch.testing.assert_close(distance("mmd-poly", x, y) * 9, brute)


def test_mmd_linear_is_squared_mean_difference() -> None:
    x, y = features(5, 20), features(5, 30, seed=4)
    brute = kernel_mmd2(x, y, lambda a, b: a @ b)
    torch.testing.assert_close(distance("mmd-linear", x, y) * 5, brute)


def test_mmd_gaussian_matches_kernel_with_the_bandwidth_rule() -> None:
    x, y = features(3, 9), features(3, 7, seed=5)
    squared = torch.cat([torch.cdist(a.T, b.T).flatten() ** 2 for a, b in ((x, x), (y, y), (x, y))])
    bandwidth = squared.mean()
    brute = kernel_mmd2(x, y, lambda a, b: torch.exp(-((a - b) ** 2).sum() / bandwidth))
    torch.testing.assert_close(distance("mmd-gaussian", x, y), brute)


def test_meanstd_matches_reference() -> None:
    x, y = features(4, 50), features(4, 40, seed=6)
    expected = ((x.mean(1) - y.mean(1)) ** 2).mean() + (
        (x.std(1, unbiased=False) - y.std(1, unbiased=False)) ** 2
    ).mean()
    torch.testing.assert_close(distance("meanstd", x, y), expected, rtol=1e-6, atol=1e-9)


def test_wasserstein_of_independent_channels_is_closed_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For diagonal covariances W2² = Σ (μ - μ')² + (σ - σ')² per channel (without the ridge
    that keeps singular covariances differentiable)."""
    monkeypatch.setattr(losses, "W2_RIDGE", 0.0)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4000, generator=gen, dtype=torch.float64) * torch.tensor([[1.0], [2], [3]])
    y = torch.randn(3, 5000, generator=gen, dtype=torch.float64) * 0.5 + 1.0
    # Make the empirical covariances exactly diagonal by whitening cross terms away.
    x = x - x.mean(1, keepdim=True)
    lx = torch.linalg.cholesky(x @ x.T / x.shape[1])
    x = torch.diag(torch.diag(lx)) @ torch.linalg.solve(lx, x) + 0.2
    y_c = y - y.mean(1, keepdim=True)
    ly = torch.linalg.cholesky(y_c @ y_c.T / y.shape[1])
    y = torch.diag(torch.diag(ly)) @ torch.linalg.solve(ly, y_c) + 1.0
    expected = (
        (x.mean(1) - y.mean(1)) ** 2 + (x.std(1, unbiased=False) - y.std(1, unbiased=False)) ** 2
    ).sum() / 3
    torch.testing.assert_close(distance("wasserstein", x, y), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("scale", [3.0, 0.0])
def test_wasserstein_to_a_painting_of_one_position_has_a_finite_gradient(scale: float) -> None:
    # relu5_1 of a painting of about 24 px or less is one position: no variance, so the ridge
    # comes from its mean square (or 1 where the map is all zero).
    style = features(8, 1).abs() * scale
    picture = features(8, 6).requires_grad_(True)
    loss = distance("wasserstein", picture, style)
    loss.backward()
    assert picture.grad is not None and bool(torch.isfinite(picture.grad).all())
    assert float(loss.detach()) > 0


def test_sliced_wasserstein_in_one_dimension_is_quantile_matching() -> None:
    x, y = features(1, 50), features(1, 50, seed=8)
    expected = ((x.sort().values - y.sort().values) ** 2).mean()  # the direction is ±1
    torch.testing.assert_close(distance("sliced-wasserstein", x, y), expected)


def test_content_loss_matches_reference() -> None:
    x, y = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    expected = sum(float(a - b) ** 2 for a, b in zip(x.flatten(), y.flatten(), strict=True)) / 48
    assert content_loss(x, y).item() == pytest.approx(expected, rel=1e-5)


def test_the_layout_term_holds_light_and_shade_not_texture() -> None:
    photo = torch.rand(1, 3, 512, 384, generator=torch.Generator().manual_seed(1)) * 0.8
    target = coarse_luma(photo)
    # At most LAYOUT_GRID px along the longer side; a smaller picture keeps its pixels.
    assert target.shape == (1, 1, LAYOUT_GRID, 192)
    assert coarse_luma(torch.full((1, 3, 8, 4), 0.5)).shape == (1, 1, 8, 4)
    # The left half 0.1 lighter than the right, against the photo: its luma 0.05 above the
    # picture's overall tone and the right's 0.05 below (the luma weights sum to 1), except
    # where the blur straddles the seam.
    lighter = photo + 0.1 * (torch.arange(384) < 192).float()
    assert layout_loss(lighter, target).item() == pytest.approx(0.05**2, rel=0.05)
    # The overall tone is the style's: every pixel 0.1 darker is free.
    assert layout_loss(photo - 0.1, target).item() < 1e-8
    # A pixel checkerboard is texture, not layout: free.
    rows, cols = torch.arange(512).view(-1, 1), torch.arange(384).view(1, -1)
    checker = 0.1 * (1 - 2 * ((rows + cols) % 2)).float()
    assert layout_loss(photo + checker, target).item() < 1e-8
    # With a mask, only where the style applies is the tone free; elsewhere the photo's holds.
    top = (torch.arange(256) < 128).float().view(1, 1, 256, 1).expand(1, 1, 256, 192)
    upper = (torch.arange(512) < 256).float().view(-1, 1)
    darker_above = layout_loss(photo - 0.1 * upper, target, top).item()
    darker_below = layout_loss(photo - 0.1 * (1 - upper), target, top).item()
    assert darker_below == pytest.approx(0.1**2 / 2, rel=0.05)
    assert darker_above < 0.01 * darker_below  # all but where the blur straddles the seam
    # Colour that keeps the luma is free too: red traded for its luma's worth of green.
    swapped = photo + torch.tensor([0.0587, -0.0299, 0.0]).view(1, 3, 1, 1)
    assert layout_loss(swapped, target).item() < 1e-8
    # Smooth filters only: the pull towards the photo has no grid in it. Against a picture
    # lightening steadily from left to right it rises steadily too (area cells, which this
    # replaced, pulled every pixel of a 4 px cell alike, in steps).
    ramp = photo + 0.1 * torch.linspace(0, 1, 384)
    picture = ramp.clone().requires_grad_(True)
    layout_loss(picture, target).backward()  # type: ignore[no-untyped-call]
    assert picture.grad is not None
    steps = picture.grad[0, 0, 256, 20:-20].diff()
    assert float(steps.min()) > 0 and float(steps.max()) < 3 * float(steps.median())


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
    """Every registered loss: zero at its target, positive elsewhere, finite with finite
    gradients, and masks restrict it to their region."""
    torch.manual_seed(0)
    target = torch.rand(8, 36)
    other = (torch.rand(8, 36) * 2).requires_grad_(True)
    assert distance(name, target, target).item() == pytest.approx(0.0, abs=1e-6)
    loss = distance(name, other, target)
    assert loss.item() > 0 and torch.isfinite(loss)
    loss.backward()
    assert other.grad is not None and torch.isfinite(other.grad).all()
    assert other.grad.abs().sum() > 0

    stat = STYLE_LOSSES[name].load()
    mixed = torch.cat([target, other.detach()], dim=1)  # left: the target, right: different
    left = torch.cat([torch.ones(36), torch.zeros(36)]) / 36
    made = target_of(stat, target, torch.cat([target, target], dim=1))
    inside = stat.distance(stat.represent(mixed, left), made)
    outside = stat.distance(stat.represent(mixed, left.flip(0)), made)
    assert inside.item() < 1e-4 < outside.item()


def self_similarity_reference(features: torch.Tensor) -> torch.Tensor:
    """STROTSS's normalised cosine-distance matrix, entry by entry, for (C, M) features."""
    m = features.shape[1]
    matrix = torch.empty(m, m, dtype=features.dtype)
    for i in range(m):
        for j in range(m):
            a, b = features[:, i], features[:, j]
            matrix[i, j] = 1 - (a @ b) / (a.norm() * b.norm())
    return matrix / matrix.sum(0, keepdim=True)


def test_self_similarity_matches_reference() -> None:
    x = features(5, 3, 4)
    torch.testing.assert_close(
        losses.self_similarity(x[None]), self_similarity_reference(x.flatten(1))
    )
    index = torch.tensor([0, 5, 7])
    torch.testing.assert_close(
        losses.self_similarity(x[None], index), self_similarity_reference(x.flatten(1)[:, index])
    )


def test_self_similarity_keeps_layout_not_values() -> None:
    """Scaling every feature (a brighter, more contrasted picture of the same thing) costs
    nothing; moving things around costs."""
    x = features(6, 5, 5) + 0.1
    target = losses.self_similarity(x[None])
    scaled = losses.self_similarity((3 * x)[None])
    shuffled = losses.self_similarity(x.flatten(1)[:, torch.randperm(25)].view(6, 5, 5)[None])
    assert losses.self_similarity_loss(scaled, target).item() == pytest.approx(0, abs=1e-6)
    assert losses.self_similarity_loss(shuffled, target).item() > 0.1
