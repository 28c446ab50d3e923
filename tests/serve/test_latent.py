import numpy as np

from dcgan.serve.latent import LATENT_RECIPE, latent, latents


def test_latent_is_the_documented_numpy_recipe():
    expected = np.random.default_rng(42).standard_normal(100, dtype=np.float32)
    np.testing.assert_array_equal(latent(42, 100), expected)
    assert "default_rng(seed).standard_normal(nz, dtype=numpy.float32)" in LATENT_RECIPE


def test_batch_rows_do_not_depend_on_their_neighbours():
    batch = latents([7, 3, 1000], 16)
    assert batch.shape == (3, 16) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], latent(3, 16))
    np.testing.assert_array_equal(latents([1000], 16)[0], batch[2])
    assert not np.array_equal(batch[0], batch[1])
