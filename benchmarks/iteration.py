"""Seconds per iteration and peak memory of estilo's loop, per image size and optimiser.

Each case runs in a fresh process so that its peak RSS is its own. Not part of the tests.

    python benchmarks/iteration.py                       # 256 and 512 px, adam and lbfgs
    python benchmarks/iteration.py --sizes 256 --iterations 5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

CASE = """
import json, resource, sys, time, torch
from estilo.core.config import resolve
from estilo.core.stylize import stylize
from estilo.pipeline import cached_weights
size, optimizer, iterations, warmup = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), 2
weights = cached_weights("")
g = torch.Generator().manual_seed(0)
content = torch.rand(1, 3, size * 3 // 4, size, generator=g)
style = torch.rand(1, 3, size, size, generator=g)
times = []
def tick(step):
    times.append(time.perf_counter())
config = resolve(size=size, optimizer=optimizer, iterations=iterations + warmup, log_every=0,
                 device="cpu")
stylize(content, style, config, callback=tick, weights=weights)
per = (times[-1] - times[warmup - 1]) / iterations
print(json.dumps({"seconds_per_iteration": per,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    import torch

    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    print("| size (long side, 4:3) | optimizer | s/iteration | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for size in args.sizes:
        for optimizer in args.optimizers:
            out = subprocess.run(
                [sys.executable, "-c", CASE, str(size), optimizer, str(args.iterations)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {size} | {optimizer} | {row['seconds_per_iteration']:.3f} | "
                f"{row['peak_rss_mib']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
