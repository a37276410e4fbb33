"""The progress bar's ETA: the iterations a run will take once the tolerance rule ends it."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch

from estilo import Iterate, resolve
from estilo.core.config import StyleConfig
from estilo.progress import Progress


def step(iteration: int, loss: float, scale: int = 1, scales: int = 1) -> Iterate:
    return Iterate(
        iteration,
        0.0,
        loss,
        loss,
        0.0,
        0.0,
        total=0,
        scale=scale,
        scales=scales,
        image=torch.empty(0),
    )


def tolerance_stop(losses: list[float], config: StyleConfig) -> int:
    """Where ``core.stylize`` ends a scale: the loss fell by less than ``tolerance`` over the
    last ``tolerance_window`` iterations."""
    window = config.tolerance_window
    for done in range(window + 1, len(losses) + 1):
        before, now = losses[done - window - 1], losses[done - 1]
        if before - now < config.tolerance * abs(before):
            return done
    return len(losses)


def feed(progress: Progress, losses: list[float], first: int = 0, **where: int) -> int:
    """Give ``progress`` these losses as iterations first+1...; the last expected total."""
    total = 0
    for offset, loss in enumerate(losses, start=1):
        progress(step(first + offset, loss, **where))
        total = progress.expected_total(step(first + offset, loss, **where))
    return total


@pytest.mark.parametrize(
    "loss",
    [lambda t: 1 + 10 * math.exp(-t / 60), lambda t: 1 + 10 / (1 + t / 20) ** 2],
    ids=["exponential", "power"],
)
def test_the_eta_expects_the_tolerance_to_end_the_run(loss: Callable[[int], float]) -> None:
    config = resolve(iterations=500, tolerance=0.01, tolerance_window=20)
    losses = [loss(t) for t in range(1, 501)]  # settling towards a floor, as a picture's does
    stop = tolerance_stop(losses, config)
    assert 150 < stop < 400  # the run really ends early
    halfway = feed(Progress(config, bar=False), losses[: stop // 2])
    assert abs(halfway - stop) < 500 - stop, (halfway, stop)  # nearer than the plan
    later = feed(Progress(config, bar=False), losses[: 3 * stop // 4])
    assert abs(later - stop) < 0.1 * stop, (later, stop)


def test_without_a_tolerance_the_eta_counts_every_planned_iteration() -> None:
    config = resolve(iterations=100, tolerance=0.0, scales=3, refine_iterations=40)
    losses = [1 + 10 * math.exp(-t / 10) for t in range(1, 61)]
    assert feed(Progress(config, bar=False), losses, scales=3) == 100 + 2 * 40


def test_a_later_scale_counts_what_the_earlier_ones_took() -> None:
    config = resolve(iterations=100, tolerance=0.01, tolerance_window=5, refine_iterations=40)
    progress = Progress(config, bar=False)
    flat = [1.0] * 30  # a loss that no longer falls: the rule ends the scale now
    assert feed(progress, flat, scales=3) == 30 + 2 * 40
    # Scale 2 began after iteration 30 (scale 1 stopped early); it may run to 70.
    assert feed(progress, [5.0 - 0.1 * i for i in range(3)], first=30, scale=2, scales=3) == 110


def test_log_lines_go_to_their_stream_without_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    progress = Progress(resolve(), bar=False, log_every=2, out=out)
    feed(progress, [9.0, 8.0, 7.0, 6.0])
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2", "4"]
    assert lines[0].startswith("iteration 2 loss 8 content 8 style 0")
    assert capsys.readouterr().err == ""  # no bar drawn
