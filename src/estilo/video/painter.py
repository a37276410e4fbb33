"""Who paints a frame: the :class:`Painter` protocol, and the optimiser that fills it today.

The frame loop (``run.py``) owns reading, flow, resuming and writing; a painter only turns one
input frame into a stylised one, given the previous stylised frame warped into it and where
that warp can be trusted. A feed-forward network (``estilo video --model``) will be a second
painter, plugged into the same loop with :func:`estilo.video.paint_video`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import Tensor

from ..core.config import StyleConfig
from ..pipeline import Iterate, NetworkCache, PixelTerm, stylize

#: Settings that change how a job runs, not the frames it makes: a rerun that changes only
#: these resumes the job.
NOT_IDENTITY = ("device", "log_every", "save_every", "recompute", "max_pixels")


class Painter(Protocol):
    """Paints one frame at a time. All a painter knows of earlier frames is what the loop
    hands it, so a resumed job, which starts a new painter, paints as the first run did."""

    #: Optimiser steps the last frame took; 0 for a painter that does not iterate.
    iterations: int

    def identity(self) -> list[Any]:
        """Everything that decides the frames it paints (styles, model, settings): the frame
        loop resumes a job only if these are the same. Paths stand for their files' bytes,
        tensors for their values; anything else must be JSON."""
        ...

    def paint(self, frame: Tensor, previous: Tensor | None, mask: Tensor | None) -> Tensor:
        """The stylised ``frame``.

        Args:
            frame: (3, H, W) input frame in [0, 1], at the working size.
            previous: (3, H, W) the previous stylised frame warped into this one by the input's
                optical flow; None for the first frame.
            mask: (1, H, W) 1 where ``previous`` can be trusted, 0 at occlusions and motion
                boundaries; None for the first frame.

        Returns:
            (3, H, W) in [0, 1], the frame's size.
        """
        ...


class OptimiserPainter:
    """Gatys et al.'s optimisation per frame with Ruder et al. 2016's temporal consistency.

    The first frame runs ``keyframe_iterations``, every later one ``config.iterations``. A later
    frame starts from the previous stylised frame warped into it (the input frame where the
    warp is unreliable: Ruder et al. start from the warped frame alone) and adds
    ``config.temporal_weight`` x the masked mean squared difference to that warped frame. With
    ``temporal_weight`` 0 every frame starts from its own content, as a still would. The VGG19
    is built for the first frame and reused by every later one."""

    def __init__(
        self,
        styles: Sequence[Tensor],
        config: StyleConfig,
        *,
        style_weights: Sequence[float] | None = None,
        keyframe_iterations: int | None = None,
        callback: Callable[[Iterate], bool | None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.styles, self.style_weights = list(styles), style_weights
        self.config, self.callback, self.notify = config, callback, notify
        self.keyframe = config.replace(iterations=keyframe_iterations or config.iterations)
        self.networks = NetworkCache()
        self.iterations = 0

    def identity(self) -> list[Any]:
        settings = {k: v for k, v in self.config.to_dict().items() if k not in NOT_IDENTITY}
        weights = list(self.style_weights or [])
        return [*self.styles, weights, settings, self.keyframe.iterations]

    def paint(self, frame: Tensor, previous: Tensor | None, mask: Tensor | None) -> Tensor:
        config, start, pixel = self.config, None, None
        if previous is None or mask is None:
            config = self.keyframe
        elif config.temporal_weight > 0:
            start = mask * previous + (1 - mask) * frame
            pixel = PixelTerm(previous[None], mask[None], config.temporal_weight)
        result = stylize(
            frame,
            self.styles,
            config,
            self.callback,
            style_weights=self.style_weights,
            notify=self.notify,
            start=start,
            pixel=pixel,
            networks=self.networks,
        )
        if result.status == "interrupted":
            raise KeyboardInterrupt  # the frame is unfinished: the loop must not keep it
        self.iterations = len(result.history)
        return result.image
