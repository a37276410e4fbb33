"""What a run reports and returns: loss records, the per-iteration :class:`Iterate`, the final
:class:`Result`, and the :class:`Checkpoint` a single-scale run can be resumed from.

Plain data, so that front ends (pipeline, web, experiments) can read a run's progress without
knowing how the loop produced it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from .memory import MemoryPlan

#: Written into every checkpoint state; a file without it is not ours.
CHECKPOINT_FORMAT = "estilo-checkpoint-1"


@dataclass(frozen=True)
class LossRecord:
    """The losses at one iteration, already multiplied by their weights; seconds since start."""

    iteration: int
    seconds: float
    loss: float
    content: float
    style: float
    tv: float


@dataclass
class Checkpoint:
    """Everything needed to continue a single-scale run later: the image after ``iteration``
    steps, the optimiser's state and the history so far.

    :meth:`to_state` gives plain containers of tensors, numbers and strings, which
    ``torch.load(..., weights_only=True)`` reads back without running any code from the file;
    :meth:`from_state` checks such a state before trusting it."""

    image: Tensor
    iteration: int
    optimizer_state: dict[str, Any]
    history: list[LossRecord]
    #: Seconds the run had taken when the checkpoint was made: a resumed run's history and
    #: time carry on from it instead of restarting at 0.
    seconds: float = 0.0

    def to_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "image": self.image.detach().cpu(),
            "iteration": int(self.iteration),
            "seconds": float(self.seconds),
            "optimizer_state": self.optimizer_state,
            "history": [
                [r.iteration, r.seconds, r.loss, r.content, r.style, r.tv] for r in self.history
            ],
        }

    @classmethod
    def from_state(cls, state: Any) -> Checkpoint:
        """The checkpoint in ``state``; ValueError (naming what is wrong) if it is not one."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not an estilo checkpoint")
        image, iteration = state.get("image"), state.get("iteration")
        optimizer_state, rows = state.get("optimizer_state"), state.get("history")
        if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError("its image is not a (1, 3, H, W) tensor")
        if not isinstance(iteration, int) or iteration < 1:
            raise ValueError("its iteration is not a positive integer")
        if not isinstance(optimizer_state, dict) or not {"state", "param_groups"} <= set(
            optimizer_state
        ):
            raise ValueError("its optimiser state is not an optimiser's state_dict")
        if not isinstance(rows, list) or len(rows) != iteration:
            raise ValueError("its history does not have one row per iteration")
        history = []
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) == 6
                and all(isinstance(v, (int, float)) for v in row)
            ):
                raise ValueError("its history has a malformed row")
            history.append(LossRecord(int(row[0]), *map(float, row[1:])))
        seconds = state.get("seconds", history[-1].seconds)
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
            raise ValueError("its elapsed seconds are not a number >= 0")
        return cls(image.float(), iteration, optimizer_state, history, float(seconds))


@dataclass(frozen=True)
class Iterate(LossRecord):
    """What the callback sees each iteration. ``image`` (1, 3, H, W) is the image after the step
    (at the current ``scale``, 1-based of ``scales``); the losses are those of the image the step
    started from. ``total`` counts the iterations of all scales. Do not modify ``image``."""

    total: int = 0
    scale: int = 1
    scales: int = 1
    image: Tensor = field(default_factory=lambda: torch.empty(0), repr=False)
    #: Captures a :class:`Checkpoint` of this moment when called (it copies the state).
    checkpoint: Callable[[], Checkpoint] | None = field(default=None, repr=False, compare=False)


#: A callback may return True to stop the run early (the best image so far is kept).
Callback = Callable[[Iterate], bool | None]


#: How a run ended: ``completed`` (every iteration ran, or the tolerance ended it early),
#: ``stopped`` (by the callback), ``diverged`` (the loss became NaN or infinite) or
#: ``interrupted`` (KeyboardInterrupt). Whatever the status, the best image is kept.
Status = Literal["completed", "stopped", "diverged", "interrupted"]


@dataclass
class Result:
    """The outcome of a run. ``image`` (1, 3, H, W) is the lowest-loss image seen at the last
    scale reached (resized to the output size if the run ended at a coarser one).

    ``best_iteration`` counts the steps taken to reach it (0: the initial image).
    ``planned`` is the most iterations the scales could take
    (:func:`~estilo.core.pyramid.planned_iterations`),
    more than ``len(history)`` after an early stop.
    ``status``: see :data:`Status`.
    """

    image: Tensor
    history: list[LossRecord]
    status: Status
    best_iteration: int
    seconds: float
    planned: int  # more than len(history) when the tolerance stopped a scale early
    memory: MemoryPlan | None = None  # the estimate made before the run, and its decision
