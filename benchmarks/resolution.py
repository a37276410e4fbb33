"""Does the same configuration give the same picture at every size?

Runs the default preset on the bundled demo pair at several sizes and prints, from the last
iteration, the weighted style and content losses and their ratio, and the yardstick's coarse
SSIM and independent style distance (``estilo.quality``; they should agree across sizes).
With ``--iterations N`` every size runs one scale of N iterations, so that the weights are
compared directly; without it each size runs as a user gets it (coarse-to-fine above 512 px,
stopped by the tolerance).

    python benchmarks/resolution.py --sizes 256 512 1024 --iterations 100
    python benchmarks/resolution.py --sizes 256 512 1024
"""

from __future__ import annotations

import argparse

from estilo import resolve
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import read, resize, stylize, working_size
from estilo.quality import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--iterations", type=int, help="one scale of N iterations per size")
    parser.add_argument("--style-loss", default="gram")
    args = parser.parse_args()
    fixed = {} if args.iterations is None else {"iterations": args.iterations, "scales": 1}
    runs = f"{args.iterations} L-BFGS iterations, one scale" if fixed else "the default schedule"
    print(f"style loss {args.style_loss}, {runs}")
    print(
        "| size | iterations | content | style | style / content | coarse SSIM "
        "| style (independent) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        result = stylize(
            DEMO_CONTENT, DEMO_STYLE, size=size, log_every=0, style_loss=args.style_loss, **fixed
        )
        config = resolve(size=size)
        photo = read(DEMO_CONTENT, config, "content").rgb
        photo = resize(photo, working_size(photo.shape[-2], photo.shape[-1], config))
        scores = measure(
            result.image, photo, read(DEMO_STYLE, config, "style").rgb, independent=True
        )
        last = result.history[-1]
        print(
            f"| {size} | {len(result.history)} | {last.content:.4g} | {last.style:.4g} | "
            f"{last.style / last.content:.3f} | {scores['coarse_ssim']:.3f} | "
            f"{scores['independent_style_distance']:.3f} | {result.seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
