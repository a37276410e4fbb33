"""Content, style and smoothness losses, and the one normalisation they all share.

Normalisation (the papers disagree, docs/method.md §2.2; we follow the paper's own stack, the
TensorFlow style-transfer tutorial, which is also Gatys's PyTorch reference up to constants):

* Gram matrix ``G = F Fᵀ / M`` for features ``F`` of shape (N, M), M = H·W positions. Dividing
  by M makes G an average over positions, so it does not grow with the image size.
* Per-layer style distance ``E_l = mean((G - A)²)`` over the N² entries, which equals
  ``1/(N²M²) Σ(G' - A')²`` on unnormalised Grams G' = F Fᵀ: 4 times Gatys et al.'s
  ``E_l = 1/(4N²M²) Σ(G' - A')²``. The factor 4 is absorbed by the style weight.
* Style loss ``Σ_l w_l E_l`` with ``Σ w_l = 1``: Gatys's 1/N_l² by default, or equal as in the
  tutorial's division by the number of style layers (``objective.style_layer_weights``).
* Content loss: mean squared error of the feature maps, averaged over content layers.
* Total variation: mean squared difference of neighbouring pixels (Johnson et al.'s β = 2).

Each style representation is a :class:`StyleStatistic`: at heart a pair, ``represent``
(features -> statistic, computed once for the style image) and ``distance`` (statistic of the
current image vs. target). Blends of several styles sum their distances with the style weights
(docs/method.md §2.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def mean_squared_error(input: Tensor, target: Tensor) -> Tensor:
    """Mean of the squared differences; the target broadcasts over the batch."""
    return (input - target).pow(2).mean()


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of feature maps (B, C, H, W) (Gatys et al. 2016 eq. 1, mean form)."""
    return mean_squared_error(features, target)


#: Positions the self-similarity loss compares at most: its matrices are K x K.
SELF_SIMILARITY_SAMPLES = 1024


def self_similarity(features: Tensor, index: Tensor | None = None) -> Tensor:
    """(B, C, H, W) -> (K, K): cosine distances between the positions ``index`` of the first
    image (all positions when None), each column divided by its sum (STROTSS's ``dp_loss``
    normalisation): how the picture relates to itself, whatever its colours and textures."""
    flat = features[0].flatten(1)
    if index is not None:
        flat = flat[:, index]
    unit = flat / flat.norm(dim=0, keepdim=True).clamp_min(1e-8)
    distance: Tensor = 1 - unit.T @ unit
    return distance / distance.sum(0, keepdim=True).clamp_min(1e-8)


def self_similarity_loss(matrix: Tensor, target: Tensor) -> Tensor:
    """Kolkin et al. 2019 (STROTSS) content loss: mean |D_x − D_c| over the normalised
    self-similarity matrices, times K (the official code's scaling, so it does not shrink as
    more positions are compared). Layout is kept; colours and textures may change."""
    loss: Tensor = (matrix - target).abs().mean() * matrix.shape[0]
    return loss


def tv_loss(image: Tensor) -> Tensor:
    """Mean squared difference between vertically and horizontally adjacent pixels."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


#: The layout term looks at the luma brought to at most this many pixels along the picture's
#: longer side (antialiased), then blurred by a Gaussian of σ = LAYOUT_BLUR of the longer side:
#: 1 px at 256 px, 4 px at 1024 px, so every size holds the same layout. Smooth filters only:
#: averaging over cells (the first version) made its gradient constant over each cell and
#: printed the grid into the picture, a 4 px pattern at 256 px (docs/quality.md).
LAYOUT_GRID = 256
LAYOUT_BLUR = 1 / 256
#: Luma weights (ITU-R BT.601), as estilo.image.color and the yardstick use.
LUMA = (0.299, 0.587, 0.114)


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """(B, C, H, W) blurred by a separable Gaussian of ``sigma`` px (reflected at the edges;
    radius 3σ, capped so the reflection fits)."""
    height, width = image.shape[-2:]
    radius = min(math.ceil(3 * sigma), height - 1, width - 1)
    if radius < 1:
        return image
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def coarse_luma(image: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, h, w): the luma at most LAYOUT_GRID px along the longer side,
    blurred by σ = LAYOUT_BLUR of that side: where the picture is light and dark at the scale
    of its objects."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image * weights).sum(dim=1, keepdim=True)
    height, width = image.shape[-2:]
    factor = min(1.0, LAYOUT_GRID / max(height, width))
    if factor < 1:
        grid = (max(1, round(height * factor)), max(1, round(width * factor)))
        luma = F.interpolate(luma, size=grid, mode="bilinear", antialias=True, align_corners=False)
    return gaussian_blur(luma, LAYOUT_BLUR * max(luma.shape[-2:]))


def layout_loss(image: Tensor, target: Tensor, where: Tensor | None = None) -> Tensor:
    """Mean squared difference between ``image``'s :func:`coarse_luma` and ``target`` (the
    photo's), less the best single shift of tone where the style applies (``where``: weights
    on the target's grid, None: everywhere): the term holds where the picture is lighter and
    where darker, at the scale of its objects, and leaves the overall tone of the styled part
    to the style (a painting may be darker than the photo), as it leaves texture, strokes and
    colour at a given lightness. Where no style applies the photo's own tone is held.
    Departure from Gatys et al.: their content term holds VGG features, which a strong style
    statistic can repaint (meanstd moved the astronaut's face into the background's shade,
    docs/quality.md)."""
    difference = coarse_luma(image) - target
    if where is None:
        return (difference - difference.mean(dim=(-2, -1), keepdim=True)).pow(2).mean()
    # The shift c minimising mean((d - c w)²): c = Σ d w / Σ w².
    shift = (difference * where).sum(dim=(-2, -1), keepdim=True) / where.pow(2).sum().clamp_min(
        1e-12
    )
    return (difference - shift * where).pow(2).mean()


Stat = Any  # a representation: a tensor or a tuple of tensors


def itself(image: Tensor) -> list[Tensor]:
    """The style image alone: the views of every statistic that does not augment the style."""
    return [image]


@dataclass(frozen=True)
class StyleStatistic:
    """A style representation: how to summarise features, and how far two summaries are.

    ``represent(features, weights)`` takes features (C, M) flattened over M positions and an
    optional weight per position (M,) summing to 1 (a mask: Gatys et al. 2017's guided
    statistics); ``distance(stat, target)`` is 0 when the two match. Every distance is a mean
    over entries, so the weights of the registry entries are comparable across layers and sizes.

    ``joint``: the features are not one layer's but every style layer's at once, resampled to
    one grid and stacked per position (hypercolumns; the objective builds them). ``views``: the
    images the style's target is computed from, their positions pooled (e.g. rotated copies).
    ``prepare``: how the style's features become the target, when not as ``represent`` does.
    ``settle``: what ``distance`` needs of the target alone, added to it once when the target is
    made rather than at every evaluation (wasserstein's matrix square root).
    ``anchor``: for a statistic whose target is a feature per position rather than a summary,
    how the style's prepared target and the photo's features (C, M) of the same field make
    that target; the objective calls it once per scale, with the content it holds.
    ``moments``: for a statistic that is a function of sums over positions, that function of
    the weighted first and second moments Σ w_k f_k (C,) and Σ w_k f_k f_kᵀ (C, C); it lets a
    tiled run (``core/tiled.py``) add the sums up tile by tile and match the whole image's
    statistic. None: not a sum over positions.
    """

    represent: Callable[[Tensor, Tensor | None], Stat]
    distance: Callable[[Stat, Stat], Tensor]
    joint: bool = False
    views: Callable[[Tensor], list[Tensor]] = itself
    prepare: Callable[[Tensor], Stat] | None = None
    moments: Callable[[Tensor, Tensor], Stat] | None = None
    settle: Callable[[Stat], Stat] | None = None
    anchor: Callable[[Stat, Tensor], Stat] | None = None

    def target(self, features: Tensor) -> Stat:
        """The style's side of ``distance``, from its features (C, M)."""
        stat = self.represent(features, None) if self.prepare is None else self.prepare(features)
        return self.settled(stat)

    def settled(self, stat: Stat) -> Stat:
        """A style's statistic made a target: with what ``settle`` adds, if anything."""
        return stat if self.settle is None else self.settle(stat)


def _average_products(left: Tensor, right: Tensor, weights: Tensor | None) -> Tensor:
    """(C, M), (D, M) -> (C, D): Σ_k w_k l_k r_kᵀ; the plain mean over positions when
    unweighted (no (C, M) weighted copy: this is on every iteration's path)."""
    if weights is None:
        return left @ right.T / left.shape[1]
    return (left * weights) @ right.T


def weighted_gram(features: Tensor, weights: Tensor | None = None) -> Tensor:
    """(C, M) -> (C, C): Σ_k w_k f_k f_kᵀ, i.e. F Fᵀ / M when unweighted."""
    return _average_products(features, features, weights)


def weighted_mean(features: Tensor, weights: Tensor | None = None) -> Tensor:
    """(C, M) -> (C,): the per-channel mean over positions."""
    return features.mean(1) if weights is None else features @ weights


def mean_and_covariance(features: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(C, M) -> mean (C,), covariance (C, C) (population, i.e. divided by M)."""
    mean = weighted_mean(features, weights)
    centred = features - mean[:, None]
    return mean, _average_products(centred, centred, weights)


def mean_and_std(features: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(C, M) -> per-channel mean and population standard deviation (Li et al.'s BN stats)."""
    mean = weighted_mean(features, weights)
    variance = weighted_mean((features - mean[:, None]).pow(2), weights)
    return mean, (variance + 1e-8).sqrt()  # eps keeps the gradient finite for dead channels


def positions(features: Tensor, weights: Tensor | None = None, limit: int = 0) -> Tensor:
    """(C, M) -> (C, K): the positions a sample-based statistic uses: those a mask covers
    (weight at least half the largest), at most ``limit`` of them drawn at random."""
    if weights is not None:
        features = features[:, weights >= 0.5 * weights.max()]
    if limit and features.shape[1] > limit:
        features = features[:, torch.randperm(features.shape[1], device=features.device)[:limit]]
    return features


def moments_gram(mean: Tensor, second: Tensor) -> Tensor:
    return second


def moments_mean(mean: Tensor, second: Tensor) -> Tensor:
    return mean


def moments_gram_and_mean(mean: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    return second, mean


def moments_mean_and_std(mean: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """Var = E[f²] − E[f]²: a cancellation that the tiled run's float64 sums keep exact enough."""
    variance = (second.diagonal() - mean.pow(2)).clamp_min(0)
    return mean, (variance + 1e-8).sqrt()


def moments_mean_and_covariance(mean: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    return mean, second - torch.outer(mean, mean)


def gram_distance(stat: Tensor, target: Tensor) -> Tensor:
    return mean_squared_error(stat, target)


def mmd_linear_distance(stat: Tensor, target: Tensor) -> Tensor:
    """Linear-kernel MMD² = ‖μ_x − μ_s‖² (Li et al. 2017), as a mean over channels."""
    return mean_squared_error(stat, target)


#: c of the polynomial kernel (xᵀy + c)²; Li et al.'s code default.
MMD_POLY_C = 0.0


def mmd_poly_represent(features: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor]:
    return weighted_gram(features, weights), weighted_mean(features, weights)


def mmd_poly_distance(stat: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> Tensor:
    """MMD² with k(x, y) = (xᵀy + c)² divided by Z = N²: expanding the kernel gives
    ‖G_x − G_s‖² + 2c‖μ_x − μ_s‖² exactly (Li et al. 2017; docs/method.md §2.3), so c = 0 is
    ``gram``."""
    (gram, mean), (gram_t, mean_t) = stat, target
    n = gram.shape[0]
    return mean_squared_error(gram, gram_t) + 2 * MMD_POLY_C * (mean - mean_t).pow(2).sum() / n**2


#: Positions sampled per layer for the Gaussian kernel: its cost is quadratic in them.
MMD_GAUSSIAN_SAMPLES = 1024


def mmd_gaussian_represent(features: Tensor, weights: Tensor | None) -> Tensor:
    return positions(features, weights, MMD_GAUSSIAN_SAMPLES).T.contiguous()  # (K, C)


def mmd_gaussian_distance(sample: Tensor, target: Tensor) -> Tensor:
    """Biased MMD² with k(x, y) = exp(−‖x − y‖² / (2σ²)) on a random sample of positions.

    2σ² is the mean squared distance between the sampled positions, as in Li et al.'s code
    (docs/method.md §2.3); the bandwidth is a constant of the step (no gradient through it).
    Departure: Li et al. use the linear-time estimator over all positions; sampling K positions
    with the quadratic estimator bounds memory at K² whatever the image size, with lower
    variance.
    """
    if target.shape[0] > MMD_GAUSSIAN_SAMPLES:
        target = target[
            torch.randperm(target.shape[0], device=target.device)[:MMD_GAUSSIAN_SAMPLES]
        ]
    xx, yy = torch.cdist(sample, sample) ** 2, torch.cdist(target, target) ** 2
    xy = torch.cdist(sample, target) ** 2
    bandwidth = torch.cat([xx.flatten(), yy.flatten(), xy.flatten()]).mean().detach() + 1e-12
    return (
        torch.exp(-xx / bandwidth).mean()
        + torch.exp(-yy / bandwidth).mean()
        - 2 * torch.exp(-xy / bandwidth).mean()
    )


def meanstd_distance(stat: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> Tensor:
    """Li et al.'s BN-statistics loss: 1/N Σ (μ − μ_s)² + (σ − σ_s)²."""
    return mean_squared_error(stat[0], target[0]) + mean_squared_error(stat[1], target[1])


def psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric square root of a positive semi-definite matrix (no gradient needed)."""
    values, vectors = torch.linalg.eigh(matrix)
    root: Tensor = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    return root


#: Both covariances get this fraction of the target's mean variance added to their diagonal.
W2_RIDGE = 1e-2


def wasserstein_target(stat: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The style's mean and covariance as wasserstein_distance takes them: the covariance with
    its ridge, that ridge, and the covariance's square root (an eigendecomposition in float64:
    tens of milliseconds a layer, once per run instead of at every evaluation)."""
    mean_t, cov_t = stat[0], stat[1]
    n = mean_t.shape[0]
    ridge = W2_RIDGE * cov_t.trace().detach() / n
    if not ridge > 0:
        # A painting whose map has a single position (relu5_1 of a painting of about 24 px or
        # less) has no variance: a ridge of 0 would make the square root's gradient infinite
        # at the first step. Its mean square sets the ridge instead (1 for an all-zero map).
        square = mean_t.detach().pow(2).mean()
        ridge = W2_RIDGE * (square if square > 0 else torch.ones_like(square))
    cov_t = cov_t + ridge * torch.eye(n, dtype=cov_t.dtype, device=cov_t.device)
    return mean_t, cov_t, psd_sqrt(cov_t.double()).to(cov_t.dtype), ridge


def wasserstein_distance(stat: tuple[Tensor, ...], target: tuple[Tensor, ...]) -> Tensor:
    """Squared 2-Wasserstein distance between Gaussians fitted to the features, per channel:
    ‖μ_x − μ_s‖² + tr(Σ_x + Σ_s − 2 (Σ_s^½ Σ_x Σ_s^½)^½), divided by N.

    The trace of the matrix square root is Σ √λᵢ over the eigenvalues of the PSD matrix
    Σ_s^½ Σ_x Σ_s^½; eigenvalue gradients (unlike eigenvector ones) stay finite when
    eigenvalues repeat, so this is differentiable without a custom backward. Deep layers have
    fewer positions than channels, so the covariances are singular and 1/(2√λ) would explode
    at λ → 0; a ridge ε·I on both covariances (ε = 1% of the style's mean variance, the role of
    crowsonkb's eps) keeps every λ ≥ ε² and the distance still 0 exactly at the target.
    ``target`` comes from :func:`wasserstein_target`, with the ridge and root already made."""
    mean, cov = stat[0], stat[1]
    mean_t, cov_t, root_t, ridge = target
    n = mean.shape[0]
    cov = cov + ridge * torch.eye(n, dtype=cov.dtype, device=cov.device)
    middle = root_t @ cov @ root_t
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2)
    cross = eigenvalues.clamp_min(0).sqrt().sum()
    total: Tensor = (mean - mean_t).pow(2).sum() + cov.trace() + cov_t.trace() - 2 * cross
    return total.clamp_min(0) / n


def sliced_wasserstein_distance(features: Tensor, target: Tensor) -> Tensor:
    """Sliced Wasserstein loss (Heitz et al. 2021): project both feature sets on N random unit
    directions, drawn anew at every evaluation, sort, compare. When the two sets differ in size
    the target's sorted projections are resampled to the output's count (quantile matching)."""
    c = features.shape[0]
    directions = torch.randn(c, c, device=features.device, dtype=features.dtype)
    directions = directions / directions.norm(dim=1, keepdim=True)
    projected = (directions @ features).sort(dim=1).values
    projected_t = (directions @ target).sort(dim=1).values
    if projected_t.shape[1] != projected.shape[1]:
        projected_t = torch.nn.functional.interpolate(
            projected_t[None], size=projected.shape[1], mode="linear", align_corners=True
        )[0]
    return mean_squared_error(projected, projected_t)


def rotations(image: Tensor) -> list[Tensor]:
    """(B, C, H, W) -> the image turned by 0, 90, 180 and 270 degrees. NNST's style bank
    (Kolkin et al. 2022, the official code's ``flip_aug``, on by default: rotations despite the
    name, no mirror images): more candidate features, so each output feature finds a closer
    match and the content's forms survive the replacement better."""
    return [torch.rot90(image, turns, dims=(-2, -1)) for turns in range(4)]


#: Style positions an NNST bank keeps at most (an even stride over them): the nearest-neighbour
#: search costs output positions x bank size x channels once per scale.
NNST_BANK = 8192
#: Entries of the output x bank similarity matrix computed at once: bounds its memory (64 MiB).
NNST_CHUNK = 1 << 24


def centred_unit(features: Tensor, centre: Tensor) -> Tensor:
    """(C, M) columns minus ``centre`` (C,), scaled to unit length: cosine similarities are then
    dot products."""
    centred = features - centre[:, None]
    unit: Tensor = centred / centred.norm(dim=0, keepdim=True).clamp_min(1e-8)
    return unit


def nearest_neighbours(unit_queries: Tensor, unit_bank: Tensor) -> Tensor:
    """(C, M), (C, K) -> (M,): for each query column, the index of the bank column with the
    largest dot product (both given unit: the smallest cosine distance). Computed NNST_CHUNK
    entries at a time, so memory stays bounded whatever M; no gradient (the choice is a
    constant)."""
    with torch.no_grad():
        rows = max(1, NNST_CHUNK // unit_bank.shape[1])
        return torch.cat(
            [
                (unit_queries[:, start : start + rows].T @ unit_bank).argmax(1)
                for start in range(0, unit_queries.shape[1], rows)
            ]
        )


def nnst_represent(features: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The output's features themselves: NNST compares positions, it summarises nothing."""
    return features, weights


def nnst_bank(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The style's side, before any photo is known: at most NNST_BANK of its positions (an even
    stride, so memory and the search stay bounded at any size; the authors sample in their
    final pass) as directions (unit) and lengths for the pull, and centred on the mean of all
    its positions, then unit, for the search."""
    centre = features.mean(1)
    if features.shape[1] > NNST_BANK:
        features = features[:, :: -(-features.shape[1] // NNST_BANK)]
    lengths = features.norm(dim=0).clamp_min(1e-8)
    return features / lengths, lengths, centred_unit(features, centre)


def nnst_anchor(bank: tuple[Tensor, Tensor, Tensor], query: Tensor) -> tuple[Tensor, ...]:
    """The target of each position, chosen once per scale: for each of the photo's features
    (C, M), centred on their own mean as the bank is on its own (the official code's
    ``pairwise_distances_cos_center``), the index of the nearest style feature; returned after
    the bank's directions and lengths, which the pull compares with."""
    directions, lengths, search = bank
    return directions, lengths, nearest_neighbours(centred_unit(query, query.mean(1)), search)


#: Weight of the length term of the NNST pull, against the cosine distance's 1.
NNST_LENGTH_WEIGHT = 1.0


def nnst_distance(stat: tuple[Tensor, Tensor | None], target: tuple[Tensor, ...]) -> Tensor:
    """Neural Neighbor Style Transfer (Kolkin et al. 2022): each position is pulled towards
    the style feature that replaced the photo's feature there (:func:`nnst_anchor`); the loss
    is the mean over positions (weighted by a mask when there is one) of the cosine distance
    1 − cos(x_i, s_i) plus NNST_LENGTH_WEIGHT x (‖x_i‖ / ‖s_i‖ − 1)², zero when every output
    feature is its replacement. As in the official code's ``optimize_output_im``, the targets
    stay fixed while the picture changes (searching again at every evaluation let whole
    regions drift onto the painting's flattest patch: docs/quality.md, twelfth run) and the
    direction is compared by the plain cosine.

    Departure: the length term. The cosine alone leaves each feature's length free, and
    L-BFGS run to convergence lengthened them: the cat under Monet came out saturated green
    and grainy (colour distance 6.1, grain 1.22; docs/quality.md, thirteenth run). The
    authors' 200 small Adam steps on a Laplacian pyramid leave the lengths near the photo's,
    and they recolour the result afterwards; pulling the length to the neighbour's keeps both
    in place (3.5 and 0.90)."""
    (output, weights), (directions, lengths, chosen) = stat, target
    length = output.norm(dim=0)
    cosine = (output / length.clamp_min(1e-8) * directions[:, chosen]).sum(0)
    ratio = length / lengths[chosen]
    distances: Tensor = 1 - cosine + NNST_LENGTH_WEIGHT * (ratio - 1).pow(2)
    return distances.mean() if weights is None else distances @ weights


# The registry's entries (core/registry.py holds their names, sources and weights).
gram_loss = StyleStatistic(weighted_gram, gram_distance, moments=moments_gram)
mmd_linear_loss = StyleStatistic(weighted_mean, mmd_linear_distance, moments=moments_mean)
mmd_poly_loss = StyleStatistic(mmd_poly_represent, mmd_poly_distance, moments=moments_gram_and_mean)
mmd_gaussian_loss = StyleStatistic(mmd_gaussian_represent, mmd_gaussian_distance)
meanstd_loss = StyleStatistic(mean_and_std, meanstd_distance, moments=moments_mean_and_std)
wasserstein_loss = StyleStatistic(
    mean_and_covariance,
    wasserstein_distance,
    moments=moments_mean_and_covariance,
    settle=wasserstein_target,
)
sliced_wasserstein_loss = StyleStatistic(positions, sliced_wasserstein_distance)
nnst_loss = StyleStatistic(
    nnst_represent,
    nnst_distance,
    joint=True,
    views=rotations,
    prepare=nnst_bank,
    anchor=nnst_anchor,
)
