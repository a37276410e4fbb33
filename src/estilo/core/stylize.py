"""The optimisation loop: the image is the only parameter (Gatys et al. 2016; the paper, §3).

``stylize`` takes content and style tensors already at their working size, builds the targets,
then repeats: evaluate the loss, step the optimiser, clip the image to [0, 1] (as the paper does
after every step), report an :class:`Iterate` to the callback. It keeps the image with the lowest
loss seen, so a divergence (NaN), a Ctrl-C or a callback's stop never loses the best result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError
from .config import StyleConfig
from .layers import layer_channels, layer_index, min_input_size
from .losses import StyleStatistic, content_loss, tv_loss, weighted_sum
from .registry import OPTIMIZERS, STYLE_LOSSES, lookup
from .vgg import VGG19Features, Weights, load_weights


@dataclass(frozen=True)
class LossRecord:
    """The losses at one iteration, already multiplied by their weights; seconds since start."""

    iteration: int
    seconds: float
    loss: float
    content: float
    style: float
    tv: float


@dataclass(frozen=True)
class Iterate(LossRecord):
    """What the callback sees each iteration. ``image`` (1, 3, H, W) is the image after the step;
    the losses are those of the image the step started from. Do not modify ``image``."""

    total: int = 0
    image: Tensor = field(default_factory=lambda: torch.empty(0), repr=False)


#: A callback may return True to stop the run early (the best image so far is kept).
Callback = Callable[[Iterate], bool | None]


@dataclass
class Result:
    """The outcome of a run. ``image`` (1, 3, H, W) is the lowest-loss image seen.

    ``best_iteration`` counts the steps taken to reach it (0: the initial image).
    ``status`` is ``completed``, ``stopped`` (by the callback), ``diverged`` (the loss became
    NaN or infinite) or ``interrupted`` (KeyboardInterrupt).
    """

    image: Tensor
    history: list[LossRecord]
    status: str
    best_iteration: int
    seconds: float


def pick_device(name: str) -> torch.device:
    """Resolve ``auto`` to the best available device; fail clearly if one is missing."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device {name!r} is not available on this machine (try --device cpu)")
    return torch.device(name)


class Objective:
    """Weighted content + style + TV loss of an image against fixed targets."""

    def __init__(self, net: VGG19Features, content: Tensor, style: Tensor, config: StyleConfig):
        self.net, self.config = net, config
        self.statistic: StyleStatistic = lookup(
            STYLE_LOSSES, config.style_loss, "style loss"
        ).load()
        self.layer_weights = style_layer_weights(config)
        with torch.no_grad():
            self.content_targets = {
                name: feats for name, feats in net(content).items() if name in config.content_layers
            }
            style_feats = net(style)
            self.style_targets = {
                name: self.statistic.represent(style_feats[name]) for name in config.style_layers
            }

    def __call__(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its weighted parts ``content``, ``style``, ``tv``."""
        cfg = self.config
        feats = self.net(image)
        content = torch.stack(
            [content_loss(feats[n], t) for n, t in self.content_targets.items()]
        ).mean()
        style = weighted_sum(
            [
                self.statistic.distance(self.statistic.represent(feats[n]), self.style_targets[n])
                for n in cfg.style_layers
            ],
            self.layer_weights,
        )
        parts = {
            "content": cfg.content_weight * content,
            "style": cfg.style_weight * style,
            "tv": cfg.tv_weight * tv_loss(image) if cfg.tv_weight else image.new_zeros(()),
        }
        return parts["content"] + parts["style"] + parts["tv"], parts


def style_layer_weights(config: StyleConfig) -> list[float]:
    """Per-layer style weights summing to 1: explicit, equal, or Gatys et al.'s reference
    ``1e3/N_l²`` rule (PytorchNeuralStyleTransfer, specs 1.5), which keeps the many-channel deep
    layers from drowning the shallow ones; its 1e3 lives in the default style weight."""
    if config.style_layer_weights:
        weights = list(config.style_layer_weights)
    elif config.layer_weighting == "gatys":
        weights = [1.0 / layer_channels(name) ** 2 for name in config.style_layers]
    else:
        weights = [1.0] * len(config.style_layers)
    return [w / sum(weights) for w in weights]


def initial_image(content: Tensor, config: StyleConfig, init: Tensor | None) -> Tensor:
    """The starting point: the content image, seeded uniform noise, or a given image."""
    if init is not None:
        return init.to(content)
    if config.init == "noise":
        generator = torch.Generator().manual_seed(config.seed)
        return torch.rand(content.shape, generator=generator).to(content)
    return content.clone()


def stylize(
    content: Tensor,
    style: Tensor,
    config: StyleConfig,
    *,
    init: Tensor | None = None,
    callback: Callback | None = None,
    weights: Weights | None = None,
) -> Result:
    """Optimise an image to match ``content``'s features and ``style``'s statistics.

    Args:
        content: (1, 3, H, W) RGB in [0, 1]; the output has its size.
        style: (1, 3, H', W') RGB in [0, 1].
        config: a checked :class:`StyleConfig`.
        init: (1, 3, H, W) starting image, overriding ``config.init``.
        callback: called after every iteration; returning True stops the run.
        weights: preloaded VGG19 weights (default: read ``config.weights``).
    """
    start = time.perf_counter()
    device = pick_device(config.device)
    layers = set(config.content_layers) | set(config.style_layers)
    smallest = min_input_size(layers)
    for what, tensor in (("content", content), ("style", style)):
        if min(tensor.shape[-2:]) < smallest:
            height, width = tensor.shape[-2:]
            raise ConfigError(
                f"the {what} image is {width}x{height} at this size; layer "
                f"{max(layers, key=layer_index)} needs at least {smallest} px on each side"
            )
    net = VGG19Features(weights or load_weights(config.weights), layers, config.pooling)
    net = net.to(device)
    content, style = content.to(device), style.to(device)
    objective = Objective(net, content, style, config)

    info = lookup(OPTIMIZERS, config.optimizer, "optimizer")
    scale = info.pixel_scale
    # The optimiser sees ``param`` = image x scale; see OptimizerInfo.pixel_scale.
    param = (initial_image(content, config, init) * scale).requires_grad_(True)
    optimizer = info.load()([param], config)
    best = _Best(param.detach() / scale)
    parts: dict[str, Tensor] = {}

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, evaluated = objective(param / scale)
        loss.backward()  # type: ignore[no-untyped-call]
        parts.update({k: v.detach() for k, v in evaluated.items()}, total=loss.detach())
        return loss

    history: list[LossRecord] = []
    status = "completed"
    try:
        for iteration in range(1, config.iterations + 1):
            optimizer.step(closure)
            record = LossRecord(
                iteration,
                time.perf_counter() - start,
                *(float(parts[k]) for k in ("total", "content", "style", "tv")),
            )
            history.append(record)
            if not math.isfinite(record.loss):
                status = "diverged"
                break
            # The loss was measured on the image before this step, which _Best holds.
            best.offer(record.loss, iteration - 1)
            with torch.no_grad():
                param.clamp_(0.0, scale)  # the paper's clip_0_1 after every step
            image = param.detach() / scale
            best.remember(image)
            if callback is not None and callback(
                Iterate(**vars(record), total=config.iterations, image=image)
            ):
                status = "stopped"
                break
        if status in ("completed", "stopped"):
            # The last step's image has not been evaluated yet; one forward pass settles
            # whether it beats the best so far (it usually does).
            with torch.no_grad():
                final = float(objective(param / scale)[0])
            if math.isfinite(final):
                best.offer(final, len(history))
    except KeyboardInterrupt:
        status = "interrupted"
    return Result(best.image(), history, status, best.iteration, time.perf_counter() - start)


class _Best:
    """Tracks the lowest-loss image and how many steps it had taken. The loss of an image is
    known only after the optimiser has stepped away from it, so the pre-step image is kept
    (``previous``) until its loss arrives."""

    def __init__(self, image: Tensor) -> None:
        self.previous = image
        self.best = self.previous
        self.loss = math.inf
        self.iteration = 0

    def offer(self, loss: float, iteration: int) -> None:
        if loss < self.loss:
            self.loss, self.iteration, self.best = loss, iteration, self.previous

    def remember(self, image: Tensor) -> None:
        self.previous = image

    def image(self) -> Tensor:
        return self.best.clamp(0.0, 1.0)
