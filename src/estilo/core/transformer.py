"""The image-transformation network of fast mode: one forward pass paints a photo in one style.

Johnson, Alahi & Fei-Fei 2016 ("Perceptual Losses for Real-Time Style Transfer", supplementary
Table 1): a 9x9 convolution, two stride-2 downsampling convolutions, five residual blocks, two
upsampling stages and a 9x9 convolution back to RGB. Departures, all from later work:

* instance normalisation instead of batch normalisation (Ulyanov, Vedaldi & Lempitsky 2016,
  "Instance Normalization: The Missing Ingredient for Fast Stylization");
* upsampling by a nearest-neighbour resize followed by a convolution instead of a transposed
  convolution, which leaves checkerboard artefacts (Odena, Dumoulin & Olah 2016, distill.pub);
* reflection padding everywhere, so the borders are not darkened by zeros;
* a sigmoid into [0, 1] instead of Johnson's scaled tanh into [0, 255]: estilo's images are
  [0, 1] everywhere.

``width`` is the first layer's channels (32 as in the paper; 16 is the half-width network, four
times cheaper per pixel). Any input size works; sides that are not a multiple of 4 are padded
by reflection and cropped back, so the output always has the input's size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The downsampling convolutions halve the size twice: sides are padded to a multiple of this,
STRIDE = 4
#: and to at least this, so that the deepest reflection padding has pixels to reflect.
MIN_SIDE = 16
RESIDUAL_BLOCKS = 5


class ConvLayer(nn.Sequential):
    """Reflection padding, a convolution, then (optionally) instance norm and ReLU."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(inputs, outputs, kernel, stride),
        ]
        if act:
            layers += [nn.InstanceNorm2d(outputs, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm, added to the input (Johnson et al.'s block,
    with the padding kept so that no crop is needed)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(x)
        return out


class Upsample(nn.Sequential):
    """Nearest-neighbour resize by 2, then a convolution: no checkerboards."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(inputs, outputs, 3))


class TransformerNet(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) RGB in [0, 1], any H and W."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError("width must be >= 1")
        self.width = width
        self.layers = nn.Sequential(
            ConvLayer(3, width, 9),
            ConvLayer(width, 2 * width, 3, stride=2),
            ConvLayer(2 * width, 4 * width, 3, stride=2),
            *[ResidualBlock(4 * width) for _ in range(RESIDUAL_BLOCKS)],
            Upsample(4 * width, 2 * width),
            Upsample(2 * width, width),
            ConvLayer(width, 3, 9, act=False),
        )

    def forward(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        pad_h = max(MIN_SIDE, height + -height % STRIDE) - height
        pad_w = max(MIN_SIDE, width + -width % STRIDE) - width
        if pad_h or pad_w:
            # Reflection needs a pad smaller than the side; tiny images are replicated instead.
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
        return self.paint(image)[..., :height, :width]

    def paint(self, image: Tensor) -> Tensor:
        """The network itself, for sides that are multiples of STRIDE and at least MIN_SIDE
        (what ``forward`` pads to; the ONNX export is this, with no padding logic to trace)."""
        out: Tensor = torch.sigmoid(self.layers(image))
        return out


#: Tiles overlap by this many pixels, blended linearly across the overlap.
TILE_OVERLAP = 64


def computing_in(net: TransformerNet, dtype: torch.dtype | None) -> Callable[[Tensor], Tensor]:
    """``net`` in eval mode as a function from float32 pictures to float32 pictures, computing
    in ``dtype`` (None: float32).

    bfloat16 runs on a bfloat16 copy of the network rather than under autocast: autocast keeps
    instance norm in float32 and converts the activations to and fro around it, 1.7x slower at
    1024 px on a 2-core CPU (1.13 s against 0.68, BENCHMARKS.md, fast mode). The copy is made
    per call (0.85 MB at half width, 7 ms on 2 cores) and never touches ``net``, so it
    cannot go stale when the network is trained further or moved, and threads painting with
    one network do not see each other's weights."""
    net.eval()
    if dtype is None:
        return net
    twin = copy.deepcopy(net).to(dtype)

    def paint(piece: Tensor) -> Tensor:
        out: Tensor = twin(piece.to(dtype))
        return out.float()

    return paint


def paint_tiled(net: Callable[[Tensor], Tensor], image: Tensor, tile: int) -> Tensor:
    """``net(image)`` for a (B, 3, H, W) image, computed in tiles of at most ``tile`` x ``tile``
    pixels when the image is larger, so that memory stays bounded at any size.

    Tiles overlap by TILE_OVERLAP pixels and are blended with weights that fall linearly to
    the tile's edges. Departure: instance norm sees each tile's own statistics, so a tiled
    picture differs slightly from one computed whole; the overlap hides the seams."""
    height, width = image.shape[-2:]
    if height <= tile and width <= tile:
        out: Tensor = net(image)
        return out
    overlap = min(TILE_OVERLAP, tile // 4)
    out = image.new_zeros(image.shape)
    total = image.new_zeros((1, 1, height, width))
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            piece = image[..., top : top + tile, left : left + tile]
            h, w = piece.shape[-2:]
            ramp = _ramp(h, overlap, image)[:, None] * _ramp(w, overlap, image)[None, :]
            out[..., top : top + h, left : left + w] += net(piece) * ramp
            total[..., top : top + h, left : left + w] += ramp
    return out / total


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along one side begin: ``tile`` apart less the overlap, the last flush
    with the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def _ramp(length: int, overlap: int, like: Tensor) -> Tensor:
    """(length,) weights rising linearly from the ends over ``overlap`` pixels, never 0."""
    position = torch.arange(length, device=like.device, dtype=like.dtype)
    edge = torch.minimum(position + 1, length - position)
    return (edge / (overlap + 1)).clamp(max=1.0)
