"""Latent walks: spherical interpolation on the latents' shell, a closed loop through the seeds, and the files
dcgan-sample --walk writes (a looping GIF with hard alpha, or a PNG strip), with its refusals."""

import numpy as np
import pytest
from PIL import Image

from conftest import assert_within_a_level, invoke
from dcgan.serve.cli import main as sample_main
from dcgan.serve.generator import SpriteGenerator
from dcgan.serve.latent import latents
from dcgan.serve.walk import MAX_FRAMES, gif_frame, slerp, walk_latents


def sample(*args):
    return invoke(sample_main, *args)


def test_slerp_keeps_every_frame_on_the_shell_where_a_straight_line_cuts_inside():
    a, b = latents([3, 17], 100)
    path = slerp(a, b, np.linspace(0, 1, 9))
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)
    norms = np.linalg.norm(path, axis=1)
    assert norms.min() > 0.95 * min(np.linalg.norm(a), np.linalg.norm(b))
    straight = np.linalg.norm((a + b) / 2)
    assert straight < 0.8 * norms[4]  # two random 100-d latents are near orthogonal: the midpoint falls inward
    same = slerp(a, a, np.array([0.5]))  # no angle to turn through: a itself
    np.testing.assert_allclose(same[0], a, atol=1e-6)


def test_a_walk_starts_each_step_on_its_seed_and_closes_the_loop():
    z = walk_latents([3, 17, 42], 4, 100)
    assert z.shape == (12, 100) and z.dtype == np.float32
    np.testing.assert_array_equal(z[[0, 4, 8]], latents([3, 17, 42], 100))
    step = np.linalg.norm(np.diff(np.concatenate([z, z[:1]]), axis=0), axis=1)  # the last frame leads back to the first
    assert step.max() < 2 * step.min()  # even steps, no jump at the seam
    with pytest.raises(ValueError, match="two seeds"):
        walk_latents([3], 4, 100)
    with pytest.raises(ValueError, match=str(MAX_FRAMES)):
        walk_latents([3, 4], MAX_FRAMES, 100)


def test_walk_gif_loops_with_hard_alpha_and_the_strip_holds_the_sprites_themselves(tiny_export, tmp_path):
    gif, strip = tmp_path / "walk.gif", tmp_path / "walk.png"
    assert sample("--walk", "3,17", "--frames", 4, "--model", tiny_export, "-q", gif).exit_code == 0
    result = sample("--walk", "3,17", "--frames", 4, "--model", tiny_export, strip)
    assert result.exit_code == 0 and "8 frames through seeds 3, 17 and back" in result.output
    gen = SpriteGenerator(tiny_export, provider="cpu")
    frames = gen.from_latents(walk_latents([3, 17], 4, gen.info.nz))
    with Image.open(strip) as im:
        assert im.mode == "RGBA" and im.size == (8 * 96, 96)
        row = np.asarray(im)
    assert_within_a_level(row[:, :96], gen([3])[0])  # frame 0 is seed 3's sprite (drawn in another batch)
    assert_within_a_level(row[:, 4 * 96 : 5 * 96], gen([17])[0])
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 8 and im.info["loop"] == 0  # loops for ever
        for i in range(8):
            im.seek(i)
            rgba = np.asarray(im.convert("RGBA"))
            np.testing.assert_array_equal(rgba[..., 3], frames[i][..., 3])  # alpha exactly the sprite's, 0 or 255
            opaque = frames[i][..., 3] == 255
            # this untrained test model draws thousands of colours, and a GIF frame holds 255
            assert np.abs(rgba[..., :3][opaque].astype(int) - frames[i][..., :3][opaque]).mean() < 12


def test_a_pixel_art_frame_keeps_its_colours_exactly():
    sprite = np.zeros((96, 96, 4), np.uint8)
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (13, 3), dtype=np.uint8)  # a real sprite's 13 colours
    sprite[20:80, 20:80, :3] = palette[rng.integers(0, 13, (60, 60))]
    sprite[20:80, 20:80, 3] = 255
    frame = np.asarray(gif_frame(sprite, scale=2).convert("RGBA"))
    np.testing.assert_array_equal(frame[::2, ::2][..., 3], sprite[..., 3])
    np.testing.assert_array_equal(frame[::2, ::2][20:80, 20:80], sprite[20:80, 20:80])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--walk", "3"], "at least two seeds"),
        (["--walk", "3,x"], "not a list of seeds"),
        (["--walk", "3,4", "--frames", "200"], "at most 256"),
        (["--walk", "3,4", "-n", "5"], "cannot go with it"),
    ],
)
def test_walk_refusals_are_one_line(tiny_export, tmp_path, args, message):
    result = sample(*args, "--model", tiny_export, tmp_path / "w.gif")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w.gif").exists()


def test_walk_never_overwrites_by_surprise_and_needs_a_picture_file(tiny_export, tmp_path):
    (tmp_path / "w.gif").write_bytes(b"mine")
    kept = sample("--walk", "3,4", "--model", tiny_export, tmp_path / "w.gif")
    assert kept.exit_code == 1 and "--overwrite" in kept.output
    assert (tmp_path / "w.gif").read_bytes() == b"mine"
    assert sample("--walk", "3,4", "--model", tiny_export, "--overwrite", tmp_path / "w.gif").exit_code == 0
    wrong = sample("--walk", "3,4", "--model", tiny_export, tmp_path / "w.txt")
    assert wrong.exit_code == 2 and ".gif or a .png" in wrong.output
