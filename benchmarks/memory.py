"""Peak memory against image size: RSS of a fresh process running 3 iterations of the default
preset (one scale) on a square random image pair, and on CUDA the peak allocated GPU memory.

    python benchmarks/memory.py --sizes 256 512 1024 2048
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = """
import json, resource, sys, torch
from estilo.pipeline import stylize
size = int(sys.argv[1])
g = torch.Generator().manual_seed(0)
image, style = torch.rand(3, size, size, generator=g), torch.rand(3, size, size, generator=g)
result = stylize(image, style, size=size, iterations=3, scales=1, log_every=0)
gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "gpu_mib": gpu, "seconds_per_iteration": result.seconds / 3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    args = parser.parse_args()
    print("| size (square) | peak RSS MiB | peak GPU MiB | s/iteration (incl. set-up) |")
    print("|---|---|---|---|")
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, "-c", CASE, str(size)], capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"| {size} | failed: {done.stderr.strip().splitlines()[-1][:80]} | | |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        gpu = "" if row["gpu_mib"] is None else f"{row['gpu_mib']:.0f}"
        print(
            f"| {size} | {row['rss_mib']:.0f} | {gpu} | {row['seconds_per_iteration']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
