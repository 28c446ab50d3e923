import numpy as np
from PIL import Image

from dcgan.serve.images import animate, composite, reduce_colours, sheet


def test_composite_blends_over_the_background():
    sprites = np.zeros((1, 2, 2, 4), np.uint8)
    sprites[0, 0, 0] = (255, 0, 0, 255)  # opaque red
    sprites[0, 0, 1] = (255, 0, 0, 0)  # invisible red
    out = composite(sprites, background=(0, 0, 100))
    assert out[0, 0, 0].tolist() == [255, 0, 0] and out[0, 0, 1].tolist() == [0, 0, 100]


def test_reduce_colours_redraws_each_sprite_in_its_own_few_colours_and_keeps_alpha():
    rng = np.random.default_rng(0)
    sprites = rng.integers(0, 256, (3, 24, 24, 4), dtype=np.uint8)
    sprites[..., 3] = np.where(sprites[..., 3] < 100, 0, 255)
    sprites[sprites[..., 3] == 0] = 0  # transparent pixels carry no colour, as dcgan-sample writes them
    sprites[1, ..., 0] //= 2  # a darker sprite: its palette is its own, not the first one's
    out = reduce_colours(sprites, 5)
    np.testing.assert_array_equal(out[..., 3], sprites[..., 3])
    assert not out[sprites[..., 3] == 0].any()
    palettes = [{tuple(c) for c in sprite[sprite[..., 3] > 0][:, :3]} for sprite in out]
    assert all(2 <= len(p) <= 5 for p in palettes) and palettes[0] != palettes[1]
    before = [len({tuple(c) for c in s[s[..., 3] > 0][:, :3]}) for s in sprites]
    assert min(before) > 300  # the test's sprites were noise
    # each pixel is redrawn near its own colour: far closer than to a random one of the palette
    moved = np.abs(out.astype(int) - sprites.astype(int))[..., :3].mean()
    assert moved < 50
    # a sprite already in few colours is untouched, and so is one with nothing visible
    flat = np.zeros((2, 8, 8, 4), np.uint8)
    flat[0, :4] = (200, 30, 30, 255)
    flat[0, 4:6] = (20, 20, 20, 255)
    flat[0, 6:] = (90, 160, 40, 255)
    np.testing.assert_array_equal(reduce_colours(flat, 3), flat)


def test_sheet_places_sprites_row_by_row():
    sprites = np.zeros((5, 4, 4, 4), np.uint8)
    sprites[..., 3] = 255
    sprites[:, :, :, 0] = np.arange(5)[:, None, None] * 50
    img = np.asarray(sheet(sprites, columns=3, padding=1))
    assert img.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert img[1, 1, 0] == 0 and img[1, 6, 0] == 50 and img[6, 6, 0] == 200  # sprite 4 is row 1, column 1


def test_animation_has_a_frame_per_distinct_grid(tmp_path):
    frames = []
    for i in range(4):
        path = tmp_path / f"g{i}.png"
        Image.new("RGB", (20, 20), (60 * i, 0, 0)).save(path)
        frames.append(path)
    animate(frames, tmp_path / "a.gif", scale=0.5)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (10, 10)
    animate(frames, tmp_path / "b.gif", max_frames=2)
    with Image.open(tmp_path / "b.gif") as gif:
        assert gif.n_frames == 3  # every second frame, plus the last one
