"""Sample-quality metrics that need no download, for sprites (uint8 RGBA, N x H x W x 4).

Every metric but line art works on sprites alpha-composited onto one fixed background (the sheets' light grey), so
transparent pixels compare equal whatever colour they carry; line art counts opaque pixels only. Distances are
Euclidean in pixel space at half resolution (48 x 48 x 3, values in [0, 1]); KID uses a fixed, randomly initialised
CNN as its feature space. MS-SSIM (pytorch-msssim) compares random pairs at full resolution in the configuration
MS_SSIM, and FID/KID in Inception's space are added only when the caller supplies a local Inception network
(dcgan.train.inception). Two measure drawing rather than layout: line art (the share of opaque pixels dark enough to
be outlines) and grid texture (the transposed convolutions' periodic dots, in the amplitude spectrum at full
resolution).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from dcgan.serve.contract import finish_sprites
from dcgan.serve.images import composite

from .likeness import (
    C2ST_SEED,
    FLAT_LEVELS,
    OUTLINE_LUMINANCE,
    PART_PIXELS,
    likeness,
    log_radial_spectrum,
    two_sample_accuracy,
)

FEATURE_SEED = 0  # the random CNN of KID: the same weights in every run, on every machine
EVAL_SEED = 0  # the k-means bins and the MS-SSIM pairs that evaluate() and dcgan-eval use

# MS-SSIM at 96 px: the standard five scales and weights (Wang et al. 2003) need a Gaussian window small
# enough for the coarsest scale, 96 / 2^4 = 6 px: pytorch-msssim requires side > (window - 1) * 2^4, so the
# window is 5 px (sigma 1.5) instead of 11. Computed on composited RGB in [0, 1].
MS_SSIM = {"win_size": 5, "win_sigma": 1.5, "weights": [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], "data_range": 1.0}
MS_SSIM_PAIRS = 1000


def pixel_features(sprites: np.ndarray) -> np.ndarray:
    """(N, H, W, 4) uint8 -> (N, 3 * H/2 * W/2) float32: composited, 2x2 area-averaged, in [0, 1]."""
    rgb = composite(sprites).astype(np.float32) / 255.0
    n, h, w, c = rgb.shape
    half = rgb.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return half.reshape(n, -1)


def sprite_colours(sprites: np.ndarray) -> np.ndarray:
    """(N, H, W, 4) uint8 -> (N, 3): the mean RGB in [0, 1] of each sprite's visible pixels (alpha >= 128)."""
    rgb = sprites[..., :3].astype(np.float64) / 255.0
    visible = (sprites[..., 3] >= 128)[..., None]
    return (rgb * visible).sum(axis=(1, 2)) / np.maximum(visible.sum(axis=(1, 2)), 1)


def finish_levels(sprites: np.ndarray) -> np.ndarray:
    """uint8 RGBA (N, H, W, 4) with any alpha -> the same sprites finished by dcgan.serve.contract.finish_sprites, as
    dcgan-sample finishes a generator's output: alpha 0 or 255 (opaque from level 128 on), no colour where
    transparent. For real sprites, whose alpha may be soft, measured beside finished generated ones."""
    return finish_sprites(sprites.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)


LUMA = np.float32([0.299, 0.587, 0.114])  # Rec. 601 weights of R, G, B
LINE_ART_LUMINANCE = 0.2  # opaque pixels darker than this (luma, 0..1) are outline and line art


def line_art_share(sprites: np.ndarray) -> float:
    """(N, H, W, 4) uint8 -> the share of opaque pixels darker than LINE_ART_LUMINANCE: the black outlines and
    inner lines of real sprites (about a sixth of their pixels). A generator that smooths them away draws
    paler, washed-out sprites."""
    opaque = sprites[..., 3] > 0
    luma = sprites[..., :3].astype(np.float32) @ LUMA / 255.0
    return float(((luma < LINE_ART_LUMINANCE) & opaque).sum() / max(int(opaque.sum()), 1))


def grid_texture(sprites: np.ndarray) -> float:
    """(N, H, W, 4) uint8 -> how much the sprites' fine detail sits on the generator's upsampling grid.

    Stacked stride-2 transposed convolutions leave a texture repeating every 2, 4, 8 and 16 px (Odena et al.
    2016, "Deconvolution and checkerboard artifacts"): peaks of the amplitude spectrum at multiples of H/16
    cycles per image. This is the mean spectrum (of the composited luminance, each sprite's mean removed) at
    those frequencies over its mean at the other frequencies of the same band, periods of 8 px and shorter:
    about 1 for real sprites, above 1 for a dotted texture. Sprites with no detail at all (every one blank or
    one flat colour) have nothing on the grid either: 1, never a 0 / 0 that would write NaN into the metrics."""
    luma = composite(sprites).astype(np.float32) @ LUMA
    luma -= luma.mean(axis=(1, 2), keepdims=True)
    spectrum = np.abs(np.fft.fft2(luma)).mean(axis=0)
    h, w = spectrum.shape
    fy, fx = (np.minimum(np.arange(n), n - np.arange(n)) for n in (h, w))  # |frequency|, cycles per image
    band = (fy[:, None] / h) ** 2 + (fx[None, :] / w) ** 2 >= (1 / 8) ** 2
    grid = (fy[:, None] % max(h // 16, 1) == 0) & (fx[None, :] % max(w // 16, 1) == 0)
    rest = spectrum[band & ~grid].mean()
    return float(spectrum[band & grid].mean() / rest) if rest > 0 else 1.0


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def mean_pairwise_distance(x: np.ndarray) -> float:
    d = np.sqrt(sq_distances(x, x))
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def nearest_distances(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """Distance of each row of x to its nearest row of `ref` (to its nearest other row of x if ref is None)."""
    d = sq_distances(x, x if ref is None else ref)
    if ref is None:
        np.fill_diagonal(d, np.inf)
    return np.sqrt(d.min(axis=1))


def nearest_indices(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Index into `ref` of each row of x's nearest neighbour."""
    return sq_distances(x, ref).argmin(axis=1)


def mean_ms_ssim(sprites: np.ndarray, pairs: int = MS_SSIM_PAIRS, seed: int = 0) -> float:
    """Mean MS-SSIM over `pairs` random pairs of different sprites (1: identical; lower: more varied)."""
    from pytorch_msssim import ms_ssim

    n = len(sprites)
    if n < 2:
        raise ValueError("MS-SSIM needs at least two sprites")
    rng = np.random.default_rng(seed)
    first = rng.integers(n, size=pairs)
    second = (first + rng.integers(1, n, size=pairs)) % n  # never the sprite itself
    # channels-last in memory, whatever layout the sprites came in: pytorch_msssim's depthwise Gaussian filter runs
    # about 4x faster on it than on NCHW here (finish_sprites hands over an NCHW-strided view)
    rgb = torch.from_numpy(np.ascontiguousarray(composite(sprites), dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        values = [
            ms_ssim(rgb[first[i : i + 250]], rgb[second[i : i + 250]], size_average=False, **MS_SSIM)
            for i in range(0, pairs, 250)
        ]
    return float(torch.cat(values).mean())


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns (k, D) centres, fewer where x has fewer distinct rows."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = sq_distances(x, np.stack(centres)).min(axis=1)
        if d.sum() == 0:  # every row is already a centre
            break
        centres.append(x[rng.choice(len(x), p=d / d.sum())])
    centres = np.stack(centres)
    for _ in range(iters):
        labels = sq_distances(x, centres).argmin(axis=1)
        moved = np.stack([x[labels == j].mean(0) if (labels == j).any() else c for j, c in enumerate(centres)])
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres


def bin_counts(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.bincount(sq_distances(x, centres).argmin(axis=1), minlength=len(centres))


def effective_bins(counts: np.ndarray) -> float:
    """exp(entropy) of a bin histogram: how many equally filled bins would spread as widely. 1 when every
    count is in one bin; the number of bins when all are filled alike."""
    q = counts[counts > 0] / counts.sum()
    return float(np.exp(-(q * np.log(q)).sum()))


def different_bins(reference: np.ndarray, sample: np.ndarray, z: float = 1.96) -> np.ndarray:
    """Per bin, whether the two histograms' shares differ: a two-proportion z-test, at 95% by default."""
    n1, n2 = reference.sum(), sample.sum()
    p1, p2 = reference / n1, sample / n2
    pooled = (reference + sample) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, np.abs(p1 - p2) / se, 0.0)
    return stat > z


def ndb(reference: np.ndarray, sample: np.ndarray, z: float = 1.96) -> int:
    """Number of statistically different bins (Richardson & Weiss 2018): `different_bins`, counted."""
    return int(different_bins(reference, sample, z).sum())


def bin_coverage(reference: np.ndarray, sample: np.ndarray, holdout: np.ndarray, at: int) -> list[dict]:
    """Per bin: the share of each set, and how far the sample's share is from the reference's in standard
    errors of a set of `at` sprites, taken at the reference's share (`ndb` pools the two shares instead, so
    its z differs a little; below about -1.96 a set of `at` sprites tends to miss the bin)."""
    p, q, h = (c / c.sum() for c in (reference, sample, holdout))
    se = np.sqrt(p * (1 - p) * (1 / reference.sum() + 1 / at))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (q - p) / se, 0.0)
    return [
        {"bin": j, "train_share": float(p[j]), "model_share": float(q[j]), "holdout_share": float(h[j]),
         "z": float(z[j])}
        for j in range(len(p))
    ]  # fmt: skip


def jsd(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log) between two bin histograms."""
    p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float((a[mask] * np.log(a[mask] / b[mask])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


class RandomFeatures(nn.Module):
    """A fixed random CNN: 96 px RGB -> 256 features. Untrained, but a stable space in which KID compares sets."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(FEATURE_SEED)
        widths = [3, 32, 64, 128, 256]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:], strict=False):
            conv = nn.Conv2d(cin, cout, 4, 2, 1)
            with torch.no_grad():
                conv.weight.normal_(0, math.sqrt(2.0 / (cin * 16)), generator=gen)
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    @torch.no_grad()
    def forward(self, sprites: np.ndarray, batch: int = 256) -> np.ndarray:
        rgb = composite(sprites).astype(np.float32) / 127.5 - 1.0
        out = [self.net(torch.from_numpy(rgb[i : i + batch]).permute(0, 3, 1, 2)) for i in range(0, len(rgb), batch)]
        return torch.cat(out).numpy().astype(np.float64)


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Kernel Inception Distance's estimator (unbiased MMD^2, cubic polynomial kernel) between feature sets."""
    d = a.shape[1]
    kxx = (a @ a.T / d + 1) ** 3
    kyy = (b @ b.T / d + 1) ** 3
    kxy = (a @ b.T / d + 1) ** 3
    m, n = len(a), len(b)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def standard_error(values) -> float | None:
    """Standard error of the mean of independent values; None for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None


def subsets(n: int, size: int) -> list[slice]:
    """Disjoint slices of `size` covering the first n // size * size rows (at least one slice)."""
    return [slice(i, i + size) for i in range(0, max(n - size, 0) + 1, size)] or [slice(0, n)]


class Reference:
    """The real side of evaluate(), computed once and shared by every generator scored against it: the training
    set's features, spreads, near-duplicate threshold, k-means bins and KID features, and each metric's floor
    (`holdout`, real sprites the model never saw, measured the same way against the training set). `inception`
    (dcgan.train.inception.Inception) adds FID and KID in its feature space."""

    def __init__(
        self,
        train: np.ndarray,
        holdout: np.ndarray,
        k: int = 40,
        seed: int = EVAL_SEED,
        inception=None,
    ):
        self.train, self.holdout, self.k, self.seed, self.inception = train, holdout, k, seed, inception
        self.train_features = t = pixel_features(train)
        self.holdout_features = h = pixel_features(holdout)
        self.train_spread = mean_pairwise_distance(t)
        self.colour_spread = mean_pairwise_distance(sprite_colours(train))
        self.line_art = line_art_share(train) or 1.0  # a training set without line art: the shares themselves
        self.threshold = float(nearest_distances(t).min())  # real sprites are never closer to each other than this
        self.centres = kmeans(t, k, seed)
        self.train_bins = bin_counts(t, self.centres)
        self.finished = {"train": finish_levels(train), "holdout": finish_levels(holdout)}  # as the sampler finishes
        self.train_spectrum = log_radial_spectrum(self.finished["train"])
        self.features = RandomFeatures()
        self.kid_train = self.features(train)
        self.holdout_nearest = float(nearest_distances(h, t).mean())  # unseen sprites to their nearest training one
        self.floors = {
            "diversity_ratio": mean_pairwise_distance(h) / self.train_spread,
            "near_duplicate_rate": self.near_duplicates(h),
            "ndb": self.ndb(h),
            "jsd": self.jsd(h),
            "memorisation_ratio": 1.0,
            "kid": kid(self.features(holdout), self.kid_train),
            "ms_ssim": mean_ms_ssim(holdout, seed=seed),
            "colour_spread": mean_pairwise_distance(sprite_colours(holdout)) / self.colour_spread,
            "line_art": line_art_share(holdout) / self.line_art,
            "grid_texture": grid_texture(holdout),
            **likeness(self.finished["holdout"], self.train_spectrum),
            "classifier_accuracy": 0.5,  # what a classifier scores on sprites it cannot tell from real ones
        }
        if inception is not None:
            from .inception import fid

            self.inception_train = inception(train)
            fh = inception(holdout)
            self.floors["fid_inception"] = fid(fh, self.inception_train)
            self.floors["kid_inception"] = kid(fh, self.inception_train)

    def near_duplicates(self, features: np.ndarray) -> float:
        return float((nearest_distances(features) < self.threshold).mean())

    def ndb(self, features: np.ndarray) -> float:
        return ndb(self.train_bins, bin_counts(features, self.centres))

    def jsd(self, features: np.ndarray) -> float:
        return jsd(self.train_bins, bin_counts(features, self.centres))

    def score(self, generated: np.ndarray) -> dict:
        """Every metric for `generated` beside its floor. Count-sensitive metrics compare equal counts: the
        generated set is cut into holdout-sized subsets and their mean is reported, with its standard error over
        the subsets as "model_se" (None from a single subset): how far another set of seeds may move it. The
        result's "bins" lists every bin's shares, for seeing which modes are missed."""
        g = pixel_features(generated)
        finished = finish_levels(generated)  # a no-op on sprites dcgan-sample or generate() finished
        m = len(self.holdout)
        errors = {}  # metric: standard error of the mean over the holdout-sized subsets

        def at_holdout_size(x: np.ndarray, fn, name: str) -> float:
            values = [fn(x[s]) for s in subsets(len(x), m)]
            errors[name] = standard_error(values)
            return float(np.mean(values))

        model = {
            "diversity_ratio": mean_pairwise_distance(g) / self.train_spread,
            "near_duplicate_rate": at_holdout_size(g, self.near_duplicates, "near_duplicate_rate"),
            "ndb": at_holdout_size(g, self.ndb, "ndb"),
            "jsd": at_holdout_size(g, self.jsd, "jsd"),
            "memorisation_ratio": float(nearest_distances(g, self.train_features).mean()) / self.holdout_nearest,
            "kid": kid(self.features(generated), self.kid_train),
            "ms_ssim": mean_ms_ssim(generated, seed=self.seed),
            "colour_spread": mean_pairwise_distance(sprite_colours(generated)) / self.colour_spread,
            "line_art": line_art_share(generated) / self.line_art,
            "grid_texture": grid_texture(generated),
            **likeness(finished, self.train_spectrum),
            "classifier_accuracy": two_sample_accuracy(self.finished["train"], finished, self.finished["holdout"]),
        }
        config = {}
        if self.inception is not None:
            from .inception import fid

            fg = self.inception(generated)
            model["fid_inception"] = at_holdout_size(fg, lambda x: fid(x, self.inception_train), "fid_inception")
            model["kid_inception"] = kid(fg, self.inception_train)
            config["inception"] = self.inception.describe()
        return {
            "metrics": {
                name: {
                    "model": value,
                    "real_floor": self.floors[name],
                    **({"model_se": errors[name]} if name in errors else {}),
                }
                for name, value in model.items()
            },
            "bins": bin_coverage(
                self.train_bins, bin_counts(g, self.centres), bin_counts(self.holdout_features, self.centres), at=m
            ),
            "counts": {"generated": len(g), "train": len(self.train), "holdout": m},
            "config": {
                "space": "composited on RGB (235, 235, 235), 2x2 area-averaged to 48 x 48 x 3, values in [0, 1]",
                "near_duplicate_threshold": self.threshold,
                "kmeans_bins": self.k,
                "kmeans_seed": self.seed,
                "kid_features": f"random CNN (4 stride-2 convs to 256, ReLU, average pool), torch seed {FEATURE_SEED}",
                "ms_ssim": {
                    **MS_SSIM,
                    "pairs": MS_SSIM_PAIRS,
                    "library": "pytorch-msssim",
                    "resolution": "96 x 96 RGB",
                },
                "likeness": {
                    "on": "sprites with alpha made hard (>= 128 opaque), as dcgan-sample writes them",
                    "flat_levels": FLAT_LEVELS,
                    "part_pixels": PART_PIXELS,
                    "outline_luminance": OUTLINE_LUMINANCE,
                    "spectral_gap": "mean |log10 power| gap to the training set over the upper half of radii",
                    "classifier": f"4-conv CNN, 6 epochs, torch seed {C2ST_SEED}: training sprites vs the first "
                    "half of the samples; accuracy on the holdout vs as many of the second half",
                },
                **config,
            },
        }


def evaluate(
    generated: np.ndarray,
    train: np.ndarray,
    holdout: np.ndarray,
    k: int = 40,
    seed: int = EVAL_SEED,
    inception=None,
) -> dict:
    """Every metric for `generated` and, as its floor, for `holdout`, both against `train`: Reference(...).score.
    To score several generators against the same real sprites, build the Reference once."""
    return Reference(train, holdout, k, seed, inception).score(generated)
