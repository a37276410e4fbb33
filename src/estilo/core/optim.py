"""Optimiser builders, one per registry entry. Each takes the image parameter and the config.

Where Keras and PyTorch defaults differ we take Keras's, because the paper ran on Keras:
Adamax and Adadelta use Keras's epsilon 1e-7 and Adadelta its rho 0.95 (PyTorch: 1e-8/1e-6, 0.9).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import StyleConfig
from .registry import LBFGS_HISTORY

KERAS_EPSILON = 1e-7


def build_adam(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    betas = (config.adam_beta1, config.adam_beta2)
    return torch.optim.Adam(params, lr=config.learning_rate, betas=betas, eps=config.adam_eps)


def build_adamax(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.Adamax(
        params, lr=config.learning_rate, betas=(0.9, 0.999), eps=KERAS_EPSILON
    )


def build_adadelta(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=config.learning_rate, rho=0.95, eps=KERAS_EPSILON)


def build_sgd(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.learning_rate)


def build_lbfgs(params: list[Tensor], config: StyleConfig) -> torch.optim.Optimizer:
    # One L-BFGS iteration per step() so that every iteration is clipped and reported like the
    # first-order optimisers. Without a line search each iteration costs exactly one
    # forward+backward pass: a strong-Wolfe search re-evaluates the accepted point at the next
    # step() and doubles the cost. The curvature history persists across step() calls.
    return torch.optim.LBFGS(
        params, lr=config.learning_rate, max_iter=1, history_size=LBFGS_HISTORY
    )
