"""Does the same configuration give the same content/style balance at every size?

Runs the default preset on the bundled demo pair at several sizes (one scale each, so that the
sizes are compared directly) and prints, from the last iteration, the weighted style and
content losses and their ratio. Resolution-independent weights give similar ratios.

    python benchmarks/resolution.py --sizes 256 512 1024 --iterations 100
"""

from __future__ import annotations

import argparse

from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import stylize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--style-loss", default="gram")
    args = parser.parse_args()
    print(f"style loss {args.style_loss}, {args.iterations} L-BFGS iterations, one scale")
    print("| size | content | style | style / content | seconds |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        result = stylize(
            DEMO_CONTENT,
            DEMO_STYLE,
            size=size,
            iterations=args.iterations,
            scales=1,
            log_every=0,
            style_loss=args.style_loss,
        )
        last = result.history[-1]
        print(
            f"| {size} | {last.content:.4g} | {last.style:.4g} | "
            f"{last.style / last.content:.3f} | {result.seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
