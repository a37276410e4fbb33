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
    float32's 0.51), so the CPU default stays float32 and bfloat16 is opt-in there. Otherwise
    the same rule as a trained network's (``inference_dtype``)."""
    if config.precision == "auto" and device.type == "cpu":
        return None
    return inference_dtype(config.precision, device)


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """A trained network's arithmetic (fast mode): bfloat16 when asked for, or by default on a
    CUDA GPU that has it and on a CPU with native bfloat16 instructions (AVX512-BF16 or AMX);
    None: float32.

    Unlike the optimiser's (``autocast_dtype``), auto picks bfloat16 on such a CPU: a forward
    pass has no gradients to amplify the rounding, and on a trained network the picture moved
    by 0.0016 on average (0.015 at most) with the same grain, 2.3x faster (BENCHMARKS.md, fast
    mode). Where bfloat16 would be emulated it is slower, so auto stays float32 there."""
    if precision != "auto":
        return torch.bfloat16 if precision == "bfloat16" else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and native_cpu_bfloat16() else None


def native_cpu_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles); torch names
    the checks privately, so a torch without them counts as no."""
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    return any(check is not None and bool(check()) for check in checks)


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
