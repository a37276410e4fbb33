"""Closed-form measures of a picture: no network, so nothing here can be optimised against.

Each takes (3, H, W) RGB tensors in [0, 1] and returns a float.

* :func:`ssim`: structural similarity of the luma (Wang et al. 2004).
* :func:`fine_energy`: the grain measure's numerator, mean |L − GaussianBlur(L, σ = 1 px)|.
* :func:`colour_distance`: how far apart two pictures' colour distributions are, in CIELAB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Luma weights (ITU-R BT.601), the same Y as estilo.image.color.
LUMA = (0.299, 0.587, 0.114)


def luma(image: Tensor) -> Tensor:
    """(3, H, W) -> (1, 1, H, W)."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    return torch.einsum("c,chw->hw", weights, image)[None, None]


def resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(3, H, W) resized with antialiased bicubic, clipped to [0, 1]."""
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(
        image[None].float(), size=size, mode="bicubic", antialias=True, align_corners=False
    )
    return out[0].clamp(0, 1)


def longest_side(image: Tensor, side: int) -> Tensor:
    """(3, H, W) resized so that its longest side is ``side`` pixels."""
    height, width = image.shape[-2:]
    scale = side / max(height, width)
    return resized(image, (max(16, round(height * scale)), max(16, round(width * scale))))


def _gaussian(sigma: float, radius: int) -> Tensor:
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(image: Tensor, sigma: float, radius: int, pad: bool) -> Tensor:
    """Separable Gaussian blur of (1, 1, H, W); reflect-padded when ``pad``."""
    kernel = _gaussian(sigma, radius).to(image)
    if pad:
        image = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    image = F.conv2d(image, kernel.view(1, 1, 1, -1))
    return F.conv2d(image, kernel.view(1, 1, -1, 1))


def ssim(image: Tensor, reference: Tensor) -> float:
    """Mean SSIM of the luma of two (3, H, W) images, ``image`` resized to the reference's size
    (11x11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03: Wang et al. 2004's constants)."""
    x = luma(resized(image, (reference.shape[-2], reference.shape[-1])))
    y = luma(reference.float())

    def blur(t: Tensor) -> Tensor:
        return _blur(t, 1.5, 5, pad=False)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(score.mean())


def fine_energy(image: Tensor) -> float:
    """Mean |L − GaussianBlur(L, σ = 1 px)| of the luma L: the energy of detail finer than a
    couple of pixels. Pixel noise (speckle, checkerboards) raises it; blurring lowers it."""
    lum = luma(image.float())
    return float((lum - _blur(lum, 1.0, 3, pad=True)).abs().mean())


def grain(image: Tensor, painting: Tensor) -> float:
    """``image``'s fine-detail energy over the painting's, the painting resized to the image's
    size: about 1 when the output is as finely detailed as the painting at that size; clearly
    above 1 is pixel noise the painting does not have."""
    reference = resized(painting, (image.shape[-2], image.shape[-1]))
    return fine_energy(image) / max(fine_energy(reference), 1e-6)


def srgb_to_lab(image: Tensor) -> Tensor:
    """(3, H, W) sRGB in [0, 1] -> CIELAB (D65 white), L in [0, 100]."""
    rgb = image.float()
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ).to(rgb)
    xyz = torch.einsum("ij,jhw->ihw", matrix, linear)
    white = torch.tensor([0.95047, 1.0, 1.08883]).to(rgb).view(3, 1, 1)
    t = xyz / white
    delta = 6 / 29
    f = torch.where(t > delta**3, t.clamp_min(1e-12) ** (1 / 3), t / (3 * delta**2) + 4 / 29)
    return torch.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


#: Directions of the sliced distance: fixed (seeded), so every call measures alike.
_DIRECTIONS = 32
_QUANTILES = 1024


def colour_distance(image: Tensor, reference: Tensor) -> float:
    """Sliced Wasserstein-1 distance between the two pictures' pixel colours in CIELAB: the
    mean, over 32 fixed directions, of the mean distance between matched quantiles of the
    colours projected on that direction. In ΔE-like units (0: the same palette in the same
    proportions, whatever the layout; about 1 is a just-noticeable shift)."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(_DIRECTIONS, 3, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)
    levels = torch.linspace(0, 1, _QUANTILES)

    def quantiles(picture: Tensor) -> Tensor:
        projected = directions @ srgb_to_lab(picture).flatten(1)
        return torch.quantile(projected, levels, dim=1)

    return float((quantiles(image) - quantiles(reference)).abs().mean())
