import numpy as np
from PIL import Image

from dcgan.serve.images import animate, composite, sheet


def test_composite_blends_over_the_background():
    sprites = np.zeros((1, 2, 2, 4), np.uint8)
    sprites[0, 0, 0] = (255, 0, 0, 255)  # opaque red
    sprites[0, 0, 1] = (255, 0, 0, 0)  # invisible red
    out = composite(sprites, background=(0, 0, 100))
    assert out[0, 0, 0].tolist() == [255, 0, 0] and out[0, 0, 1].tolist() == [0, 0, 100]


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
