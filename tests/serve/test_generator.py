"""SpriteGenerator, the embedding API: seeds in, finished sprites out, from any exported file."""

import shutil

import numpy as np
import pytest

from dcgan.serve import SpriteGenerator
from dcgan.serve.generator import ModelError, resolve_model
from dcgan.serve.latent import latents


def test_sprites_are_uint8_rgba_one_per_seed_in_order(tiny_export):
    gen = SpriteGenerator(tiny_export, provider="cpu", batch_size=4)
    sprites = gen(range(10))
    assert sprites.shape == (10, 96, 96, 4) and sprites.dtype == np.uint8
    assert gen.provider == "CPUExecutionProvider"
    assert len({s.tobytes() for s in sprites}) == 10


def test_batch_invariance_a_seed_draws_the_same_sprite_bit_for_bit_in_any_batch(tiny_export):
    """The one test that asks onnxruntime's CPU kernels for more than a level: a seed's sprite does not depend on the
    batch it is drawn in, its size or its order. Every other comparison of two computations allows a level."""
    sprites = SpriteGenerator(tiny_export, provider="cpu", batch_size=4)(range(10))
    np.testing.assert_array_equal(SpriteGenerator(tiny_export, provider="cpu", batch_size=1)([7, 2]), sprites[[7, 2]])
    np.testing.assert_array_equal(SpriteGenerator(tiny_export, provider="cpu", batch_size=64)(range(10)), sprites)


def test_a_shrinking_arena_draws_the_same_sprites_and_needs_the_arena(tiny_export):
    """The server keeps the arena for small batches and shrinks it after larger ones; the sprites must not care."""
    sprites = SpriteGenerator(tiny_export, provider="cpu")(range(12))
    shrinking = SpriteGenerator(tiny_export, provider="cpu", batch_size=8, arena_keep=2)
    np.testing.assert_array_equal(shrinking(range(12)), sprites)  # runs of 8 and 4 shrink; one of 2 keeps
    np.testing.assert_array_equal(shrinking([5, 6]), sprites[[5, 6]])
    with pytest.raises(ValueError, match="arena"):
        SpriteGenerator(tiny_export, provider="cpu", arena=False, arena_keep=2)


def test_finished_like_real_sprites(tiny_export):
    sprites = SpriteGenerator(tiny_export, provider="cpu")(range(16))
    alpha = sprites[..., 3]
    assert set(np.unique(alpha)) == {0, 255}
    assert (sprites[..., :3][alpha == 0] == 0).all()


def test_float_model_is_finished_the_same_as_the_rgba8_graph(tiny_export):
    rgba8 = SpriteGenerator(tiny_export / "generator-rgba8.onnx", provider="cpu")(range(16))
    fp32 = SpriteGenerator(tiny_export / "generator.onnx", provider="cpu")(range(16))
    assert np.abs(rgba8.astype(int) - fp32).max() <= 1  # the same model: at most rounding apart
    assert (rgba8[..., 3] != fp32[..., 3]).mean() < 1e-4


def test_soft_alpha_keeps_the_raw_alpha(tiny_export):
    import onnxruntime as ort

    soft = SpriteGenerator(tiny_export, provider="cpu", soft_alpha=True)
    assert soft.info.path.name == "generator.onnx"
    sprites = soft(range(8))
    raw = ort.InferenceSession(str(tiny_export / "generator.onnx")).run(None, {"z": latents(range(8), 100)})[0]
    expected_alpha = np.clip(np.round((raw[:, 3] + 1) * 127.5), 0, 255)
    np.testing.assert_array_equal(sprites[..., 3], expected_alpha)
    assert ((sprites[..., 3] > 0) & (sprites[..., 3] < 255)).any()
    with pytest.raises(ModelError, match="hard alpha"):
        SpriteGenerator(tiny_export / "generator-rgba8.onnx", provider="cpu", soft_alpha=True)


def test_model_argument_resolves_files_export_folders_and_run_folders(tiny_export):
    assert resolve_model(tiny_export).name == "generator-rgba8.onnx"
    assert resolve_model(tiny_export.parent).name == "generator-rgba8.onnx"  # a run folder means its export
    assert resolve_model(tiny_export, fp16=True).name == "generator-fp16.onnx"
    assert resolve_model(tiny_export / "generator.onnx") == tiny_export / "generator.onnx"
    with pytest.raises(ModelError, match="--fp16"):
        resolve_model(tiny_export / "generator.onnx", fp16=True)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(tiny_export / "nope.onnx")


def test_batches_are_lazy_for_any_number_of_seeds(tiny_export):
    gen = SpriteGenerator(tiny_export, provider="cpu", batch_size=3)
    stream = gen.batches(range(10**12))  # a million million seeds: only what is asked for is made
    seeds, sprites = next(stream)
    assert seeds == [0, 1, 2] and sprites.shape[0] == 3
    assert next(stream)[0] == [3, 4, 5]


def test_bad_batch_size_and_provider(tiny_export):
    with pytest.raises(ValueError, match="batch_size"):
        SpriteGenerator(tiny_export, batch_size=0)
    with pytest.raises(ValueError, match="provider"):
        SpriteGenerator(tiny_export, provider="tpu")


def test_copied_export_folder_still_resolves(tiny_export, tmp_path):
    copy = shutil.copytree(tiny_export, tmp_path / "models")
    assert SpriteGenerator(copy, provider="cpu").info.path == copy / "generator-rgba8.onnx"


def test_save_helpers_write_complete_files_and_keep_existing_ones(tiny_export, tmp_path):
    from PIL import Image

    from dcgan.serve.images import sheet
    from dcgan.serve.writer import save_sprites

    gen = SpriteGenerator(tiny_export, provider="cpu")
    sprites = gen([4, 9])
    paths = save_sprites(sprites, [4, 9], tmp_path / "out")
    assert [p.name for p in paths] == ["seed000004.png", "seed000009.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), sprites[1])
    save_sprites(sprites[:1], [4], tmp_path / "out")  # the same sprite again: the file is kept, nothing to refuse
    with pytest.raises(FileExistsError):
        save_sprites(sprites[1:], [4], tmp_path / "out")  # another sprite under seed 4's name: refused
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seed000004.png", "seed000009.png"]
    assert sheet(sprites).size == (2 * 98 + 2, 98 + 2)
