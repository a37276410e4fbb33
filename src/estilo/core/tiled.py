"""The objective of a tiled run (issue 14): the whole image's loss and gradient, one tile at a
time, so that memory holds one tile's activations however large the image.

Each tile computes the features of its interior from its window (``core/tiles.py``: the margin
makes them the whole image's), and its gradient, margin included, is added into one image-sized
gradient. The terms split in two kinds:

* Sums over positions (the content and smoothness terms, and the style statistics with
  ``StyleStatistic.moments``: gram, mmd-poly, mmd-linear, meanstd, wasserstein). A first pass
  without gradients adds up each style layer's weighted moments Σ w f and Σ w f fᵀ over every
  tile (in float64); the style distance is evaluated on those whole-image moments, made leaves,
  and differentiated with respect to them. The second pass backpropagates, tile by tile,
  ⟨∂loss/∂moments, the tile's share of the moments⟩ plus its content and smoothness terms. The
  gradient is the untiled one, to rounding: exact, at the price of one more forward pass.
* Statistics that are not sums (sliced-wasserstein, mmd-gaussian). Departure: each tile's
  features are matched to the whole style's target on their own, weighted by the tile's share
  of the image (of the mask); positions are not compared across tiles. The style target is
  still the whole style's, built from all its tiles' features, which are held at once.

The coarse scales of the pyramid run untiled (``stylize``), so the composition stays global.
nnst, whose target is a style feature per position of the whole photo, is refused here.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError
from .config import StyleConfig
from .inputs import RunInputs
from .losses import Stat
from .objective import FeatureContent, Objective, mask_weights
from .registry import STYLE_LOSSES, lookup
from .tiles import Tile, in_tiles, layer_stride, tile_grid, tile_margin
from .vgg import VGG19Features

Moments = dict[tuple[int, int | None], tuple[Tensor, Tensor]]


def _as_float(stat: Stat) -> Stat:
    """A statistic computed in float64, back in the losses' float32."""
    return tuple(s.float() for s in stat) if isinstance(stat, tuple) else stat.float()


class TiledObjective(Objective):
    """:class:`Objective` evaluated in tiles of ``tile`` px (interior) at most."""

    def __init__(
        self, net: VGG19Features, inputs: RunInputs, config: StyleConfig, tile: int
    ) -> None:
        if config.content_loss != "mse":
            raise ConfigError(
                f"content loss {config.content_loss} compares positions across the whole image "
                "and cannot be tiled: use tile = off (and a size that fits)"
            )
        if lookup(STYLE_LOSSES, config.style_loss, "style loss").load().anchor is not None:
            raise ConfigError(
                f"style loss {config.style_loss} chooses a style feature for every position of "
                "the whole photo and cannot be tiled: use tile = off (and a size that fits)"
            )
        self.tile = tile
        self.margin, self.align = tile_margin([*config.content_layers, *config.style_layers])
        super().__init__(net, inputs, config)
        self.size = inputs.size
        self.summed = self.statistic.moments is not None
        # Each style layer's weight per position over the whole image, per masked style: the
        # untiled run's mask_weights, cut into tiles later.
        self.position_weights: dict[tuple[int, int], Tensor] = {}
        if self.summed:
            for i, name in enumerate(config.style_layers):
                grid = self._grid(name)
                for j, mask in enumerate(self.masks):
                    weights = mask_weights(mask, grid)
                    if weights is not None:
                        self.position_weights[i, j] = weights.view(grid)
        self.mask_totals = [None if m is None else float(m.sum()) for m in self.masks]

    def _grid(self, name: str) -> tuple[int, int]:
        stride = layer_stride(name)
        return self.size[0] // stride, self.size[1] // stride

    def tiles(self, size: tuple[int, int]) -> list[Tile]:
        return tile_grid(size, self.tile, self.margin, self.align)

    def interior(self, window: Tensor, tile: Tile) -> dict[str, Tensor]:
        """The features of the tile's interior positions, from its window of pixels."""
        return {
            name: feats[(..., *tile.crop(layer_stride(name)))]
            for name, feats in self.net(window).items()
        }

    def _interiors(self, image: Tensor) -> Iterator[tuple[Tile, dict[str, Tensor]]]:
        for tile in self.tiles((image.shape[-2], image.shape[-1])):
            yield tile, self.interior(image[(..., *tile.pixels())], tile)

    def content_targets(self, content: Tensor) -> FeatureContent:
        """Departure from the untiled objective, for memory: no content target is held. The
        photo stays and each tile recomputes its own target from the photo's window
        (``_tile_content``): at 8192 px relu4_2's map alone is 2 GiB, and one more forward pass
        without gradients per tile costs about a fifth of an iteration. The term returned is
        empty: the tiles compute the content term, never ``Objective.__call__``. (At a scale
        that holds the picture painted so far, ``content`` is that blend, not the photo.)"""
        self.photo = content
        return FeatureContent({})

    def style_target(self, style: Tensor) -> list[Stat]:
        """Each field's statistic of a style image, from its tiles: from the summed moments
        where the statistic has them, else from all its positions gathered."""
        fields = (
            [field[0].flatten(1) for field in self.style_fields(feats)]
            for view in self.statistic.views(style)
            for _, feats in self._interiors(view)
        )
        moments = self.statistic.moments
        if moments is None:
            return [
                self.statistic.target(torch.cat(flats, dim=1))
                for flats in zip(*fields, strict=True)
            ]
        sums: list[tuple[Tensor, Tensor, int]] = []
        for flats in fields:  # one tile at a time: only the sums are kept
            doubles = [flat.double() for flat in flats]
            shares = [(d.sum(1), d @ d.T, d.shape[1]) for d in doubles]
            sums = (
                shares
                if not sums
                else [
                    (a + x, b + y, n + m) for (a, b, n), (x, y, m) in zip(sums, shares, strict=True)
                ]
            )
        return [self.statistic.settled(_as_float(moments(a / n, b / n))) for a, b, n in sums]

    def _tile_moments(self, feats: dict[str, Tensor], tile: Tile) -> Moments:
        """The tile's share of each (style layer, masked style or None) pair's moments."""
        shares: Moments = {}
        for i, name in enumerate(self.config.style_layers):
            flat = feats[name][0].flatten(1)
            grid = self._grid(name)
            for j, mask in enumerate(self.masks):
                key = (i, None if mask is None else j)
                if key in shares:
                    continue
                if mask is None:
                    weighted = flat / (grid[0] * grid[1])
                else:
                    window = self.position_weights[i, j][tile.place(layer_stride(name))]
                    weighted = flat * window.flatten()
                shares[key] = (weighted.sum(1), weighted @ flat.T)
        return shares

    def _moments(self, image: Tensor) -> Moments:
        """Pass 1: the whole image's moments, in float64, without gradients."""
        total: Moments = {}
        with torch.no_grad():
            for tile, feats in self._interiors(image):
                for key, (first, second) in self._tile_moments(feats, tile).items():
                    if key in total:
                        total[key][0].add_(first.double())
                        total[key][1].add_(second.double())
                    else:
                        total[key] = (first.double(), second.double())
        return total

    def _summed_style(self, moments: Moments) -> Tensor:
        """The style term from whole-image moments, as Objective.style_loss from features."""
        assert self.statistic.moments is not None
        terms = []
        for i, field_weight in enumerate(self.field_weights):
            for j, (targets, style_weight, mask) in enumerate(
                zip(self.style_targets, self.style_weights, self.masks, strict=True)
            ):
                stat = _as_float(self.statistic.moments(*moments[i, None if mask is None else j]))
                distance = self.statistic.distance(stat, targets[i])
                terms.append(field_weight * style_weight * distance)
        return self.style_weight * torch.stack(terms).sum()

    def _tile_style(self, feats: dict[str, Tensor], tile: Tile) -> Tensor:
        """A statistic that is not a sum: the tile's own distance to the whole style's
        target, times the tile's share of the image (of the style's mask)."""
        top, bottom, left, right = tile.interior
        area = (bottom - top) * (right - left) / (self.size[0] * self.size[1])
        terms = []
        fields = self.style_fields(feats)
        for i, (field, field_weight) in enumerate(zip(fields, self.field_weights, strict=True)):
            flat = field[0].flatten(1)
            for targets, style_weight, mask, total in zip(
                self.style_targets, self.style_weights, self.masks, self.mask_totals, strict=True
            ):
                weights, share = None, area
                if mask is not None and total is not None:
                    cut = mask[..., top:bottom, left:right]
                    share = float(cut.sum()) / total if total > 0 else 0.0
                    weights = mask_weights(cut, (field.shape[-2], field.shape[-1]))
                if share > 0:
                    stat = self.statistic.represent(flat, weights)
                    distance = self.statistic.distance(stat, targets[i])
                    terms.append(share * field_weight * style_weight * distance)
        return self.style_weight * torch.stack(terms).sum() if terms else flat.new_zeros(())

    def _tile_content(self, feats: dict[str, Tensor], tile: Tile) -> Tensor:
        """The tile's share of the content term (a mean over every position of each layer),
        against the photo's features of the same interior, computed here."""
        with torch.no_grad():
            targets = self.interior(self.photo[(..., *tile.pixels())], tile)
        layers = self.config.content_layers
        terms = []
        for name in layers:
            grid = self._grid(name)
            count = feats[name].shape[1] * grid[0] * grid[1]
            terms.append((feats[name] - targets[name]).pow(2).sum() / count)
        return torch.stack(terms).sum() / len(layers)

    def _tile_tv(self, window: Tensor, tile: Tile) -> Tensor:
        """The tile's share of tv_loss: the differences from each interior pixel to the next
        one down and right, the last ones reaching into the margin."""
        (height, width), (top, bottom, left, right) = self.size, tile.interior
        rows = slice(top - tile.window[0], bottom - tile.window[0])
        cols = slice(left - tile.window[2], right - tile.window[2])
        below = window[..., rows.start : rows.stop + (bottom < height), cols]
        beside = window[..., rows, cols.start : cols.stop + (right < width)]
        dy = (below[..., 1:, :] - below[..., :-1, :]).pow(2).sum() / (3 * (height - 1) * width)
        dx = (beside[..., 1:] - beside[..., :-1]).pow(2).sum() / (3 * height * (width - 1))
        return dy + dx

    def _sweep(self, image: Tensor, backward: bool) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Loss, parts and (when ``backward``) the gradient with respect to ``image``."""
        cfg = self.config
        zero = image.new_zeros(())
        style, content, tv = zero, zero, zero
        # (key, 0 for the mean or 1 for the second moment, ∂loss/∂it): the pull on each tile.
        pulls: list[tuple[tuple[int, int | None], int, Tensor]] = []
        if self.summed:
            moments = {
                k: (a.requires_grad_(backward), b.requires_grad_(backward))
                for k, (a, b) in self._moments(image).items()
            }
            with torch.set_grad_enabled(backward):
                style = self._summed_style(moments)
            if backward:
                style.backward()  # type: ignore[no-untyped-call]
                pulls = [
                    (key, index, leaf.grad.float())
                    for key, pair in moments.items()
                    for index, leaf in enumerate(pair)
                    if leaf.grad is not None  # gram uses no mean, mmd-linear no second moment
                ]
            style = style.detach()
        gradient = torch.zeros_like(image) if backward else image.new_empty(0)
        for tile in self.tiles(self.size):
            window = image[(..., *tile.pixels())].detach().requires_grad_(backward)
            with torch.set_grad_enabled(backward):
                feats = self.interior(window, tile)
                parts = [self.content_weight * self._tile_content(feats, tile)]
                if cfg.tv_weight:
                    parts.append(cfg.tv_weight * self._tile_tv(window, tile))
                else:
                    parts.append(zero)
                parts.append(zero if self.summed else self._tile_style(feats, tile))
                shares = self._tile_moments(feats, tile) if pulls else {}
                pull = [(grad * shares[key][index]).sum() for key, index, grad in pulls]
                if backward:
                    torch.stack([*parts, *pull]).sum().backward()  # type: ignore[no-untyped-call]
                    assert window.grad is not None
                    gradient[(..., *tile.pixels())] += window.grad
            content, tv = content + parts[0].detach(), tv + parts[1].detach()
            style = style + parts[2].detach()
        # The layout term and video's temporal term are per pixel: cheap on the whole image.
        # The temporal term joins the total, not a reported part (as in Objective.__call__).
        temporal = zero
        if self.layout is not None or self.pixel is not None:
            whole = image.detach().requires_grad_(backward)
            with torch.set_grad_enabled(backward):
                layout = self.layout_term(whole, self.layout)
                pixel = self.pixel(whole) if self.pixel is not None else zero
            if backward:
                (layout + pixel).backward()  # type: ignore[no-untyped-call]
                assert whole.grad is not None
                gradient += whole.grad
            content, temporal = content + layout.detach(), pixel.detach()
        terms = {"content": content, "style": style, "tv": tv}
        return content + style + tv + temporal, terms, gradient

    def __call__(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its weighted parts, without gradients."""
        loss, parts, _ = self._sweep(image, backward=False)
        return loss, parts

    def gradient(self, param: Tensor, scale: float) -> tuple[Tensor, dict[str, Tensor]]:
        """As :meth:`Objective.gradient`, the gradient summed over the tiles."""
        # In place where it can be: at print sizes every image-sized copy is a gigabyte.
        image = param.detach() if scale == 1 else param.detach() / scale
        loss, parts, gradient = self._sweep(image, backward=True)
        param.grad = gradient.div_(scale)
        return loss, parts


def make_objective(
    net: VGG19Features, inputs: RunInputs, config: StyleConfig, tile: int | None
) -> Objective:
    """The objective of one scale: tiled when ``tile`` is set and the image is larger."""
    if tile is None or not in_tiles(inputs.size, tile):
        return Objective(net, inputs, config)
    return TiledObjective(net, inputs, config, tile)
