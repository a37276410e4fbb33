"""Seconds per iteration and peak memory: estilo vs pastiche vs the bare VGG19 pass.

Each measurement runs in a fresh process (its peak RSS is its own), on the bundled demo pair at
the given longest side, with the same layers (content relu4_2; style relu1_1..relu5_1), after 2
warm-up iterations. "floor" is one forward and backward pass of VGG19 up to relu5_1 on the
content-sized image in the same precision: what any tool must pay per iteration. pastiche runs
in float32 (it has no other mode). Not part of the tests.

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

COMMON = """
import json, sys, time, torch
from estilo.core.memory import peak_resident
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
size, optimizer, iterations, warmup = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), 2
precision = sys.argv[4]
times = []
def done():
    per = (times[-1] - times[warmup - 1]) / iterations
    rss = peak_resident() / 2**20
    print(json.dumps({"seconds_per_iteration": per, "peak_rss_mib": rss}))
"""

TOOLS = {
    "estilo": COMMON
    + """
from estilo.pipeline import stylize
stylize(DEMO_CONTENT, DEMO_STYLE, size=size, optimizer=optimizer, iterations=iterations + warmup,
        log_every=0, device="cpu", precision=precision, tolerance=0,
        callback=lambda step: times.append(time.perf_counter()))
done()
""",
    "pastiche": COMMON
    + """
from pastiche.pastiche import PasticheArtist
artist = PasticheArtist(str(DEMO_CONTENT), [str(DEMO_STYLE)], size=size, optimizer=optimizer,
                        device="cpu")
for _ in range(iterations + warmup):
    artist.draw()
    times.append(time.perf_counter())
done()
""",
    "floor": COMMON
    + """
from estilo.core.vgg import VGG19Features, load_weights
from estilo.pipeline import read, resize, resolve, working_size
config = resolve(size=size)
content = read(DEMO_CONTENT, config, "content").rgb
image = resize(content, working_size(*content.shape[-2:], config))[None].requires_grad_(True)
net = VGG19Features(load_weights(), ["relu4_2", "relu5_1"],
                    autocast=torch.bfloat16 if precision == "bfloat16" else None)
for _ in range(iterations + warmup):
    sum(f.sum() for f in net(image).values()).backward()
    times.append(time.perf_counter())
done()
""",
}


def measure(
    tool: str, size: int, optimizer: str, iterations: int, precision: str = "float32"
) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", TOOLS[tool], str(size), optimizer, str(iterations), precision],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    import torch

    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, python {platform.python_version()}"
    )
    print(
        "| size | optimizer | precision | estilo s/it | pastiche s/it | floor s/it "
        "| estilo/pastiche | estilo/floor | estilo RSS MiB | pastiche RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        floors = {p: measure("floor", size, "none", args.iterations, p) for p in args.precisions}
        for optimizer in args.optimizers:
            theirs = measure("pastiche", size, optimizer, args.iterations)
            for precision in args.precisions:
                ours = measure("estilo", size, optimizer, args.iterations, precision)
                a, b, f = (r["seconds_per_iteration"] for r in (ours, theirs, floors[precision]))
                print(
                    f"| {size} | {optimizer} | {precision} | {a:.3f} | {b:.3f} | {f:.3f} "
                    f"| {a / b:.2f} | {a / f:.2f} | {ours['peak_rss_mib']:.0f} "
                    f"| {theirs['peak_rss_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
