"""Sprite likeness on sprites built to have known answers: flat colours, palettes, parts, outlines, spectra, and a
classifier that can or cannot tell two sets apart."""

import numpy as np
import pytest

from dcgan.train.likeness import (
    colours_per_sprite,
    dark_outline_share,
    flat_colour_share,
    log_radial_spectrum,
    parts,
    spectral_gap,
    two_sample_accuracy,
)


def blob(n=4, size=96, colour=(200, 80, 40), outline=True, seed=0):
    """n sprites: a filled disc of one colour on transparency, outlined in black when `outline`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size, 4), np.uint8)
    for i in range(n):
        cy, cx, r = size / 2 + rng.uniform(-8, 8), size / 2 + rng.uniform(-8, 8), rng.uniform(20, 30)
        d = np.hypot(yy - cy, xx - cx)
        out[i][d < r] = (*colour, 255)
        if outline:
            out[i][(d < r) & (d >= r - 1.5)] = (0, 0, 0, 255)
    return out


def test_flat_areas_and_few_colours_against_noise():
    flat = blob()
    noisy = flat.copy()
    rng = np.random.default_rng(1)
    opaque = noisy[..., 3] == 255
    noisy[..., :3][opaque] = rng.integers(0, 256, (int(opaque.sum()), 3), dtype=np.uint8)
    assert flat_colour_share(flat) > 0.9 and flat_colour_share(noisy) < 0.05
    assert colours_per_sprite(flat) == 2  # the fill and the outline
    assert colours_per_sprite(noisy) > 500
    # 7 levels apart is no longer one flat colour; 6 is
    stripes = flat.copy()
    stripes[:, :, ::2, 0] = np.where(stripes[:, :, ::2, 3] == 255, 206, 0)
    assert flat_colour_share(stripes) < flat_colour_share(flat)
    shade = flat.copy()
    shade[:, :, ::2, 0] = np.where(shade[:, :, ::2, 3] == 255, np.minimum(shade[:, :, ::2, 0], 250) + 6, 0)
    assert flat_colour_share(shade) >= flat_colour_share(stripes)


def test_specks_and_parts_count_what_lies_off_the_creature():
    clean = blob(n=2, outline=False)
    specks, count = parts(clean)
    assert specks == 0 and count == 1
    torn = clean.copy()
    torn[:, 2:4, 2:4] = (255, 255, 255, 255)  # a 4-pixel part in a corner
    torn[:, 90, 90] = (255, 255, 255, 255)  # a 1-pixel speck: too small to count as a part
    specks, count = parts(torn)
    assert count == 2  # body and the corner part
    bodies = int((clean[..., 3] == 255).sum())
    assert specks == pytest.approx(2 * 5 / (bodies + 2 * 5))  # 4 + 1 pixels off each of the two bodies
    diagonal = np.zeros((1, 8, 8, 4), np.uint8)
    diagonal[0, np.arange(8), np.arange(8)] = 255  # pixel-art lines join at corners: one part, 8-connected
    assert parts(diagonal) == (0.0, 1.0)
    assert parts(np.zeros((3, 8, 8, 4), np.uint8)) == (0.0, 0.0)  # blank sprites: nothing to count


def test_dark_outline_share_reads_the_silhouette_edge():
    assert dark_outline_share(blob(outline=True)) > 0.95
    assert dark_outline_share(blob(outline=False)) == 0.0


def test_spectral_gap_sees_a_checkerboard_that_layout_measures_miss():
    real = blob(n=16, seed=3)
    reference = log_radial_spectrum(real)
    assert spectral_gap(blob(n=16, seed=4), reference) < 0.2
    dotted = blob(n=16, seed=4).astype(np.int16)
    dotted[:, ::2, ::2, :3] += np.where(dotted[:, ::2, ::2, 3:] == 255, 40, 0)  # a period-2 texture on the body
    dotted = np.clip(dotted, 0, 255).astype(np.uint8)
    assert spectral_gap(dotted, reference) > 3 * spectral_gap(blob(n=16, seed=4), reference)


def test_a_classifier_tells_apart_what_differs_and_not_what_does_not():
    real = np.concatenate([blob(n=48, colour=(200, 80, 40), seed=s) for s in range(2)])
    holdout = blob(n=24, colour=(200, 80, 40), seed=9)
    alike = np.concatenate([blob(n=48, colour=(200, 80, 40), seed=s) for s in (5, 6)])
    other = np.concatenate([blob(n=48, colour=(40, 200, 220), seed=s) for s in (5, 6)])
    assert two_sample_accuracy(real, other, holdout) > 0.9
    assert two_sample_accuracy(real, alike, holdout) < 0.75
