"""Calibrate each loss's registry weight against the default one, on the bundled demo pair.

A style loss's weight makes its style term, evaluated on the content image against the style
image, equal to gram's at the same size: then the default style weight means about the same
amount of style whichever loss is chosen. A content loss's weight does the same for the content
term of the style image (resized to the photo's size) against the photo, relative to mse.
Prints the weights at several sizes (they should agree).

    python benchmarks/calibrate.py --sizes 256 512
"""

from __future__ import annotations

import argparse

import torch

from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.objective import Objective
from estilo.core.registry import CONTENT_LOSSES, STYLE_LOSSES
from estilo.core.vgg import VGG19Features
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import cached_weights, read, resize, working_size


def style_terms(size: int, repeats: int) -> dict[str, float]:
    base = resolve(size=size)
    content, style = (read(path, base, "image").rgb for path in (DEMO_CONTENT, DEMO_STYLE))
    content = resize(content, working_size(content.shape[-2], content.shape[-1], base))[None]
    style = resize(style, working_size(style.shape[-2], style.shape[-1], base))[None]
    layers = set(base.style_layers) | set(base.content_layers)
    net = VGG19Features(cached_weights(""), layers, base.pooling)
    values = {}
    for name in STYLE_LOSSES:
        config = resolve(size=size, style_loss=name, style_weight=1.0)
        objective = Objective(net, RunInputs.make(content, style), config)
        with torch.no_grad():
            feats = net(content)
            torch.manual_seed(0)
            values[name] = sum(float(objective.style_loss(feats)) for _ in range(repeats)) / repeats
    return values


def content_terms(size: int) -> dict[str, float]:
    base = resolve(size=size)
    content, style = (read(path, base, "image").rgb for path in (DEMO_CONTENT, DEMO_STYLE))
    content = resize(content, working_size(content.shape[-2], content.shape[-1], base))[None]
    style = resize(style, tuple(content.shape[-2:]))[None]  # type: ignore[arg-type]
    net = VGG19Features(cached_weights(""), {*base.content_layers, *base.style_layers}, "max")
    values = {}
    for name in CONTENT_LOSSES:
        config = resolve(size=size, content_loss=name)
        objective = Objective(net, RunInputs.make(content, style), config)
        with torch.no_grad():
            values[name] = float(objective.content(net(style)))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=4, help="averages stochastic losses")
    args = parser.parse_args()
    print("| loss | " + " | ".join(f"weight at {s} px" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    table = {size: style_terms(size, args.repeats) for size in args.sizes}
    for name in STYLE_LOSSES:
        cells = [f"{table[s]['gram'] / table[s][name]:.4g}" for s in args.sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")
    contents = {size: content_terms(size) for size in args.sizes}
    for name in CONTENT_LOSSES:
        cells = [f"{contents[s]['mse'] / contents[s][name]:.4g}" for s in args.sizes]
        print(f"| content: {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
