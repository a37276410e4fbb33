"""Optimiser builders, one per registry entry, and the warm start across scales.

Each builder takes the image parameter and the config. Where Keras and PyTorch defaults differ
we take Keras's, because the paper ran on Keras: Adamax and Adadelta use Keras's epsilon 1e-7
and Adadelta its rho 0.95 (PyTorch: 1e-8/1e-6, 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import StyleConfig
from .registry import LBFGS_HISTORY, OPTIMIZERS, OptimizerInfo

KERAS_EPSILON = 1e-7


def build_adam(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    betas = (config.adam_beta1, config.adam_beta2)
    # The fused kernel updates the moments and pixels in one pass; the default CPU path builds
    # two image-sized temporaries for the denominator, 1.5 GiB at 8192 px (and it is 3x slower).
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(
        params, lr=config.learning_rate, betas=betas, eps=config.adam_eps, fused=fused
    )


def build_adamax(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.Adamax(
        params, lr=config.learning_rate, betas=(0.9, 0.999), eps=KERAS_EPSILON
    )


def build_adadelta(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=config.learning_rate, rho=0.95, eps=KERAS_EPSILON)


def build_sgd(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.learning_rate)


#: A step whose loss exceeds this multiple of the last one overshot: the guard steps back.
LBFGS_GROWTH = 2.0
#: Shortenings of an overshooting step at most, each to 1/10-1/2 of its length, before the
#: point reached is kept as it is.
LBFGS_SHORTENINGS = 10


def shrink(loss: float, state: dict[str, Any]) -> float:
    """How much to shorten an L-BFGS step of length ``state["t"]`` along ``state["d"]`` that
    took the loss from ``state["prev_loss"]`` to ``loss``: the minimum of the parabola with
    that value and the slope at the point left (Nocedal & Wright's backtracking
    interpolation, §3.5), kept within [0.1, 0.5]; 0.1 when ``loss`` is not a number."""
    length, before = float(state["t"]), state["prev_loss"]
    slope = float(state["prev_flat_grad"].dot(state["d"]))  # < 0: d is a descent direction
    if not math.isfinite(loss):
        return 0.1
    curvature = loss - before - slope * length
    if curvature <= 0:  # no parabola with a minimum ahead: halve
        return 0.5
    return float(min(0.5, max(0.1, -slope * length / (2 * curvature))))


class GuardedLBFGS(torch.optim.LBFGS):
    """PyTorch's L-BFGS, one iteration per step and no line search, with a guard against an
    overshoot: when the point a step reached scores more than LBFGS_GROWTH times the loss of the
    point it left (or not a number), the step is shortened (:func:`shrink`), from the point it
    left, and the loss evaluated again, up to LBFGS_SHORTENINGS times, before L-BFGS takes the
    gradient.

    Why: without a line search L-BFGS sizes a new scale's second step from a single curvature
    pair; with meanstd under Monet in bfloat16 that step multiplied the loss by 400 and the cat
    was lost (docs/quality.md, twelfth run). Departure from Gatys et al.'s plain L-BFGS: it
    changes nothing where no step overshoots, costs one evaluation per shortening and one more
    image-sized buffer (the point left), and each shortened point is clipped to [0, ``upper``] as
    the loop clips every step. The guard starts at the second step after a resume (the point
    left is not in a checkpoint)."""

    def __init__(self, params: list[Tensor], upper: float, **options: float | int) -> None:
        super().__init__(params, **options)  # type: ignore[arg-type]
        self.upper = upper
        #: The point the last step left, once there was one.
        self.origin: list[Tensor] = []

    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        state = self.state[self._params[0]]
        params: list[Tensor] = self._params

        def guarded() -> Tensor:
            loss = closure()
            if self.origin and "d" in state:
                for _ in range(LBFGS_SHORTENINGS):
                    value = float(loss.detach())
                    if value <= LBFGS_GROWTH * state["prev_loss"]:  # False for NaN
                        break
                    state["t"] = state["t"] * shrink(value, state)
                    self._move(params, float(state["t"]), state["d"])
                    loss = closure()
            if not self.origin:
                self.origin = [p.detach().clone() for p in params]
            else:
                for kept, param in zip(self.origin, params, strict=True):
                    kept.copy_(param.detach())
            return loss

        return super().step(guarded)  # type: ignore[no-untyped-call,no-any-return]

    def _move(self, params: list[Tensor], length: float, direction: Tensor) -> None:
        """Put ``params`` at the point left plus ``length`` x ``direction`` (flat), clipped."""
        offset = 0
        with torch.no_grad():
            for param, origin in zip(params, self.origin, strict=True):
                step = direction[offset : offset + param.numel()].view_as(param)
                param.copy_(origin).add_(step, alpha=length).clamp_(0.0, self.upper)
                offset += param.numel()


def build_lbfgs(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    # One L-BFGS iteration per step() so that every iteration is clipped and reported like the
    # first-order optimisers. Without a line search each iteration costs exactly one
    # forward+backward pass: a strong-Wolfe search re-evaluates the accepted point at the next
    # step() and doubles the cost. The curvature history persists across step() calls.
    return GuardedLBFGS(
        params,
        upper=OPTIMIZERS["lbfgs"].pixel_scale,
        lr=config.learning_rate,
        max_iter=1,
        history_size=LBFGS_HISTORY,
    )


def carried_state(
    info: OptimizerInfo, optimizer: torch.optim.Optimizer, param: Tensor
) -> dict[str, Tensor]:
    """What a warm start takes to the next scale: for an optimiser whose registry entry says
    ``warm_start``, its tensors of state for ``param`` (per-pixel moment estimates and the step
    count); nothing for the others."""
    if not info.warm_start:
        return {}
    state = optimizer.state.get(param, {})
    return {key: value.detach() for key, value in state.items() if isinstance(value, Tensor)}


def warm_start(optimizer: torch.optim.Optimizer, param: Tensor, state: dict[str, Tensor]) -> None:
    """Start ``optimizer`` at a new scale from ``state`` (:func:`carried_state`), its per-pixel
    entries resized to ``param`` (crowsonkb's ``scale_adam``, for every optimiser that keeps
    moments; docs/method.md §3.3). Bilinear weights are a convex combination, so second moments
    stay >= 0. The step count comes along: the moments are warm, so Adam's bias correction does
    not start over."""
    if not state:
        return
    size = (param.shape[-2], param.shape[-1])
    optimizer.state[param] = {
        key: (
            F.interpolate(value, size=size, mode="bilinear", align_corners=False)
            if value.dim() == param.dim()
            else value.clone()
        )
        for key, value in state.items()
    }
