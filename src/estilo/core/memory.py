"""How much memory a run will need, known before it starts.

A 2048 px run needs about 10 GiB; a machine without it would otherwise swap or kill the process
minutes in, losing the work. ``plan`` estimates the peak from the layers, sizes, precision and
optimiser, compares it with the memory free on the device, switches to recomputing activations
(checkpointing, Chen et al. 2016) when only that fits, and otherwise refuses with the numbers.

The model counts what autograd keeps for the backward pass: every ReLU output (the next conv's
input), max-pooling's int64 indices, the float32 copies of requested features, the targets, the
optimiser's image-sized buffers and the weights. ``OVERHEAD`` covers what it does not count
(allocator slack, temporary buffers in the losses); ``benchmarks/memory.py`` prints estimate and
measured peak side by side, and a test holds them within 25%.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from ..errors import ConfigError
from .config import StyleConfig
from .layers import LAYER_NAMES, layer_channels, layer_index, min_input_size
from .pyramid import held
from .registry import OPTIMIZERS, STYLE_LOSSES
from .tiles import in_tiles, tile_margin

GIB = 2**30
#: Measured peak over the counted bytes (benchmarks/memory.py, CPU, 512-2048 px).
OVERHEAD = 1.15
#: What a first pass allocates whatever the size: autograd's engine, convolution workspaces.
RUNTIME = 100 * 2**20
#: The tile sizes ``tile = auto`` tries, largest first: bigger tiles waste less on margins.
TILE_SIZES = (2048, 1024, 512, 256)


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak bytes with stored and with recomputed activations, the bytes free (None
    where unknown), whether the run recomputes, and the tile size of a tiled run (None: whole
    images) with its estimated peak."""

    stored: int
    recomputed: int
    free: int | None
    recompute: bool
    tile: int | None = None
    tiled: int = 0

    @property
    def estimate(self) -> int:
        if self.tile is not None:
            return self.tiled
        return self.recomputed if self.recompute else self.stored


def _feature_bytes(
    size: tuple[int, int], config: StyleConfig, element: int, recompute: bool
) -> tuple[int, int]:
    """(bytes autograd keeps through the backward pass, largest single feature map)."""
    layers = frozenset(config.content_layers) | frozenset(config.style_layers)
    height, width = size
    block_input = 3 * height * width * element  # the preprocessed image, the first conv's input
    inputs = requested = copies = largest = block = inside = 0
    blocks: list[int] = []
    for name in LAYER_NAMES[: max(layer_index(n) for n in layers) + 1]:
        channels = layer_channels(name)
        if name.startswith("pool"):
            height, width = height // 2, width // 2
            indices = channels * height * width * 8 if config.pooling == "max" else 0
            # Recomputing a block rebuilds all of it but its requested maps, which stay.
            blocks.append(block + indices - inside)
            inputs += block_input
            block_input, block, inside = channels * height * width * element, 0, 0
            continue
        feature = channels * height * width * element
        largest = max(largest, feature)
        if name.startswith("relu") or name in layers:  # relu outputs and kept conv outputs
            block += feature
        if name in layers:
            requested += feature
            inside += feature
            copies += feature * 4 // element if element != 4 else 0  # float32 for the losses
    blocks.append(block - inside)
    inputs += block_input
    if recompute:
        # Block inputs and the features the losses hold stay (in bfloat16 only their float32
        # copies: the cast back needs no input); one block at a time is rebuilt.
        held = copies if element != 4 else requested
        return inputs + held + max(blocks), largest
    return inputs + requested + copies + sum(blocks), largest


def estimate(
    config: StyleConfig,
    size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    *,
    autocast: bool,
    recompute: bool,
    tile: int | None = None,
) -> int:
    """Peak bytes of a run at ``size`` (H, W) on top of what the process already holds; with
    ``tile``, of a run in tiles of that many pixels (``core/tiled.py``): activations for one
    tile's window, the image-sized buffers for the whole image."""
    layers = frozenset(config.content_layers) | frozenset(config.style_layers)
    element = 2 if autocast else 4
    window, styles, extra = size, list(style_sizes), 0
    if tile is not None:
        margin, _ = tile_margin(layers)
        side = tile + 2 * margin
        window = (min(size[0], side), min(size[1], side))
        # The image the sweep reads, a copy unless the optimiser sees pixels on [0, 1] (the
        # gradient it adds the tiles' into becomes the parameter's, already counted).
        extra = 0 if OPTIMIZERS[config.optimizer].pixel_scale == 1 else 1
        if STYLE_LOSSES[config.style_loss].load().moments is not None:
            styles = [(min(h, side), min(w, side)) for h, w in style_sizes]  # tiled, summed
    saved, largest = _feature_bytes(window, config, element, recompute)
    pixels = 3 * size[0] * size[1] * 4
    # The optimiser's buffers, and the best image the loop keeps as 16-bit integers, half an
    # image (and the moving average, with ema).
    loop = 0.5 + (1 if config.ema else 0)
    # A scale that holds the picture painted so far keeps its content blend beside the photo.
    blend = 1 if held(config, size) else 0
    images = round((OPTIMIZERS[config.optimizer].buffers + loop + extra + blend) * pixels)
    # A content target is 1/stride² the image's positions; stride = min_input_size of its layer.
    # In tiles none is held: each tile recomputes its own.
    targets = (
        0
        if in_tiles(size, tile)
        else sum(
            layer_channels(n) * size[0] * size[1] * 4 // min_input_size([n]) ** 2
            for n in config.content_layers
        )
    )
    style_pass = max(2 * _feature_bytes(s, config, element, False)[1] for s in styles)
    weights = _weight_bytes(layers) * (3 if autocast else 2) // 2
    during_backward = saved + 2 * largest + images
    return round(OVERHEAD * (RUNTIME + weights + targets + max(style_pass, during_backward)))


def _weight_bytes(layers: frozenset[str]) -> int:
    last = max(layer_index(name) for name in layers)
    total, channels = 0, 3
    for name in LAYER_NAMES[: last + 1]:
        if name.startswith("conv"):
            out = layer_channels(name)
            total += (out * channels * 9 + out) * 4
            channels = out
    return total


def free_bytes(device: torch.device) -> int | None:
    """Memory this process could still take on ``device``; None where it cannot be known."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "mps":
        # Apple silicon's GPU shares the system's memory. Metal's recommended working set is
        # the most one process should hold before it slows down; what the driver holds already
        # (tensors, MPS's cached pools, MPSGraph's buffers) is taken off, erring towards less.
        room = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        return min(room, system_available())
    return system_available() if device.type == "cpu" else None


def system_available() -> int:
    """Bytes a new allocation can have without swapping (psutil: MemAvailable on Linux, free
    plus inactive pages on macOS, available physical memory on Windows), within a container's
    cgroup limit."""
    available = int(psutil.virtual_memory().available)
    limit = _cgroup_room()
    return available if limit is None else min(available, limit)


def peak_resident() -> int:
    """This process's peak resident memory in bytes. On Linux from ``VmHWM``: ``ru_maxrss``
    survives ``exec``, so a child started by a big parent (pytest, an experiment runner) would
    report the parent's peak instead of its own. Windows has no ``resource`` module: its peak
    working set comes from psutil."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    if sys.platform == "win32":
        return int(psutil.Process().memory_info().peak_wset)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes


def _cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (containers, CI runners), if there is one."""
    folder = Path("/sys/fs/cgroup")
    try:
        limit = (folder / "memory.max").read_text().strip()
        used = int((folder / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used


def plan(
    config: StyleConfig,
    size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    device: torch.device,
    autocast: bool,
    notify: Callable[[str], None] | None = None,
) -> MemoryPlan:
    """Decide whether to recompute activations and whether to work in tiles; refuse a run that
    cannot fit. ``tile = auto`` tiles only when neither stored nor recomputed activations fit.

    Raises:
        ConfigError: no way fits in the free memory; names both numbers and a size that
            would fit.
    """
    stored = estimate(config, size, style_sizes, autocast=autocast, recompute=False)
    recomputed = estimate(config, size, style_sizes, autocast=autocast, recompute=True)
    free = free_bytes(device)
    if config.recompute != "auto":
        recompute = config.recompute == "on"
    else:
        recompute = free is not None and stored > free
    result = MemoryPlan(stored, recomputed, free, recompute)
    # In tiles the tile is chosen to fit without recomputing.
    tiled_recompute = config.recompute == "on"

    def tiled(tile: int) -> int:
        return estimate(
            config, size, style_sizes, autocast=autocast, recompute=tiled_recompute, tile=tile
        )

    tile = _tile(config, size, result, tiled)
    if tile is not None:
        recompute = tiled_recompute
        result = MemoryPlan(stored, recomputed, free, recompute, tile, tiled(tile))
    if free is not None and result.estimate > free:
        fits = int(config.size * math.sqrt(free / result.estimate) * 0.95)
        where = "" if tile is None else f" in tiles of {tile} px"
        raise ConfigError(
            f"this run needs about {result.estimate / GIB:.1f} GiB{where} but "
            f"{free / GIB:.1f} GiB is free on {device.type}; try size = {max(16, fits // 16 * 16)}"
            + ("" if recompute or tile is not None else " or recompute = on")
        )
    if notify is not None and tile is not None:
        notify(
            f"memory: tiles of {tile} px for every scale larger than that, about "
            f"{result.tiled / GIB:.1f} GiB at the peak (whole images: {stored / GIB:.1f} GiB"
            + ("" if free is None else f", {free / GIB:.1f} GiB free on {device.type}")
            + ")"
        )
    elif notify is not None and free is not None and recompute and config.recompute == "auto":
        notify(
            f"memory: about {stored / GIB:.1f} GiB needed, {free / GIB:.1f} GiB free "
            f"on {device.type}; recomputing activations instead "
            f"(about {recomputed / GIB:.1f} GiB, slower)"
        )
    return result


def _tile(
    config: StyleConfig,
    size: tuple[int, int],
    untiled: MemoryPlan,
    tiled: Callable[[int], int],
) -> int | None:
    """The tile size: the one asked for, or under ``auto`` when the whole image does not fit,
    the largest of TILE_SIZES that fits (the smallest when none does: the plan then refuses).
    None: whole images (a tile as large as the image is no tile, and an image smaller than
    every tile is refused whole)."""
    if config.tile == "off":
        return None
    if config.tile != "auto":
        return int(config.tile) if int(config.tile) < max(size) else None
    free = untiled.free
    if free is None or untiled.estimate <= free:
        return None
    candidates = [t for t in TILE_SIZES if t < max(size)]
    for tile in candidates:
        if tiled(tile) <= free:
            return tile
    return candidates[-1] if candidates else None
