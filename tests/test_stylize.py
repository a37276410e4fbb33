"""The optimisation loop: optimisers, reproducibility, callbacks, divergence, interrupts."""

from __future__ import annotations

import pytest
import torch

from estilo.core.config import resolve
from estilo.core.objective import style_layer_weights
from estilo.core.registry import OPTIMIZERS
from estilo.core.stylize import Iterate, stylize
from estilo.core.vgg import Weights

SMALL = {"log_every": 0, "device": "cpu", "precision": "float32"}  # exact loop behaviour


def run(content: torch.Tensor, style: torch.Tensor, weights: Weights, **overrides: object):
    config = resolve(**{**SMALL, **overrides})
    return stylize(content.unsqueeze(0), style.unsqueeze(0), config, weights=weights)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_each_optimizers_default_lr_lowers_the_loss(
    optimizer: str, content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    # The default preset as a user runs it, with each optimiser's own learning rate (no --lr).
    # Measured ratios of last to first loss: 0.15 (sgd, lbfgs) to 0.81 (adadelta).
    result = run(content, style, weights, optimizer=optimizer, iterations=12)
    losses = [record.loss for record in result.history]
    assert result.status == "completed" and len(losses) == 12
    assert losses[-1] < 0.9 * losses[0], losses
    assert result.image.shape == (1, 3, 48, 64)
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_seeded_run_is_reproducible(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    first = run(content, style, weights, iterations=4, init="noise", seed=7)
    second = run(content, style, weights, iterations=4, init="noise", seed=7)
    other = run(content, style, weights, iterations=4, init="noise", seed=8)
    assert torch.equal(first.image, second.image)
    assert [r.loss for r in first.history] == [r.loss for r in second.history]
    assert not torch.equal(first.image, other.image)


def test_image_is_clipped_after_every_step(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    seen: list[tuple[float, float]] = []

    def callback(step: Iterate) -> None:
        seen.append((float(step.image.min()), float(step.image.max())))

    config = resolve(optimizer="sgd", lr=10.0, iterations=3, **SMALL)
    stylize(content[None], style[None], config, callback=callback, weights=weights)
    assert len(seen) == 3
    assert all(low >= 0.0 and high <= 1.0 for low, high in seen)


def test_callback_sees_every_iteration_and_can_stop(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    steps: list[Iterate] = []

    def callback(step: Iterate) -> bool:
        steps.append(step)
        return step.iteration == 3

    config = resolve(iterations=10, **SMALL)
    result = stylize(content[None], style[None], config, callback=callback, weights=weights)
    assert result.status == "stopped"
    assert [s.iteration for s in steps] == [1, 2, 3]
    assert steps[-1].total == 10 and steps[-1].image.shape == (1, 3, 48, 64)
    assert steps[0].seconds <= steps[-1].seconds
    assert steps[0].loss == pytest.approx(steps[0].content + steps[0].style + steps[0].tv)


def test_divergence_stops_and_keeps_best_finite_image(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    # A float32 overflow: the weighted style loss becomes infinite at once.
    result = run(content, style, weights, iterations=5, style_weight=1e38, optimizer="adam")
    assert result.status == "diverged"
    assert len(result.history) == 1
    assert torch.isfinite(result.image).all()
    assert result.best_iteration == 0
    torch.testing.assert_close(result.image[0], content)


def test_keyboard_interrupt_returns_best_image(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    def callback(step: Iterate) -> None:
        if step.iteration == 2:
            raise KeyboardInterrupt

    config = resolve(iterations=10, init="noise", **SMALL)
    result = stylize(content[None], style[None], config, callback=callback, weights=weights)
    assert result.status == "interrupted"
    assert len(result.history) == 2
    assert result.best_iteration in (1, 2)


def test_best_image_is_the_final_one_when_loss_keeps_falling(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    result = run(content, style, weights, iterations=6)
    losses = [record.loss for record in result.history]
    assert losses == sorted(losses, reverse=True)
    assert result.best_iteration == 6


def test_style_layer_weighting() -> None:
    gatys = style_layer_weights(resolve(style_layers="relu1_1,relu4_1"))
    assert gatys == pytest.approx([64 / 65, 1 / 65])  # 1/64² : 1/512² = 64 : 1
    assert style_layer_weights(resolve(layer_weighting="equal")) == pytest.approx([0.2] * 5)
    explicit = resolve(style_layers="relu1_1,relu2_1", style_layer_weights="3,1")
    assert style_layer_weights(explicit) == pytest.approx([0.75, 0.25])


def test_resume_from_checkpoint_matches_an_uninterrupted_run(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    config = resolve(optimizer="adam", iterations=6, init="noise", **SMALL)
    whole = stylize(content[None], style[None], config, weights=weights)
    saved: list[object] = []

    def stop_at_three(step: Iterate) -> bool:
        if step.iteration == 3:
            assert step.checkpoint is not None
            saved.append(step.checkpoint())
            return True
        return False

    stylize(content[None], style[None], config, callback=stop_at_three, weights=weights)
    resumed = stylize(content[None], style[None], config, weights=weights, resume=saved[0])  # type: ignore[arg-type]
    assert [r.iteration for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [r.loss for r in resumed.history] == pytest.approx([r.loss for r in whole.history])
    torch.testing.assert_close(resumed.image, whole.image)


def test_tolerance_stops_a_run_that_no_longer_improves(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    # SGD with a vanishing rate barely moves: the loss stalls at once.
    config = resolve(
        optimizer="sgd", lr=1e-20, iterations=50, tolerance=1e-3, tolerance_window=5, **SMALL
    )
    result = stylize(content[None], style[None], config, weights=weights)
    assert result.status == "completed" and len(result.history) == 6
    moving = resolve(iterations=12, tolerance=1e-3, tolerance_window=5, **SMALL)
    assert len(stylize(content[None], style[None], moving, weights=weights).history) == 12
