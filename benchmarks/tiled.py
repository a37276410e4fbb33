"""Tiled against untiled at a size where both fit (issue 14): per style loss, the loss ratio
and the relative error of the gradient at one image; then a short run of each, the largest and
the mean pixel difference of the pictures, the seam figure of the tiled one (squared neighbour
differences across the tile borders over those everywhere else: 1 is no seam), and the seconds
per iteration of both runs against the windows' pixels over the image's (the margins' cost).

On the bundled demo pair with the default layers (80 px margins), on the CPU, in float32 or
with ``--precision bfloat16`` (auto's choice on a CPU that has it in hardware). For
the stochastic losses (sliced-wasserstein, mmd-gaussian) the untiled gradient's own spread
between two draws is printed beside, as the yardstick.

    python benchmarks/tiled.py --size 256 --tile 64 --iterations 10
    python benchmarks/tiled.py --size 512 --tile 128 --losses wasserstein --precision bfloat16
"""

from __future__ import annotations

import argparse
import time

import torch

from estilo.core.config import resolve
from estilo.core.device import compute_dtype
from estilo.core.inputs import RunInputs
from estilo.core.objective import Objective
from estilo.core.pyramid import resized
from estilo.core.records import Callback
from estilo.core.registry import STYLE_LOSSES
from estilo.core.stylize import stylize
from estilo.core.tiled import TiledObjective
from estilo.core.tiles import tile_grid, tile_margin
from estilo.core.vgg import VGG19Features
from estilo.image.io import load_image
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import cached_weights


def gradient(objective: Objective, image: torch.Tensor, seed: int) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    param = image.clone().requires_grad_(True)
    loss, _ = objective.gradient(param, 1.0)
    assert param.grad is not None
    return float(loss.detach()), param.grad


def timed(stamps: list[float]) -> Callback:
    """A callback noting when each iteration ends."""
    return lambda _: stamps.append(time.perf_counter())


def seam(image: torch.Tensor, cuts: list[int]) -> float:
    """Squared differences across the rows and columns just before ``cuts`` over the rest."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean(dim=(0, 1, 3))
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean(dim=(0, 1, 2))
    at = torch.tensor([c - 1 for c in cuts])
    on = torch.zeros(len(dy), dtype=torch.bool)
    on[at] = True
    border = torch.cat([dy[on], dx[on]]).mean()
    rest = torch.cat([dy[~on], dx[~on]]).mean()
    return float(border / rest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--losses", nargs="+", default=list(STYLE_LOSSES))
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    weights = cached_weights("")
    square = (args.size, args.size)
    content, style = (
        resized(load_image(path, max_side=args.size).rgb[None], square)
        for path in (DEMO_CONTENT, DEMO_STYLE)
    )
    inputs = RunInputs.make(content, style)
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    image = (content + 0.1 * noise).clamp(0, 1)
    print("| style loss | tiled/untiled loss | gradient error | untiled between draws |")
    print("|---|---|---|---|")
    for name in args.losses:
        config = resolve(style_loss=name, device="cpu", precision=args.precision)
        net = VGG19Features(
            weights,
            set(config.content_layers) | set(config.style_layers),
            autocast=compute_dtype(args.precision, torch.device("cpu")),
        )
        whole = Objective(net, inputs, config)
        loss, grad = gradient(whole, image, 0)
        _, again = gradient(whole, image, 1)
        tiled_loss, tiled = gradient(TiledObjective(net, inputs, config, args.tile), image, 0)
        error = float((tiled - grad).norm() / grad.norm())
        spread = float((again - grad).norm() / grad.norm())
        print(f"| {name} | {tiled_loss / loss:.6f} | {error:.1e} | {spread:.1e} |", flush=True)
    margin, align = tile_margin(resolve().style_layers + resolve().content_layers)
    grid = tile_grid(square, args.tile, margin, align)
    cuts = sorted({t.interior[0] for t in grid} - {0})
    windows = sum((t.window[1] - t.window[0]) * (t.window[3] - t.window[2]) for t in grid)
    pictures, seconds = {}, {}
    for tile in ("off", str(args.tile)):
        config = resolve(
            device="cpu", precision=args.precision, scales=1, optimizer="adam", lr=0.02,
            iterations=args.iterations, tolerance=0, log_every=0, tile=tile,
        )  # fmt: skip
        stamps: list[float] = []
        pictures[tile] = stylize(
            inputs,
            config,
            weights=weights,
            callback=timed(stamps),
        ).image
        # From the end of the first iteration: set-up (the painting's statistics) left out.
        seconds[tile] = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    difference = (pictures[str(args.tile)] - pictures["off"]).abs()
    print(
        f"\n{args.iterations} Adam iterations at {args.size} px, tiles of {args.tile} px: "
        f"pixel difference largest {float(difference.max()):.1e}, mean "
        f"{float(difference.mean()):.1e} (of 1); seam figure tiled "
        f"{seam(pictures[str(args.tile)], cuts):.3f}, untiled at the same rows "
        f"{seam(pictures['off'], cuts):.3f}"
    )
    ratio, margins = seconds[str(args.tile)] / seconds["off"], windows / args.size**2
    print(
        f"seconds per iteration: untiled {seconds['off']:.2f}, tiled {seconds[str(args.tile)]:.2f}"
        f" ({ratio:.2f}x); the windows hold {margins:.2f}x the image's pixels, so a tiled pixel "
        f"costs {ratio / margins:.2f}x an untiled one beyond the margins"
    )


if __name__ == "__main__":
    main()
