"""The registries of optimisers and style losses: one line per entry, no torch import.

Each entry names its implementation as ``"module:function"`` inside ``estilo.core`` and is
imported only when used, so the CLI can list choices (and answer ``--help``) without importing
torch. The CLI choices, the README tables, the web menus and the parametrised tests all read
these dicts; adding an optimiser or a loss is one function plus one line here.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """A registered implementation, imported on first use."""

    name: str
    summary: str
    impl: str  # "module:function", relative to estilo.core

    def load(self) -> Any:
        """The implementation: a builder function or a StyleStatistic."""
        module, _, attr = self.impl.partition(":")
        return getattr(importlib.import_module(f"estilo.core.{module}"), attr)


@dataclass(frozen=True)
class OptimizerInfo(Entry):
    """An optimiser of the image.

    ``pixel_scale`` is the range the optimiser sees pixels in: [0, pixel_scale]. L-BFGS takes its
    first step with length 1/|g|₁, which is only sensible on the 0-255 scale that Caffe-era code
    (Gatys et al.'s reference) optimised in; on [0, 1] that step is 255 times too long and the
    run never recovers (measured: loss x600 after 3 steps). First-order optimisers keep [0, 1],
    where the paper's learning rates are defined (docs/method.md §3.1).

    ``warm_start``: its state is per-pixel running averages (moments), which a new scale of the
    pyramid takes over resized instead of starting cold (``optim.warm_start``). L-BFGS's
    curvature pairs belong to one resolution, and plain SGD keeps no state.
    """

    default_lr: float = 0.01
    pixel_scale: float = 1.0
    warm_start: bool = False
    #: Its step is the raw gradient times the rate, so the rate that works depends on the style
    #: loss's gradient: ``default_lr`` is gram's, times the loss's ``sgd_scale`` (LossInfo).
    raw_gradient: bool = False
    #: Image-sized float32 buffers it holds (parameter and gradient included): its memory cost.
    buffers: int = 4


#: Curvature pairs L-BFGS keeps (PyTorch's default is 100; two image-sized vectors per pair make
#: it the largest memory cost of a big run, and 50 converged as well on the demo).
LBFGS_HISTORY = 50


@dataclass(frozen=True)
class LossInfo(Entry):
    """A style or content loss. ``source`` cites where it comes from.

    ``weight`` multiplies ``style_weight`` (or ``content_weight``) so that switching the loss
    needs no retuning: a style loss's makes the loss of the content image against the demo style
    equal to gram's at 512 px, a content loss's makes the painting's content term equal to
    mse's (both measured by ``benchmarks/calibrate.py``; the README gallery shows the result),
    except wasserstein's, chosen by eye because that rule over-stylised (README, "Style
    representations").
    """

    source: str = ""
    weight: float = 1.0
    #: How much larger a raw-gradient optimiser's (SGD's) default rate is with this style loss
    #: than with gram: its gradients at the default weights are that much smaller.
    sgd_scale: float = 1.0


OPTIMIZERS: dict[str, OptimizerInfo] = {
    info.name: info
    for info in (
        # default_lr: each lowers the loss under the default preset (tests/test_stylize.py;
        # README, "Options"). The paper preset sets its own 0.01 for every optimiser.
        # Adam and Adamax: the paper's 0.01 (their steps are scale-free).
        OptimizerInfo(
            "adam",
            "Adam (Kingma & Ba 2015), the paper's choice",
            "optim:build_adam",
            warm_start=True,
        ),
        OptimizerInfo(
            "adamax",
            "Adamax, Adam under the infinity norm",
            "optim:build_adamax",
            warm_start=True,
        ),
        # Adadelta: 1, Zeiler's algorithm, which has no learning rate (0.01 moved the loss by 1%
        # in 15 iterations at 64 px; 1 lowered it 2.4x).
        OptimizerInfo(
            "adadelta",
            "Adadelta (Zeiler 2012)",
            "optim:build_adadelta",
            default_lr=1.0,
            warm_start=True,
        ),
        # SGD's step is the raw gradient times lr, and the default weights put the loss near
        # 1e8: 0.01 diverged (1.1e8 -> 1.9e11 in 15 iterations at 64 px). The stable rate grows
        # with the pixel count (the losses are means over positions): 1e-8 lowers the loss 5x
        # at 64 px and 7% at 512 px, where 1e-7 is faster (measured on the demo pair, gram).
        OptimizerInfo(
            "sgd",
            "plain gradient descent, no momentum",
            "optim:build_sgd",
            default_lr=1e-8,
            buffers=2,
            raw_gradient=True,
        ),
        # L-BFGS: 1, since its curvature estimate already scales the step. Its buffers: the
        # curvature pairs, PyTorch's working vectors, and the point the overshoot guard keeps
        # (optim.GuardedLBFGS).
        OptimizerInfo(
            "lbfgs",
            "L-BFGS, no line search (Gatys et al. 2016's choice), overshoots shortened",
            "optim:build_lbfgs",
            default_lr=1.0,
            pixel_scale=255.0,
            buffers=2 * LBFGS_HISTORY + 7,
        ),
    )
}

STYLE_LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo(
            "gram",
            "Gram matrices (uncentred second moments)",
            "losses:gram_loss",
            source="Gatys et al. 2016",
        ),
        LossInfo(
            "mmd-linear",
            "MMD, linear kernel: channel means only",
            "losses:mmd_linear_loss",
            source="Li et al. 2017",
            weight=4.5e5,
        ),
        LossInfo(
            "mmd-poly",
            "MMD, kernel (xᵀy + c)², c = 0: gram as a kernel",
            "losses:mmd_poly_loss",
            source="Li et al. 2017",
        ),
        LossInfo(
            "mmd-gaussian",
            "MMD, Gaussian kernel on 1024 sampled positions",
            "losses:mmd_gaussian_loss",
            source="Li et al. 2017",
            weight=1.5e10,
        ),
        LossInfo(
            "meanstd",
            "per-channel mean and standard deviation (BN statistics)",
            "losses:meanstd_loss",
            source="Li et al. 2017",
            weight=2.6e5,
        ),
        LossInfo(
            "wasserstein",
            "Gaussian 2-Wasserstein: means and covariances",
            "losses:wasserstein_loss",
            source="Dowson & Landau 1982; crowsonkb",
            weight=3e3,
            # SGD at gram's 1e-8 moved the loss 2% in 12 steps (tests' 48x64 pair); 1e-6 lowered
            # it 35% on the demo pair at 64 px and 12% at 256 px, 1e-4 diverged at 64 px.
            sgd_scale=100.0,
        ),
        LossInfo(
            "sliced-wasserstein",
            "sliced Wasserstein: sorted random projections",
            "losses:sliced_wasserstein_loss",
            source="Heitz et al. 2021",
            weight=2.8e5,
        ),
        # nnst: the rule gives 2.0e9 since its neighbours are chosen for the photo; 1.7e9 is
        # the weight its benchmark pictures were measured at (docs/quality.md, thirteenth run).
        LossInfo(
            "nnst",
            "neural neighbours: the picture pulled to the style hypercolumns nearest the photo's",
            "losses:nnst_loss",
            source="Kolkin et al. 2022",
            weight=1.7e9,
        ),
    )
}


CONTENT_LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo(
            "mse",
            "mean squared error of the features: the photo's features, exactly",
            "objective:FeatureContent",
            source="Gatys et al. 2016",
        ),
        LossInfo(
            "self-similarity",
            "the features' self-similarity: the layout, with colours and textures free",
            "objective:SelfSimilarityContent",
            source="Kolkin et al. 2019 (STROTSS)",
            weight=3.3e6,
        ),
    )
}


T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return ``registry[name]`` or raise a one-line error listing the valid names."""
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, registry, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown {what} {name!r}{hint}; choose from {', '.join(registry)}")
