"""Optical flow on the input frames, and what follows from it (Ruder et al. 2016, §3 and §4).

The flow is OpenCV's DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse Search"):
no model weights, and fast on a CPU. Departure: Ruder et al. used DeepFlow and EpicFlow,
external binaries taking minutes a frame; DIS is coarser at motion boundaries, which the
consistency check below marks as unreliable anyway.

Flows are (2, H, W) tensors in pixels, (dx, dy). ``backward`` for frame t points from each
pixel of frame t to where it was in frame t-1, so the previous stylised frame is brought into
frame t by sampling it there (:func:`warp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _grey(frame: Tensor) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """(3, H, W) in [0, 1] -> (H, W) uint8 luma, what DIS reads."""
    luma = torch.einsum("c,chw->hw", torch.tensor([0.299, 0.587, 0.114]), frame.float().cpu())
    return np.ascontiguousarray(luma.mul(255).round().clamp(0, 255).byte().numpy())


def optical_flow(source: Tensor, target: Tensor) -> Tensor:
    """Dense flow (2, H, W) from ``source`` to ``target`` ((3, H, W) frames in [0, 1]): the
    pixel x of ``source`` is at x + flow(x) in ``target``."""
    import cv2  # the video extra; estilo.video checks that it is there

    dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
    first, second = _grey(source), _grey(target)
    flow = dis.calc(first, second, np.zeros((*first.shape, 2), np.float32))
    return torch.from_numpy(np.asarray(flow, np.float32)).permute(2, 0, 1).contiguous()


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warping: out(x) = image(x + flow(x)), bilinear, edges repeated.

    ``image`` (C, H, W), ``flow`` (2, H, W) on the same grid."""
    _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype),
        torch.arange(width, dtype=flow.dtype),
        indexing="ij",
    )
    # grid_sample wants positions in [-1, 1], corner pixels' centres at the ends.
    x = (xs + flow[0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1)[None].to(image.device, image.dtype)
    return F.grid_sample(
        image[None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )[0]


def reliable(forward: Tensor, backward: Tensor) -> Tensor:
    """(1, H, W): 1 where the backward flow can be trusted, 0 at disocclusions and motion
    boundaries, Ruder et al. 2016's two tests (their eq. 3 and 4, constants theirs):

    - forward-backward consistency: the forward flow w brought back along the backward flow
      ŵ should cancel it, |w̃ + ŵ|² ≤ 0.01 (|w̃|² + |ŵ|²) + 0.5;
    - no motion boundary: |∇û|² + |∇v̂|² ≤ 0.01 |ŵ|² + 0.002.

    ``forward`` goes from frame t-1 to t, ``backward`` from t to t-1, both (2, H, W)."""
    brought = warp(forward, backward)
    square = (brought + backward).pow(2).sum(0)
    consistent = square <= 0.01 * (brought.pow(2).sum(0) + backward.pow(2).sum(0)) + 0.5
    dx = F.pad(backward[:, :, 1:] - backward[:, :, :-1], (0, 1))
    dy = F.pad(backward[:, 1:, :] - backward[:, :-1, :], (0, 0, 0, 1))
    gradient = dx.pow(2).sum(0) + dy.pow(2).sum(0)
    smooth = gradient <= 0.01 * backward.pow(2).sum(0) + 0.002
    return (consistent & smooth).float()[None]


@dataclass(frozen=True)
class Motion:
    """How frame t follows from frame t-1: the backward flow (2, H, W) and where it holds
    (1, H, W), both computed on the input frames."""

    backward: Tensor
    mask: Tensor

    def warp(self, image: Tensor) -> Tensor:
        """Frame t-1's (stylised) picture (3, H, W) brought into frame t."""
        return warp(image, self.backward.to(image.device))


def motion(previous: Tensor, frame: Tensor) -> Motion:
    """The :class:`Motion` from input frame ``previous`` to ``frame`` ((3, H, W) each)."""
    backward = optical_flow(frame, previous)
    return Motion(backward, reliable(optical_flow(previous, frame), backward))


def warping_error(outputs: Sequence[Tensor], inputs: Sequence[Tensor]) -> float:
    """Lai et al. 2018's warping error of a stylised clip: for each frame, the squared RGB
    distance to the previous output frame warped by the *input's* flow, averaged over the
    pixels the flow can follow; then averaged over the frames. Lower is steadier.

    ``outputs`` and ``inputs`` are (3, H, W) frames in [0, 1] of one size. Lai et al. measured
    with FlowNet2's flow and its occlusion test; here DIS and :func:`reliable`."""
    if len(outputs) != len(inputs) or len(outputs) < 2:
        raise ValueError("the warping error needs two or more frames, one output per input")
    errors = []
    for t in range(1, len(outputs)):
        step = motion(inputs[t - 1], inputs[t])
        squared = (outputs[t] - step.warp(outputs[t - 1])).pow(2).sum(0, keepdim=True)
        errors.append(float((step.mask * squared).sum() / step.mask.sum().clamp_min(1)))
    return sum(errors) / len(errors)
