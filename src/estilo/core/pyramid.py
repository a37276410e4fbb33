"""The coarse-to-fine pyramid (Gatys et al. 2017; docs/method.md §3.3): the sizes a run
optimises at, its iteration budget, and the resize between scales."""

from __future__ import annotations

import dataclasses
import math

import torch.nn.functional as F
from torch import Tensor

from .config import StyleConfig


def scale_sizes(
    height: int, width: int, config: StyleConfig, smallest: int
) -> list[tuple[int, int]]:
    """The coarse-to-fine pyramid: sizes about sqrt(2) apart ending at (height, width).

    ``scales = 0`` picks automatically: one scale up to ``min_scale`` px; above, start near
    ``min_scale``, where the composition settles cheaply, and refine in sqrt(2) steps (Gatys et
    al. 2017 refine a 512 px picture at 1024 px; crowsonkb's style-transfer-pytorch starts at
    128 px). The default starts at 256 px: docs/quality.md, eighth run."""
    longest = max(height, width)
    count = config.scales
    if count == 0:
        ratio = longest / config.min_scale
        count = 1 if ratio <= 1 else 1 + max(1, round(2 * math.log2(ratio)))
    sizes: list[tuple[int, int]] = []
    for step in range(count - 1, -1, -1):
        factor = 2 ** (-step / 2)
        size = (max(smallest, round(height * factor)), max(smallest, round(width * factor)))
        if not sizes or size != sizes[-1]:
            sizes.append(size)
    return sizes


def supersampled(config: StyleConfig) -> StyleConfig:
    """The configuration a picture is painted with: ``config`` itself, or, with ``scales = 0``
    and a SIZE from MIN_SCALE up to twice it, the same with SIZE = 2 x MIN_SCALE (the result is
    then resized down to SIZE). That picture is painted coarse to fine from MIN_SCALE up, so a
    256 px picture is the 512 px one in small, painted in the same three scales.

    Why: VGG19's receptive fields are fixed in pixels, so the same weights paint a different
    picture at every size; at 256 px the deep layers see a sixth of the image each and match the
    painting with shapes at the scale of objects (BENCHMARKS.md: coarse SSIM 0.52 at 256 px,
    0.65 at 512). Painting at twice the size gives every size from MIN_SCALE up the look of the
    larger picture; starting it at MIN_SCALE puts most iterations where they are cheap
    (docs/quality.md, eighth run: half the time of painting at 512 px from the start, nearer the
    painting on six pairs of eight). Below MIN_SCALE the picture is painted at its own size:
    supersampling more than 2x a side would cost over 4x the pixels (docs/method.md §3.3).
    Departure: the paper paints at its output size."""
    if config.scales != 0 or not config.min_scale <= config.size < 2 * config.min_scale:
        return config
    return dataclasses.replace(config, size=2 * config.min_scale)


def held(config: StyleConfig, size: tuple[int, int]) -> float:
    """How far the content term of a scale at ``size`` holds the previous scale's picture
    instead of the photo: ``refine_hold`` at the scales of an automatic pyramid (``scales =
    0``) larger than twice ``min_scale`` (never the first: it starts under 1.2 x ``min_scale``),
    0 elsewhere.

    Why there: the scales up to twice ``min_scale`` set a picture's look, the one a smaller
    picture shares (it is supersampled to twice ``min_scale``). Each further scale against the
    photo brought its fine detail back and moved the picture away from that look
    (docs/quality.md, eleventh run); holding the upsampled picture keeps the look, and the
    style term still paints that scale's texture. Departure: Gatys et al. 2017 refine against
    the photo."""
    later = config.scales == 0 and max(size) > 2 * config.min_scale
    return config.refine_hold if later else 0.0


def planned_iterations(config: StyleConfig, scales: int) -> int:
    """The most iterations a run over ``scales`` scales takes: ITERATIONS at the first,
    REFINE_ITERATIONS at each later one."""
    return config.iterations + (scales - 1) * config.refine_iterations


def resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) resized with antialiased bicubic (the best downsampler torch has; the
    paper's TensorFlow used bilinear), clipped to [0, 1]."""
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)
