"""A run's progress as a tqdm bar: a widget in Jupyter, one line on a terminal.

``estilo.stylize(..., progress=True)`` and the CLI use the same bar. It shows the iteration,
the rate, the time elapsed, the live loss and an ETA. tqdm's ETA is (total - n) / rate, and a
run rarely takes its planned iterations: ``tolerance`` usually ends each scale early (the
demo: 299 of 500). So the bar's total is kept at the iterations the run is *expected* to take,
read from how the loss's fall is slowing (:meth:`Progress.expected_total`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TextIO

from .core.config import StyleConfig

if TYPE_CHECKING:
    from .core.records import Iterate


class Progress:
    """A callback for the loop: draws the bar and, every ``log_every`` iterations, writes a line
    ``iteration N loss L content C style S`` to ``out`` (the CLI's log; the paper printed every
    100). With ``bar=False`` only the lines are written.

    Call :meth:`close` when the run ends."""

    def __init__(
        self,
        config: StyleConfig,
        *,
        bar: bool = True,
        log_every: int = 0,
        out: TextIO | None = None,
    ) -> None:
        from tqdm.auto import tqdm  # a dependency, but imported only when a bar is wanted

        self.tqdm = tqdm
        self.config, self.show, self.every, self.out = config, bar, log_every, out
        self.bar: tqdm | None = None
        self.scale = 0
        self.losses: list[float] = []  # the current scale's, as the tolerance rule sees them

    def __call__(self, step: Iterate) -> None:
        if step.scale != self.scale:
            self.scale, self.losses = step.scale, []
        self.losses.append(step.loss)
        total = self.expected_total(step)
        if self.bar is None:  # made at the first step, so a resumed run's rate starts right
            self.bar = self.tqdm(
                total=total, initial=step.iteration - 1, unit="it", disable=not self.show
            )
        self.bar.total = total
        scale = f", scale {step.scale}/{step.scales}" if step.scales > 1 else ""
        self.bar.set_postfix_str(f"loss {step.loss:.4g}{scale}", refresh=False)
        self.bar.update(step.iteration - self.bar.n)
        if self.every and step.iteration % self.every == 0:
            self.tqdm.write(
                f"iteration {step.iteration} loss {step.loss:.6g} content {step.content:.6g} "
                f"style {step.style:.6g}",
                file=self.out,
            )
            if self.out is not None:
                self.out.flush()  # a reader at the other end of a pipe sees each line at once

    def expected_total(self, step: Iterate) -> int:
        """The iterations the run will likely take: the current scale's end as the tolerance
        rule (``core.stylize``: stop once the loss fell by less than ``tolerance`` over the
        last ``tolerance_window`` iterations) will likely place it, then every later scale in
        full.

        The loss's relative fall over one window shrinks by a roughly constant factor from one
        window to the next, so the number of windows until it drops below the tolerance follows
        from the fall now and two windows ago. On the demo pair at 128 px (L-BFGS, stopped at
        295 of 500) this said 160-255 from iteration 70 to 160 and 258-321 from 190 on; a loss
        that falls as a power of t, which we tried first, said 500 until iteration 190."""
        config, losses = self.config, self.losses
        window, tolerance = config.tolerance_window, config.tolerance
        done = len(losses)
        first = step.iteration - done  # the iteration this scale (or a resumed run) began after
        last = config.iterations if step.scale == 1 else first + config.refine_iterations
        apart = min(2, (done - 1) // window - 1)  # windows between the two measured falls
        if tolerance and apart >= 1:

            def fall(end: int) -> float:
                before, now = losses[end - window - 1], losses[end - 1]
                return (before - now) / abs(before) if before else 0.0

            now, then = fall(done), fall(done - apart * window)
            if now < tolerance:
                last = first + done
            elif now < then:
                windows = apart * math.log(tolerance / now) / math.log(now / then)
                last = min(last, first + done + math.ceil(windows * window))
        return last + (step.scales - step.scale) * config.refine_iterations

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
