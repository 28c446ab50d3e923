import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dcgan.train.data import NoImagesError, load_folder, repair_png


def png_with_chunk(img: Image.Image, ctype: bytes, body: bytes, break_crc: bool) -> bytes:
    """The PNG of `img` with an extra chunk inserted after IHDR, its CRC wrong if asked."""
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=img.info.get("transparency"))
    data = buf.getvalue()
    ihdr_end = 8 + 12 + 13
    crc = zlib.crc32(ctype + body) ^ (0xDEADBEEF if break_crc else 0)
    chunk = struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def palette_sprite() -> Image.Image:
    idx = np.zeros((96, 96), np.uint8)
    idx[30:60, 20:70] = 1
    idx[40:50, 40:50] = 2
    img = Image.fromarray(idx, "P")
    img.putpalette([10, 20, 30, 200, 50, 50, 50, 200, 50] + [0] * (768 - 9))
    img.info["transparency"] = 0
    return img


def test_palette_transparency_becomes_rgba_with_clean_transparent_pixels(tmp_path):
    palette_sprite().save(tmp_path / "a.png", transparency=0)
    s = load_folder(tmp_path)
    img = s.images[0]  # (4, 96, 96)
    assert img.shape == (4, 96, 96) and img.dtype == np.uint8
    assert img[3, 0, 0] == 0 and img[3, 35, 25] == 255
    assert tuple(img[:3, 35, 25]) == (200, 50, 50) and tuple(img[:3, 45, 45]) == (50, 200, 50)
    # index 0's colour (10, 20, 30) is invisible: it must not reach the model
    assert (img[:3][:, img[3] == 0] == 0).all()


def test_rgba_with_invisible_colour_is_cleaned(tmp_path):
    arr = np.zeros((96, 96, 4), np.uint8)
    arr[..., :3] = 123  # junk RGB under alpha 0
    arr[10:20, 10:20] = (1, 2, 3, 255)
    Image.fromarray(arr, "RGBA").save(tmp_path / "junk.png")
    img = load_folder(tmp_path).images[0]
    assert img[:3, 0, 0].tolist() == [0, 0, 0] and img[:3, 15, 15].tolist() == [1, 2, 3]


def test_other_sizes_are_padded_around_content_and_stay_crisp(tmp_path):
    # a 40 x 64 sprite: a 10 x 10 red square near the top-left of its frame
    arr = np.zeros((64, 40, 4), np.uint8)
    arr[4:14, 2:12] = (255, 0, 0, 255)
    Image.fromarray(arr, "RGBA").save(tmp_path / "odd.png")
    Image.fromarray(np.full((48, 48, 3), (0, 0, 255), np.uint8), "RGB").save(tmp_path / "small.jpg", quality=100)
    s = load_folder(tmp_path)
    odd = s.images[s.names.index("odd.png")]
    assert odd.shape == (4, 96, 96)
    # nearest-neighbour: only the original values survive, no blended edge colours
    assert set(np.unique(odd[3])) == {0, 255}
    assert set(map(tuple, odd[:3, odd[3] == 255].T)) == {(255, 0, 0)}
    # 64 -> 96 is 1.5x: a 10 px square becomes 15 px, horizontally centred in the square frame
    ys, xs = np.nonzero(odd[3])
    assert 14 <= len(set(xs)) <= 16 and 14 <= len(set(ys)) <= 16
    assert abs((xs.min() + xs.max()) / 2 - 47.5) <= 2
    jpg = s.images[s.names.index("small.jpg")]
    assert (jpg[3] == 255).all() and abs(int(jpg[2].mean()) - 255) <= 2


def test_broken_ancillary_crc_is_repaired_not_lost(tmp_path, capsys):
    data = png_with_chunk(palette_sprite(), b"zTXt", b"Comment\x00\x00" + zlib.compress(b"hello"), break_crc=True)
    with pytest.raises((OSError, SyntaxError)):  # Pillow refuses the file as it is
        Image.open(io.BytesIO(data)).load()
    (tmp_path / "crc.png").write_bytes(data)
    palette_sprite().save(tmp_path / "ok.png", transparency=0)
    s = load_folder(tmp_path)
    assert s.names == ["crc.png", "ok.png"] and s.repaired == ["crc.png"] and not s.skipped
    np.testing.assert_array_equal(s.images[0], s.images[1])  # same pixels as the intact file


def test_repair_leaves_damaged_critical_chunks_alone():
    good = png_with_chunk(palette_sprite(), b"tEXt", b"a\x00b", break_crc=False)
    assert repair_png(good) is None  # nothing to repair
    broken_ihdr = bytearray(good)
    broken_ihdr[29] ^= 0xFF  # inside IHDR's CRC
    assert repair_png(bytes(broken_ihdr)) is None


def test_undecodable_and_truncated_files_are_skipped_with_a_warning(tmp_path):
    palette_sprite().save(tmp_path / "good.png", transparency=0)
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 96, 4), np.uint8), "RGBA").save(buf, "PNG")
    (tmp_path / "half.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "empty.gif").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image, not even considered")
    warnings = []
    s = load_folder(tmp_path, warn=warnings.append)
    assert s.names == ["good.png"]
    assert sorted(name for name, _ in s.skipped) == ["empty.gif", "half.png", "noise.png"]
    assert len(warnings) == 3 and all(any(n in w for n in ("empty.gif", "half.png", "noise.png")) for w in warnings)


def test_gifs_of_assorted_sizes_load(tmp_path):
    for i, size in enumerate([(96, 96), (50, 70), (120, 80)]):
        idx = np.zeros(size[::-1], np.uint8)
        idx[size[1] // 4 : size[1] // 2, size[0] // 4 : size[0] // 2] = 1
        img = Image.fromarray(idx, "P")
        img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
        img.save(tmp_path / f"{i}.gif", transparency=0)
    s = load_folder(tmp_path)
    assert s.images.shape == (3, 4, 96, 96)
    for img in s.images:
        assert set(np.unique(img[3])) == {0, 255}
        assert set(map(tuple, img[:3, img[3] == 255].T)) == {(0, 255, 0)}


def test_empty_folder_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(NoImagesError, match="no usable images"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        load_folder(tmp_path / "file.png")


def test_fingerprint_follows_pixels_and_names(tmp_path, make_sprites):
    folder = make_sprites(3)
    a = load_folder(folder).fingerprint()
    assert load_folder(folder).fingerprint() == a
    (folder / "3.png").rename(folder / "4.png")
    assert load_folder(folder).fingerprint() != a


def test_all_shared_training_sprites_load(shared_data):
    s = load_folder(shared_data / "pokemon")
    assert len(s) == 921 and not s.skipped
    assert len(s.repaired) == 68  # the files with a corrupt iCCP chunk, per the data's README
    alpha = s.images[:, 3]
    assert set(np.unique(alpha)) <= {0, 255} and (alpha == 255).any(axis=(1, 2)).all()
