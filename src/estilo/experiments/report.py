"""The experiment report, rebuilt from the files alone: report.md and a self-contained
report.html (images embedded), with a contact sheet, loss curves per axis, a table and findings
written from the numbers."""

from __future__ import annotations

import base64
import csv
import html
import io
import itertools
import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..errors import EstiloError
from ..files import atomic_write
from ..quality import FIELDS
from .runner import read_manifest, read_records

COLUMNS = (
    ("label", "case"),
    ("status", "status"),
    ("seconds", "seconds"),
    ("seconds_per_iteration", "s/iteration"),
    ("loss", "final loss"),
    *((key, label) for key, (label, _) in FIELDS.items()),
    ("peak_rss_mib", "peak RSS MiB"),
)


def require_matplotlib() -> Any:
    """matplotlib's pyplot (headless), or a one-line error naming the extra to install."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise EstiloError("reports need matplotlib: pip install 'estilo[experiments]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _history(folder: Path, record: dict[str, Any]) -> tuple[list[int], list[float]]:
    rows = list(csv.DictReader((folder / record["history"]).read_text().splitlines()))
    rows = [r for r in rows if int(r["iteration"]) <= record["iterations"]]
    return [int(r["iteration"]) for r in rows], [float(r["loss"]) for r in rows]


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def loss_curves(folder: Path, records: list[dict[str, Any]], axes: list[str]) -> dict[str, bytes]:
    """One log-scale plot of loss against iteration per axis, coloured by the axis's value."""
    plt = require_matplotlib()
    plots = {}
    for axis in axes or ["label"]:
        figure, ax = plt.subplots(figsize=(7, 4))
        longest: dict[str, dict[str, Any]] = {}
        for record in records:  # the longest case of each job carries its curve
            if record["iterations"] >= longest.get(record["job"], {}).get("iterations", 0):
                longest[record["job"]] = record
        for record in longest.values():
            x, y = _history(folder, record)
            finite = [(i, v) for i, v in zip(x, y, strict=True) if math.isfinite(v) and v > 0]
            if finite:
                value = record["config"].get(axis, record["label"]) if axis != "label" else ""
                ax.plot(
                    *zip(*finite, strict=True),
                    label=f"{record['label']}"
                    + (f" ({axis}={value})" if axis not in ("label", "iterations") else ""),
                )
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (log)")
        ax.set_title(f"loss by {axis}")
        ax.legend(fontsize=7)
        plots[axis] = _png(figure)
        plt.close(figure)
    return plots


def contact_sheet(folder: Path, records: list[dict[str, Any]], tile: int = 200) -> bytes:
    columns = 4
    rows = -(-len(records) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, record in enumerate(records):
        with Image.open(folder / record["image"]) as image:
            thumb = image.convert("RGB")
            thumb.thumbnail((tile, tile))
        x, y = (index % columns) * tile, (index // columns) * (tile + 14)
        sheet.paste(thumb, (x, y + 14))
        draw.text((x + 2, y + 1), record["label"][:34], fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def findings(records: list[dict[str, Any]]) -> list[str]:
    """Plain-language conclusions, each computed from the table."""
    lines = []
    style = _style_key(records)
    finite = [r for r in records if math.isfinite(r["loss"])]
    if finite:
        best = min(finite, key=lambda r: r["loss"])
        lines.append(
            f"Lowest final loss: **{best['label']}** ({best['loss']:.4g}) in "
            f"{best['seconds']:.0f} s."
        )
        styled = min(records, key=lambda r: r[style])
        lines.append(
            f"Closest to the painting's style ({FIELDS[style][0]}): **{styled['label']}** "
            f"({styled[style]:.3g}); closest to the photo's layout (coarse SSIM): "
            f"**{max(records, key=lambda r: r['coarse_ssim'])['label']}**; finest grain "
            f"(nearest the painting's, 1): "
            f"**{min(records, key=lambda r: abs(r['grain'] - 1))['label']}**."
        )
    diverged = [r["label"] for r in records if r["status"] == "diverged"]
    stalled = [r["label"] for r in records if r["status"] == "stalled"]
    lines.append(
        "Diverged (the loss became NaN or infinite, or ended above where it started): "
        + (", ".join(diverged) or "none")
        + "."
    )
    lines.append(
        "Stalled (the last half of the iterations lowered the loss by under 0.1%): "
        + (", ".join(stalled) or "none")
        + "."
    )
    by_job: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_job.setdefault(record["job"], []).append(record)
    for group in by_job.values():
        if len(group) > 1:
            group.sort(key=lambda r: r["iterations"])
            steps = "; ".join(
                f"{a['iterations']} -> {b['iterations']} iterations: loss "
                f"{_change(a['loss'], b['loss'])}, style distance "
                f"{_change(a[style], b[style])}, content distance "
                f"{_change(a['content_distance'], b['content_distance'])}, "
                f"+{b['seconds'] - a['seconds']:.0f} s"
                for a, b in itertools.pairwise(group)
            )
            lines.append(f"More iterations ({group[0]['label'].rsplit(' ', 2)[0]}): {steps}.")
    slowest = max(records, key=lambda r: r["seconds"])
    lines.append(
        f"Longest run: {slowest['label']}, {slowest['seconds']:.0f} s "
        f"({slowest['seconds_per_iteration']:.3f} s per iteration)."
    )
    return lines


def _style_key(records: list[dict[str, Any]]) -> str:
    """The independent style distance where every record has it (the eval extra was
    installed when they ran), else the Gram distance."""
    independent = "independent_style_distance"
    return independent if all(independent in r for r in records) else "gram_distance"


def _change(before: float, after: float) -> str:
    if not (math.isfinite(before) and math.isfinite(after)) or before == 0:
        return "n/a"
    return f"{100 * (after - before) / abs(before):+.1f}%"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def build_report(folder: Path) -> tuple[Path, Path]:
    """Write report.md (with report_files/) and report.html from the folder's files."""
    experiment = read_manifest(folder)
    order = {case["id"]: index for index, case in enumerate(experiment["cases"])}
    records = sorted(read_records(folder), key=lambda r: order.get(r["case_id"], 0))
    if not records:
        raise EstiloError(f"{str(folder)!r} has no finished runs yet")
    axes = [a for a in experiment["axes"]]
    plots = loss_curves(folder, records, axes)
    sheet = contact_sheet(folder, records)
    files = folder / "report_files"
    files.mkdir(exist_ok=True)
    _write_bytes(files / "contact_sheet.jpg", sheet)
    for axis, data in plots.items():
        _write_bytes(files / f"loss_by_{axis}.png", data)
    notes = findings(records)
    intro = (
        f"Experiment **{experiment['name']}**: {len(records)} of {len(experiment['cases'])} "
        f"cases finished. Content: `{experiment['content']}`; style: "
        f"`{', '.join(experiment['styles'])}`. Each case is one configuration of estilo's "
        "optimisation; cases that differ only in iterations are snapshots of one run. The "
        "pictures are measured the same way for every case (estilo.quality; README, 'Measuring "
        "quality'), so cases with different optimisers or losses can be compared: content "
        "distance (VGG19) and coarse SSIM to the photo, Gram distance and a style distance "
        "from a network estilo does not optimise to the painting, grain (1 = as fine as the "
        "painting) and colour distance."
    )
    table = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |" for r in records]
    markdown = [f"# Report: {experiment['name']}", "", intro, "", "## Findings", ""]
    markdown += [f"- {line}" for line in notes]
    markdown += [
        "",
        "## Outputs",
        "",
        "![contact sheet](report_files/contact_sheet.jpg)",
        "",
        "## Loss curves",
        "",
    ]
    markdown += [f"![loss by {axis}](report_files/loss_by_{axis}.png)" for axis in plots]
    markdown += ["", "## Table", "", *table, ""]
    md_path, html_path = folder / "report.md", folder / "report.html"
    _write_bytes(md_path, "\n".join(markdown).encode())

    def embed(data: bytes, kind: str) -> str:
        return f'<img src="data:image/{kind};base64,{base64.b64encode(data).decode()}">'

    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>" for k, _ in COLUMNS) + "</tr>"
        for r in records
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(experiment['name'])}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 6px;"
        "border-bottom:1px solid #ddd}img{max-width:100%}</style>"
        f"<h1>Report: {html.escape(experiment['name'])}</h1>"
        f"<p>{html.escape(intro).replace('**', '')}</p><h2>Findings</h2><ul>"
        + "".join(f"<li>{html.escape(line).replace('**', '')}</li>" for line in notes)
        + "</ul><h2>Outputs</h2>"
        + embed(sheet, "jpeg")
        + "<h2>Loss curves</h2>"
        + "".join(embed(data, "png") for data in plots.values())
        + "<h2>Table</h2><table><tr>"
        + "".join(f"<th>{t}</th>" for _, t in COLUMNS)
        + "</tr>"
        + rows
        + "</table>"
    )
    _write_bytes(html_path, page.encode())
    return md_path, html_path
