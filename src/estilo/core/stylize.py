"""The optimisation loop: the image is the only parameter (Gatys et al. 2016).

``stylize`` checks its inputs, builds the network on the device, then optimises an image over
one or more scales (coarse-to-fine, Gatys et al. 2017). At each scale it builds the targets,
then repeats: evaluate the loss, step the optimiser, clip the image to [0, 1] (as the paper does
after every step), report an :class:`Iterate` to the callback. It keeps the image with the lowest
loss seen, so a divergence (NaN), a Ctrl-C or a callback's stop never loses the best result.
The records it reports live in ``records``, the device helpers in ``device``, the network in
``network``, the pyramid in ``pyramid`` and its inputs in ``inputs``; docs/method.md §3 says
where it departs from the papers.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from .config import StyleConfig
from .device import tf32_products
from .inputs import RunInputs
from .layers import layer_index, min_input_size
from .network import NetworkCache, build_network, used_layers
from .objective import Objective
from .optim import carried_state, warm_start
from .pyramid import held, planned_iterations, resized, scale_sizes
from .records import Callback, Checkpoint, Iterate, LossRecord, Result, Status
from .registry import OPTIMIZERS, lookup
from .tiled import make_objective
from .vgg import VGG19Features, Weights


def stylize(
    inputs: RunInputs,
    config: StyleConfig,
    *,
    callback: Callback | None = None,
    weights: Weights | None = None,
    resume: Checkpoint | None = None,
    notify: Callable[[str], None] | None = None,
    networks: NetworkCache | None = None,
) -> Result:
    """Optimise an image to match the content's features and the styles' statistics.

    Args:
        inputs: the content, styles, style weights, masks and starting image, already at their
            working size (:meth:`RunInputs.make`); the output has the content's size.
        config: a checked :class:`StyleConfig`.
        callback: called after every iteration; returning True stops the run.
        weights: preloaded VGG19 weights (default: read ``config.weights``).
        resume: continue a run from a checkpoint taken by ``Iterate.checkpoint``, at the
            scale and iteration it was taken (the inputs and configuration must be the same).
        notify: receives one-line notices before the run (memory fallback).
        networks: reuse the network it holds if this run needs the same one, else keep this
            run's for the next (a video's frames build one between them).

    Raises:
        ConfigError: images too small for the layers, a checkpoint whose image does not fit
            this run's pyramid, a device this machine lacks, or a run that would not fit in the
            device's free memory.
    """
    # A resumed run's clock carries on from the checkpoint's.
    start = time.perf_counter() - (resume.seconds if resume is not None else 0.0)
    sizes = _check(inputs, config, resume)
    build = networks.get if networks is not None else build_network
    network = build(inputs, config, weights, notify)
    run = _Run(config, callback, len(sizes), start, resume, network.memory.tile)
    image = run.optimise(network.net, inputs.to(network.device), sizes)
    return Result(
        resized(image, inputs.size),
        run.history,
        run.status,
        run.best_iteration,
        time.perf_counter() - start,
        planned_iterations(config, len(sizes)),
        network.memory,
    )


def _check(
    inputs: RunInputs, config: StyleConfig, resume: Checkpoint | None
) -> list[tuple[int, int]]:
    """The pyramid's sizes, once every image is large enough for the deepest layer and a
    checkpoint to resume from is known to hold an image of its scale's size."""
    layers = used_layers(config)
    smallest = min_input_size(layers)
    for what, tensor in [("content", inputs.content)] + [("style", s) for s in inputs.styles]:
        if min(tensor.shape[-2:]) < smallest:
            height, width = tensor.shape[-2:]
            raise ConfigError(
                f"the {what} image is {width}x{height} at this size; layer "
                f"{max(layers, key=layer_index)} needs at least {smallest} px on each side"
            )
    sizes = scale_sizes(*inputs.size, config, smallest)
    if resume is not None:
        height, width = resume.image.shape[-2:]
        if resume.scale > len(sizes) or sizes[resume.scale - 1] != (height, width):
            raise ConfigError(
                f"the checkpoint's image is {width}x{height} at scale {resume.scale}, which this "
                f"run's {len(sizes)} scale(s) do not have; were the inputs or size changed?"
            )
    return sizes


def initial_image(inputs: RunInputs, config: StyleConfig) -> Tensor:
    """The starting point: ``inputs.init`` if given, else by ``config.init``: the content
    image, seeded uniform noise, or noise with the first style's per-channel mean and deviation
    (crowsonkb's ``style_stats``)."""
    content = inputs.content
    if inputs.init is not None:
        return inputs.init.to(content)
    generator = torch.Generator().manual_seed(config.seed)
    if config.init == "noise":
        return torch.rand(content.shape, generator=generator).to(content)
    if config.init == "style-stats":
        style = inputs.styles[0]
        mean = style.mean(dim=(2, 3), keepdim=True).cpu()
        std = style.std(dim=(2, 3), keepdim=True).cpu()
        noise = torch.randn(content.shape, generator=generator) * std + mean
        return noise.clamp(0, 1).to(content)
    return content.clone()


#: Rows packed at a time: bounds the float32 temporary of packing to a slice of the image.
PACK_ROWS = 256


class _Best:
    """Tracks the lowest-loss image and how many steps it had taken.

    The loss of an image is known when the closure has evaluated it, before the optimiser steps
    away from it, so the closure offers the image then, and it is kept only when it is the best
    so far: no second copy of the image before every step. It is kept as 16-bit integers,
    pixel x 65535, the values a 16-bit PNG stores (so nothing an output can show is lost), in
    half a float32 image's memory: at 8192 px that is 384 MiB instead of 768, and 768 less than
    the best-and-previous pair this replaced. The starting image (or a checkpoint's best) is the
    best until the first offer."""

    def __init__(self, image: Tensor, iteration: int = 0) -> None:
        self.packed = _pack(image)
        self.loss = math.inf
        self.iteration = iteration

    @property
    def best(self) -> Tensor:
        """The best image as float32 pixels on [0, 1] (in place on one new float image: a
        chain of temporaries here made the peak of a whole 8192 px run)."""
        return self.packed.float().add_(32768).div_(65535)

    def offer(self, image: Tensor, loss: float, iteration: int) -> None:
        if loss < self.loss:  # never NaN
            self.loss, self.iteration = loss, iteration
            _pack(image, self.packed)

    def restore(self, loop: dict[str, Tensor | float | int], image: Tensor) -> None:
        """Take up a checkpoint's best image (one without keeps its own image as the best)."""
        best = loop.get("best")
        if isinstance(best, Tensor) and best.shape == image.shape:
            _pack(best.to(image), self.packed)
            self.loss = float(loop.get("best_loss", math.inf))
            self.iteration = int(loop.get("best_iteration", self.iteration))


def _pack(image: Tensor, out: Tensor | None = None) -> Tensor:
    """``image`` on [0, 1] as int16 ``round(pixel x 65535) - 32768``, into ``out`` if given,
    PACK_ROWS rows at a time."""
    image = image.detach()
    if out is None or out.shape != image.shape:
        out = torch.empty(image.shape, dtype=torch.int16, device=image.device)
    for top in range(0, image.shape[-2], PACK_ROWS):
        rows = image[..., top : top + PACK_ROWS, :].mul(65535).round_().clamp_(0, 65535)
        out[..., top : top + PACK_ROWS, :].copy_(rows.sub_(32768))
    return out


class _EMA:
    """A bias-corrected exponential moving average of the image, as in Kingma et al. (Adam);
    crowsonkb's iterate averaging. Off when decay is 0: the image is then the parameter's."""

    def __init__(self, decay: float) -> None:
        self.decay, self.count, self.average = decay, 0, torch.empty(0)

    def update(self, param: Tensor, scale: float) -> None:
        if not self.decay:
            return
        image = param.detach() / scale
        if self.average.shape != image.shape:  # a new scale starts a new average
            self.average, self.count = torch.zeros_like(image), 0
        self.count += 1
        self.average = self.average * self.decay + image * (1 - self.decay)

    def image(self, param: Tensor, scale: float) -> Tensor:
        """The run's current picture: the average, or the parameter's pixels (a view of the
        parameter itself when ``scale`` is 1: copy it to keep it past the next step)."""
        if self.decay and self.count:
            return self.average / (1 - self.decay**self.count)
        return param.detach() if scale == 1 else param.detach() / scale

    def restore(self, loop: dict[str, Tensor | float | int], image: Tensor) -> None:
        """Take up a checkpoint's average, if it has one of this scale's size."""
        average = loop.get("ema")
        if isinstance(average, Tensor) and average.shape == image.shape:
            self.average, self.count = average.to(image), int(loop.get("ema_count", 1))


class _Run:
    """The iterations of one call, across scales: history, status and the optimiser state."""

    def __init__(
        self,
        config: StyleConfig,
        callback: Callback | None,
        scales: int,
        start: float,
        resume: Checkpoint | None = None,
        tile: int | None = None,
    ) -> None:
        self.config, self.callback, self.scales, self.start = config, callback, scales, start
        #: The tile size of the scales larger than it (MemoryPlan.tile); None: whole images.
        self.tile = tile
        self.info = lookup(OPTIMIZERS, config.optimizer, "optimizer")
        self.resume = resume
        self.history: list[LossRecord] = list(resume.history) if resume else []
        self.status: Status = "completed"
        self.best_iteration = 0
        #: What the optimiser carries from one scale to the next (see OptimizerInfo.warm_start).
        self.carried: dict[str, Tensor] = {}

    def optimise(
        self, net: VGG19Features, inputs: RunInputs, sizes: list[tuple[int, int]]
    ) -> Tensor:
        """Optimise over every scale in turn, each starting from the last one's best image (a
        resumed run from the checkpoint's scale on); returns the best image of the last scale
        reached."""
        image = initial_image(inputs, self.config)
        smallest = min_input_size(used_layers(self.config))
        device = inputs.content.device
        fork = [device] if device.type == "cuda" else []
        first = self.resume.scale if self.resume is not None else 1
        with torch.random.fork_rng(devices=fork), tf32_products(device, net.autocast is not None):
            torch.manual_seed(self.config.seed)  # stochastic losses draw from here, reproducibly
            for index, size in enumerate(sizes[first - 1 :], start=first):
                # Handed over in a list, so that no name here keeps the starting image alive
                # through the scale (at print sizes it is 768 MiB).
                start = [resized(image, size)]
                del image
                scaled = inputs.scaled(size, smallest)
                content = self._held(scaled.content, start[0], index)
                if content is not None:
                    scaled = dataclasses.replace(scaled, content=content)
                objective = make_objective(net, scaled, self.config, self.tile)
                del scaled
                image = self.scale(objective, start, index, content)
                if self.status != "completed":
                    break
        return image

    def _held(self, photo: Tensor, start: Tensor, index: int) -> Tensor | None:
        """The content scale ``index`` holds instead of ``photo`` (:func:`held`): the photo
        moved that far towards ``start``, the previous scale's picture upsampled; a resumed
        scale's comes from its checkpoint. None: the photo itself."""
        saved = self.resume.loop.get("content") if self.resume is not None else None
        resumed = self.resume is not None and index == self.resume.scale
        if resumed and isinstance(saved, Tensor) and saved.shape == start.shape:
            return saved.to(start)
        hold = held(self.config, (start.shape[-2], start.shape[-1]))
        return torch.lerp(photo, start, hold) if hold else None

    def scale(
        self, objective: Objective, start: list[Tensor], index: int, content: Tensor | None
    ) -> Tensor:
        """Optimise at one scale from the image in ``start``, which it takes out (or from the
        checkpoint being resumed); returns the best image found there. ``content``: what the
        objective holds instead of the photo (``_held``), kept for the checkpoints."""
        config, scale = self.config, self.info.pixel_scale
        image = start.pop()
        resume, self.resume = self.resume, None  # a checkpoint restores its own scale only
        loop = resume.loop if resume is not None else {}
        if resume is not None:
            image = resume.image.to(image)
        # The optimiser sees ``param`` = image x scale; see OptimizerInfo.pixel_scale. A
        # checkpoint keeps ``param`` itself: image x 255 / 255 is not always the same float.
        # A contiguous copy: a resized 1x1 image can come back with strides L-BFGS's view()
        # rejects, and the steps must not write into the checkpoint's tensor. Made in place:
        # at print sizes every image-sized temporary held through the scale is a gigabyte.
        saved = loop.get("param")
        param = torch.empty_like(image, memory_format=torch.contiguous_format)
        if isinstance(saved, Tensor) and saved.shape == image.shape:
            param.copy_(saved)
        else:
            param.copy_(image).mul_(scale)
        param.requires_grad_(True)
        optimizer = self.info.load()([param], config)
        warm_start(optimizer, param, self.carried)
        self.carried = {}  # not kept through this scale: at print sizes they are gigabytes
        done = len(self.history)
        begun = done  # the iterations before this scale
        best = _Best(image, done)
        ema = _EMA(config.ema)
        if resume is not None:
            optimizer.load_state_dict(copy.deepcopy(resume.optimizer_state))
            begun = resume.scale_start
            best.restore(loop, image)
            ema.restore(loop, image)
            rng = loop.get("rng")
            if isinstance(rng, Tensor) and rng.dtype == torch.uint8:
                torch.set_rng_state(rng)
        # From here _Best holds the starting image, packed: the float copy can go.
        del image, saved
        # The first scale runs config.iterations, later ones config.refine_iterations.
        steps = config.iterations if index == 1 else config.refine_iterations
        parts: dict[str, Tensor] = {}
        iteration = done  # the closure reads the step it is part of

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss, evaluated = objective.gradient(param, scale)
            parts.update({k: v.detach() for k, v in evaluated.items()}, total=loss.detach())
            # The loss is the image's before this step, which the optimiser is about to leave.
            best.offer(ema.image(param, scale), float(loss.detach()), iteration - 1)
            return loss

        try:
            for iteration in range(done + 1, begun + steps + 1):
                optimizer.step(closure)
                # The gradient is spent: freed before the callback's copy of the picture.
                optimizer.zero_grad(set_to_none=True)
                # One device-to-host copy for all four numbers: on a GPU each is a sync.
                values = torch.stack([parts[k] for k in ("total", "content", "style", "tv")])
                record = LossRecord(iteration, time.perf_counter() - self.start, *values.tolist())
                self.history.append(record)
                if not math.isfinite(record.loss):
                    self.status = "diverged"
                    break
                with torch.no_grad():
                    param.clamp_(0.0, scale)  # the paper's clip_0_1 after every step
                ema.update(param, scale)
                moment = _Moment(optimizer, param, index, begun, best, ema, content)
                if self.callback is not None and self.callback(
                    Iterate(
                        **vars(record),
                        total=planned_iterations(config, self.scales),
                        scale=index,
                        scales=self.scales,
                        # A copy: the parameter changes under it at the next step.
                        image=ema.image(param, scale).clone(),
                        checkpoint=functools.partial(self._checkpoint, moment, iteration),
                    )
                ):
                    self.status = "stopped"
                    break
                if self._converged(begun):
                    break
            if self.status in ("completed", "stopped"):
                # The last image has not been evaluated yet; one forward pass settles whether
                # it beats the best so far (it usually does).
                with torch.no_grad():
                    last = ema.image(param, scale)
                    best.offer(last, float(objective(last)[0]), len(self.history))
        except KeyboardInterrupt:
            self.status = "interrupted"
        if index < self.scales:  # after the last scale they would outlive the run
            self.carried = carried_state(self.info, optimizer, param)
        self.best_iteration = best.iteration
        return best.best

    def _converged(self, start: int) -> bool:
        """Early stopping: the loss of this scale fell by less than ``tolerance`` (relative)
        over the last ``tolerance_window`` iterations."""
        window, tolerance = self.config.tolerance_window, self.config.tolerance
        recent = self.history[start:]
        if not tolerance or len(recent) <= window:
            return False
        before, now = recent[-window - 1].loss, recent[-1].loss
        return before - now < tolerance * abs(before)

    def _checkpoint(self, moment: _Moment, iteration: int) -> Checkpoint:
        best, ema = moment.best, moment.ema
        loop: dict[str, Tensor | float | int] = {
            "param": moment.param.detach().clone(),
            "best": best.best,
            "best_loss": best.loss,
            "best_iteration": best.iteration,
            # The CPU generator only: on a GPU, stochastic losses draw afresh after a resume.
            "rng": torch.get_rng_state(),
        }
        if ema.decay:
            loop.update(ema=ema.average.clone(), ema_count=ema.count)
        if moment.content is not None:  # the held content (``_held``): not the photo's
            loop["content"] = moment.content
        return Checkpoint(
            moment.ema.image(moment.param, self.info.pixel_scale).clone(),
            iteration,
            copy.deepcopy(moment.optimizer.state_dict()),
            list(self.history),
            time.perf_counter() - self.start,
            moment.index,
            moment.begun,
            loop,
        )


@dataclass(frozen=True)
class _Moment:
    """What a checkpoint taken during a scale reads: that scale's optimiser, pixels, number,
    first iteration (``begun`` steps came before it), best image, moving average and the
    content it holds (``_Run._held``; None: the photo's)."""

    optimizer: torch.optim.Optimizer
    param: Tensor
    index: int
    begun: int
    best: _Best
    ema: _EMA
    content: Tensor | None
