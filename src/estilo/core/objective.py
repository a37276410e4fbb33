"""The objective of the optimisation: weighted content, style and smoothness terms.

Separate from the loop (``stylize.py``) so that each reads in one sitting: this file decides
*what* is minimised, the loop decides *how*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import StyleConfig
from .inputs import RunInputs
from .layers import layer_channels, min_input_size
from .losses import (
    SELF_SIMILARITY_SAMPLES,
    Stat,
    StyleStatistic,
    coarse_luma,
    content_loss,
    layout_loss,
    self_similarity,
    self_similarity_loss,
    tv_loss,
)
from .registry import CONTENT_LOSSES, STYLE_LOSSES, lookup
from .vgg import VGG19Features


def style_layer_weights(config: StyleConfig) -> list[float]:
    """Per-layer style weights summing to 1: explicit, equal, or Gatys et al.'s reference
    ``1e3/N_l²`` rule (PytorchNeuralStyleTransfer; docs/method.md §2.2), which keeps the deep
    layers from drowning the shallow ones; its 1e3 lives in the default style weight."""
    if config.style_layer_weights:
        weights = list(config.style_layer_weights)
    elif config.layer_weighting == "gatys":
        weights = [1.0 / layer_channels(name) ** 2 for name in config.style_layers]
    else:
        weights = [1.0] * len(config.style_layers)
    return [w / sum(weights) for w in weights]


#: Hypercolumns sit on a grid this many times coarser than the image (NNST's h // 4, w // 4).
HYPERCOLUMN_STRIDE = 4


def hypercolumns(maps: Sequence[Tensor], layers: Sequence[str], weights: Sequence[float]) -> Tensor:
    """Feature maps (1, C_l, H_l, W_l) of ``layers`` -> (1, Σ C_l, h, w): every layer resampled
    to one grid, HYPERCOLUMN_STRIDE times coarser than the image (or the finest layer's grid if
    that is coarser), scaled by the square root of its layer weight, stacked per position.

    Kolkin et al. 2022 (NNST) divide each layer by its channel count so that wide layers do not
    dominate the cosine distance; a factor √w_l weighs layer l's share of every dot product by
    w_l, and with the default (gatys, w_l ∝ 1/C_l²) weighting √w_l ∝ 1/C_l is their rule.
    Departure: the official code resamples bilinearly without antialiasing, which point-samples
    the finer layers; it optimises a Laplacian pyramid and ends with a full-resolution pass, so
    every pixel still gets a gradient. We optimise pixels directly, so the finer layers are
    averaged down (antialiased bilinear) and every pixel feeds its hypercolumn."""
    finest = min(range(len(layers)), key=lambda i: min_input_size([layers[i]]))
    height, width = maps[finest].shape[-2:]
    factor = max(1, HYPERCOLUMN_STRIDE // min_input_size([layers[finest]]))
    grid = (max(1, height // factor), max(1, width // factor))
    return torch.cat(
        [
            F.interpolate(m, size=grid, mode="bilinear", antialias=True, align_corners=False)
            * w**0.5
            for m, w in zip(maps, weights, strict=True)
        ],
        dim=1,
    )


def mask_weights(mask: Tensor | None, size: tuple[int, int]) -> Tensor | None:
    """A (1, 1, H, W) mask averaged down to a layer's grid, as weights (M,) summing to 1."""
    if mask is None:
        return None
    weights = F.interpolate(mask, size=size, mode="area").flatten()
    total = weights.sum()
    return weights / total if total > 0 else weights


def styled_area(masks: Sequence[Tensor | None], grid: Tensor | None) -> Tensor | None:
    """Where any style applies, on the layout term's grid (``grid``'s size): the largest of
    the styles' masks there, or None when a style applies everywhere (or there is no term)."""
    if grid is None or any(mask is None for mask in masks):
        return None
    union = torch.stack([mask for mask in masks if mask is not None]).amax(dim=0)
    size = (grid.shape[-2], grid.shape[-1])
    return F.interpolate(union, size=size, mode="bilinear", antialias=True, align_corners=False)


class FeatureContent:
    """Gatys et al.'s content term: the features' mean squared error, averaged over layers."""

    def __init__(self, targets: dict[str, Tensor]) -> None:
        self.targets = targets

    def __call__(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.stack([content_loss(feats[n], t) for n, t in self.targets.items()]).mean()


class SelfSimilarityContent:
    """STROTSS's content term (Kolkin et al. 2019): the output's self-similarity matrix held to
    the photo's, per layer, averaged. At most SELF_SIMILARITY_SAMPLES positions, drawn once per
    scale (seeded by the caller's RNG state) and shared by the output and the photo, so the
    cost stays bounded at any size. Departure: STROTSS resamples every step on hypercolumns of
    VGG16; one fixed sample on estilo's content layers keeps the objective deterministic."""

    def __init__(self, targets: dict[str, Tensor]) -> None:
        self.index: dict[str, Tensor | None] = {}
        self.targets: dict[str, Tensor] = {}
        for name, feats in targets.items():
            count = feats.shape[-2] * feats.shape[-1]
            index = None
            if count > SELF_SIMILARITY_SAMPLES:
                index = torch.randperm(count, device=feats.device)[:SELF_SIMILARITY_SAMPLES]
            self.index[name] = index
            self.targets[name] = self_similarity(feats, index)

    def __call__(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.stack(
            [
                self_similarity_loss(self_similarity(feats[n], self.index[n]), target)
                for n, target in self.targets.items()
            ]
        ).mean()


class Objective:
    """Weighted content + style + TV loss of an image against fixed targets.

    The content part includes the layout term (``config.layout_weight`` x :func:`layout_loss`
    against the content image's coarse luma) when its weight is not 0.

    Several styles are blended by summing their distances with weights that sum to 1. For
    gram, mmd-*, and meanstd this has the same gradient as matching the weighted average of the
    statistics; with masks each style is matched only where its mask is (guided statistics,
    Gatys et al. 2017). The inputs' :class:`PixelTerm` (video's temporal loss), if any, joins
    the total; it is not one of the reported parts."""

    def __init__(self, net: VGG19Features, inputs: RunInputs, config: StyleConfig) -> None:
        self.net, self.config, self.pixel = net, config, inputs.pixel
        info = lookup(STYLE_LOSSES, config.style_loss, "style loss")
        self.statistic: StyleStatistic = info.load()
        self.style_weight = config.style_weight * info.weight
        self.layer_weights = style_layer_weights(config)
        # A joint statistic sees one field, whose layers carry their weights inside it.
        self.field_weights = [1.0] if self.statistic.joint else self.layer_weights
        self.style_weights, self.masks = inputs.style_weights, inputs.masks
        content_info = lookup(CONTENT_LOSSES, config.content_loss, "content loss")
        self.content_weight = config.content_weight * content_info.weight
        self.content_term = content_info.load()
        with torch.no_grad():
            self.content = self.content_targets(inputs.content)
            self.layout = coarse_luma(inputs.content) if config.layout_weight else None
            self.styled = styled_area(inputs.masks, self.layout)
            self.style_targets = [self.style_target(style) for style in inputs.styles]
            if self.statistic.anchor is not None:
                self.style_targets = self.anchored(inputs.content)

    def content_targets(self, content: Tensor) -> FeatureContent | SelfSimilarityContent:
        """The content term, holding the photo's features."""
        term: FeatureContent | SelfSimilarityContent = self.content_term(
            self.content_features(content)
        )
        return term

    def content_features(self, content: Tensor) -> dict[str, Tensor]:
        """The content layers' feature maps of the content image(s), (B, C, H', W') each."""
        layers = self.config.content_layers
        return {name: feats for name, feats in self.net(content).items() if name in layers}

    def style_fields(self, feats: dict[str, Tensor]) -> list[Tensor]:
        """What the style statistic summarises, (1, C, H, W) each, one per ``field_weights``:
        the style layers one by one, or for a joint statistic their hypercolumns."""
        maps = [feats[name] for name in self.config.style_layers]
        if self.statistic.joint:
            return [hypercolumns(maps, self.config.style_layers, self.layer_weights)]
        return maps

    def style_target(self, style: Tensor) -> list[Stat]:
        """Each field's statistic of a style image, over the positions of all its views."""
        views = [self.style_fields(self.net(view)) for view in self.statistic.views(style)]
        return [
            self.statistic.target(torch.cat([m[0].flatten(1) for m in field], dim=1))
            for field in zip(*views, strict=True)
        ]

    def anchored(self, content: Tensor) -> list[list[Stat]]:
        """Each style's targets made per position for ``content`` (the photo, or the blend a
        large scale holds), by the statistic's ``anchor``: NNST's neighbours, chosen once per
        scale. The photo is a (1, 3, H, W) image of this scale's size."""
        anchor = self.statistic.anchor
        assert anchor is not None
        fields = [field[0].flatten(1) for field in self.style_fields(self.net(content))]
        return [
            [anchor(target, field) for target, field in zip(targets, fields, strict=True)]
            for targets in self.style_targets
        ]

    def style_loss(self, feats: dict[str, Tensor]) -> Tensor:
        terms = []
        fields = self.style_fields(feats)
        for index, (field, field_weight) in enumerate(zip(fields, self.field_weights, strict=True)):
            flat = field[0].flatten(1)
            unmasked = None
            for targets, style_weight, mask in zip(
                self.style_targets, self.style_weights, self.masks, strict=True
            ):
                if mask is None:
                    if unmasked is None:  # shared by every unmasked style
                        unmasked = self.statistic.represent(flat, None)
                    stat = unmasked
                else:
                    grid = (field.shape[-2], field.shape[-1])
                    stat = self.statistic.represent(flat, mask_weights(mask, grid))
                distance = self.statistic.distance(stat, targets[index])
                terms.append(field_weight * style_weight * distance)
        return torch.stack(terms).sum()

    def batch(self, images: Tensor, photos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The same objective averaged over a batch (B, 3, H, W) of outputs, each held to its
        own photo and all to the fixed style targets: the perceptual loss that trains a
        feed-forward network (Johnson et al. 2016). Each image gets its own content term and
        style statistics, as one optimised picture would."""
        feats = self.net(images)
        with torch.no_grad():
            targets = self.content_features(photos)
            layout = coarse_luma(photos) if self.layout is not None else None
        contents, styles = [], []
        for i in range(images.shape[0]):
            one = {name: f[i : i + 1] for name, f in feats.items()}
            term = self.content_term({name: t[i : i + 1] for name, t in targets.items()})
            contents.append(term(one))
            styles.append(self.style_loss(one))
        return self._total(
            self.content_weight * torch.stack(contents).mean() + self.layout_term(images, layout),
            self.style_weight * torch.stack(styles).mean(),
            images,
        )

    def layout_term(self, image: Tensor, target: Tensor | None) -> Tensor:
        """The weighted layout term of ``image`` against ``target`` (0 without one)."""
        if target is None:
            return image.new_zeros(())
        return self.config.layout_weight * layout_loss(image, target, self.styled)

    def _total(
        self, content: Tensor, style: Tensor, image: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        tv_weight = self.config.tv_weight
        tv = tv_weight * tv_loss(image) if tv_weight else image.new_zeros(())
        return content + style + tv, {"content": content, "style": style, "tv": tv}

    def __call__(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its weighted parts ``content``, ``style``, ``tv``."""
        feats = self.net(image)
        total, parts = self._total(
            self.content_weight * self.content(feats) + self.layout_term(image, self.layout),
            self.style_weight * self.style_loss(feats),
            image,
        )
        return (total if self.pixel is None else total + self.pixel(image)), parts

    def gradient(self, param: Tensor, scale: float) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and parts at the image ``param / scale``, its gradient left in ``param.grad``."""
        loss, parts = self(param / scale)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss, parts
