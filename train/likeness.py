"""Sprite likeness: what a person sees in pixel art and a generator can miss while its layout numbers pass.

Pixel-art sprites are drawn in a few flat colours, inside one clean silhouette with a dark outline. Each measure
takes finished sprites, uint8 RGBA (N, H, W, 4) with alpha 0 or 255 as dcgan-sample writes them, and is read beside
the same measure of held-out real sprites:

- flat_colour_share: neighbouring opaque pixels within FLAT_LEVELS of each other on every channel (flat areas);
- colours_per_sprite: distinct colours per sprite at 4 bits a channel (a palette, not a gradient of noise);
- speck_share and parts_per_sprite: opaque pixels outside each sprite's largest 8-connected part, and the number
  of parts of at least PART_PIXELS (torn edges and stray specks);
- dark_outline_share: silhouette-edge pixels darker than OUTLINE_LUMINANCE (the outline);
- spectral_gap: how far the log radial power spectrum sits from the training sprites', over the upper half of the
  frequencies, where the transposed convolutions' checkerboard shows (Durall et al. 2020);
- classifier_accuracy (two_sample_accuracy): a small CNN trained to tell training sprites from generated ones,
  scored on held-out real sprites against generated ones it never saw; 0.5 when it cannot, 1.0 when every
  generated sprite gives itself away (Lopez-Paz and Oquab 2017).
"""

from __future__ import annotations

import numpy as np

from dcgan.serve.images import composite

FLAT_LEVELS = 6  # neighbours this close on every channel are one flat colour (pixel art: 0 apart; noise: many)
PART_PIXELS = 4  # a connected part smaller than this is a speck, not a part of the creature
OUTLINE_LUMINANCE = 0.25  # edge pixels darker than this (luma, 0..1) are outline
LUMA = np.float32([0.299, 0.587, 0.114])
C2ST_SEED = 0


def _opaque(sprites: np.ndarray) -> np.ndarray:
    return sprites[..., 3] >= 128


def flat_colour_share(sprites: np.ndarray) -> float:
    """Share of pairs of horizontally or vertically neighbouring opaque pixels whose colours differ by at most
    FLAT_LEVELS levels on each of R, G and B."""
    rgb, opaque = sprites[..., :3].astype(np.int16), _opaque(sprites)
    pairs = flat = 0
    for axis in (1, 2):
        n = rgb.shape[axis]
        a, b = np.take(rgb, range(n - 1), axis=axis), np.take(rgb, range(1, n), axis=axis)
        both = np.take(opaque, range(n - 1), axis=axis) & np.take(opaque, range(1, n), axis=axis)
        pairs += int(both.sum())
        flat += int((both & (np.abs(a - b).max(axis=-1) <= FLAT_LEVELS)).sum())
    return flat / pairs if pairs else 0.0


def colours_per_sprite(sprites: np.ndarray) -> float:
    """Mean number of distinct colours of a sprite's opaque pixels, each channel cut to its top 4 bits."""
    rgb = (sprites[..., :3] >> 4).astype(np.int32)
    codes = (rgb[..., 0] << 8) | (rgb[..., 1] << 4) | rgb[..., 2]
    opaque = _opaque(sprites)
    return float(np.mean([np.unique(c[o]).size for c, o in zip(codes, opaque, strict=True)]))


def parts(sprites: np.ndarray) -> tuple[float, float]:
    """(speck share, parts per sprite): the share of all opaque pixels that lie outside their sprite's largest
    8-connected part, and the mean number of parts of at least PART_PIXELS pixels (blank sprites count 0)."""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    outside = total = counted = 0
    for opaque in _opaque(sprites):
        labels, n = ndimage.label(opaque, structure=eight)
        sizes = np.bincount(labels.ravel())[1:]
        if n:
            outside += int(sizes.sum() - sizes.max())
            total += int(sizes.sum())
            counted += int((sizes >= PART_PIXELS).sum())
    return (outside / total if total else 0.0), counted / len(sprites)


def dark_outline_share(sprites: np.ndarray) -> float:
    """Share of silhouette-edge pixels (opaque, with a transparent or off-image 4-neighbour) that are darker than
    OUTLINE_LUMINANCE: pixel-art sprites are outlined in dark colours."""
    opaque = _opaque(sprites)
    padded = np.pad(opaque, ((0, 0), (1, 1), (1, 1)))
    inner = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    edge = opaque & ~inner
    luma = sprites[..., :3].astype(np.float32) @ LUMA / 255.0
    return float((edge & (luma < OUTLINE_LUMINANCE)).sum() / max(int(edge.sum()), 1))


def log_radial_spectrum(sprites: np.ndarray) -> np.ndarray:
    """log10 of the mean power spectrum of the sprites' composited luminance (each sprite's mean removed),
    averaged over rings of integer radius from 1 cycle per image out to the corners, where the checkerboard of
    stride-2 upsampling puts its energy (H/2 cycles on both axes)."""
    luma = composite(sprites).astype(np.float32) @ LUMA / 255.0
    luma -= luma.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(luma)) ** 2).mean(axis=0)
    h, w = power.shape
    fy, fx = np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w
    radius = np.rint(np.hypot(fy[:, None], fx[None, :])).astype(int)
    rings = np.arange(1, radius.max() + 1)
    return np.log10(np.array([power[radius == r].mean() for r in rings]) + 1e-12)


def spectral_gap(sprites: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference (decades of power) between the log radial spectra of `sprites` and of
    `reference` (a log_radial_spectrum), over the upper half of the frequencies."""
    ours = log_radial_spectrum(sprites)
    upper = slice(len(ours) // 2, None)
    return float(np.abs(ours[upper] - reference[upper]).mean())


def two_sample_accuracy(
    train: np.ndarray, generated: np.ndarray, holdout: np.ndarray, epochs: int = 6, seed: int = C2ST_SEED
) -> float:
    """Classifier two-sample test: a small CNN learns training sprites (1) against the first half of `generated`
    (0), then scores held-out real sprites against as many sprites of the second half, which it never saw.
    Returns its accuracy there: about 0.5 when generated sprites cannot be told from real ones."""
    import torch
    from torch import nn

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    half = len(generated) // 2
    fit_fake, test_fake = generated[:half], generated[half:]
    n = min(len(train), len(fit_fake))
    rng = np.random.default_rng(seed)
    x = tensor(np.concatenate([train[rng.permutation(len(train))[:n]], fit_fake[:n]]))
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    torch.manual_seed(seed)
    net = nn.Sequential(  # 4 x 96 x 96 -> 16 x 48 -> 32 x 24 -> 64 x 12 -> 64 x 6 -> one logit
        nn.Conv2d(4, 16, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(64):
            flip = torch.rand(len(idx), generator=order) < 0.5  # left-right is no clue either way
            batch = torch.where(flip[:, None, None, None], x[idx].flip(3), x[idx])
            loss = nn.functional.binary_cross_entropy_with_logits(net(batch).flatten(), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m = min(len(holdout), len(test_fake))
    with torch.no_grad():
        real_right = (net(tensor(holdout[:m])).flatten() > 0).float().mean().item()
        fake_right = (net(tensor(test_fake[:m])).flatten() <= 0).float().mean().item()
    return (real_right + fake_right) / 2


def likeness(sprites: np.ndarray, train_spectrum: np.ndarray) -> dict[str, float]:
    """Every measure but the classifier's, for finished sprites."""
    specks, count = parts(sprites)
    return {
        "flat_colour_share": flat_colour_share(sprites),
        "colours_per_sprite": colours_per_sprite(sprites),
        "speck_share": specks,
        "parts_per_sprite": count,
        "dark_outline_share": dark_outline_share(sprites),
        "spectral_gap": spectral_gap(sprites, train_spectrum),
    }
