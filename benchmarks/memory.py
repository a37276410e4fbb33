"""Peak memory against image size, and estilo's estimate of it made before the run.

Each size runs in a fresh process: 3 iterations of the default preset on one scale on a square
random image pair (L-BFGS, whose curvature history fills over 50 iterations: ``--iterations 60``
measures it full; the estimate always counts it full). The estimate is compared with the peak
resident set (``estilo.core.memory.peak_resident``) and, on CUDA, the peak allocated GPU memory.

    python benchmarks/memory.py --sizes 256 512 1024 2048
    python benchmarks/memory.py --sizes 512 1024 --optimizer adam --recompute on
    python benchmarks/memory.py --sizes 2048 4096 8192 --optimizer adam --tile 256 \
        --iterations 1 --style-scale 0.5 --skip-final

With ``--tile`` the run is tiled (issue 14): for a fixed tile the peak should stay flat but for
the image-sized buffers, and the seconds per iteration grow with the pixels. The print-size run
of BENCHMARKS.md paints a real pair, squeezed square, and keeps each size's picture:

    python benchmarks/memory.py --sizes 8192 --iterations 1 --optimizer adam --tile 256 \
        --style-scale 0.5 --skip-final --output /tmp/print \
        --content ../shared/images/content_tubingen_neckarfront.jpg \
        --style ../shared/images/style_starry_night.jpg
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = """
import json, sys, torch
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.memory import peak_resident
from estilo.core.stylize import stylize
from estilo.pipeline import cached_weights
size, iterations, optimizer, recompute, tile = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6]
side, skip_final = round(size * float(sys.argv[6])), sys.argv[7] == "1"
photo, painting, output = sys.argv[8:11]
weights = cached_weights("")
if photo:  # real pictures, squeezed square as the paper's 1024x1024
    from estilo.core.pyramid import resized
    from estilo.image.io import load_image
    image = resized(load_image(photo).rgb[None], (size, size))
    style = resized(load_image(painting).rgb[None], (side, side))
else:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g)
    style = torch.rand(1, 3, side, side, generator=g)
config = resolve(size=size, iterations=iterations, scales=1, optimizer=optimizer,
                 recompute=recompute, tile=tile, log_every=0, tolerance=0)
if optimizer == "adam":
    # Adam's moments from the first sweep on, as at every later iteration, so that one
    # iteration measures the steady peak. Zero moments at step 0 are what Adam starts from:
    # the arithmetic is unchanged.
    import estilo.core.optim as optim
    build = optim.build_adam
    def primed(params, config):
        made = build(params, config)
        for p in params:
            made.state[p] = {"step": torch.zeros((), device=p.device),
                             "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return made
    optim.build_adam = primed
resident = int(open("/proc/self/statm").read().split()[1]) * 4096
seconds = []
def callback(step):
    seconds.append(step.seconds)
    if skip_final and step.iteration == iterations:
        raise KeyboardInterrupt  # ends the run without its final no-gradient evaluation
result = stylize(RunInputs.make(image, style), config, weights=weights, callback=callback)
if output:
    from estilo.image.io import save_image
    save_image(result.image[0], f"{output}/memory-{size}.png")
cuda = torch.cuda.is_available()
print(json.dumps({
    "rss_mib": peak_resident() / 2**20,
    "gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    "estimate_mib": (result.memory.estimate + (0 if cuda else resident)) / 2**20,
    "recompute": result.memory.recompute,
    "tile": result.memory.tile,
    "seconds_per_iteration": result.seconds / iterations,
    "last_iteration_seconds": seconds[-1] - seconds[-2] if len(seconds) > 1 else None}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--recompute", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--tile", default="auto", help="auto, off or a tile size in pixels")
    parser.add_argument(
        "--style-scale", type=float, default=1.0, help="the style image's side over the size's"
    )
    parser.add_argument("--content", default="", help="a photo instead of random pixels")
    parser.add_argument("--style", default="", help="a painting instead of random pixels")
    parser.add_argument("--output", default="", help="a folder for each size's picture")
    parser.add_argument(
        "--skip-final",
        action="store_true",
        help="end after the last iteration without the loop's final no-gradient evaluation "
        "(at 8192 px it costs over half an iteration, and its peak is lower)",
    )
    args = parser.parse_args()
    print(
        "| size (square) | estimate MiB | peak RSS MiB | peak GPU MiB | estimate/peak "
        "| recompute | tile | s/iteration (incl. set-up) | s, last iteration |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CASE,
                str(size),
                str(args.iterations),
                args.optimizer,
                args.recompute,
                args.tile,
                str(args.style_scale),
                "1" if args.skip_final else "0",
                args.content,
                args.style,
                args.output,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            print(f"| {size} | failed: {last[:80]} | | | | | | | |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        peak = row["gpu_mib"] if row["gpu_mib"] is not None else row["rss_mib"]
        gpu = "" if row["gpu_mib"] is None else f"{row['gpu_mib']:.0f}"
        last = row["last_iteration_seconds"]
        print(
            f"| {size} | {row['estimate_mib']:.0f} | {row['rss_mib']:.0f} | {gpu} "
            f"| {row['estimate_mib'] / peak:.2f} | {row['recompute']} | {row['tile'] or 'off'} "
            f"| {row['seconds_per_iteration']:.2f} | {'' if last is None else f'{last:.1f}'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
