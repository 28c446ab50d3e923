"""Smoke training, checkpoints and resume, through the real CLI where a user would go through it."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import crowd, read_until, synthetic_sprite
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.config import ModelConfig, TrainConfig
from dcgan.train.loop import Trainer
from dcgan.train.model import build_models

TINY = ["--ngf", "4", "--ndf", "4", "--batch-size", "4", "-q"]


def train(*args):
    result = CliRunner().invoke(train_main, [*map(str, args)])
    return result


def assert_same_weights(a: dict, b: dict):
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for pid, st in a[key]["state"].items():
            assert torch.equal(st["exp_avg_sq"], b[key]["state"][pid]["exp_avg_sq"]), f"{key} state differs"


def test_smoke_training_writes_checkpoint_grids_metrics_and_progress(make_sprites, tmp_path):
    data = make_sprites(12)
    run = tmp_path / "run"
    result = train("--data", data, "--out", run, "--epochs", 2, *TINY)
    assert result.exit_code == 0, result.output
    assert "Loaded 12 images" in result.output and "0 skipped" in result.output
    state = load_checkpoint(run)
    assert state["epoch"] == 2 and state["step"] == 2 * (12 // 4)
    assert state["model_config"]["ngf"] == 4 and state["data"]["count"] == 12
    assert sorted(p.name for p in (run / "grids").iterdir()) == ["epoch0001.png", "epoch0002.png"]
    with Image.open(run / "grids" / "epoch0002.png") as grid:
        assert grid.size == (8 * 98 + 2, 8 * 98 + 2)  # 64 fixed seeds, 8 x 8 with 2 px gutters
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert set(lines[0]) == {
        "epoch", "step", "loss_d", "loss_g", "d_x", "d_g_z", "images_per_s", "seconds", "time",  # the epoch
        "diversity_ratio", "near_duplicate_rate", "alike", "colour_spread", "mode_coverage",  # what the alarm reads
        "crowded_since", "one_colour_since", "collapse",
    }  # fmt: skip
    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.size == (393, 393)  # the grids at half size
    # training moved the weights away from their init
    torch.manual_seed(0)
    g0, _ = build_models(ModelConfig.from_dict(state["model_config"]))
    assert not torch.equal(g0.state_dict()["main.0.weight"], state["generator"]["main.0.weight"])


def test_resumed_run_matches_uninterrupted_run(make_sprites, tmp_path):
    data = make_sprites(10)
    tiny = [*TINY, "--sample-every", 3]  # the collapse watch plays no part in the weights: once, at the end
    assert train("--data", data, "--out", tmp_path / "a", "--epochs", 3, *tiny).exit_code == 0
    assert train("--data", data, "--out", tmp_path / "b", "--epochs", 1, *tiny).exit_code == 0
    result = train("--resume", tmp_path / "b", "--epochs", 3, "-q")
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.output
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert b["epoch"] == 3 and b["step"] == a["step"]
    assert_same_weights(a, b)


@pytest.mark.slow
def test_sigint_mid_training_saves_and_resumes_to_the_same_weights(make_sprites, tmp_path):
    data = make_sprites(40)
    # the collapse watch only at the end: it plays no part in the weights
    args = ["--data", data, "--epochs", 4, "--ngf", 8, "--ndf", 8, "--batch-size", 4, "--sample-every", 4, "-q"]
    assert train(*args, "--out", tmp_path / "straight").exit_code == 0

    run = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "dcgan.train", *map(str, args), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = read_until(proc.stdout, "epoch 1/4")  # epoch 1 is trained; its checkpoint is about to be written
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "--resume" in out
    stopped = load_checkpoint(run)
    assert 1 <= stopped["epoch"] < 4, "interrupted before the end"

    result = train("--resume", run, "-q")
    assert result.exit_code == 0, result.output
    assert_same_weights(load_checkpoint(tmp_path / "straight"), load_checkpoint(run))


def test_existing_run_folder_is_never_reused(make_sprites, tmp_path):
    data = make_sprites(4)
    run = tmp_path / "run"
    assert train("--data", data, "--out", run, "--epochs", 1, *TINY).exit_code == 0
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    result = train("--data", data, "--out", run, "--epochs", 1, *TINY)
    assert result.exit_code == 2 and f"--resume {run}" in result.output
    assert (run / "checkpoint.pt").stat().st_mtime_ns == before


def test_default_run_folders_count_up(make_sprites, tmp_path, monkeypatch):
    data = make_sprites(4)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "7").mkdir(parents=True)
    (tmp_path / "runs" / "demo").mkdir()
    result = train("--data", data, "--epochs", 1, *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "8" / "checkpoint.pt").is_file()


def test_resume_refuses_other_settings_other_data_and_finished_runs(make_sprites, tmp_path):
    data = make_sprites(4)
    run = tmp_path / "run"
    assert train("--data", data, "--out", run, "--epochs", 1, *TINY).exit_code == 0
    result = train("--resume", run, "--epochs", 2, "--batch-size", 2)
    assert result.exit_code == 2 and "--batch-size" in result.output and "checkpoint" in result.output
    other = make_sprites(4, name="other", seed=1)
    result = train("--resume", run, "--epochs", 2, "--data", other)
    assert result.exit_code == 2 and "differ" in result.output
    result = train("--resume", run, "--epochs", 1)
    assert result.exit_code == 2 and "already trained 1 epochs" in result.output


def test_folder_of_gifs_of_assorted_sizes_trains(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "gifs"
    folder.mkdir()
    for i, size in enumerate([(96, 96), (64, 64), (40, 56), (120, 90), (30, 30), (200, 150)]):
        synthetic_sprite(rng, size).save(folder / f"{i}.gif", transparency=0)
    result = train("--data", folder, "--out", tmp_path / "run", "--epochs", 1, *TINY)
    assert result.exit_code == 0, result.output
    assert "Loaded 6 images" in result.output and load_checkpoint(tmp_path / "run")["epoch"] == 1


def test_metrics_carry_the_collapse_watch(make_sprites, tmp_path):
    run = tmp_path / "run"
    assert train("--data", make_sprites(12), "--out", run, "--epochs", 2, *TINY).exit_code == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for x in lines:
        assert 0 <= x["near_duplicate_rate"] <= 1 and x["diversity_ratio"] >= 0
        assert x["collapse"] is False  # a new generator's samples are alike, but the alarm is not armed yet


def diverse_sprites(n):
    rng = np.random.default_rng(11)
    return np.stack([np.asarray(synthetic_sprite(rng).convert("RGBA")) for _ in range(n)])


def test_collapse_alarm_is_loud_once_armed(make_sprites, tmp_path, monkeypatch):
    import dcgan.train.watch as watch

    monkeypatch.setattr(watch, "WARMUP_EPOCHS", 1)
    one = diverse_sprites(1)
    monkeypatch.setattr(Trainer, "sample", lambda self, seeds: np.repeat(one, len(seeds), axis=0))
    result = train("--data", make_sprites(12), "--out", tmp_path / "loud", "--epochs", 2, *TINY)
    assert result.exit_code == 0 and result.output.count("MODE COLLAPSE at epoch") == 2
    assert "100% of samples have a twin" in result.output


def test_stop_on_collapse_keeps_the_best_checkpoint(make_sprites, tmp_path, monkeypatch):
    import dcgan.train.watch as watch

    monkeypatch.setattr(watch, "WATCH_SEEDS", range(24))  # fewer samples than real sprites, as in real runs
    diverse = diverse_sprites(24)
    calls = []

    def sample(self, seeds):  # diverse at epoch 1, one creature from epoch 2 on
        calls.append(self.epoch)
        return diverse[: len(seeds)] if len(calls) == 1 else np.repeat(diverse[:1], len(seeds), axis=0)

    monkeypatch.setattr(Trainer, "sample", sample)
    run = tmp_path / "run"
    result = train("--data", make_sprites(48), "--out", run, "--epochs", 5, "--stop-on-collapse", *TINY)
    assert result.exit_code == 3, result.output
    assert "Stopped at epoch 2: mode collapse" in result.output and "best.pt (epoch 1)" in result.output
    assert load_checkpoint(run)["epoch"] == 2
    assert load_checkpoint(run / "best.pt")["epoch"] == 1


def test_samples_that_stay_crowded_into_a_few_bins_trip_the_alarm_across_a_resume(make_sprites, tmp_path, monkeypatch):
    """Varied samples (no twins) that all fall into the two fullest of the training sprites' bins, from epoch 2 on:
    crowded since epoch 2, the alarm trips two epochs later, though the run was stopped and resumed between."""
    import dcgan.train.watch as watch
    from dcgan.train.evaluate import load_sprites

    monkeypatch.setattr(watch, "WATCH_SEEDS", range(24))
    monkeypatch.setattr(watch, "CROWDED_EPOCHS", 2)
    monkeypatch.setattr(watch, "MODES_SPREAD", 0.25)  # 24 samples fill fewer bins than the 256 of a real run
    data = make_sprites(48)
    centres = watch.CollapseWatch.from_images(load_sprites(data, "--data").transpose(0, 3, 1, 2)).centres
    pool = diverse_sprites(600)
    spread, crowded = pool[:24], crowd(pool, centres, 24)
    monkeypatch.setattr(Trainer, "sample", lambda self, seeds: spread if self.epoch == 1 else crowded)
    run = tmp_path / "run"
    first = train("--data", data, "--out", run, "--epochs", 3, *TINY)
    assert first.exit_code == 0 and "MODE COLLAPSE" not in first.output, first.output
    resumed = train("--resume", run, "--epochs", 4)
    assert resumed.exit_code == 0 and "MODE COLLAPSE at epoch 4" in resumed.output, resumed.output
    assert "since epoch 2 crowded into a few of the training sprites' bins" in resumed.output
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["crowded_since"] for x in lines] == [None, 2, 2, 2] and [x["collapse"] for x in lines][-1]
    assert lines[0]["mode_coverage"] >= watch.MODES_SPREAD > watch.CROWDED >= lines[1]["mode_coverage"]
    assert max(x["near_duplicate_rate"] for x in lines) < watch.NEAR_DUPLICATE_ALARM


def test_keep_every_keeps_those_epochs_checkpoints_and_survives_a_resume(make_sprites, tmp_path):
    data, run = make_sprites(8), tmp_path / "run"
    assert train("--data", data, "--out", run, "--epochs", 3, "--keep-every", 2, *TINY).exit_code == 0
    assert train("--resume", run, "--epochs", 4, "-q").exit_code == 0
    kept = run / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["epoch0002.pt", "epoch0004.pt"]
    two, four = load_checkpoint(kept / "epoch0002.pt"), load_checkpoint(kept / "epoch0004.pt")
    assert two["epoch"] == 2 and four["epoch"] == 4
    assert_same_weights(four, load_checkpoint(run))  # the latest is kept as it is, not a copy in the making
    assert not torch.equal(two["generator"]["main.0.weight"], four["generator"]["main.0.weight"])


def test_article_preset_sets_its_recipe_unless_overridden(make_sprites, tmp_path):
    data = make_sprites(8)
    args = ["--data", data, "--ngf", 4, "--ndf", 4, "-q", "--preset", "article", "--epochs", 1]
    assert train(*args, "--out", tmp_path / "a").exit_code == 0
    cfg = load_checkpoint(tmp_path / "a")["train_config"]
    assert (cfg["preset"], cfg["batch_size"], cfg["flip"], cfg["epochs"]) == ("article", 8, False, 1)  # 32 > 8 images
    # the plain DCGAN: BCE, batch norm in D, no augmentation, no EMA
    assert (cfg["loss"], cfg["diffaugment"], cfg["ema_half_life"]) == ("bce", "", 0)
    model = load_checkpoint(tmp_path / "a")["model_config"]
    assert (model["d_norm"], model["ngf"]) == ("batch", 4)  # --ngf given on the command line beats the preset's 64
    assert train(*args, "--batch-size", 4, "--flip", "--out", tmp_path / "b").exit_code == 0
    cfg = load_checkpoint(tmp_path / "b")["train_config"]
    assert (cfg["batch_size"], cfg["flip"]) == (4, True)


def test_ema_and_diffaugment_resume_exactly_and_export_the_ema_generator(make_sprites, tmp_path):
    data = make_sprites(10)
    recipe = ["--diffaugment", "color,translation,cutout", "--ema-half-life", 40, "--sample-every", 3]
    assert train("--data", data, "--out", tmp_path / "a", "--epochs", 3, *recipe, *TINY).exit_code == 0
    assert train("--data", data, "--out", tmp_path / "b", "--epochs", 1, *recipe, *TINY).exit_code == 0
    assert train("--resume", tmp_path / "b", "--epochs", 3, "-q").exit_code == 0
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert_same_weights(a, b)
    for name, tensor in a["generator_ema"].items():
        assert torch.equal(tensor, b["generator_ema"][name]), name
    # the EMA lags G, and its batch-norm statistics are its own, not copies of G's
    assert not torch.equal(a["generator_ema"]["main.0.weight"], a["generator"]["main.0.weight"])
    assert not torch.equal(a["generator_ema"]["main.1.running_mean"], a["generator"]["main.1.running_mean"])
    assert (
        train("--data", data, "--out", tmp_path / "c", "--epochs", 1, "--diffaugment", "rotate", *TINY).exit_code == 2
    )


def test_an_epoch_stopped_midway_keeps_its_place_and_ends_as_an_unbroken_one():
    import threading

    from dcgan.train.loop import train_epoch

    def trainer():
        cfg = TrainConfig(batch_size=2, amp=False, ema_half_life=0)
        return Trainer(ModelConfig(ngf=4, ndf=4), cfg, torch.device("cpu"), {})

    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 4, 96, 96), dtype=np.uint8))
    broken, unbroken = trainer(), trainer()
    stop = threading.Event()
    stop.set()  # looked at after each step: one step is trained
    assert train_epoch(broken, images, "epoch 1", stop=stop, show_progress=False) is None
    assert (broken.epoch, broken.step, broken.batch_in_epoch) == (0, 1, 1)
    record = train_epoch(broken, images, "epoch 1", show_progress=False)
    assert record["epoch"] == 1 and record["step"] == 4 and broken.perm is None
    assert train_epoch(unbroken, images, "epoch 1", show_progress=False)["step"] == 4
    for name, tensor in unbroken.G.state_dict().items():
        assert torch.equal(tensor, broken.G.state_dict()[name]), name
