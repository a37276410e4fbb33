"""Time to quality: how long estilo's default takes to be at least as good as a reference run.

Quality is measured on the outputs with one fixed yardstick (``estilo.quality``): the coarse SSIM
to the photo and the style distance of a network estilo does not optimise. References, on the
bundled demo pair at ``--size``:
  (a) pastiche's default run (L-BFGS, 1000 steps),
  (b) the paper preset (Adam, lr 0.01, 4000 iterations; ``--paper-iterations`` to shorten).
estilo's default preset then runs as a user gets it (early stopping by ``--tolerance``
included), with a check every ``--every`` iterations; the figure is the wall time of the first
check at which both measures are at least as good as the reference's (the time spent on the
checks themselves is excluded).

    python benchmarks/time_to_quality.py --size 256
"""

from __future__ import annotations

import argparse
import time

import torch
from reference import pastiche_run

from estilo import resolve
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import read, resize, stylize, working_size
from estilo.quality import measure

#: The style measure the targets use: a network estilo does not optimise.
STYLE = "independent_style_distance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--paper-iterations", type=int, default=4000)
    parser.add_argument("--pastiche-steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument(
        "--max-iterations", type=int, help="override the default preset's iterations (500)"
    )
    args = parser.parse_args()
    config = resolve(size=args.size)
    content = read(DEMO_CONTENT, config, "content").rgb
    content = resize(content, working_size(content.shape[-2], content.shape[-1], config))
    style = read(DEMO_STYLE, config, "style").rgb

    def quality(image: torch.Tensor) -> dict[str, float]:
        return measure(image, content, style, independent=True)

    pastiche_image, pastiche_seconds = pastiche_run(
        DEMO_CONTENT, DEMO_STYLE, args.size, args.pastiche_steps
    )
    references = {
        f"pastiche default ({args.pastiche_steps} L-BFGS steps)": (
            pastiche_seconds,
            quality(pastiche_image),
        )
    }

    paper = stylize(
        DEMO_CONTENT,
        DEMO_STYLE,
        preset="paper",
        size=args.size,
        square=False,
        iterations=args.paper_iterations,
        log_every=0,
    )
    references[f"paper preset (Adam, {args.paper_iterations} iterations)"] = (
        paper.seconds,
        quality(paper.image),
    )

    checks: list[tuple[int, float, dict[str, float]]] = []
    spent = [0.0]

    def check(step) -> None:  # type: ignore[no-untyped-def]
        if step.iteration % args.every == 0:
            begun = time.perf_counter()
            checks.append((step.iteration, step.seconds - spent[0], quality(step.image[0])))
            spent[0] += time.perf_counter() - begun

    limit = {} if args.max_iterations is None else {"iterations": args.max_iterations}
    ours = stylize(DEMO_CONTENT, DEMO_STYLE, size=args.size, log_every=0, callback=check, **limit)
    print(f"size {args.size} px (longest side), 2-core CPU; distances from estilo.quality")
    print(
        f"estilo default: {len(ours.history)} of {ours.planned} iterations "
        f"(--tolerance {ours.config.tolerance}), {ours.seconds:.0f} s, "
        f"precision {ours.config.precision}"
    )
    print(
        "| reference | its time (s) | coarse SSIM / independent style distance | estilo default "
        "reaches it "
        "after | time (s) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for name, (seconds, target) in references.items():
        hit = next(
            (
                c
                for c in checks
                if c[2]["coarse_ssim"] >= target["coarse_ssim"] and c[2][STYLE] <= target[STYLE]
            ),
            None,
        )
        goal = f"{target['coarse_ssim']:.3f} / {target[STYLE]:.3f}"
        if hit is None:
            best = min(checks, key=lambda c: c[2][STYLE])
            print(
                f"| {name} | {seconds:.0f} | {goal} | not within {len(ours.history)} "
                f"iterations (best style {best[2][STYLE]:.3f} at coarse SSIM "
                f"{best[2]['coarse_ssim']:.3f}) | | |"
            )
        else:
            print(
                f"| {name} | {seconds:.0f} | {goal} | {hit[0]} iterations | {hit[1]:.0f} | "
                f"1/{seconds / hit[1]:.1f} |"
            )


if __name__ == "__main__":
    main()
