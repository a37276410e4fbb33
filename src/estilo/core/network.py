"""The VGG19 a run optimises through, on its device and in its precision.

Building it copies the weights and moves them to the device, after the memory plan has decided
whether it recomputes activations. One still builds it once; a video's frames are many runs of
one size and one configuration, and :class:`NetworkCache` lets them share a single build.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from .config import StyleConfig
from .device import compute_dtype, pick_device
from .inputs import RunInputs
from .memory import MemoryPlan, plan
from .vgg import VGG19Features, Weights, load_weights


def used_layers(config: StyleConfig) -> set[str]:
    """Every layer the objective reads: content and style."""
    return set(config.content_layers) | set(config.style_layers)


@dataclass(frozen=True)
class Network:
    """The network on ``device``, and the memory plan that shaped it."""

    device: torch.device
    net: VGG19Features
    memory: MemoryPlan


def build_network(
    inputs: RunInputs,
    config: StyleConfig,
    weights: Weights | None = None,
    notify: Callable[[str], None] | None = None,
) -> Network:
    """The device, and the network on it in its precision, once the memory plan has decided
    whether it recomputes activations (or refused a run that cannot fit).

    Raises:
        ConfigError: a device this machine lacks, or a run that would not fit in its memory.
    """
    device = pick_device(config.device)
    autocast = compute_dtype(config.precision, device)
    style_sizes = [(s.shape[-2], s.shape[-1]) for s in inputs.styles]
    memory = plan(config, inputs.size, style_sizes, device, autocast is not None, notify)
    net = VGG19Features(
        weights or load_weights(config.weights),
        used_layers(config),
        config.pooling,
        autocast=autocast,
        recompute=memory.recompute,
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # sizes are fixed per scale: tune once, reuse
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return Network(device, net.to(device), memory)


class NetworkCache:
    """Keeps the last network built and hands it to the next run that would build the same
    one, so that a video's frames load the weights and move them to the device once, not once
    a frame. A run whose network would differ (other layers, pooling, weights file, device,
    precision, or sizes, which decide the memory plan) gets a new one, which replaces it."""

    def __init__(self) -> None:
        self._key: Hashable = None
        self._network: Network | None = None

    def get(
        self,
        inputs: RunInputs,
        config: StyleConfig,
        weights: Weights | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> Network:
        key = (
            config.weights,
            config.content_layers,
            config.style_layers,
            config.pooling,
            config.optimizer,  # its state counts in the memory plan
            config.device,
            config.precision,
            config.recompute,
            inputs.size,
            tuple((s.shape[-2], s.shape[-1]) for s in inputs.styles),
        )
        if self._network is None or key != self._key:
            self._network, self._key = build_network(inputs, config, weights, notify), key
        return self._network
