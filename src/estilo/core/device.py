"""Where a run computes and in what precision: the device, bfloat16 autocast, TF32 products."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import ConfigError


def pick_device(name: str) -> torch.device:
    """Resolve ``auto`` to the best available device; fail clearly if one is missing."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device {name!r} is not available on this machine (try device = cpu)")
    return torch.device(name)


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The arithmetic of VGG19 (the optimiser's loss network) and of a trained network:
    bfloat16 when asked for, or with ``auto`` on a CUDA GPU that has it and on a CPU with
    native bfloat16 instructions (AVX512-BF16 or AMX); None: float32.

    A departure from the paper (float32 throughout; its preset asks for float32). For the
    optimiser the convolutions run under bfloat16 autocast with the statistics and losses in
    float32; measured by the independent yardstick (``estilo.quality``) on the eight benchmark
    pairs, a 2-core AVX512-BF16 CPU paints 1.6x faster per iteration, the coarse SSIM and the
    independent style distance within 3% of float32's (one pair 4.6% nearer the painting),
    the same grain, and no speckle at 1:1 or 3x (docs/quality.md, eleventh run). That CPU
    default was float32 from 2026-11-28 until then: with the single-scale Gram default of the
    time, bfloat16 lost one photo's layout (coarse SSIM 0.36 against 0.51), while the eleventh run's
    default (smoothness term, wasserstein, coarse to fine) keeps it (0.617 against 0.614). On an
    H200, 1.2-1.3x faster (1.3-1.5x with TF32 products), distances within float32's run-to-run
    spread. A trained network's one forward pass: 2.3x faster on that CPU, the picture within
    0.002 on average (BENCHMARKS.md, fast mode). Where bfloat16 would be emulated it is
    slower, so ``auto`` stays float32 there."""
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
