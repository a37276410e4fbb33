"""Temporal consistency, measured: the warping error with and without the temporal loss.

Stylizes the demo clip (a pan and zoom over the bundled photo) twice, with ``--temporal-weight
0`` (every frame painted on its own) and with the default, and prints for each:

- the warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"): the
  mean squared RGB difference between each output frame and the previous output frame warped
  by the *input's* optical flow, over the pixels the flow can follow (lower: steadier);
- the yardstick's style and content distances (``estilo.quality.measure``), averaged over the
  frames; the independent style distance (needs ``estilo[eval]``) decides whether the steadier
  run is as stylised as the other, and the last line says so, or says that it is not;
- seconds per frame, the first (keyframe) apart (the VGG19 is built once a run).

With ``--figure`` it also writes three consecutive frames of the input and of both runs, one
row each (the README's picture).

    python benchmarks/video.py                      # 512x288, 24 frames (long on a CPU)
    python benchmarks/video.py --size 96 --frames 3 --iterations 5   # a check that it runs
    python benchmarks/video.py --size 1280 --device cuda             # 1280x720 on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from estilo import StyleConfig, resolve
from estilo.image.io import load_image, save_image
from estilo.image.samples import DEMO_STYLE
from estilo.pipeline import resize
from estilo.quality import measure
from estilo.video import stylize_video
from estilo.video.demo import write_demo_clip
from estilo.video.flow import warping_error
from estilo.video.io import probe, read_frames

#: The yardstick's distances averaged over the frames (``estilo.quality.measure``).
COLUMNS = ("gram_distance", "independent_style_distance", "content_distance")
#: How much larger the temporal run's independent style distance may be and still count as
#: equal: our threshold (the issue names none).
EQUAL_STYLE = 0.05


def verdict(plain: dict[str, float], steady: dict[str, float]) -> str:
    """One paragraph: how much the temporal loss cut the warping error, and whether it did so at
    equal style distance (the issue's goal: at least 50% less, at equal style distance)."""
    cut = 1 - steady["warping"] / plain["warping"]
    change = steady["independent_style_distance"] / plain["independent_style_distance"] - 1
    text = f"The temporal loss cut the warping error by {cut:.0%}"
    if change > EQUAL_STYLE:
        return (
            f"{text}, but NOT at equal style distance: its independent style distance is "
            f"{change:.0%} worse than painting each frame on its own (more than "
            f"{EQUAL_STYLE:.0%}), so part of the steadiness is bought with less style."
        )
    goal = "meets" if cut >= 0.5 else "misses"
    return (
        f"{text} at equal style distance (independent style {change:+.0%}, within "
        f"{EQUAL_STYLE:.0%}): it {goal} the goal of 50% less."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="longest side of the frames")
    parser.add_argument("--frames", type=int, default=24, help="frames of the demo clip")
    parser.add_argument("--iterations", type=int, help="each frame's after the first")
    parser.add_argument("--keyframe-iterations", type=int, help="the first frame's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--figure", type=Path, help="write frames of both runs side by side")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error("--frames must be at least 2: the warping error compares frame pairs")
    height = round(args.size * 9 / 16)
    settings = {"size": args.size, "device": args.device, "log_every": 0}
    if args.iterations:
        settings["iterations"] = args.iterations
    config = resolve(**settings)
    print(
        f"demo clip, {args.frames} frames at {args.size}x{height}, {config.optimizer}, "
        f"iterations {args.keyframe_iterations or config.iterations} then {config.iterations} "
        f"(tolerance {config.tolerance}), device {config.device}"
    )
    style = load_image(DEMO_STYLE).rgb
    runs: dict[float, dict[str, float]] = {}
    painted = {}
    with tempfile.TemporaryDirectory() as scratch:
        clip = write_demo_clip(Path(scratch) / "clip.mov", args.frames, (height, args.size))
        inputs = [
            resize(frame, (height, args.size)) for frame, _ in read_frames(probe(clip, 10**9))
        ]
        for weight in (0.0, StyleConfig().temporal_weight):
            frames = list(
                stylize_video(
                    clip,
                    style,
                    config=config.replace(temporal_weight=weight),
                    keyframe_iterations=args.keyframe_iterations,
                )
            )
            images = [frame.image for frame in frames]
            painted[weight] = images
            # The independent style distance (a network estilo does not optimise) is the one
            # that can say whether the steadier run is as stylised: needs estilo[eval].
            scores = [
                measure(image, photo, style, independent=True)
                for image, photo in zip(images, inputs, strict=True)
            ]
            runs[weight] = {
                "warping": warping_error(images, inputs),
                **{key: statistics.mean(s[key] for s in scores) for key in COLUMNS},
                "first": frames[0].seconds,
                "later": statistics.mean(f.seconds for f in frames[1:]),
            }
    print(
        "| temporal weight | warping error | Gram (VGG) | style (independent) | content (VGG) "
        "| s, first frame | s per later frame |"
    )
    print("|---" * 7 + "|")
    for weight, run in runs.items():
        print(
            f"| {weight:g} | {run['warping']:.5f} | "
            + " | ".join(f"{run[key]:.3f}" for key in COLUMNS)
            + f" | {run['first']:.1f} | {run['later']:.2f} |"
        )
    plain, steady = runs.values()
    print(verdict(plain, steady))
    if args.figure:
        middle = max(0, len(inputs) // 2 - 1)
        strip = [
            torch.cat(list(row[middle : middle + 3]), dim=2) for row in (inputs, *painted.values())
        ]
        save_image(torch.cat(strip, dim=1), args.figure)
        print(
            f"wrote {args.figure}: input, temporal weight 0, default; frames {middle}-{middle + 2}"
        )


if __name__ == "__main__":
    main()
