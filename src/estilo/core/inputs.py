"""What one run transforms: the content, the styles, their weights and masks, as tensors.

The pipeline reads files into a :class:`RunInputs`; the loop checks it once, then resizes it for
each scale of the pyramid. The same names serve every layer: ``content``, ``styles``,
``style_weights`` (one blend weight per style), ``masks`` (where each style applies), and for
video a :class:`PixelTerm` that holds the image to the previous frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .pyramid import resized


@dataclass(frozen=True)
class PixelTerm:
    """An extra loss on the pixels themselves: ``weight`` x the mean over pixels and channels
    of ``mask`` x (image - ``target``)². Ruder et al. 2016's temporal loss is one: the target
    is the previous stylised frame warped by the optical flow, the mask 1 where the flow can be
    followed and 0 at occlusions and motion boundaries (their 1/D Σ c (x - ω)²; where estilo's
    video departs from theirs: docs/method.md §6).

    ``target`` is (1, 3, H, W) in [0, 1], ``mask`` (1, 1, H, W) in [0, 1], both the content's
    size."""

    target: Tensor
    mask: Tensor
    weight: float

    def __call__(self, image: Tensor) -> Tensor:
        return self.weight * (self.mask * (image - self.target) ** 2).mean()

    def to(self, device: torch.device) -> PixelTerm:
        return PixelTerm(self.target.to(device), self.mask.to(device), self.weight)

    def scaled(self, size: tuple[int, int]) -> PixelTerm:
        """The term at one scale of the pyramid."""
        mask = F.interpolate(self.mask, size=size, mode="area")
        return PixelTerm(resized(self.target, size), mask, self.weight)


@dataclass(frozen=True)
class RunInputs:
    """The tensors of a run at the working size. Make one with :meth:`make`, which checks it.

    ``content`` (1, 3, H, W) RGB in [0, 1] sets the output's size. ``styles`` are one or more
    (1, 3, H', W') RGB images in [0, 1]. ``style_weights`` has one weight per style, summing
    to 1. ``masks`` has, per style, None or (1, 1, H, W) weights in [0, 1]: where that style
    applies. ``init``, a (1, 3, H', W') image of any size, is the starting point instead of
    ``config.init``, resized to the first scale.
    ``pixel`` is an extra term of the objective (video's temporal loss), or None.
    """

    content: Tensor
    styles: tuple[Tensor, ...]
    style_weights: tuple[float, ...]
    masks: tuple[Tensor | None, ...]
    init: Tensor | None = None
    pixel: PixelTerm | None = None

    @classmethod
    def make(
        cls,
        content: Tensor,
        styles: Tensor | Sequence[Tensor],
        style_weights: Sequence[float] | None = None,
        masks: Sequence[Tensor | None] | None = None,
        init: Tensor | None = None,
        pixel: PixelTerm | None = None,
    ) -> RunInputs:
        """Checked inputs: style weights default to equal and are normalised to sum 1, masks
        default to none (every style everywhere).

        Raises:
            ConfigError: style weights that are not finite, >= 0, not all 0 and one per style,
                or a mask count that differs from the style count.
        """
        styles = (styles,) if isinstance(styles, Tensor) else tuple(styles)
        weights = [1.0] * len(styles) if style_weights is None else list(style_weights)
        if (
            len(weights) != len(styles)
            or not all(math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0
        ):
            raise ConfigError(
                f"style weights must be finite, >= 0, not all 0 and one per style "
                f"({len(weights)} given for {len(styles)} styles)"
            )
        masks = (None,) * len(styles) if masks is None else tuple(masks)
        if len(masks) != len(styles):
            raise ConfigError(f"{len(masks)} masks given for {len(styles)} styles")
        total = sum(weights)
        return cls(content, styles, tuple(w / total for w in weights), masks, init, pixel)

    @property
    def size(self) -> tuple[int, int]:
        """The content's (H, W): the output's size."""
        return self.content.shape[-2], self.content.shape[-1]

    def to(self, device: torch.device) -> RunInputs:
        return dataclasses.replace(
            self,
            content=self.content.to(device),
            styles=tuple(s.to(device) for s in self.styles),
            masks=tuple(None if m is None else m.to(device) for m in self.masks),
            init=None if self.init is None else self.init.to(device),
            pixel=None if self.pixel is None else self.pixel.to(device),
        )

    def scaled(self, size: tuple[int, int], smallest: int) -> RunInputs:
        """The inputs for one scale: the content and masks at ``size``, each style shrunk by
        the same ratio as the content but kept at least ``smallest`` px a side (the deepest
        layer's minimum), the pixel term's target and mask at ``size``. ``init`` stays as it
        is: the loop starts from it before the first scale."""
        ratio = size[0] / self.content.shape[-2]
        return dataclasses.replace(
            self,
            content=resized(self.content, size),
            styles=tuple(
                resized(
                    s,
                    (
                        max(smallest, round(s.shape[-2] * ratio)),
                        max(smallest, round(s.shape[-1] * ratio)),
                    ),
                )
                for s in self.styles
            ),
            masks=tuple(
                None if m is None else F.interpolate(m, size=size, mode="area") for m in self.masks
            ),
            pixel=None if self.pixel is None else self.pixel.scaled(size),
        )
