"""The optimisation loop: optimisers, reproducibility, callbacks, divergence, interrupts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from estilo.core import stylize as loop
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.network import NetworkCache
from estilo.core.objective import style_layer_weights
from estilo.core.optim import LBFGS_GROWTH, carried_state, warm_start
from estilo.core.records import Checkpoint, Iterate
from estilo.core.registry import LBFGS_HISTORY, OPTIMIZERS, OptimizerInfo
from estilo.core.stylize import stylize
from estilo.core.vgg import Weights
from estilo.errors import ConfigError

SMALL = {"log_every": 0, "device": "cpu", "precision": "float32"}  # exact loop behaviour


def run(content: torch.Tensor, style: torch.Tensor, weights: Weights, **overrides: object):
    config = resolve(**{**SMALL, **overrides})
    return stylize(RunInputs.make(content[None], style[None]), config, weights=weights)


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
    stylize(RunInputs.make(content[None], style[None]), config, callback=callback, weights=weights)
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
    result = stylize(
        RunInputs.make(content[None], style[None]), config, callback=callback, weights=weights
    )
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

    # gram: its loss falls from the first step here (wasserstein's first step from noise rises).
    config = resolve(iterations=10, init="noise", style_loss="gram", **SMALL)
    result = stylize(
        RunInputs.make(content[None], style[None]), config, callback=callback, weights=weights
    )
    assert result.status == "interrupted"
    assert len(result.history) == 2
    assert result.best_iteration in (1, 2)


def test_best_image_is_the_final_one_when_loss_keeps_falling(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    # gram: its loss falls at every one of these steps (L-BFGS overshoots once with wasserstein).
    shown: list[Iterate] = []
    config = resolve(**SMALL, iterations=6, style_loss="gram")
    inputs = RunInputs.make(content[None], style[None])
    result = stylize(inputs, config, weights=weights, callback=shown.append)
    losses = [record.loss for record in result.history]
    assert losses == sorted(losses, reverse=True)
    assert result.best_iteration == 6
    # The best image is kept as a 16-bit PNG's values: the last picture to within half a step.
    last = shown[-1].image
    assert not torch.equal(result.image, last)
    assert (result.image - last).abs().max() <= 0.5 / 65535 + 1e-7
    assert torch.equal((result.image * 65535).round() / 65535, result.image)


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
    inputs = RunInputs.make(content[None], style[None])
    whole = stylize(inputs, config, weights=weights)
    saved: list[Checkpoint] = []

    def stop_at_three(step: Iterate) -> bool:
        if step.iteration == 3:
            assert step.checkpoint is not None
            saved.append(step.checkpoint())
            return True
        return False

    stylize(inputs, config, callback=stop_at_three, weights=weights)
    resumed = stylize(inputs, config, weights=weights, resume=saved[0])
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
    inputs = RunInputs.make(content[None], style[None])
    result = stylize(inputs, config, weights=weights)
    assert result.status == "completed" and len(result.history) == 6
    moving = resolve(iterations=12, tolerance=1e-3, tolerance_window=5, style_loss="gram", **SMALL)
    assert len(stylize(inputs, moving, weights=weights).history) == 12


def descend(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> None:
    """One step of ``optimizer`` on a simple loss of ``param``."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = param.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_warm_start_follows_the_registry(name: str) -> None:
    """An optimiser that keeps per-pixel moments is marked ``warm_start`` (Adamax once lost it
    to a test of the name "adam"), and a new scale takes them over resized, step count kept."""
    info, config = OPTIMIZERS[name], resolve(optimizer=name)
    small, large = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 12, 16)
    small.requires_grad_(True)
    large.requires_grad_(True)
    optimizer = info.load()([small], config)
    descend(optimizer, small)
    held = optimizer.state[small]
    moments = [k for k, v in held.items() if isinstance(v, torch.Tensor) and v.shape == small.shape]
    assert info.warm_start == bool(moments)
    fresh = info.load()([large], config)
    warm_start(fresh, large, carried_state(info, optimizer, small))
    if not info.warm_start:
        assert not fresh.state[large]
        return
    state = fresh.state[large]
    assert all(state[k].shape == large.shape for k in moments)
    assert int(state["step"]) == 1  # the moments are warm: no new bias correction
    descend(fresh, large)  # torch steps from the state taken over
    assert int(fresh.state[large]["step"]) == 2


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_loop_warm_starts_the_second_scale(
    name: str,
    content: torch.Tensor,
    style: torch.Tensor,
    weights: Weights,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[dict[str, torch.Tensor]] = []
    real = loop.warm_start

    def spy(
        optimizer: torch.optim.Optimizer, param: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> None:
        taken.append(state)
        real(optimizer, param, state)

    monkeypatch.setattr(loop, "warm_start", spy)
    kept: list[torch.optim.Optimizer] = []
    real_carry = loop.carried_state

    def carry(
        info: OptimizerInfo, optimizer: torch.optim.Optimizer, param: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        kept.append(optimizer)
        return real_carry(info, optimizer, param)

    monkeypatch.setattr(loop, "carried_state", carry)
    config = resolve(optimizer=name, scales=2, iterations=1, refine_iterations=1, **SMALL)
    result = stylize(RunInputs.make(content[None], style[None]), config, weights=weights)
    assert result.status == "completed" and len(result.history) == 2
    first, second = taken
    assert not first  # the first scale starts cold
    assert bool(second) == OPTIMIZERS[name].warm_start
    # Only the first scale's state is taken along: the last one's would outlive the run
    # (two image-sized moments at print sizes).
    assert len(kept) == 1


def test_run_inputs_check_style_weights_and_masks_and_scale_together() -> None:
    content, style, mask = (
        torch.rand(1, 3, 48, 64),
        torch.rand(1, 3, 40, 40),
        torch.ones(1, 1, 48, 64),
    )
    inputs = RunInputs.make(content, [style, style], [3.0, 1.0], [mask, None])
    assert inputs.style_weights == pytest.approx((0.75, 0.25))
    alone = RunInputs.make(content, style)
    assert alone.style_weights == (1.0,) and alone.masks == (None,)
    for style_weights in ([1.0], [1.0, -1.0], [0.0, 0.0], [1.0, math.nan]):
        with pytest.raises(ConfigError, match="style weights must be finite"):
            RunInputs.make(content, [style, style], style_weights)
    with pytest.raises(ConfigError, match="1 masks given for 2 styles"):
        RunInputs.make(content, [style, style], masks=[mask])
    half = inputs.scaled((24, 32), smallest=16)
    assert half.content.shape == (1, 3, 24, 32) and half.styles[0].shape == (1, 3, 20, 20)
    assert half.masks[0] is not None and half.masks[0].shape == (1, 1, 24, 32)
    assert half.masks[1] is None and half.style_weights == inputs.style_weights
    # A style never shrinks below what the deepest layer needs.
    assert inputs.scaled((12, 16), smallest=16).styles[0].shape == (1, 3, 16, 16)


def test_a_network_cache_builds_again_only_for_another_network(weights: Weights) -> None:
    cache = NetworkCache()
    config = resolve(size=32, iterations=1, **SMALL)
    inputs = RunInputs.make(torch.rand(1, 3, 24, 32), torch.rand(1, 3, 32, 32))
    first = cache.get(inputs, config, weights)
    assert cache.get(inputs, config.replace(iterations=5, style_weight=1.0), weights) is first
    pooled = cache.get(inputs, config.replace(pooling="avg"), weights)
    assert pooled is not first
    smaller = RunInputs.make(torch.rand(1, 3, 16, 32), torch.rand(1, 3, 32, 32))
    assert cache.get(smaller, config.replace(pooling="avg"), weights) is not pooled


def test_a_reused_network_paints_as_a_fresh_one(
    content: torch.Tensor, style: torch.Tensor, weights: Weights
) -> None:
    inputs = RunInputs.make(content[None], style[None])
    config = resolve(iterations=3, **SMALL)
    fresh = stylize(inputs, config, weights=weights)
    cache = NetworkCache()
    for _ in range(2):
        reused = stylize(inputs, config, weights=weights, networks=cache)
        assert torch.equal(reused.image, fresh.image)


def lbfgs_losses(
    optimizer: type[torch.optim.LBFGS] | None, loss: Callable[[torch.Tensor], torch.Tensor]
) -> list[float]:
    """The loss at each of eight L-BFGS steps from pixels (250, 240) on the 0-255 scale,
    clipped as the loop clips them: by estilo's builder (None) or by ``optimizer``."""
    pixels = torch.tensor([250.0, 240.0], requires_grad=True)
    if optimizer is None:
        lbfgs = OPTIMIZERS["lbfgs"].load()([pixels], resolve(optimizer="lbfgs"))
    else:
        lbfgs = optimizer([pixels], lr=1.0, max_iter=1, history_size=LBFGS_HISTORY)

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        value = loss(pixels)
        value.backward()  # type: ignore[no-untyped-call]
        return value

    losses = []
    for _ in range(8):
        losses.append(float(lbfgs.step(closure).detach()))
        with torch.no_grad():
            pixels.clamp_(0, 255)
    return losses


def test_lbfgs_steps_back_from_a_step_that_multiplies_the_loss() -> None:
    """A loss nearly flat far from its minimum (128) and steep beyond a wall (under 100): the
    second step, sized from one curvature pair, jumps past the wall, as meanstd's second step
    at a new scale did in bfloat16. The guard shortens it; elsewhere it changes nothing."""

    def walled(x: torch.Tensor) -> torch.Tensor:
        return (torch.sqrt(1 + (x - 128) ** 2) + 10 * torch.relu(100 - x) ** 2).sum()

    plain, guarded = lbfgs_losses(torch.optim.LBFGS, walled), lbfgs_losses(None, walled)
    assert max(plain) > 100 * plain[0], plain  # the overshoot this guards against
    growth = max(after / before for before, after in itertools.pairwise(guarded))
    assert growth <= LBFGS_GROWTH, guarded
    assert guarded[-1] < 0.5 * guarded[0] and guarded[-1] < plain[-1], (guarded, plain)

    def bowl(x: torch.Tensor) -> torch.Tensor:
        return ((x - 128) ** 2).sum()

    assert lbfgs_losses(None, bowl) == lbfgs_losses(torch.optim.LBFGS, bowl)
