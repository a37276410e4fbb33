"""Content, style and smoothness losses, and the one normalisation they all share.

Normalisation (the papers disagree, specs.md section 6; we follow the paper's own stack, the
TensorFlow style-transfer tutorial, which is also Gatys's PyTorch reference up to constants):

* Gram matrix ``G = F Fᵀ / M`` for features ``F`` of shape (N, M), M = H·W positions. Dividing
  by M makes G an average over positions, so it does not grow with the image size.
* Per-layer style distance ``E_l = mean((G - A)²)`` over the N² entries, which equals
  ``1/(N²M²) Σ(G' - A')²`` on unnormalised Grams G' = F Fᵀ: 4 times Gatys et al.'s
  ``E_l = 1/(4N²M²) Σ(G' - A')²``. The factor 4 is absorbed by the style weight.
* Style loss ``Σ_l w_l E_l`` with ``Σ w_l = 1`` (equal weights by default, like the tutorial's
  division by the number of style layers).
* Content loss: mean squared error of the feature maps, averaged over content layers.
* Total variation: mean squared difference of neighbouring pixels (Johnson et al.'s β = 2).

Each style representation is a pair: ``represent`` (features -> statistic, computed once for the
style image) and ``distance`` (statistic of the current image vs. target). Blends of several
styles average the statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices divided by the H·W positions."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def mean_squared_error(input: Tensor, target: Tensor) -> Tensor:
    """Mean of the squared differences; the target broadcasts over the batch."""
    return (input - target).pow(2).mean()


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of feature maps (B, C, H, W) (Gatys et al. 2016 eq. 1, mean form)."""
    return mean_squared_error(features, target)


def tv_loss(image: Tensor) -> Tensor:
    """Mean squared difference between vertically and horizontally adjacent pixels."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


@dataclass(frozen=True)
class StyleStatistic:
    """A style representation: how to summarise features, and how far two summaries are."""

    represent: Callable[[Tensor], Tensor]
    distance: Callable[[Tensor, Tensor], Tensor]


#: Gatys et al. 2016: second-order, uncentred feature correlations.
gram_loss = StyleStatistic(represent=gram_matrix, distance=mean_squared_error)


def weighted_sum(terms: list[Tensor], weights: list[float]) -> Tensor:
    """Σ wᵢ tᵢ as a tensor (the terms may live on any device)."""
    return torch.stack([w * t for t, w in zip(terms, weights, strict=True)]).sum()
