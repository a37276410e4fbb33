"""Where a run computes and in what precision: the device, bfloat16 autocast, TF32 products."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import ConfigError
from .config import StyleConfig


def pick_device(name: str) -> torch.device:
    """Resolve ``auto`` to the best available device; fail clearly if one is missing."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device {name!r} is not available on this machine (try device = cpu)")
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
def tf32_products(device: torch.device, enabled: bool) -> Iterator[None]:
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
