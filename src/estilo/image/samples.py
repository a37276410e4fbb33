"""The sample images bundled with estilo (credits in ``samples/SOURCES.md``)."""

from pathlib import Path

SAMPLES = Path(__file__).parents[1] / "samples"
DEMO_CONTENT = SAMPLES / "tubingen.jpg"
DEMO_STYLE = SAMPLES / "starry_night.jpg"
