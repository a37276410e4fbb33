"""The README's gallery: the demo pair under every registered style loss, one contact sheet.

    python benchmarks/gallery.py --size 256 -o docs/gallery.jpg

Each loss runs with the default preset (its registry weight applied); images are kept in
``--work`` and reused when present, so an interrupted gallery resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from estilo.core.registry import STYLE_LOSSES
from estilo.files import atomic_write
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import stylize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--work", type=Path, default=Path("gallery"))
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/gallery.jpg"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tiles = [("content", Image.open(DEMO_CONTENT)), ("style", Image.open(DEMO_STYLE))]
    for name in STYLE_LOSSES:
        path = args.work / f"{name}.png"
        if not path.exists():
            result = stylize(DEMO_CONTENT, DEMO_STYLE, size=args.size, style_loss=name, log_every=0)
            result.save(path)
            print(f"{name}: {result.seconds:.0f} s", flush=True)
        tiles.append((name, Image.open(path)))
    width, height = tiles[2][1].size
    columns = 3
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * width, rows * (height + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, tile) in enumerate(tiles):
        x, y = (index % columns) * width, (index // columns) * (height + 16)
        sheet.paste(tile.convert("RGB").resize((width, height)), (x, y + 16))
        draw.text((x + 4, y + 2), label, fill="black")
    atomic_write(args.output, lambda handle: sheet.save(handle, format="JPEG", quality=88))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
