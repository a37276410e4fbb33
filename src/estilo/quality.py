"""One fixed yardstick for comparing runs, whatever their optimiser, loss or size.

Runs that optimise different losses cannot be compared by their own loss values, so every
output is measured the same way (specs §5: "avoid evaluating a method only with the loss it
optimises"):

* ``content_distance``: mean squared error of relu4_2 features against the content image's,
  divided by the mean square of the content's features (0 = the photo's features exactly);
* ``style_distance``: the Gram distance over relu1_1..relu5_1, equal layer weights, each
  layer divided by the mean square of the style's Gram entries (0 = the painting's statistics);
* ``ssim``: structural similarity of the output's and the content's luma (Wang et al. 2004,
  11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03), 1 = identical structure.

All three are computed at a fixed 256 px (longest side), max pooling, so that 128 px and
1024 px runs are measured alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .core.losses import mean_squared_error, weighted_gram
from .core.stylize import resized
from .core.vgg import VGG19Features, Weights
from .image.color import rgb_to_yuv

REFERENCE_SIZE = 256
CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _reference(image: Tensor) -> Tensor:
    """(3, H, W) -> (1, 3, h, w) with the longest side REFERENCE_SIZE."""
    height, width = image.shape[-2:]
    scale = REFERENCE_SIZE / max(height, width)
    return resized(
        image[None].float(), (max(16, round(height * scale)), max(16, round(width * scale)))
    )


def ssim(image: Tensor, reference: Tensor) -> float:
    """Mean SSIM of the luma of two (3, H, W) images in [0, 1] (resized to the reference)."""
    image = resized(image[None].float(), tuple(reference.shape[-2:]))[0]  # type: ignore[arg-type]
    x, y = rgb_to_yuv(image)[:1][None], rgb_to_yuv(reference.float())[:1][None]
    coords = torch.arange(11, dtype=torch.float32) - 5
    gauss = torch.exp(-(coords**2) / (2 * 1.5**2))
    window = (gauss[:, None] * gauss[None, :] / gauss.sum() ** 2)[None, None]

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(score.mean())


@torch.no_grad()
def measure(output: Tensor, content: Tensor, style: Tensor, weights: Weights) -> dict[str, float]:
    """The reference distances of ``output`` (3, H, W) to its content and style images."""
    net = VGG19Features(weights, {CONTENT_LAYER, *STYLE_LAYERS}, "max")
    out, con, sty = (net(_reference(t)) for t in (output, content, style))
    content_distance = mean_squared_error(out[CONTENT_LAYER], con[CONTENT_LAYER]) / (
        con[CONTENT_LAYER].pow(2).mean()
    )
    style_terms = []
    for name in STYLE_LAYERS:
        gram_out = weighted_gram(out[name][0].flatten(1))
        gram_style = weighted_gram(sty[name][0].flatten(1))
        style_terms.append(mean_squared_error(gram_out, gram_style) / gram_style.pow(2).mean())
    return {
        "content_distance": float(content_distance),
        "style_distance": float(torch.stack(style_terms).mean()),
        "ssim": ssim(output, _reference(content)[0]),
    }
