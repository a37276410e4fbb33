"""Temporal consistency, measured: the warping error with and without the temporal loss.

Stylizes the demo clip (a pan and zoom over the bundled photo) twice, with ``--temporal-weight
0`` (every frame painted on its own) and with the default, and prints for each:

- the warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"): the
  mean squared RGB difference between each output frame and the previous output frame warped
  by the *input's* optical flow, over the pixels the flow can follow (lower: steadier);
- the yardstick's style and content distances (``estilo.quality.measure``), averaged over the
  frames, so that the steadier run is seen to be as stylised as the other;
- seconds per frame, the first (keyframe) apart.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="longest side of the frames")
    parser.add_argument("--frames", type=int, default=24, help="frames of the demo clip")
    parser.add_argument("--iterations", type=int, help="each frame's after the first")
    parser.add_argument("--keyframe-iterations", type=int, help="the first frame's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--figure", type=Path, help="write frames of both runs side by side")
    args = parser.parse_args()
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
    rows, painted = [], {}
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
            scores = [
                measure(image, photo, style) for image, photo in zip(images, inputs, strict=True)
            ]
            later = [frame.seconds for frame in frames[1:]] or [float("nan")]
            rows.append(
                f"| {weight:g} | {warping_error(images, inputs):.5f} | "
                + " | ".join(
                    f"{statistics.mean(s[key] for s in scores):.3f}"
                    for key in ("gram_distance", "independent_style_distance", "content_distance")
                    if key in scores[0]
                )
                + f" | {frames[0].seconds:.1f} | {statistics.mean(later):.2f} |"
            )
    independent = " style (independent) |" if "independent_style_distance" in scores[0] else ""
    print(
        f"| temporal weight | warping error | Gram (VGG) |{independent} content (VGG) "
        "| s, first frame | s per later frame |"
    )
    print("|---" * (6 + bool(independent)) + "|")
    print("\n".join(rows))
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
