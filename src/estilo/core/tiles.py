"""Where the tiles of a tiled run lie (issue 14): plain geometry, no torch.

A tile is an *interior*, the positions whose features it computes, inside a *window* that adds
a margin on every side the image continues. The margin is at least the reach of the deepest
layer's receptive field beyond its own stride, so each interior feature sees exactly the pixels
it sees in the whole image, and every boundary is a multiple of the deepest layer's stride, so
the max-pooling grids of the tile and of the image coincide. Within the interior the tile's
features are then the whole image's, value and gradient alike (``tests/test_tiled.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from .layers import LAYER_NAMES, layer_index


def layer_stride(name: str) -> int:
    """How many pixels apart a layer's positions are: 2 to the number of pools up to it."""
    return int(2 ** sum(n.startswith("pool") for n in LAYER_NAMES[: layer_index(name) + 1]))


def receptive_reach(layers: Iterable[str]) -> tuple[int, int]:
    """(reach, stride) of the deepest of ``layers``: a position covers its own ``stride``
    pixels plus ``reach`` on each side (3x3 convolutions with padding 1, 2x2 pools)."""
    deepest = max(layer_index(name) for name in layers)
    size, jump = 1, 1
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("conv"):
            size += 2 * jump
        elif name.startswith("pool"):
            size += jump
            jump *= 2
    return (size - jump) // 2, jump


def tile_margin(layers: Iterable[str]) -> tuple[int, int]:
    """(margin, alignment): the reach rounded up to whole strides (80 px and 16 px for
    relu5_1, whose receptive field is 156 px), and the stride every boundary is a multiple of."""
    reach, stride = receptive_reach(layers)
    return -(-reach // stride) * stride, stride


@dataclass(frozen=True)
class Tile:
    """An interior box [top, bottom) x [left, right) of the image and the window around it,
    both in pixels; ``size`` is the whole image's (H, W)."""

    interior: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    size: tuple[int, int]

    def pixels(self) -> tuple[slice, slice]:
        """The window's rows and columns in the image."""
        top, bottom, left, right = self.window
        return slice(top, bottom), slice(left, right)

    def crop(self, stride: int) -> tuple[slice, slice]:
        """The interior's rows and columns in the window's feature map of that stride."""
        top, bottom, left, right = self.interior
        return (
            slice((top - self.window[0]) // stride, bottom // stride - self.window[0] // stride),
            slice((left - self.window[2]) // stride, right // stride - self.window[2] // stride),
        )

    def place(self, stride: int) -> tuple[slice, slice]:
        """The interior's rows and columns in the whole image's feature map of that stride."""
        top, bottom, left, right = self.interior
        return slice(top // stride, bottom // stride), slice(left // stride, right // stride)


def _cuts(length: int, step: int, align: int) -> list[int]:
    """Interior boundaries along one side: every ``step`` px, a last sliver narrower than one
    stride joined to the piece before it (it would hold no deep positions of its own)."""
    cuts = list(range(0, length, step))
    if len(cuts) > 1 and length - cuts[-1] < align:
        cuts.pop()
    return [*cuts, length]


def in_tiles(size: tuple[int, int], tile: int | None) -> bool:
    """Whether an image of ``size`` (H, W) is optimised in tiles of ``tile`` px: only when it is
    larger than one tile."""
    return tile is not None and max(size) > tile


def tile_grid(size: tuple[int, int], tile: int, margin: int, align: int) -> list[Tile]:
    """The tiles covering an image of ``size`` (H, W), row by row: interiors of ``tile`` px
    (rounded down to a multiple of ``align``), windows ``margin`` px wider where the image
    continues."""
    step = max(align, tile // align * align)
    height, width = size
    rows, columns = _cuts(height, step, align), _cuts(width, step, align)
    return [
        Tile(
            (top, bottom, left, right),
            (
                max(0, top - margin),
                min(height, bottom + margin),
                max(0, left - margin),
                min(width, right + margin),
            ),
            size,
        )
        for top, bottom in itertools.pairwise(rows)
        for left, right in itertools.pairwise(columns)
    ]
