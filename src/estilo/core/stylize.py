"""The optimisation loop: the image is the only parameter (Gatys et al. 2016; the paper, §3).

``stylize`` takes content and style tensors already at their working size and optimises an image
over one or more scales (coarse-to-fine, Gatys et al. 2017). At each scale it builds the targets,
then repeats: evaluate the loss, step the optimiser, clip the image to [0, 1] (as the paper does
after every step), report an :class:`Iterate` to the callback. It keeps the image with the lowest
loss seen, so a divergence (NaN), a Ctrl-C or a callback's stop never loses the best result.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .config import StyleConfig
from .layers import layer_index, min_input_size
from .memory import MemoryPlan, plan
from .objective import Objective, PixelTerm
from .registry import OPTIMIZERS, lookup
from .vgg import VGG19Features, Weights, load_weights

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


@dataclass
class Result:
    """The outcome of a run. ``image`` (1, 3, H, W) is the lowest-loss image seen at the last
    scale reached (resized to the output size if the run ended at a coarser one).

    ``best_iteration`` counts the steps taken to reach it (0: the initial image).
    ``planned`` is the most iterations the scales could take (:func:`planned_iterations`),
    more than ``len(history)`` after an early stop.
    ``status`` is ``completed``, ``stopped`` (by the callback), ``diverged`` (the loss became
    NaN or infinite) or ``interrupted`` (KeyboardInterrupt).
    """

    image: Tensor
    history: list[LossRecord]
    status: str
    best_iteration: int
    seconds: float
    planned: int  # more than len(history) when --tolerance stopped early
    memory: MemoryPlan | None = None  # the estimate made before the run, and its decision


def pick_device(name: str) -> torch.device:
    """Resolve ``auto`` to the best available device; fail clearly if one is missing."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device {name!r} is not available on this machine (try --device cpu)")
    return torch.device(name)


def autocast_dtype(config: StyleConfig, device: torch.device) -> torch.dtype | None:
    """bfloat16 when asked for, or by default on a CUDA GPU that has it; None: float32.

    A departure from the paper (float32 throughout), on the GPU only: bfloat16 convolutions with
    the statistics and losses in float32 make an iteration 1.2-1.3x faster on an H200 with the
    output's distances within float32's own run-to-run spread (BENCHMARKS.md). On a CPU with
    AVX512-BF16 it was 1.6x faster, but the independent yardstick (``estilo.quality``) saw the
    picture change: on one benchmark pair the photo's layout was lost (coarse SSIM 0.36 against
    float32's 0.51), so the CPU default stays float32 and bfloat16 is opt-in there."""
    if config.precision != "auto":
        return torch.bfloat16 if config.precision == "bfloat16" else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return None


@contextlib.contextmanager
def _tf32_products(device: torch.device, enabled: bool) -> Iterator[None]:
    """With bfloat16 on CUDA, let float32 matrix products (the Gram matrices) use TF32 tensor
    cores, accumulating in float32: 8-13% less time per iteration on an H200, distances within
    float32's run-to-run spread (BENCHMARKS.md, GPU). Restores the global setting afterwards."""
    if device.type != "cuda" or not enabled:
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def initial_image(
    content: Tensor, style: Tensor, config: StyleConfig, init: Tensor | None
) -> Tensor:
    """The starting point: the content image, seeded uniform noise, noise with the style's
    per-channel mean and deviation (crowsonkb's ``style_stats``), or a given image."""
    if init is not None:
        return init.to(content)
    generator = torch.Generator().manual_seed(config.seed)
    if config.init == "noise":
        return torch.rand(content.shape, generator=generator).to(content)
    if config.init == "style-stats":
        mean = style.mean(dim=(2, 3), keepdim=True).cpu()
        std = style.std(dim=(2, 3), keepdim=True).cpu()
        noise = torch.randn(content.shape, generator=generator) * std + mean
        return noise.clamp(0, 1).to(content)
    return content.clone()


def scale_sizes(
    height: int, width: int, config: StyleConfig, smallest: int
) -> list[tuple[int, int]]:
    """The coarse-to-fine pyramid: sizes about sqrt(2) apart ending at (height, width).

    ``scales = 0`` picks automatically: one scale up to ``min_scale`` px; above, start near
    ``min_scale``, where the composition settles cheaply, and refine in sqrt(2) steps (Gatys et
    al. 2017's 512 -> 1024 px schedule; crowsonkb's style-transfer-pytorch starts at 128 px)."""
    longest = max(height, width)
    count = config.scales
    if count == 0:
        ratio = longest / config.min_scale
        count = 1 if ratio <= 1 else 1 + max(1, round(2 * math.log2(ratio)))
    sizes: list[tuple[int, int]] = []
    for step in range(count - 1, -1, -1):
        factor = 2 ** (-step / 2)
        size = (max(smallest, round(height * factor)), max(smallest, round(width * factor)))
        if not sizes or size != sizes[-1]:
            sizes.append(size)
    return sizes


def planned_iterations(config: StyleConfig, scales: int) -> int:
    """The most iterations a run over ``scales`` scales takes: ITERATIONS at the first,
    REFINE_ITERATIONS at each later one."""
    return config.iterations + (scales - 1) * config.refine_iterations


def resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) resized with antialiased bicubic (the best downsampler torch has; the
    paper's TensorFlow used bilinear), clipped to [0, 1]."""
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)


class _Best:
    """Tracks the lowest-loss image and how many steps it had taken. The loss of an image is
    known only after the optimiser has stepped away from it, so the pre-step image is kept
    (``previous``) until its loss arrives."""

    def __init__(self, image: Tensor, iteration: int = 0) -> None:
        self.previous = self.best = image
        self.loss = math.inf
        self.iteration = iteration

    def offer(self, loss: float, iteration: int) -> None:
        if loss < self.loss:
            self.loss, self.iteration, self.best = loss, iteration, self.previous

    def remember(self, image: Tensor) -> None:
        self.previous = image


class _EMA:
    """A bias-corrected exponential moving average of the image, as in Kingma et al. (Adam);
    crowsonkb's iterate averaging. Off (identity) when decay is 0."""

    def __init__(self, decay: float) -> None:
        self.decay, self.count, self.average = decay, 0, torch.empty(0)

    def update(self, image: Tensor) -> Tensor:
        if not self.decay:
            return image
        if self.average.shape != image.shape:  # a new scale starts a new average
            self.average, self.count = torch.zeros_like(image), 0
        self.count += 1
        self.average = self.average * self.decay + image * (1 - self.decay)
        return self.average / (1 - self.decay**self.count)


def stylize(
    content: Tensor,
    styles: Tensor | Sequence[Tensor],
    config: StyleConfig,
    *,
    blend: Sequence[float] | None = None,
    masks: Sequence[Tensor | None] | None = None,
    init: Tensor | None = None,
    callback: Callback | None = None,
    weights: Weights | None = None,
    resume: Checkpoint | None = None,
    notify: Callable[[str], None] | None = None,
    pixel: PixelTerm | None = None,
) -> Result:
    """Optimise an image to match ``content``'s features and the styles' statistics.

    Args:
        content: (1, 3, H, W) RGB in [0, 1]; the output has its size.
        styles: one or more (1, 3, H', W') RGB images in [0, 1].
        config: a checked :class:`StyleConfig`.
        blend: a weight per style (normalised to sum 1; default equal).
        masks: per style, None or (1, 1, H, W) weights in [0, 1]: where that style applies.
        init: (1, 3, H, W) starting image, overriding ``config.init``.
        callback: called after every iteration; returning True stops the run.
        weights: preloaded VGG19 weights (default: read ``config.weights``).
        resume: continue a single-scale run from a checkpoint taken by ``Iterate.checkpoint``.
        notify: receives one-line notices before the run (memory fallback).
        pixel: an extra pixel-space term at the output's size (video's temporal loss),
            resized to each scale.

    Raises:
        ConfigError: bad options, images too small for the layers, or a run that would not fit
            in the device's free memory.
    """
    start = time.perf_counter()
    styles = [styles] if isinstance(styles, Tensor) else list(styles)
    blend = [1.0] * len(styles) if blend is None else list(blend)
    if (
        len(blend) != len(styles)
        or not all(math.isfinite(b) and b >= 0 for b in blend)
        or sum(blend) <= 0
    ):
        raise ConfigError(
            f"style weights must be finite, >= 0, not all 0 and one per style "
            f"({len(blend)} given for {len(styles)} styles)"
        )
    blend = [b / sum(blend) for b in blend]
    masks = [None] * len(styles) if masks is None else list(masks)
    device = pick_device(config.device)
    layers = set(config.content_layers) | set(config.style_layers)
    smallest = min_input_size(layers)
    for what, tensor in [("content", content)] + [("style", s) for s in styles]:
        if min(tensor.shape[-2:]) < smallest:
            height, width = tensor.shape[-2:]
            raise ConfigError(
                f"the {what} image is {width}x{height} at this size; layer "
                f"{max(layers, key=layer_index)} needs at least {smallest} px on each side"
            )
    height, width = content.shape[-2], content.shape[-1]
    sizes = scale_sizes(height, width, config, smallest)
    autocast = autocast_dtype(config, device)
    memory = plan(
        config,
        (height, width),
        [(s.shape[-2], s.shape[-1]) for s in styles],
        device,
        autocast is not None,
        notify,
    )
    net = VGG19Features(
        weights or load_weights(config.weights),
        layers,
        config.pooling,
        autocast=autocast,
        recompute=memory.recompute,
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # sizes are fixed per scale: tune once, reuse
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    net = net.to(device)
    content, styles = content.to(device), [s.to(device) for s in styles]
    masks = [None if m is None else m.to(device) for m in masks]

    if resume is not None and len(sizes) > 1:
        raise ConfigError("resuming needs a single-scale run (--scales 1)")
    if resume is not None:
        init = resume.image
    image = initial_image(content, styles[0], config, None if init is None else init.to(device))
    if resume is not None:
        start -= resume.seconds  # the time before the checkpoint counts too
    run = _Run(config, callback, len(sizes), start, resume)
    fork = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), _tf32_products(device, autocast is not None):
        torch.manual_seed(config.seed)  # stochastic losses draw from here, reproducibly
        for index, size in enumerate(sizes, start=1):
            ratio = size[0] / content.shape[-2]
            scaled_styles = [
                resized(
                    s,
                    (
                        max(smallest, round(s.shape[-2] * ratio)),
                        max(smallest, round(s.shape[-1] * ratio)),
                    ),
                )
                for s in styles
            ]
            scaled_masks = [
                None if m is None else F.interpolate(m, size=size, mode="area") for m in masks
            ]
            objective = Objective(
                net,
                resized(content, size),
                scaled_styles,
                config,
                blend,
                scaled_masks,
                None if pixel is None else pixel.fitted(size, device),
            )
            image = run.scale(objective, resized(image, size), index)
            if run.status != "completed":
                break
    return Result(
        resized(image, (height, width)),
        run.history,
        run.status,
        run.best_iteration,
        time.perf_counter() - start,
        planned_iterations(config, len(sizes)),
        memory,
    )


class _Run:
    """The iterations of one call, across scales: history, status and the optimiser state."""

    def __init__(
        self,
        config: StyleConfig,
        callback: Callback | None,
        scales: int,
        start: float,
        resume: Checkpoint | None = None,
    ) -> None:
        self.config, self.callback, self.scales, self.start = config, callback, scales, start
        self.info = lookup(OPTIMIZERS, config.optimizer, "optimizer")
        self.resume = resume
        self.history: list[LossRecord] = list(resume.history) if resume else []
        self.status = "completed"
        self.best_iteration = 0
        self.adam_state: dict[str, Tensor] = {}

    def scale(self, objective: Objective, image: Tensor, index: int) -> Tensor:
        """Optimise at one scale from ``image``; returns the best image found there."""
        config, scale = self.config, self.info.pixel_scale
        # The optimiser sees ``param`` = image x scale; see OptimizerInfo.pixel_scale.
        # contiguous: a resized 1x1 image can come back with strides L-BFGS's view() rejects.
        param = (image * scale).contiguous().requires_grad_(True)
        optimizer = self.info.load()([param], config)
        self._carry_state(optimizer, param)
        if self.resume is not None:
            optimizer.load_state_dict(self.resume.optimizer_state)
        done = len(self.history)
        # The first scale runs config.iterations, later ones config.refine_iterations; a
        # resumed (single-scale) run continues to config.iterations.
        steps = config.iterations if index == 1 else config.refine_iterations
        last = config.iterations if self.resume is not None else done + steps
        best = _Best(image, done)
        ema = _EMA(config.ema)
        parts: dict[str, Tensor] = {}

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss, evaluated = objective(param / scale)
            loss.backward()  # type: ignore[no-untyped-call]
            parts.update({k: v.detach() for k, v in evaluated.items()}, total=loss.detach())
            return loss

        try:
            for iteration in range(done + 1, last + 1):
                optimizer.step(closure)
                # One device-to-host copy for all four numbers: on a GPU each is a sync.
                values = torch.stack([parts[k] for k in ("total", "content", "style", "tv")])
                record = LossRecord(iteration, time.perf_counter() - self.start, *values.tolist())
                self.history.append(record)
                if not math.isfinite(record.loss):
                    self.status = "diverged"
                    break
                # The loss was measured on the image before this step, which _Best holds.
                best.offer(record.loss, iteration - 1)
                with torch.no_grad():
                    param.clamp_(0.0, scale)  # the paper's clip_0_1 after every step
                current = ema.update(param.detach() / scale)
                best.remember(current)
                if self.callback is not None and self.callback(
                    Iterate(
                        **vars(record),
                        total=planned_iterations(config, self.scales),
                        scale=index,
                        scales=self.scales,
                        image=current,
                        checkpoint=functools.partial(self._checkpoint, optimizer, param, iteration),
                    )
                ):
                    self.status = "stopped"
                    break
                if self._converged(done):
                    break
            if self.status in ("completed", "stopped"):
                # The last image has not been evaluated yet; one forward pass settles whether
                # it beats the best so far (it usually does).
                with torch.no_grad():
                    final = float(objective(best.previous)[0])
                if math.isfinite(final):
                    best.offer(final, len(self.history))
        except KeyboardInterrupt:
            self.status = "interrupted"
        self._keep_state(optimizer, param)
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

    def _checkpoint(
        self, optimizer: torch.optim.Optimizer, param: Tensor, iteration: int
    ) -> Checkpoint:
        image = (param.detach() / self.info.pixel_scale).clone()
        state = copy.deepcopy(optimizer.state_dict())
        seconds = time.perf_counter() - self.start
        return Checkpoint(image, iteration, state, list(self.history), seconds)

    def _keep_state(self, optimizer: torch.optim.Optimizer, param: Tensor) -> None:
        state = optimizer.state.get(param, {})
        self.adam_state = {k: v for k, v in state.items() if k in ("step", "exp_avg", "exp_avg_sq")}

    def _carry_state(self, optimizer: torch.optim.Optimizer, param: Tensor) -> None:
        """Warm-start Adam at a new scale with its moment estimates resized (crowsonkb's
        scale_adam). L-BFGS's curvature pairs belong to one resolution, so it starts afresh."""
        if not self.adam_state or self.config.optimizer != "adam":
            return
        size = tuple(param.shape[-2:])
        moments = {
            k: F.interpolate(self.adam_state[k], size=size, mode="bilinear", align_corners=False)
            for k in ("exp_avg", "exp_avg_sq")
        }
        moments["exp_avg_sq"] = moments["exp_avg_sq"].clamp_min(0)
        # The step count comes along: the moments are warm, so no new bias correction.
        optimizer.state[param] = {"step": self.adam_state["step"].clone(), **moments}
