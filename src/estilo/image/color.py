"""Colour control: keep the photo's colours while taking the painting's brushwork.

Both methods are from Gatys, Ecker, Bethge, Hertzmann & Shechtman (2017), "Controlling
Perceptual Factors in Neural Style Transfer", as in their reference notebook (docs/method.md §4):

* ``luminance``: run the transfer on luminance only (the style's luminance matched to the
  content's mean and deviation, the paper's version of the step), then put the content's chroma
  back in a YUV space.
* ``histogram``: recolour the style image so that its colour mean and covariance equal the
  content's (the notebook's ``match_color`` in ``pca`` mode), then run as usual.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: RGB -> YUV as in Gatys's ColourControl notebook; its inverse is computed, not rounded.
RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.147, -0.288, 0.436], [0.615, -0.515, -0.100]])
YUV_TO_RGB = torch.linalg.inv(RGB_TO_YUV)


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    """A 3x3 colour matrix applied to (3, H, W)."""
    return torch.einsum("ij,jhw->ihw", matrix.to(image), image)


def rgb_to_yuv(image: Tensor) -> Tensor:
    return _apply(RGB_TO_YUV, image)


def yuv_to_rgb(image: Tensor) -> Tensor:
    return _apply(YUV_TO_RGB, image)


def luminance(image: Tensor) -> Tensor:
    """(3, H, W) -> (3, H, W): the luma Y = 0.299 R + 0.587 G + 0.114 B in all three channels."""
    return rgb_to_yuv(image)[:1].expand(3, -1, -1).contiguous()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """The style's luminance, shifted and scaled to the content's mean and deviation."""
    lum_s, lum_c = luminance(style)[0], luminance(content)[0]
    matched = (lum_s - lum_s.mean()) * (lum_c.std() / (lum_s.std() + 1e-8)) + lum_c.mean()
    return matched.clamp(0, 1).expand(3, -1, -1).contiguous()


def restore_chroma(stylized: Tensor, content: Tensor) -> Tensor:
    """The stylized image's luma with the content's chroma (U, V), back in RGB."""
    yuv = rgb_to_yuv(content)
    yuv = torch.cat([rgb_to_yuv(stylized)[:1], yuv[1:]])
    return yuv_to_rgb(yuv).clamp(0, 1)


def _sqrtm(matrix: Tensor, power: float) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    root: Tensor = (vectors * values.clamp_min(1e-12).pow(power)) @ vectors.T
    return root


def match_histogram(style: Tensor, content: Tensor) -> Tensor:
    """Recolour ``style`` (3, H, W) so its colour mean and covariance equal ``content``'s.

    p' = A (p - μ_s) + μ_c with A = Σ_c^½ Σ_s^-½ (the notebook's ``pca`` mode); covariances get
    1e-5·I as in the notebook."""
    s, c = style.reshape(3, -1).double(), content.reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64)
    cov_s = (s - mu_s) @ (s - mu_s).T / s.shape[1] + 1e-5 * eye
    cov_c = (c - mu_c) @ (c - mu_c).T / c.shape[1] + 1e-5 * eye
    matrix = _sqrtm(cov_c, 0.5) @ _sqrtm(cov_s, -0.5)
    out = matrix @ (s - mu_s) + mu_c
    return out.reshape(style.shape).float().clamp(0, 1)
