"""The evaluation metrics on sets whose answer is known: identical, collapsed and copied sets."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_within_a_level, invoke, synthetic_sprite
from dcgan.serve.images import sheet
from dcgan.train.evaluate import generate, load_sprites
from dcgan.train.evaluate import main as eval_main
from dcgan.train.inception import fid
from dcgan.train.metrics import (
    EVAL_SEED,
    Reference,
    bin_counts,
    bin_coverage,
    effective_bins,
    evaluate,
    grid_texture,
    jsd,
    kid,
    kmeans,
    line_art_share,
    mean_ms_ssim,
    ndb,
    nearest_distances,
    pixel_features,
    standard_error,
)


def sprites(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = synthetic_sprite(rng).convert("RGBA")
        out.append(np.asarray(img))
    return np.stack(out)


@pytest.fixture(scope="module")
def real():
    return sprites(120, 1), sprites(40, 2)  # train, holdout: same distribution, different sprites


@pytest.fixture(scope="module")
def reference(real):
    """The real side, measured once for the module's tests: what evaluate(x, train, holdout, k=8) scores x against
    (test_one_reference_scores_several_generators_as_separate_evaluations_would holds it to that)."""
    train, holdout = real
    return Reference(train, holdout, k=8)


@pytest.fixture(scope="module")
def fresh_and_collapsed(reference):
    """Scores of new sprites from the real ones' distribution, and of a collapse onto two creatures."""
    fresh, collapsed = sprites(80, 3), np.repeat(sprites(2, 4), 40, axis=0)
    return fresh, collapsed, reference.score(fresh), reference.score(collapsed)


def test_pixel_features_ignore_colour_under_transparent_pixels():
    a = np.zeros((1, 96, 96, 4), np.uint8)
    b = a.copy()
    b[..., :3] = 200  # invisible
    np.testing.assert_array_equal(pixel_features(a), pixel_features(b))
    assert pixel_features(a).shape == (1, 48 * 48 * 3)


def test_real_sprites_are_finished_as_the_sampler_finishes_a_generators_output():
    """finish_levels hands uint8 levels to contract.finish_sprites: every level of every channel comes back as the
    sampler finishes the raw value that rounds to it (opaque from 128 on, no colour where transparent)."""
    from dcgan.serve.contract import finish_sprites
    from dcgan.train.metrics import finish_levels

    level = np.arange(256, dtype=np.uint8)
    sprites = np.stack(np.meshgrid(level, level, indexing="ij"), axis=-1)  # (256, 256, 2): colour, alpha
    sprites = np.concatenate([sprites[..., :1].repeat(3, axis=-1), sprites[..., 1:]], axis=-1)[None]
    finished = finish_levels(sprites)
    assert finished.dtype == np.uint8 and finished.shape == sprites.shape
    opaque = sprites[..., 3] >= 128
    assert (finished[..., 3] == np.where(opaque, 255, 0)).all()
    assert (finished[..., :3] == np.where(opaque[..., None], sprites[..., :3], 0)).all()
    raw = sprites.transpose(0, 3, 1, 2) / 127.5 - 1.0  # the raw output whose levels these are
    assert (finish_sprites(raw) == finished).all()
    assert (finish_levels(finished) == finished).all()  # finished sprites stay as they are


def test_bins_and_divergences_on_known_counts():
    same = np.array([10, 20, 30, 40])
    assert ndb(same * 10, same) == 0 and jsd(same, same) == 0
    assert ndb(np.array([100, 100, 100, 100]), np.array([0, 0, 50, 50])) == 4
    assert jsd(np.array([1, 0]), np.array([0, 1])) == pytest.approx(np.log(2))
    x = np.concatenate([np.zeros((20, 2)), np.ones((20, 2)) * 10])
    centres = kmeans(x, 2, seed=3)
    assert sorted(centres[:, 0].tolist()) == [0.0, 10.0]
    assert len(kmeans(x, 5, seed=3)) == 2  # two distinct rows: two bins, not a division by zero


def test_effective_bins_counts_equally_filled_bins():
    assert effective_bins(np.array([7, 0, 0])) == pytest.approx(1.0)
    assert effective_bins(np.array([3, 3, 3, 3, 0])) == pytest.approx(4.0)
    assert 1.0 < effective_bins(np.array([90, 5, 5])) < 2.0  # one bin holds most


def test_bin_coverage_gives_each_bins_shares_and_its_z_at_the_holdout_count():
    bins = bin_coverage(np.array([50, 30, 20]), np.array([10, 30, 60]), np.array([5, 3, 2]), at=25)
    assert [b["model_share"] for b in bins] == [0.1, 0.3, 0.6]
    assert [b["holdout_share"] for b in bins] == [0.5, 0.3, 0.2]
    # bin 0: (0.1 - 0.5) / sqrt(0.5 * 0.5 * (1/100 + 1/25)), by hand
    assert bins[0]["z"] == pytest.approx(-0.4 / np.sqrt(0.25 * 0.05)) and bins[1]["z"] == 0
    assert bins[2]["z"] > 1.96  # overfilled


def test_a_mode_the_model_never_makes_is_the_most_missed_bin():
    def squares(n: int, colour: tuple, size: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.zeros((n, 96, 96, 4), np.uint8)
        for i, (y, x) in enumerate(rng.integers(30, 40, size=(n, 2))):
            out[i, y : y + size, x : x + size] = (*colour, 255)
        return out

    red, blue = squares(60, (220, 30, 30), 30, 0), squares(30, (30, 30, 220), 50, 1)
    train = np.concatenate([red, blue])
    result = evaluate(squares(50, (220, 30, 30), 30, 2), train, np.concatenate([red[:8], blue[:4]]), k=2)
    missed = min(result["bins"], key=lambda b: b["z"])
    assert missed["train_share"] == pytest.approx(1 / 3) and missed["model_share"] == 0
    assert missed["holdout_share"] == pytest.approx(1 / 3) and missed["z"] < -1.96


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    assert abs(kid(a, b)) < 0.05 and kid(a, b + 3) > 1


def test_a_real_holdout_scores_like_the_floor_and_collapse_is_caught(fresh_and_collapsed):
    fresh, collapsed = (result["metrics"] for result in fresh_and_collapsed[2:])
    assert fresh["near_duplicate_rate"]["model"] == 0 and collapsed["near_duplicate_rate"]["model"] == 1
    assert collapsed["diversity_ratio"]["model"] < 0.8 * fresh["diversity_ratio"]["model"]
    assert collapsed["jsd"]["model"] > 3 * fresh["jsd"]["model"]
    assert collapsed["kid"]["model"] > fresh["kid"]["model"]
    assert collapsed["ms_ssim"]["model"] > fresh["ms_ssim"]["model"] + 0.2
    assert fresh["ms_ssim"]["model"] == pytest.approx(fresh["ms_ssim"]["real_floor"], abs=0.1)
    assert 0.9 < fresh["memorisation_ratio"]["model"] < 1.1


def test_colour_spread_catches_every_creature_in_one_colour(reference, fresh_and_collapsed):
    fresh, _, scored, _ = fresh_and_collapsed
    one_colour = fresh.copy()
    one_colour[..., :3] = np.where(one_colour[..., 3:] > 0, np.array([200, 180, 120], np.uint8), 0)
    metrics = scored["metrics"]["colour_spread"]
    assert metrics["model"] == pytest.approx(metrics["real_floor"], rel=0.35) and metrics["real_floor"] > 0.5
    assert reference.score(one_colour)["metrics"]["colour_spread"]["model"] < 0.01


def test_line_art_counts_dark_opaque_pixels_and_catches_washed_out_sprites(real, fresh_and_collapsed):
    sprite = np.zeros((1, 4, 4, 4), np.uint8)
    sprite[0, :2, :, 3] = 255  # 8 opaque pixels: 2 black, 6 light; the black pixels under alpha 0 do not count
    sprite[0, :2, 2:, :3] = 230
    sprite[0, :2, :2, :3] = [[40, 40, 40], [255, 255, 255]]
    assert line_art_share(sprite) == pytest.approx(2 / 8)
    train, holdout = real
    fresh, _, scored, _ = fresh_and_collapsed
    outlined = fresh.copy()
    opaque = fresh[..., 3] > 0
    edge = opaque & ~(np.roll(opaque, 1, 1) & np.roll(opaque, -1, 1) & np.roll(opaque, 1, 2) & np.roll(opaque, -1, 2))
    outlined[edge, :3] = 0  # a black outline, like real sprites'
    washed = outlined.copy()
    washed[..., :3] = np.where(opaque[..., None], 128 + outlined[..., :3] // 2, 0)  # halfway to white
    assert line_art_share(washed) == 0.0
    assert line_art_share(fresh) < 0.5 * line_art_share(outlined)
    # dcgan-eval reports the share over the training set's, beside the holdout's
    line_art = scored["metrics"]["line_art"]
    assert line_art["model"] == pytest.approx(line_art_share(fresh) / line_art_share(train))
    assert line_art["real_floor"] == pytest.approx(line_art_share(holdout) / line_art_share(train))


def test_grid_texture_finds_dots_on_the_upsampling_grid(real, fresh_and_collapsed):
    train, holdout = real
    smooth = grid_texture(train)
    assert 0.8 < smooth < 1.25
    dotted = train.copy()
    dotted[:, ::8, ::8] = [0, 0, 0, 255]  # a black dot every 8 px, as stacked transposed convolutions leave
    assert grid_texture(dotted) > 2 * smooth
    off_grid = train.copy()
    off_grid[:, ::7, ::7] = [0, 0, 0, 255]  # the same dots every 7 px: not on the grid
    assert grid_texture(off_grid) < 1.25 * smooth
    metrics = fresh_and_collapsed[2]["metrics"]["grid_texture"]  # dcgan-eval reports it beside the holdout's
    assert metrics["model"] == grid_texture(fresh_and_collapsed[0]) and metrics["real_floor"] == grid_texture(holdout)


def test_grid_texture_of_sprites_without_detail_is_one_not_nan():
    blank = np.zeros((4, 96, 96, 4), np.uint8)  # a generator that has learnt to draw nothing
    flat = blank.copy()
    flat[...] = [200, 40, 40, 255]  # or one opaque colour everywhere
    assert grid_texture(blank) == 1.0
    assert grid_texture(flat) == 1.0


def test_ms_ssim_is_one_for_twins_and_works_at_96_px(real):
    train, _ = real
    assert mean_ms_ssim(np.repeat(train[:1], 4, axis=0)) == pytest.approx(1.0)
    varied = mean_ms_ssim(train)
    assert 0 < varied < 0.9
    blank = np.zeros_like(train[:2])  # two empty sprites composite to the same background: identical
    assert mean_ms_ssim(np.concatenate([blank, train[:1]]), pairs=300) > varied


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3)) * [1.0, 2.0, 0.5]
    b = rng.normal(size=(20000, 3)) * [2.0, 2.0, 1.5] + [1.0, 0.0, 0.0]
    # diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 1 + (1 + 0 + 1)
    assert fid(a, b) == pytest.approx(3.0, rel=0.03)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6) and fid(a, b) == pytest.approx(fid(b, a), rel=1e-6)


def test_copying_the_training_set_shows_in_memorisation(real, reference):
    train, _ = real
    copied = reference.score(train[:60])["metrics"]
    assert copied["memorisation_ratio"]["model"] < 1e-3  # every sample sits on a training sprite
    assert nearest_distances(pixel_features(train[:5]), pixel_features(train)).max() < 1e-3


def test_counted_metrics_carry_the_standard_error_of_their_holdout_sized_sets(real, reference):
    train, _ = real  # holdout of 40: 120 samples make three sets of 40
    generated = sprites(120, 5)
    metrics = reference.score(generated)["metrics"]
    t = pixel_features(train)
    centres = kmeans(t, 8, seed=EVAL_SEED)
    train_bins = bin_counts(t, centres)
    per_set = [ndb(train_bins, bin_counts(pixel_features(generated[i : i + 40]), centres)) for i in (0, 40, 80)]
    assert metrics["ndb"]["model"] == pytest.approx(np.mean(per_set))
    assert metrics["ndb"]["model_se"] == pytest.approx(np.std(per_set, ddof=1) / np.sqrt(3))
    assert {"near_duplicate_rate", "jsd"} <= {name for name, row in metrics.items() if "model_se" in row}
    assert "model_se" not in metrics["kid"]  # taken on the whole set at once
    single = reference.score(generated[:40])["metrics"]
    assert single["ndb"]["model_se"] is None  # one set: no spread to take
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.sqrt(5 / 3) / 2)  # sd sqrt(5/3), 4 values


def test_one_reference_scores_several_generators_as_separate_evaluations_would(real, reference, fresh_and_collapsed):
    train, holdout = real
    fresh, collapsed, first, other = fresh_and_collapsed  # the module's reference scored both, in that order
    assert reference.score(fresh) == first  # scoring leaves it unchanged
    assert other == evaluate(collapsed, train, holdout, k=8)  # as a reference of its own scores it
    assert (
        other["metrics"]["near_duplicate_rate"]["model"] == 1 and first["metrics"]["near_duplicate_rate"]["model"] == 0
    )


def test_dcgan_eval_on_an_onnx_file_and_a_run_folder(tiny_export, make_sprites, tmp_path):
    data = make_sprites(48, name="train", seed=5)
    hold = make_sprites(12, name="hold", seed=6)
    args = ["--data", str(data), "--holdout", str(hold), "-n", "32", "--bins", "4"]
    result = invoke(eval_main, str(tiny_export / "generator-rgba8.onnx"), *args, "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(report["metrics"]) == {
        "diversity_ratio",
        "near_duplicate_rate",
        "ndb",
        "jsd",
        "memorisation_ratio",
        "kid",
        "ms_ssim",
        "colour_spread",
        "line_art",
        "grid_texture",
        "flat_colour_share",
        "colours_per_sprite",
        "speck_share",
        "parts_per_sprite",
        "dark_outline_share",
        "spectral_gap",
        "classifier_accuracy",
    }  # no Inception rows without --inception-weights
    assert report["counts"] == {"generated": 32, "train": 48, "holdout": 12}
    assert (tmp_path / "r" / "sheet.png").exists() and (tmp_path / "r" / "neighbours.png").exists()
    with Image.open(tmp_path / "r" / "holdout.png") as picture:  # the 12 held-out sprites, 8 to a row
        assert np.array_equal(np.asarray(picture), np.asarray(sheet(load_sprites(hold, "--holdout"), columns=8)))
    assert len(report["bins"]) == 4 and sum(b["model_share"] for b in report["bins"]) == pytest.approx(1)
    with Image.open(tmp_path / "r" / "coverage.png") as picture:  # 4 bins: each shown once, 13 cells a row
        assert 4 * 98 < picture.height < 5 * 98 and picture.width > 13 * 98
    assert "bins furthest from the training shares" in result.output
    ndb_line = next(line for line in result.output.splitlines() if line.startswith("ndb "))
    se = report["metrics"]["ndb"]["model_se"]  # 32 samples, holdout 12: the mean of 2 sets, and its error
    assert se is not None and f"±{se:.2g}" in ndb_line
    again = invoke(eval_main, str(tiny_export / "generator-rgba8.onnx"), *args, "--out", str(tmp_path / "r"))
    assert again.exit_code == 1 and "--overwrite" in again.output

    run = tiny_export.parent  # the run folder of the tiny export: evaluated from its checkpoint
    result = invoke(eval_main, str(run), *args)
    assert result.exit_code == 0, result.output
    assert "checkpoint.pt" in result.output and (run / "eval" / "metrics.json").exists()


def test_first_seed_shifts_the_seeds_evaluated(tiny_export):
    model = tiny_export / "generator-rgba8.onnx"
    later, _ = generate(model, 4, first_seed=6)
    assert_within_a_level(later, generate(model, 10)[0][6:])  # other batches: the same sprites, within a level


def test_live_evaluates_the_trained_generator_instead_of_the_ema_one(tiny_export, make_sprites, tmp_path):
    pytest.importorskip("torch")
    from dcgan.train.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(tiny_export.parent / "checkpoint.pt")
    assert "generator_ema" in state
    # a trained generator that differs from the EMA one: the output layer's weights doubled
    state["generator"] = {k: v * 2 if k == "main.12.weight" else v for k, v in state["generator_ema"].items()}
    both, live_only = tmp_path / "both.pt", tmp_path / "live-only.pt"
    save_checkpoint(state, both)
    del state["generator_ema"]
    save_checkpoint(state, live_only)
    ema, source = generate(both, 8)
    live, live_source = generate(both, 8, live=True)
    assert "EMA generator" in source and "EMA" not in live_source
    assert not np.array_equal(ema, live)
    np.testing.assert_array_equal(live, generate(live_only, 8)[0])
    data = make_sprites(20, name="train", seed=7)
    onnx = invoke(eval_main, str(tiny_export / "generator.onnx"), "--data", str(data), "--bins", "4", "--live")
    assert onnx.exit_code == 2 and "--live needs a checkpoint" in onnx.output


def test_without_holdout_the_floor_comes_from_the_data_with_a_note(tiny_export, make_sprites, tmp_path):
    data = make_sprites(50, name="train", seed=7)
    result = invoke(
        eval_main, str(tiny_export), "--data", str(data), "-n", "16", "--bins", "4", "--out", str(tmp_path / "r")
    )
    assert result.exit_code == 0, result.output
    assert "no --holdout" in result.output
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["counts"]["holdout"] == 5


@pytest.mark.slow
def test_inception_metrics_come_only_from_a_local_weights_file(tiny_export, make_sprites, tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.models import inception_v3

    weights = tmp_path / "inception.pth"  # the architecture of torchvision's file, with random weights
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), weights)
    data, hold = make_sprites(20, name="train", seed=8), make_sprites(8, name="hold", seed=9)
    args = [str(tiny_export), "--data", str(data), "--holdout", str(hold), "-n", "16", "--bins", "2"]
    result = invoke(eval_main, *args, "--inception-weights", str(weights), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert {"fid_inception", "kid_inception"} <= set(report["metrics"])
    assert report["metrics"]["fid_inception"]["model"] > 0 and "inception.pth" in report["config"]["inception"]

    not_inception = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, not_inception)
    for bad, says in [(not_inception, "not torchvision's Inception-v3"), (tmp_path / "nope.pth", "no such file")]:
        result = invoke(eval_main, *args, "--inception-weights", str(bad), "--out", str(tmp_path / "x"))
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
