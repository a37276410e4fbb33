"""Does the same configuration give the same picture at every size?

Runs the default preset on the bundled demo pair at several sizes and prints, from the last
iteration, the weighted style and content losses and their ratio, and the yardstick's coarse
SSIM and independent style distance (``estilo.quality``; they should agree across sizes).
With ``--iterations N`` every size runs one scale of N iterations, so that the weights are
compared directly; without it each size runs as a user gets it (coarse-to-fine from 256 px,
pictures from 256 to 511 px painted at 512 and resized down, the first scale stopped by the
tolerance, 20 steps at each later one).

The yardstick is not itself free of size: the independent style network sees a 256 px square
from the picture's centre, so a 256 px picture reaches it upsampled and a 1024 px one
downsampled, and grain is counted at single pixels. ``--compare-at PX`` also measures every
picture resized to PX px (longest side) against the photo at PX px, the way a person compares
a preview with the print shown at the same size; those columns are the ones that can agree.

    python benchmarks/resolution.py --sizes 256 512 1024 --iterations 100
    python benchmarks/resolution.py --sizes 256 512 1024 --compare-at 256 --keep /tmp/sizes

``--keep DIR`` writes each picture there (``PX.png``) to be looked at at 1:1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from estilo import resolve
from estilo.image.io import save_image
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import read, resize, stylize, working_size
from estilo.quality import measure
from estilo.quality.metrics import longest_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--iterations", type=int, help="one scale of N iterations per size")
    parser.add_argument(
        "--style-loss", default=resolve().style_loss, help="default: estilo's default loss"
    )
    parser.add_argument("--compare-at", type=int, help="also measure every picture at PX px")
    parser.add_argument("--keep", type=Path, help="write each picture to this folder")
    args = parser.parse_args()
    fixed = {} if args.iterations is None else {"iterations": args.iterations, "scales": 1}
    runs = f"{args.iterations} L-BFGS iterations, one scale" if fixed else "the default schedule"
    print(f"style loss {args.style_loss}, {runs}")
    same = f" | coarse SSIM at {args.compare_at} | style (independent) at {args.compare_at}"
    same = same if args.compare_at else ""
    print(
        "| size | iterations | content | style | style / content | coarse SSIM "
        f"| style (independent){same} | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|" + "---|---|" * bool(args.compare_at))
    for size in args.sizes:
        result = stylize(
            DEMO_CONTENT, DEMO_STYLE, size=size, log_every=0, style_loss=args.style_loss, **fixed
        )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            save_image(result.image, args.keep / f"{size}.png")
        config = resolve(size=size)
        photo = read(DEMO_CONTENT, config, "content").rgb
        photo = resize(photo, working_size(photo.shape[-2], photo.shape[-1], config))
        painting = read(DEMO_STYLE, config, "style").rgb
        scores = measure(result.image, photo, painting, independent=True)
        columns = [scores["coarse_ssim"], scores["independent_style_distance"]]
        if args.compare_at:
            common = measure(
                longest_side(result.image, args.compare_at),
                longest_side(photo, args.compare_at),
                painting,
                independent=True,
            )
            columns += [common["coarse_ssim"], common["independent_style_distance"]]
        last = result.history[-1]
        print(
            f"| {size} | {len(result.history)} | {last.content:.4g} | {last.style:.4g} | "
            f"{last.style / last.content:.3f} | "
            + " | ".join(f"{value:.3f}" for value in columns)
            + f" | {result.seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
