"""dcgan-train fed the wrong folder or odd images: one clear line and a non-zero exit when nothing is usable,
a warning per skipped file when something is, and every ordinary image mode loaded."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, invoke, synthetic_sprite
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.data import load_folder


def train(data, out, *extra):
    """One epoch of TINY on `data` into `out` (no EMA generator: these tests are about the data)."""
    return invoke(train_main, "--data", data, "--out", out, "--epochs", 1, "--ema-half-life", 0, *TINY, *extra)


def assert_one_line_error(result, code: int, *phrases: str):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    for phrase in phrases:
        assert phrase in result.output, result.output


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = train(tmp_path / "empty", tmp_path / "run")
    assert_one_line_error(result, 2, "no usable images", "no image files")
    assert not (tmp_path / "run").exists()


def test_non_images_and_zero_byte_files(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a sprite")
    (folder / "empty.png").write_bytes(b"")
    (folder / "fake.gif").write_text("GIF89a? no")
    result = train(folder, tmp_path / "run")
    assert_one_line_error(result, 2, "2 image file(s), none decodable")
    assert "skipped" in result.output and "empty.png" in result.output and "fake.gif" in result.output


def recorded_count(run) -> int:
    return json.loads((run / "config.json").read_text())["data"]["count"]


def test_truncated_images_are_skipped_and_the_rest_is_a_run(make_sprites, tmp_path, no_training):
    folder = make_sprites(4)
    whole = (folder / "1.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 2])
    result = train(folder, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "cut.png" in result.output
    assert recorded_count(tmp_path / "run") == 4


def rgba_of(img: Image.Image, tmp_path, name: str) -> np.ndarray:
    img.save(tmp_path / name)
    return load_folder(tmp_path, warn=lambda _l: None).images[0].transpose(1, 2, 0)


@pytest.mark.parametrize(
    "mode, make",
    [
        ("L", lambda: Image.fromarray(np.full((96, 96), 200, np.uint8), "L")),
        ("I;16", lambda: Image.fromarray(np.full((96, 96), 200 * 257, np.uint16))),
        ("CMYK", lambda: Image.new("CMYK", (96, 96), (0, 0, 0, 55))),
        ("P", lambda: Image.new("RGB", (96, 96), (200, 200, 200)).convert("P")),
    ],
)
def test_grey_16_bit_cmyk_and_opaque_palette_images_load_as_opaque_rgba(tmp_path, mode, make):
    img = make()
    assert img.mode == mode
    name = "sprite.tif" if mode == "CMYK" else "sprite.png"
    rgba = rgba_of(img, tmp_path, name)
    assert rgba.shape == (96, 96, 4) and (rgba[..., 3] == 255).all()  # no transparency: fully opaque
    assert abs(int(rgba[..., :3].mean()) - 200) <= 2  # 16-bit scaled down, CMYK converted, not clipped or lost


def animated_gif(path, colours):
    frames = [Image.new("RGB", (32, 32), c).convert("P") for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def test_animated_gifs_give_their_first_frame_or_every_frame_on_request(tmp_path):
    folder = tmp_path / "gifs"
    folder.mkdir()
    animated_gif(folder / "a.gif", [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    animated_gif(folder / "b.gif", [(9, 9, 9), (250, 250, 250)])
    first = load_folder(folder)
    assert len(first) == 2 and tuple(first.images[0][:3, 0, 0]) == (255, 0, 0)
    every = load_folder(folder, all_frames=True)
    assert len(every) == 5 and every.names[:3] == ["a.gif#0", "a.gif#1", "a.gif#2"]
    assert tuple(every.images[2][:3, 0, 0]) == (0, 0, 255)

    assert train(folder, tmp_path / "run1").exit_code == 0
    assert load_checkpoint(tmp_path / "run1")["data"]["count"] == 2
    result = train(folder, tmp_path / "run5", "--all-frames")
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run5")
    assert state["data"]["count"] == 5 and state["data"]["all_frames"] is True
    # resuming reloads the data the same way (the fingerprint covers every frame)
    resumed = invoke(train_main, "--resume", tmp_path / "run5", "--epochs", 2, "-q")
    assert resumed.exit_code == 0, resumed.output


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height grey pixels: Pillow's guard reads only the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [10_000, 40_000])  # past Pillow's warning (89 Mpx) and past its error (179 Mpx)
def test_an_image_past_the_decompression_bomb_limit_is_skipped_with_a_message(
    make_sprites, tmp_path, side, no_training
):
    folder = make_sprites(3)
    (folder / "huge.png").write_bytes(png_claiming(side, side))
    result = train(folder, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "huge.png" in result.output and "too large" in result.output
    assert recorded_count(tmp_path / "run") == 3


def test_unreadable_files_are_skipped_with_the_reason(make_sprites, tmp_path, monkeypatch, no_training):
    folder = make_sprites(3)
    (folder / "locked.png").write_bytes((folder / "1.png").read_bytes())
    real_read = type(folder).read_bytes

    def read_bytes(path):  # chmod 000 does not stop root, so the permission error is injected
        if path.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(type(folder), "read_bytes", read_bytes)
    result = train(folder, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "locked.png: Permission denied" in result.output


def test_data_path_that_is_a_file_or_missing(make_sprites, tmp_path):
    sprite = make_sprites(1) / "1.png"
    assert_one_line_error(train(sprite, tmp_path / "run"), 2, "must be a folder of images", "is a file")
    assert_one_line_error(train(tmp_path / "nowhere", tmp_path / "run"), 2, "does not exist")


def test_a_real_sprite_next_to_bad_files_is_still_found(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    synthetic_sprite(np.random.default_rng(0)).save(folder / "ok.png", transparency=0)
    synthetic_sprite(np.random.default_rng(1)).save(folder / "ok2.png", transparency=0)
    (folder / "zero.png").write_bytes(b"")
    sprites = load_folder(folder, warn=lambda _l: None)
    assert sprites.names == ["ok.png", "ok2.png"] and [name for name, _ in sprites.skipped] == ["zero.png"]
