"""Tiled optimisation (issue 14): the tiles' features are the whole image's, the tiled gradient
is the untiled one for the statistics that are sums over positions, a tiled run gives the
untiled run's picture without tile borders, and the memory plan tiles only when it must."""

from __future__ import annotations

import pytest
import torch

from estilo.core import memory, tiled
from estilo.core.config import resolve
from estilo.core.inputs import RunInputs
from estilo.core.objective import Objective
from estilo.core.registry import STYLE_LOSSES
from estilo.core.stylize import stylize
from estilo.core.tiled import TiledObjective
from estilo.core.tiles import receptive_reach, tile_grid, tile_margin
from estilo.core.vgg import VGG19Features, Weights
from estilo.errors import ConfigError

from .conftest import synthetic_content, synthetic_style

#: Layers up to relu3_1 reach 10 px (margin 12): at 96 px, 32 px tiles have windows inside the
#: image on every side, so the margins are really tested.
SHALLOW = {"style_layers": ("relu1_1", "relu2_1", "relu3_1"), "content_layers": ("relu2_2",)}
SUMMED = ["gram", "mmd-linear", "mmd-poly", "meanstd", "wasserstein"]


def test_the_margin_covers_the_deepest_layers_receptive_field() -> None:
    # relu5_1: a 156 px receptive field, 16 px apart: 70 px beyond its own stride, 80 rounded.
    assert receptive_reach(["relu5_1"]) == (70, 16)
    assert tile_margin(["relu1_1", "relu4_2", "relu5_1"]) == (80, 16)
    assert tile_margin(SHALLOW["style_layers"]) == (12, 4)


def test_the_tiles_interiors_cover_the_image_once_inside_aligned_windows() -> None:
    size = (100, 70)
    tiles = tile_grid(size, 30, 12, 4)  # 30 rounds down to 28
    seen = torch.zeros(size, dtype=torch.int64)
    for tile in tiles:
        top, bottom, left, right = tile.interior
        seen[top:bottom, left:right] += 1
        wtop, wbottom, wleft, wright = tile.window
        assert 0 <= wtop <= top and bottom <= wbottom <= size[0]
        assert 0 <= wleft <= left and right <= wright <= size[1]
        assert wtop % 4 == 0 and wleft % 4 == 0 and top % 28 == 0 and left % 28 == 0
        assert wtop in (0, top - 12) and wbottom in (size[0], bottom + 12)
    assert bool((seen == 1).all())
    # The 70 px side: 0-28, 28-56, and 56-70 (14 px, more than one stride: kept).
    assert sorted({t.interior[2:] for t in tiles}) == [(0, 28), (28, 56), (56, 70)]
    # A last sliver narrower than one stride joins the piece before it.
    assert [t.interior[:2] for t in tile_grid((58, 16), 28, 12, 4)] == [(0, 28), (28, 58)]


def gradients(
    weights: Weights, tile: int, masked: bool = False, **options: object
) -> tuple[tuple[float, torch.Tensor], tuple[float, torch.Tensor]]:
    """(loss, gradient) of the untiled and the tiled objective at one 96 px image."""
    config = resolve(device="cpu", **options)  # type: ignore[arg-type]
    net = VGG19Features(weights, set(config.content_layers) | set(config.style_layers))
    content = synthetic_content(96, 96)[None]
    styles = [synthetic_style(80, 80)[None], synthetic_style(64, 96)[None].flip(-1)]
    mask = (torch.arange(96) < 40).float().view(1, 1, 1, 96).expand(1, 1, 96, 96)
    inputs = RunInputs.make(
        content, styles if masked else styles[:1], masks=[None, mask] if masked else None
    )
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    image = (content + 0.1 * noise).clamp(0, 1)
    results = []
    for objective in (Objective(net, inputs, config), TiledObjective(net, inputs, config, tile)):
        torch.manual_seed(0)
        param = image.clone().requires_grad_(True)
        loss, _ = objective.gradient(param, 1.0)
        assert param.grad is not None
        results.append((float(loss.detach()), param.grad))
    return results[0], results[1]


def relative_error(tiled: torch.Tensor, whole: torch.Tensor) -> float:
    return float((tiled - whole).norm() / whole.norm())


def gradient_tolerance(style_loss: str) -> float:
    """How close a tiled gradient must come: wasserstein's eigenvalues amplify float32 rounding
    (the tiled moments are float64); the others are exact to it."""
    return 1e-3 if style_loss == "wasserstein" else 1e-5


@pytest.mark.parametrize("style_loss", SUMMED)
def test_the_tiled_gradient_is_the_untiled_one_for_summed_statistics(
    weights: Weights, style_loss: str
) -> None:
    (loss, grad), (tiled_loss, tiled_grad) = gradients(
        weights, 32, style_loss=style_loss, **SHALLOW
    )
    assert tiled_loss == pytest.approx(loss, rel=1e-5)
    assert relative_error(tiled_grad, grad) < gradient_tolerance(style_loss)


@pytest.mark.parametrize("style_loss", ["gram", "wasserstein"])
def test_the_tiled_gradient_is_exact_with_masks_and_the_default_layers(
    weights: Weights, style_loss: str
) -> None:
    (loss, grad), (tiled_loss, tiled_grad) = gradients(
        weights, 32, masked=True, style_loss=style_loss
    )
    assert tiled_loss == pytest.approx(loss, rel=1e-5)
    assert relative_error(tiled_grad, grad) < gradient_tolerance(style_loss)


def test_the_tiled_gradient_holds_the_layout_term_exactly(weights: Weights) -> None:
    # The layout term is computed on the whole image, beside the tiles: still the untiled
    # gradient, and one it changes.
    options = {"style_loss": "gram", **SHALLOW}
    (loss, grad), (tiled_loss, tiled_grad) = gradients(weights, 32, layout_weight=1e10, **options)
    (_, without), _ = gradients(weights, 32, **options)
    assert tiled_loss == pytest.approx(loss, rel=1e-5)
    assert relative_error(tiled_grad, grad) < 1e-5
    assert relative_error(without, grad) > 1e-2


def test_a_margin_short_of_the_receptive_field_breaks_the_gradient(
    weights: Weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the exactness test: what the margin buys.
    monkeypatch.setattr(tiled, "tile_margin", lambda layers: (4, 4))
    (_, grad), (_, tiled_grad) = gradients(weights, 32, **SHALLOW)
    assert relative_error(tiled_grad, grad) > 1e-2


#: Statistics that are not sums over positions: tiled as a departure, or (anchored) refused.
STATISTICS = {name: info.load() for name, info in STYLE_LOSSES.items()}
NOT_SUMS = {name: s for name, s in STATISTICS.items() if s.moments is None}


@pytest.mark.parametrize("style_loss", [n for n, s in NOT_SUMS.items() if s.anchor is None])
def test_losses_that_are_not_sums_are_matched_tile_by_tile(
    weights: Weights, style_loss: str
) -> None:
    # Each tile against the whole style's target: a loss of the same size, a gradient that
    # points the same way (BENCHMARKS.md gives the figures).
    (loss, grad), (tiled_loss, tiled_grad) = gradients(
        weights, 32, style_loss=style_loss, **SHALLOW
    )
    assert 0.5 < tiled_loss / loss < 2
    assert bool(torch.isfinite(tiled_grad).all())
    assert float(torch.cosine_similarity(tiled_grad.flatten(), grad.flatten(), dim=0)) > 0.3


@pytest.mark.parametrize(
    "option",
    [{"content_loss": "self-similarity"}]
    + [{"style_loss": n} for n, s in NOT_SUMS.items() if s.anchor is not None],
)
def test_losses_of_whole_image_positions_are_refused_in_tiles(
    weights: Weights, option: dict[str, str]
) -> None:
    config = resolve(device="cpu", **option)
    net = VGG19Features(weights, set(config.content_layers) | set(config.style_layers))
    inputs = RunInputs.make(synthetic_content()[None], synthetic_style()[None])
    with pytest.raises(ConfigError, match="cannot be tiled: use tile = off"):
        TiledObjective(net, inputs, config, 32)


def run(weights: Weights, tile: str, **options: object) -> torch.Tensor:
    config = resolve(
        device="cpu",
        # float32: the tiles' arithmetic is compared with the whole image's to float32 rounding;
        # bfloat16 (auto's choice on a CPU that has it) rounds each window's sums its own way.
        precision="float32",
        scales=1,
        optimizer="adam",
        lr=0.02,
        iterations=8,
        log_every=0,
        tolerance=0.0,
        tile=tile,
        **options,  # type: ignore[arg-type]
    )
    content = synthetic_content(96, 96)[None]
    result = stylize(
        RunInputs.make(content, synthetic_style(80, 80)[None]), config, weights=weights
    )
    assert result.memory is not None
    assert result.memory.tile == (None if tile == "off" else int(tile))
    return result.image


@pytest.mark.parametrize("style_loss", ["gram", "wasserstein"])
def test_a_tiled_run_gives_the_untiled_runs_picture(weights: Weights, style_loss: str) -> None:
    # Without the layout term: its tiled gradient is exact (above), but Adam's steps, the sign
    # of the gradient where it is near zero, make any rounding a step here and there.
    options = {**SHALLOW, "style_loss": style_loss, "layout_weight": 0.0}
    whole, tiled_image = run(weights, "off", **options), run(weights, "32", **options)
    difference = (tiled_image - whole).abs()
    if style_loss == "gram":  # exact to float32 rounding
        assert float(difference.max()) < 1e-3
    else:
        # Gradients agree to 4e-4 (above); Adam's steps are the gradient's sign where it is
        # near zero, so a few pixels part by a step or two, the picture as a whole does not.
        assert float(difference.mean()) < 1e-3
        assert float((difference > 1e-2).float().mean()) < 0.01
    assert float((whole - synthetic_content(96, 96)).abs().mean()) > 1e-3  # it did change


def border_energy(image: torch.Tensor, cuts: list[int]) -> float:
    """Mean squared difference across the given rows and columns over that across all others:
    1 when the borders are like any other place in the picture."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean(dim=(0, 1, 3))
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean(dim=(0, 1, 2))
    at = [c - 1 for c in cuts]
    border = torch.cat([dy[at], dx[at]]).mean()
    rest = torch.cat(
        [
            dy[[i for i in range(len(dy)) if i not in at]],
            dx[[i for i in range(len(dx)) if i not in at]],
        ]
    ).mean()
    return float(border / rest)


def test_a_tiled_picture_shows_no_tile_borders(weights: Weights) -> None:
    # 32 px tiles with 12 px margins: borders at 32 and 64 px, where a seam would show as a
    # jump; the untiled picture's same rows and columns are the yardstick.
    image = run(weights, "32", **SHALLOW)
    assert abs(border_energy(image, [32, 64]) - 1) < 0.1
    whole = run(weights, "off", **SHALLOW)
    assert border_energy(image, [32, 64]) == pytest.approx(border_energy(whole, [32, 64]), abs=0.01)


def test_auto_tiles_only_when_the_whole_image_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = resolve(size=4096, optimizer="adam")
    size, styles, cpu = (4096, 4096), [(4096, 4096)], torch.device("cpu")
    whole = memory.estimate(config, size, styles, autocast=False, recompute=True)
    monkeypatch.setattr(memory, "free_bytes", lambda device: whole + 2**30)
    assert memory.plan(config, size, styles, cpu, autocast=False).tile is None
    monkeypatch.setattr(memory, "free_bytes", lambda device: whole - 2**30)
    notices: list[str] = []
    plan = memory.plan(config, size, styles, cpu, autocast=False, notify=notices.append)
    assert plan.tile in memory.TILE_SIZES and not plan.recompute
    assert plan.estimate == plan.tiled < whole - 2**30
    assert len(notices) == 1 and f"tiles of {plan.tile} px" in notices[0]
    # off keeps today's refusal; a forced tile is used even where the whole image fits.
    with pytest.raises(ConfigError, match="GiB is free on cpu"):
        memory.plan(config.replace(tile="off"), size, styles, cpu, autocast=False)
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)
    assert memory.plan(config.replace(tile="512"), size, styles, cpu, autocast=False).tile == 512


def test_the_tiled_estimate_grows_only_with_the_image_sized_buffers() -> None:
    # For a fixed tile the activations are one window's: from 2048 to 8192 px the estimate
    # grows by the image-sized buffers alone (the tiles recompute their content targets).
    config = resolve(optimizer="adam")
    peaks = {}
    for side in (2048, 8192):
        size = (side, side)
        peaks[side] = memory.estimate(
            config, size, [size], autocast=False, recompute=False, tile=512
        )
    pixels = 3 * (8192**2 - 2048**2) * 4
    # The optimiser's buffers, the best image in 16 bits and the content a scale that large
    # holds beside the photo (--refine-hold).
    per_pixel = memory.OPTIMIZERS["adam"].buffers + 0.5 + 1
    grown = peaks[8192] - peaks[2048]
    assert grown == pytest.approx(memory.OVERHEAD * per_pixel * pixels, rel=1e-6)
    unheld = memory.estimate(
        resolve(optimizer="adam", refine_hold=0.0), (8192, 8192), [(8192, 8192)],
        autocast=False, recompute=False, tile=512,
    )  # fmt: skip
    assert peaks[8192] - unheld == pytest.approx(memory.OVERHEAD * 3 * 8192**2 * 4, rel=1e-6)
    whole = memory.estimate(config, (8192, 8192), [(8192, 8192)], autocast=False, recompute=False)
    assert peaks[8192] < whole / 10


def test_tile_must_be_auto_off_or_pixels() -> None:
    assert resolve(tile=256).tile == "256"
    for bad in ("big", "16", "-64"):
        with pytest.raises(ConfigError, match="tile must be auto, off or a number of pixels"):
            resolve(tile=bad)
