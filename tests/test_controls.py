"""Artist controls: colour preservation, style blends, masks, coarse-to-fine, EMA, init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import estilo
from estilo import cli
from estilo.core.config import resolve
from estilo.core.losses import coarse_luma
from estilo.core.pyramid import held, scale_sizes, supersampled
from estilo.image import color
from estilo.image.io import to_pil
from estilo.quality.metrics import ssim

from .conftest import synthetic_content, synthetic_style

FAST = {"size": 64, "log_every": 0, "device": "cpu"}


def flat(rgb: tuple[float, float, float], height: int = 64, width: int = 64) -> torch.Tensor:
    """A textured patch around one colour, so that it has style statistics to match."""
    noise = torch.rand(3, height, width, generator=torch.Generator().manual_seed(3)) * 0.2
    return (torch.tensor(rgb).view(3, 1, 1) * 0.8 + noise).clamp(0, 1)


def chroma_error(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean absolute difference of the U and V channels."""
    return float((color.rgb_to_yuv(image)[1:] - color.rgb_to_yuv(reference)[1:]).abs().mean())


def test_yuv_round_trip_and_luma() -> None:
    image = torch.rand(3, 5, 7)
    torch.testing.assert_close(color.yuv_to_rgb(color.rgb_to_yuv(image)), image)
    assert color.luminance(torch.tensor([1.0, 0, 0]).view(3, 1, 1))[
        :, 0, 0
    ].tolist() == pytest.approx([0.299] * 3)


def test_histogram_matching_moves_style_colours_to_content() -> None:
    content, style = flat((0.9, 0.2, 0.1)), flat((0.1, 0.3, 0.9))
    matched = color.match_histogram(style, content)
    torch.testing.assert_close(matched.mean((1, 2)), content.mean((1, 2)), atol=0.02, rtol=0)


def mean_chroma_shift(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Distance between the average U, V of two images: a global colour cast."""
    shift = color.rgb_to_yuv(image)[1:].mean((1, 2)) - color.rgb_to_yuv(reference)[1:].mean((1, 2))
    return float(shift.norm())


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_preserve_colors_keeps_the_content_chroma(mode: str) -> None:
    content = synthetic_content(64, 64)
    style = flat((0.1, 0.9, 0.2))  # a green style that tints the output
    options = {"iterations": 20, "style_loss": "meanstd", "content_weight": 0.01, **FAST}
    plain = estilo.stylize(content, style, **options)
    kept = estilo.stylize(content, style, preserve_colors=mode, **options)
    assert mean_chroma_shift(plain.image, content) > 0.05  # the style does tint
    assert mean_chroma_shift(kept.image, content) < 0.3 * mean_chroma_shift(plain.image, content)
    if mode == "luminance":  # chroma is the content's pixel for pixel
        assert chroma_error(kept.image, content) < 0.01


def test_two_styles_blend_by_weight() -> None:
    content = synthetic_content(64, 64)
    red, blue = flat((0.95, 0.05, 0.05)), flat((0.05, 0.05, 0.95))
    options = {"iterations": 30, "style_loss": "meanstd", "content_weight": 0.0, **FAST}
    mostly_red = estilo.stylize(content, [red, blue], style_weights=[0.9, 0.1], **options)
    mostly_blue = estilo.stylize(content, [red, blue], style_weights=[0.1, 0.9], **options)
    red_share = [float(r.image[0].mean() - r.image[2].mean()) for r in (mostly_red, mostly_blue)]
    assert red_share[0] > red_share[1] + 0.1


def test_mask_puts_each_style_in_its_region(tmp_path: Path) -> None:
    content = torch.full((3, 64, 64), 0.5)
    red, blue = flat((0.95, 0.05, 0.05)), flat((0.05, 0.05, 0.95))
    labels = torch.zeros(64, 64)
    labels[:, 32:] = 1.0  # left: first label (darker) = red; right: blue
    mask = tmp_path / "mask.png"
    to_pil(labels.expand(3, -1, -1)).convert("L").save(mask)
    result = estilo.stylize(
        content,
        [red, blue],
        mask=mask,
        iterations=40,
        content_weight=0.0,
        style_loss="meanstd",
        **FAST,
    )
    left, right = result.image[:, :, :28], result.image[:, :, 36:]
    assert left[0].mean() > left[2].mean() + 0.2  # red where the mask says red
    assert right[2].mean() > right[0].mean() + 0.2  # blue where it says blue


def test_soft_mask_for_one_style_limits_where_it_applies(tmp_path: Path) -> None:
    content = synthetic_content(64, 64)
    weight = torch.zeros(64, 64)
    weight[:32] = 1.0  # style on the top half only
    mask = tmp_path / "soft.png"
    to_pil(weight.expand(3, -1, -1)).save(mask)
    # Shallow layers: small receptive fields, so the mask's edge is sharp at 64 px.
    options = {
        "iterations": 20,
        "style_layers": "relu1_1,relu2_1,relu3_1",
        "content_layers": "relu3_1",
        **FAST,
    }
    masked = estilo.stylize(content, flat((0.1, 0.9, 0.1)), mask=mask, **options)
    everywhere = estilo.stylize(content, flat((0.1, 0.9, 0.1)), **options)
    change = (masked.image - content).abs().mean(0)
    change_everywhere = (everywhere.image - content).abs().mean(0)
    assert change[:24].mean() > 3 * change[40:].mean()  # styled on top, far less below
    assert change[40:].mean() < 0.5 * change_everywhere[40:].mean()


def test_mask_mismatches_are_refused(tmp_path: Path) -> None:
    content, style = synthetic_content(64, 64), synthetic_style()
    wrong_size = tmp_path / "small.png"
    Image.new("L", (10, 10)).save(wrong_size)
    with pytest.raises(estilo.ImageError, match="mask is 10x10 but the content image is 64x64"):
        estilo.stylize(content, style, mask=wrong_size, **FAST)
    three_labels = tmp_path / "labels.png"
    image = Image.new("L", (64, 64))
    image.paste(128, (0, 0, 20, 64))
    image.paste(255, (20, 0, 40, 64))
    image.save(three_labels)
    with pytest.raises(estilo.ImageError, match="3 distinct grey levels but there are 2 styles"):
        estilo.stylize(content, [style, style], mask=three_labels, **FAST)


def test_style_weights_are_checked() -> None:
    content, style = synthetic_content(), synthetic_style()
    with pytest.raises(estilo.ConfigError, match="not all 0"):
        estilo.stylize(content, [style, style], style_weights=[0, 0], **FAST)
    with pytest.raises(estilo.ConfigError, match=">= 0"):
        estilo.stylize(content, [style, style], style_weights=[1, -1], **FAST)


def test_scale_pyramid() -> None:
    assert scale_sizes(192, 256, resolve(size=256), 16) == [(192, 256)]
    auto = scale_sizes(768, 1024, resolve(size=1024), 16)
    # From 256 px, sqrt(2) per step.
    assert auto == [(192, 256), (272, 362), (384, 512), (543, 724), (768, 1024)]
    assert scale_sizes(384, 512, resolve(min_scale=512), 16) == [(384, 512)]
    assert len(scale_sizes(60, 80, resolve(scales=3), 16)) == 3
    crowsonkb = scale_sizes(192, 256, resolve(size=256, min_scale=128), 16)
    assert crowsonkb == [(96, 128), (136, 181), (192, 256)]  # from 128 px
    # The paper optimises at its output size, 1024 px, and nowhere else.
    paper = resolve("paper")
    assert scale_sizes(1024, 1024, paper, 16) == [(1024, 1024)]
    assert supersampled(resolve("paper", size=256)).size == 256


@pytest.mark.parametrize(
    ("size", "scales", "painted"),
    [
        (256, 0, 512),
        (511, 0, 512),
        (255, 0, 255),
        (128, 0, 128),
        (512, 0, 512),
        (1024, 0, 1024),
        (256, 1, 256),
    ],
)
def test_pictures_from_min_scale_to_twice_it_are_painted_at_twice_it(
    size: int, scales: int, painted: int
) -> None:
    assert supersampled(resolve(size=size, scales=scales)).size == painted


def test_a_supersampled_picture_comes_back_at_its_own_size() -> None:
    seen: list[tuple[int, ...]] = []
    result = estilo.stylize(
        synthetic_content(48, 64),
        synthetic_style(),
        callback=lambda step: seen.append((*step.image.shape[-2:], step.scales)) and None,
        iterations=2,
        refine_iterations=1,
        **{**FAST, "size": 40, "min_scale": 32},
    )
    assert tuple(result.image.shape[-2:]) == (30, 40)
    assert result.config.size == 40
    # Painted coarse to fine at 32, 45 and 64 px; every step is shown at the output's size.
    assert seen and set(seen) == {(30, 40, 3)}
    assert len(result.history) == 2 + 1 + 1
    # Painted at 64 px, not 40: the same run with the pyramid off differs.
    plain = estilo.stylize(
        synthetic_content(48, 64),
        synthetic_style(),
        iterations=2,
        **{**FAST, "size": 40, "min_scale": 32, "scales": 1},
    )
    assert not torch.equal(plain.image, result.image)


def test_the_layout_term_keeps_the_photos_light_and_shade() -> None:
    # A style weight that repaints the photo; the layout term holds its coarse luma, by a
    # measure (coarse SSIM) the term does not compute.
    content, style = synthetic_content(64, 64), synthetic_style()
    options = {**FAST, "iterations": 30, "style_weight": 1.0, "min_scale": 64, "scales": 1}
    free = estilo.stylize(content, style, layout_weight=0.0, **options)
    kept = estilo.stylize(content, style, layout_weight=1e11, **options)

    def layout_error(image: torch.Tensor) -> float:
        """How far the picture's light and shade are from the photo's, its overall tone aside."""
        difference = coarse_luma(image[None]) - coarse_luma(content[None])
        return float((difference - difference.mean()).abs().mean())

    assert layout_error(kept.image) < 0.5 * layout_error(free.image)
    assert ssim(kept.image, content) > ssim(free.image, content)


def test_only_the_scales_beyond_twice_min_scale_hold_the_picture() -> None:
    config = resolve(size=1024)
    sizes = scale_sizes(768, 1024, config, 16)
    hold = config.refine_hold
    assert hold > 0
    assert [held(config, s) for s in sizes] == [0, 0, 0, hold, hold]
    assert held(resolve(size=1024, refine_hold=0.25), sizes[-1]) == 0.25
    assert held(resolve(size=1024, scales=5), sizes[-1]) == 0  # a pyramid asked for
    with pytest.raises(estilo.ConfigError, match="refine_hold must be between 0 and 1"):
        resolve(refine_hold=1.5)


def test_a_held_scale_starts_where_its_content_term_is_met() -> None:
    # From 32 px a 96 px picture is painted at 34, 48, 68 and 96 px; the last two hold the
    # picture painted so far, which is where each of them starts.
    def first_content(hold: float) -> dict[int, float]:
        first: dict[int, float] = {}
        estilo.stylize(
            synthetic_content(72, 96),
            synthetic_style(),
            callback=lambda step: first.setdefault(step.scale, step.content) and None,
            iterations=3,
            refine_iterations=3,
            refine_hold=hold,
            **{**FAST, "size": 96, "min_scale": 32},
        )
        return first

    holding, photo = first_content(1.0), first_content(0.0)
    assert sorted(holding) == [1, 2, 3, 4]
    assert holding[1] == photo[1] and holding[2] == photo[2]  # the same up to 64 px
    # 0 but for rounding: the layout term blurs the start and the held blend alike.
    assert max(holding[3], holding[4]) < 1e-6 * min(photo[3], photo[4])


def test_a_run_from_a_painted_start_skips_the_coarse_scales() -> None:
    """Video's later frames start from the previous frame, warped: one scale, the painted one."""
    content = synthetic_content(48, 64)
    seen: list[tuple[int, ...]] = []
    result = estilo.stylize(
        content,
        synthetic_style(),
        callback=lambda step: seen.append((*step.image.shape[-2:], step.scales)) and None,
        start=content,
        iterations=2,
        refine_iterations=1,
        **{**FAST, "size": 40, "min_scale": 32},
    )
    assert set(seen) == {(30, 40, 1)} and len(result.history) == 2
    # Painted at 64 px all the same: not the run at the picture's own size.
    own = estilo.stylize(
        content, synthetic_style(), start=content, iterations=2, **{**FAST, "size": 40}
    )
    assert not torch.equal(own.image, result.image)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_coarse_to_fine_runs_every_scale(optimizer: str) -> None:
    scales: list[tuple[int, int, tuple[int, ...]]] = []
    result = estilo.stylize(
        synthetic_content(64, 64),
        synthetic_style(),
        scales=2,
        iterations=3,
        refine_iterations=2,
        optimizer=optimizer,
        callback=lambda s: scales.append((s.scale, s.scales, tuple(s.image.shape))) or None,
        **FAST,
    )
    assert [s[0] for s in scales] == [1, 1, 1, 2, 2]  # ITERATIONS, then REFINE_ITERATIONS
    assert scales[0][2] == (1, 3, 45, 45) and scales[-1][2] == (1, 3, 64, 64)
    assert result.image.shape == (3, 64, 64) and len(result.history) == 5 == result.planned
    assert [r.iteration for r in result.history] == [1, 2, 3, 4, 5]


def test_ema_smooths_the_iterates() -> None:
    seen: list[torch.Tensor] = []
    estilo.stylize(
        synthetic_content(),
        synthetic_style(),
        iterations=4,
        ema=0.9,
        optimizer="adam",
        lr=0.05,
        init="noise",
        callback=lambda s: seen.append(s.image.clone()) or None,
        **FAST,
    )
    raw: list[torch.Tensor] = []
    estilo.stylize(
        synthetic_content(),
        synthetic_style(),
        iterations=4,
        optimizer="adam",
        lr=0.05,
        init="noise",
        callback=lambda s: raw.append(s.image.clone()) or None,
        **FAST,
    )
    torch.testing.assert_close(seen[0], raw[0])  # bias correction: first average = first image
    step_ema = float((seen[3] - seen[2]).abs().mean())
    step_raw = float((raw[3] - raw[2]).abs().mean())
    assert step_ema < step_raw


def test_style_stats_init_has_the_style_colours() -> None:
    first: list[torch.Tensor] = []
    style = flat((0.9, 0.1, 0.1))
    estilo.stylize(
        synthetic_content(),
        style,
        iterations=1,
        init="style-stats",
        optimizer="adam",
        lr=1e-6,
        callback=lambda s: first.append(s.image) or None,
        **FAST,
    )
    torch.testing.assert_close(first[0][0].mean((1, 2)), style.mean((1, 2)), atol=0.05, rtol=0)


def test_style_scale_changes_the_style_size() -> None:
    small = resolve(style_scale=0.5)
    from estilo.pipeline import working_size

    assert working_size(400, 800, small, small.style_scale) == (128, 256)


def test_cli_blends_styles_and_rejects_bad_ones(
    tmp_path: Path, image_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    content, style = image_pair
    out = tmp_path / "blend.png"
    code = cli.main(
        [
            "stylize",
            str(content),
            f"{style}:0.7",
            f"{content}:0.3",
            "-o",
            str(out),
            "--size",
            "32",
            "--iterations",
            "2",
            "--quiet",
        ]
    )
    assert code == 0 and out.exists()
    assert cli.parse_style("C:/art.png") == (Path("C:/art.png"), 1.0)
    assert cli.parse_style("art.png:0.25") == (Path("art.png"), 0.25)
    capsys.readouterr()
    for bad, message in (
        (["--style-loss", "gramm"], "did you mean 'gram'"),
        (["--scales", "40"], "scales must be between 0 and 12"),
        (["--preserve-colors", "sepia"], "preserve_colors must be one of"),
    ):
        code = cli.main(["stylize", str(content), str(style), "-o", str(tmp_path / "x.png"), *bad])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1
    code = cli.main(["stylize", str(content), f"{style}:-1", "-o", str(tmp_path / "x.png")])
    assert code == 2 and ">= 0" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_unknown_loss_lists_the_registry() -> None:
    with pytest.raises(estilo.ConfigError) as error:
        resolve(style_loss="nope")
    for name in (
        "gram",
        "mmd-linear",
        "mmd-poly",
        "mmd-gaussian",
        "meanstd",
        "wasserstein",
        "sliced-wasserstein",
        "nnst",
    ):
        assert name in str(error.value)


def test_readme_style_loss_table_matches_the_registry() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    from estilo.core.registry import STYLE_LOSSES

    for name, info in STYLE_LOSSES.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert float(row.rstrip(" |").rsplit("|", 1)[1]) == info.weight, name


def test_luminance_mode_callbacks_see_colour_images() -> None:
    seen: list[torch.Tensor] = []
    content = synthetic_content(64, 64)
    estilo.stylize(
        content,
        flat((0.1, 0.9, 0.2)),
        iterations=2,
        preserve_colors="luminance",
        callback=lambda step: seen.append(step.image) or None,
        **FAST,
    )
    assert chroma_error(seen[-1][0], content) < 0.01  # not a grey image
