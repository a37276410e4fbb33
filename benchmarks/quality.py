"""The quality benchmark: estilo's pictures against pastiche's, measured by the yardstick.

    python benchmarks/quality.py --size 256                      # every pair, default variants
    python benchmarks/quality.py --size 512 --pairs tubingen-starry,cat-monet
    python benchmarks/quality.py --variants losses --pairs tubingen-starry

Content x style pairs from ``../shared/images`` (the project's public-domain benchmark set; not
in the package). For each pair and variant it runs, times and measures a picture with
``estilo.quality`` (coarse SSIM, independent style distance, grain, colour, and the VGG
distances), then writes a table and contact sheets. Every run is kept in ``--work`` and reused
when present, so an interrupted benchmark resumes and pastiche's slow reference runs once.
Runs are kept by name: "default" is whatever the default was when it ran (gram before
2026-11-29, wasserstein since, coarse to fine from 256 px since the eighth run of
docs/quality.md), so start a new ``--work`` after the defaults change.

The goal it checks: estilo's default beats pastiche's default (1000 L-BFGS steps) on the
independent style distance, coarse SSIM and grain (nearer 1 is better; within 0.05 counts as a
tie won) on at least 80% of the pairs, in at most 1/5 of pastiche's time, measured the same
day on the same machine (reused pastiche runs keep their old seconds: time it again with
``benchmarks/pastiche_time.py``). Time each benchmark alone: two heavy jobs on two cores slow
each other.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from reference import pastiche_run

from estilo.core.config import resolve
from estilo.core.registry import STYLE_LOSSES
from estilo.files import atomic_write
from estilo.image.io import save_image
from estilo.pipeline import read, resize, stylize, working_size
from estilo.quality import FIELDS, measure

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"

#: Each content at least once, each painting at least once: smooth and detailed paintings,
#: landscapes, a city, a face and an animal.
PAIRS: dict[str, tuple[str, str]] = {
    "tubingen-starry": ("content_tubingen_neckarfront.jpg", "style_starry_night.jpg"),
    "cat-monet": ("content_chelsea_cat.png", "style_monet_japanese_footbridge.jpg"),
    "cat-shipwreck": ("content_chelsea_cat.png", "style_shipwreck_of_the_minotaur.jpg"),
    "astronaut-scream": ("content_astronaut_portrait.png", "style_the_scream.jpg"),
    "city-composition": ("content_city_skyline.jpg", "style_composition_vii.jpg"),
    "goldengate-wave": ("content_golden_gate_landscape.jpg", "style_great_wave.jpg"),
    "tubingen-seurat": ("content_tubingen_neckarfront.jpg", "style_seurat_grande_jatte_study.jpg"),
    "astronaut-monet": ("content_astronaut_portrait.png", "style_monet_japanese_footbridge.jpg"),
}

PASTICHE_STEPS = 1000

#: Named variants: overrides of the default preset. "pastiche" is the reference run.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "float32": {"precision": "float32"},
    "bfloat16": {"precision": "bfloat16"},
    # The default before the quality issue: Gram matrices, no smoothness term, style weight 0.1.
    "old-default": {"style_loss": "gram", "tv_weight": 0.0, "style_weight": 0.1},
    "self-similarity": {"content_loss": "self-similarity"},
    # The seventh run's coarse to fine from 128 px: every scale until --tolerance stops it, at
    # that run's default style weight (pinned: the defaults have changed since).
    "coarse-to-fine": {"min_scale": 128, "refine_iterations": 500, "style_weight": 0.05},
    # The same at half the style weight: the coarse scales over-stylise at the default's.
    "coarse-to-fine-0.025": {"min_scale": 128, "refine_iterations": 500, "style_weight": 0.025},
    # Painted at its own size, as before supersampling (docs/method.md §3.3).
    "unsupersampled": {"scales": 1},
    # The painting at half its size against the picture: its objects become texture.
    "style-scale-0.5": {"style_scale": 0.5},
    # Less smoothing: the coarse-to-fine default's pictures sat under the painting's grain on
    # three pairs (0.93-0.94) with the weight chosen for the single-scale one.
    "tv-2e6": {"tv_weight": 2e6},
    # sliced-wasserstein at a lighter weight: at the default's 0.04 it lost one photo (ninth run).
    "sliced-wasserstein-0.03": {"style_loss": "sliced-wasserstein", "style_weight": 0.03},
    # Bolder: twice the style weight of the single-scale default, for pictures painted at 512 px.
    "style-0.1": {"style_weight": 0.1},
    # Within the time goal (1/5 of pastiche's): painted at its own size, 200 iterations at most.
    "quick-0.1": {"scales": 1, "iterations": 200, "style_weight": 0.1},
    "quick-0.2": {"scales": 1, "iterations": 200, "style_weight": 0.2},
    # pastiche's equal layer weights; the style weight divided by 16, the factor by which equal
    # weights raise the style loss at the photo (measured on three pairs: 16.4-16.6).
    "equal-layers": {"layer_weighting": "equal", "style_weight": 0.003},
    # Toward the time goal (1/5 of pastiche's; docs/quality.md, tenth run). Half the steps at
    # each later scale; and the schedule from a smaller first scale: from 181 px a 256 px
    # picture is painted at 181, 256 and 362 px and resized down (supersampled 1.4x a side,
    # not 2x), from 128 px at 128, 181 and 256 px. The tv and 0.035 variants try to win back
    # the grain and the photo that the 181 px start lost.
    "min-256-r10": {"refine_iterations": 10},
    "min-181": {"min_scale": 181},
    "min-181-r10": {"min_scale": 181, "refine_iterations": 10},
    "min-128": {"min_scale": 128},
    "min-181-r10-tv1.5e6": {"min_scale": 181, "refine_iterations": 10, "tv_weight": 1.5e6},
    "min-181-r10-tv1e6": {"min_scale": 181, "refine_iterations": 10, "tv_weight": 1e6},
    "min-181-r10-tv1.5e6-0.035": {
        "min_scale": 181,
        "refine_iterations": 10,
        "tv_weight": 1.5e6,
        "style_weight": 0.035,
    },
    "min-181-r10-0.035": {"min_scale": 181, "refine_iterations": 10, "style_weight": 0.035},
    # meanstd at half the default's weight: at the full weight it beat pastiche's style on the
    # Monet and Seurat pairs but lost four photos (tenth run).
    "meanstd-0.02": {"style_loss": "meanstd", "style_weight": 0.02},
    # meanstd at three quarters of the weight: with L-BFGS's overshoot guard it beat pastiche on
    # seven pairs by the rule but left three photos under the 0.5 floor (thirteenth run).
    "meanstd-0.03": {"style_loss": "meanstd", "style_weight": 0.03},
    # meanstd in float32: with the guard, is its bfloat16 picture within item 2's 3% again?
    "meanstd-float32": {"style_loss": "meanstd", "precision": "float32"},
    # The layout term (fourteenth run): meanstd, which beat pastiche's style on seven pairs but
    # lost the astronaut's face into the background's shade, with the photo's coarse light and
    # shade held; in float32 for item 2; and the same term under the default loss.
    "meanstd-layout": {"style_loss": "meanstd", "layout_weight": 2e7},
    "meanstd-layout-float32": {
        "style_loss": "meanstd",
        "layout_weight": 2e7,
        "precision": "float32",
    },
    "layout": {"layout_weight": 2e7},
    **{f"loss:{name}": {"style_loss": name} for name in STYLE_LOSSES},
}
#: Painted at twice the picture's size, coarse to fine from its own size (256, 362 and 512 px
#: for a 256 px picture) unless the value sets ``min_scale``, then resized down. The eighth run
#: of docs/quality.md measured these against the default of the time ("single-scale-512"), and
#: "pyramid-20-0.04" became the default at 256 px. Value: overrides of the default.
PYRAMIDS: dict[str, dict[str, Any]] = {
    # The default of the fifth to eighth runs, at 256 px: painted at 512 px from the start.
    "single-scale-512": {"min_scale": 512, "refine_iterations": 500, "style_weight": 0.05},
    "pyramid": {"refine_iterations": 500, "style_weight": 0.05},
    "pyramid-40": {"refine_iterations": 40, "style_weight": 0.05},
    "pyramid-20": {"refine_iterations": 20, "style_weight": 0.05},
    # Lighter, for the photo: at 0.05 astronaut / Monet fell under coarse SSIM 0.5.
    "pyramid-20-0.04": {"refine_iterations": 20, "style_weight": 0.04},
}
GROUPS = {"main": ["pastiche", "default", "float32"], "losses": [f"loss:{n}" for n in STYLE_LOSSES]}


def run_variant(
    name: str, content: Path, style: Path, size: int
) -> tuple[torch.Tensor, float, int]:
    """The picture (3, H, W), its seconds and its iterations, for one variant."""
    if name == "pastiche":
        return (*pastiche_run(content, style, size, PASTICHE_STEPS), PASTICHE_STEPS)
    if name in PYRAMIDS:
        result = stylize(
            content,
            style,
            size=2 * size,
            log_every=0,
            **{"min_scale": size, **PYRAMIDS[name]},
        )
        height, width = result.image.shape[-2:]
        small = working_size(height, width, resolve(size=size))
        return resize(result.image, small), result.seconds, len(result.history)
    result = stylize(content, style, size=size, log_every=0, **VARIANTS[name])
    return result.image, result.seconds, len(result.history)


def records_for(
    args: argparse.Namespace, pairs: list[str], variants: list[str]
) -> list[dict[str, Any]]:
    records_path = args.work / "records.jsonl"
    done = {}
    if records_path.exists():
        for line in records_path.read_text().splitlines():
            record = json.loads(line)
            done[(record["pair"], record["variant"], record["size"])] = record
    out = []
    for pair in pairs:
        content_name, style_name = PAIRS[pair]
        content, style = SHARED / content_name, SHARED / style_name
        for variant in variants:
            key = (pair, variant, args.size)
            if key not in done:
                image, seconds, iterations = run_variant(variant, content, style, args.size)
                path = args.work / f"{pair}_{variant.replace(':', '-')}_{args.size}.png"
                save_image(image, path)
                config = resolve(size=args.size)
                photo = read(content, config, "content").rgb
                photo = resize(photo, working_size(photo.shape[-2], photo.shape[-1], config))
                painting = read(style, config, "style").rgb
                scores = measure(image, photo, painting, independent=True)
                done[key] = {
                    "pair": pair,
                    "variant": variant,
                    "size": args.size,
                    "seconds": seconds,
                    "iterations": iterations,
                    "image": path.name,
                    **scores,
                }
                with records_path.open("a") as handle:
                    handle.write(json.dumps(done[key]) + "\n")
                print(f"{pair} {variant}: {seconds:.0f} s", flush=True)
            out.append(done[key])
    return out


def beats(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, bool]:
    """Per goal measure, whether ``ours`` is at least as good as ``theirs``."""
    return {
        "independent_style_distance": ours["independent_style_distance"]
        <= theirs["independent_style_distance"],
        "coarse_ssim": ours["coarse_ssim"] >= theirs["coarse_ssim"],
        "grain": abs(ours["grain"] - 1) <= max(abs(theirs["grain"] - 1), 0.05),
    }


def table(records: list[dict[str, Any]]) -> list[str]:
    keys = list(FIELDS)
    lines = [
        "| pair | variant | seconds | iterations | "
        + " | ".join(FIELDS[k][0] for k in keys)
        + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for r in records:
        cells = " | ".join(f"{r[k]:.3f}" for k in keys)
        iterations = r.get("iterations", "?")  # records from before iterations were kept
        lines.append(
            f"| {r['pair']} | {r['variant']} | {r['seconds']:.0f} | {iterations} | {cells} |"
        )
    return lines


def summary(records: list[dict[str, Any]], variant: str) -> list[str]:
    """The goal, for one variant against pastiche."""
    by = {(r["pair"], r["variant"]): r for r in records}
    pairs = sorted({r["pair"] for r in records if (r["pair"], "pastiche") in by})
    lines = []
    wins, ratios = 0, []
    for pair in pairs:
        if (pair, variant) not in by:
            continue
        ours, theirs = by[(pair, variant)], by[(pair, "pastiche")]
        won = beats(ours, theirs)
        wins += all(won.values())
        ratios.append(theirs["seconds"] / ours["seconds"])
        lost = [FIELDS[k][0] for k, ok in won.items() if not ok]
        lines.append(
            f"- {pair}: {'wins' if all(won.values()) else 'loses on ' + ', '.join(lost)}"
            f" ({ours['seconds']:.0f} s against {theirs['seconds']:.0f} s)"
        )
    if ratios:
        lines.insert(
            0,
            f"**{variant}** beats pastiche ({PASTICHE_STEPS} steps) on all three goal measures "
            f"on {wins} of {len(ratios)} pairs ({100 * wins / len(ratios):.0f}%; goal 80%), "
            f"in 1/{len(ratios) / sum(1 / r for r in ratios):.1f} of its time on average "
            f"(goal 1/5 or less):",
        )
    return lines


def contact_sheet(
    args: argparse.Namespace, records: list[dict[str, Any]], variants: list[str], pairs: list[str]
) -> Path:
    """Rows: pairs; columns: photo, painting, variants; 1:1 at the run size."""
    tile = args.size
    columns = 2 + len(variants)
    label = 16
    sheet = Image.new("RGB", (columns * tile, len(pairs) * (tile + label)), "white")
    draw = ImageDraw.Draw(sheet)
    by = {(r["pair"], r["variant"]): r for r in records}
    for row, pair in enumerate(pairs):
        content_name, style_name = PAIRS[pair]
        tiles = [
            ("photo", Image.open(SHARED / content_name)),
            ("painting", Image.open(SHARED / style_name)),
        ]
        tiles += [
            (v, Image.open(args.work / by[(pair, v)]["image"])) for v in variants if (pair, v) in by
        ]
        for column, (name, original) in enumerate(tiles):
            picture = original.convert("RGB")
            picture.thumbnail((tile, tile), Image.Resampling.LANCZOS)
            x, y = column * tile, row * (tile + label)
            sheet.paste(picture, (x, y + label))
            draw.text((x + 3, y + 2), f"{pair}: {name}" if column == 0 else name, fill="black")
    path: Path = args.output.with_name(
        f"quality-{args.size}-{'-'.join(v.replace(':', '') for v in variants)[:40]}.png"
    )
    atomic_write(path, lambda handle: sheet.save(handle, format="PNG"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", default="all", help="comma-separated names, or all")
    parser.add_argument(
        "--variants",
        default="main",
        help=f"comma-separated: pastiche, {', '.join([*VARIANTS, *PYRAMIDS])}, "
        f"or a group ({', '.join(GROUPS)})",
    )
    parser.add_argument("--work", type=Path, default=Path("bench-quality"))
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/quality"))
    args = parser.parse_args()
    pairs = list(PAIRS) if args.pairs == "all" else args.pairs.split(",")
    variants = [v for name in args.variants.split(",") for v in GROUPS.get(name, [name])]
    unknown = [p for p in pairs if p not in PAIRS] + [
        v for v in variants if v not in VARIANTS and v not in PYRAMIDS and v != "pastiche"
    ]
    if unknown:
        parser.error(f"unknown pair or variant {unknown[0]!r}")
    if not SHARED.is_dir():
        parser.error(f"the benchmark images are not at {SHARED}")
    args.work.mkdir(parents=True, exist_ok=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(torch.get_num_threads())
    started = time.perf_counter()
    records = records_for(args, pairs, variants)
    sheet = contact_sheet(args, records, variants, pairs)
    print(f"# Quality at {args.size} px\n")
    print(
        f"{date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"`python benchmarks/quality.py --size {args.size} --pairs {args.pairs} "
        f"--variants {args.variants}`; {time.perf_counter() - started:.0f} s this call\n"
    )
    print("\n".join(table(records)))
    print()
    for variant in variants:
        if variant != "pastiche" and "pastiche" in variants:
            print("\n".join(summary(records, variant)))
            print()
    print(f"contact sheet: {sheet}")


if __name__ == "__main__":
    main()
