"""Training, checkpoints and resume, through the real CLI where a user would go through it."""

import json
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, copy_run, crowd, invoke, read_until, synthetic_sprite
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.config import ModelConfig, TrainConfig
from dcgan.train.loop import Trainer, save_epoch, train_epoch
from dcgan.train.model import build_models


def assert_same_weights(a: dict, b: dict):
    for key in ("generator", "discriminator", "generator_ema"):
        assert a[key].keys() == b[key].keys()
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for pid, st in a[key]["state"].items():
            assert torch.equal(st["exp_avg_sq"], b[key]["state"][pid]["exp_avg_sq"]), f"{key} state differs"


def test_a_run_writes_checkpoints_grids_metrics_and_progress(tiny_run):
    state = load_checkpoint(tiny_run)
    assert state["epoch"] == 2 and state["step"] == 2 * (8 // 2)
    assert state["model_config"]["ngf"] == 4 and state["data"]["count"] == 8
    assert sorted(p.name for p in (tiny_run / "grids").iterdir()) == ["epoch0001.png", "epoch0002.png"]
    with Image.open(tiny_run / "grids" / "epoch0002.png") as grid:
        assert grid.size == (8 * 98 + 2, 8 * 98 + 2)  # 64 fixed seeds, 8 x 8 with 2 px gutters
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert set(lines[0]) == {
        "epoch", "step", "loss_d", "loss_g", "d_x", "d_g_z", "images_per_s", "seconds", "time",  # the epoch
        "diversity_ratio", "near_duplicate_rate", "alike", "colour_spread", "mode_coverage",  # what the alarm reads
        "crowded_since", "one_colour_since", "collapse",
    }  # fmt: skip
    for x in lines:
        assert 0 <= x["near_duplicate_rate"] <= 1 and x["diversity_ratio"] >= 0
        assert x["collapse"] is False  # a new generator's samples are alike, but the alarm is not armed yet
    with Image.open(tiny_run / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.size == (393, 393)  # the grids at half size
    # training moved the weights away from their init
    torch.manual_seed(0)
    g0, _ = build_models(ModelConfig.from_dict(state["model_config"]))
    assert not torch.equal(g0.state_dict()["main.0.weight"], state["generator"]["main.0.weight"])
    # the grids show sprites as dcgan-sample delivers them: alpha 0 or 255, no colour under transparency
    sprites = Trainer.from_state(state, torch.device("cpu")).sample(range(8))
    assert set(np.unique(sprites[..., 3])) <= {0, 255} and sprites[..., :3][sprites[..., 3] == 0].max() == 0


def test_a_resumed_run_ends_with_the_weights_of_an_unbroken_one(tiny_run, tmp_path):
    """The session's run kept epoch 1; resumed from there to epoch 2, it must end where the run itself did: the
    generator, its EMA (with its own batch-norm statistics), D and both optimisers, through DiffAugment's draws."""
    (tmp_path / "b").mkdir()
    shutil.copy(tiny_run / "checkpoints" / "epoch0001.pt", tmp_path / "b" / "checkpoint.pt")
    result = invoke(train_main, "--resume", tmp_path / "b", "--epochs", 2, "-q")
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.output
    a, b = load_checkpoint(tiny_run), load_checkpoint(tmp_path / "b")
    assert b["epoch"] == 2 and b["step"] == a["step"]
    assert_same_weights(a, b)
    # the EMA lags G, and its batch-norm statistics are its own, not copies of G's
    assert not torch.equal(a["generator_ema"]["main.0.weight"], a["generator"]["main.0.weight"])
    assert not torch.equal(a["generator_ema"]["main.1.running_mean"], a["generator"]["main.1.running_mean"])


@pytest.mark.slow
def test_sigint_mid_training_saves_and_resumes_to_the_same_weights(tiny_run, tmp_path):
    """The session's run again, in a process of its own that Ctrl-C stops after epoch 1, then resumed."""
    run = tmp_path / "stopped"
    args = ["--data", tiny_run.parent / "sprites", "--out", run, "--epochs", 2, "--keep-every", 1, *TINY]
    cmd = [sys.executable, "-m", "dcgan.train", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = read_until(proc.stdout, "epoch 1/2")  # epoch 1 is trained; its checkpoint is about to be written
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "--resume" in out
    assert load_checkpoint(run)["epoch"] == 1, "interrupted before the end"

    result = invoke(train_main, "--resume", run, "-q")
    assert result.exit_code == 0, result.output
    assert_same_weights(load_checkpoint(tiny_run), load_checkpoint(run))


def test_existing_run_folder_is_never_reused(tiny_run):
    before = (tiny_run / "checkpoint.pt").stat().st_mtime_ns
    result = invoke(train_main, "--data", tiny_run.parent / "sprites", "--out", tiny_run, "--epochs", 1, *TINY)
    assert result.exit_code == 2 and f"--resume {tiny_run}" in result.output
    assert (tiny_run / "checkpoint.pt").stat().st_mtime_ns == before


def test_default_run_folders_count_up(make_sprites, tmp_path, monkeypatch, no_training):
    data = make_sprites(4)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "7").mkdir(parents=True)
    (tmp_path / "runs" / "demo").mkdir()
    result = invoke(train_main, "--data", data, "--epochs", 1, *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "8" / "config.json").is_file()


def test_resume_refuses_other_settings_other_data_and_finished_runs(tiny_run, make_sprites):
    result = invoke(train_main, "--resume", tiny_run, "--epochs", 3, "--batch-size", 4)
    assert result.exit_code == 2 and "--batch-size" in result.output and "checkpoint" in result.output
    other = make_sprites(8, name="other", seed=1)
    result = invoke(train_main, "--resume", tiny_run, "--epochs", 3, "--data", other)
    assert result.exit_code == 2 and "differ" in result.output
    result = invoke(train_main, "--resume", tiny_run, "--epochs", 2)
    assert result.exit_code == 2 and "already trained 2 epochs" in result.output
    assert load_checkpoint(tiny_run)["epoch"] == 2


def test_folder_of_gifs_of_assorted_sizes_is_a_run(tmp_path, no_training):
    rng = np.random.default_rng(3)
    folder = tmp_path / "gifs"
    folder.mkdir()
    for i, size in enumerate([(96, 96), (64, 64), (40, 56), (120, 90), (30, 30), (200, 150)]):
        synthetic_sprite(rng, size).save(folder / f"{i}.gif", transparency=0)
    result = invoke(train_main, "--data", folder, "--out", tmp_path / "run", "--epochs", 1, *TINY)
    assert result.exit_code == 0, result.output
    assert "Loaded 6 images" in result.output and "0 skipped" in result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["count"] == 6


# the collapse tests draw their samples themselves: the EMA generator's statistics, refreshed each epoch, go unused
NO_EMA = ["--ema-half-life", 0, "--batch-size", 8]


def diverse_sprites(n):
    rng = np.random.default_rng(11)
    return np.stack([np.asarray(synthetic_sprite(rng).convert("RGBA")) for _ in range(n)])


def test_collapse_alarm_is_loud_once_armed(make_sprites, tmp_path, monkeypatch):
    import dcgan.train.watch as watch

    monkeypatch.setattr(watch, "WARMUP_EPOCHS", 1)
    one = diverse_sprites(1)
    monkeypatch.setattr(Trainer, "sample", lambda self, seeds: np.repeat(one, len(seeds), axis=0))
    args = ["--data", make_sprites(8), "--out", tmp_path / "loud", "--epochs", 2, *TINY, *NO_EMA]
    result = invoke(train_main, *args)
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
    args = ["--data", make_sprites(48), "--out", run, "--epochs", 5, "--stop-on-collapse", *TINY, *NO_EMA]
    result = invoke(train_main, *args)
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
    first = invoke(train_main, "--data", data, "--out", run, "--epochs", 3, *TINY, *NO_EMA)
    assert first.exit_code == 0 and "MODE COLLAPSE" not in first.output, first.output
    resumed = invoke(train_main, "--resume", run, "--epochs", 4)
    assert resumed.exit_code == 0 and "MODE COLLAPSE at epoch 4" in resumed.output, resumed.output
    assert "since epoch 2 crowded into a few of the training sprites' bins" in resumed.output
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["crowded_since"] for x in lines] == [None, 2, 2, 2] and [x["collapse"] for x in lines][-1]
    assert lines[0]["mode_coverage"] >= watch.MODES_SPREAD > watch.CROWDED >= lines[1]["mode_coverage"]
    assert max(x["near_duplicate_rate"] for x in lines) < watch.NEAR_DUPLICATE_ALARM


def test_kept_checkpoints_survive_a_resume_as_links_to_what_was_saved(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    result = invoke(train_main, "--resume", run, "--epochs", 3, "-q")
    assert result.exit_code == 0, result.output
    kept = run / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["epoch0001.pt", "epoch0002.pt", "epoch0003.pt"]
    one, three = load_checkpoint(kept / "epoch0001.pt"), load_checkpoint(kept / "epoch0003.pt")
    assert one["epoch"] == 1 and three["epoch"] == 3
    assert_same_weights(three, load_checkpoint(run))  # the latest is kept as it is, not a copy in the making
    assert not torch.equal(one["generator"]["main.0.weight"], three["generator"]["main.0.weight"])


def test_keep_every_keeps_every_nth_epoch_as_another_name_for_its_checkpoint(tmp_path):
    trainer = Trainer(ModelConfig(ngf=4, ndf=4), TrainConfig(keep_every=2, amp=False), torch.device("cpu"), {})
    for epoch in range(1, 5):
        trainer.epoch = epoch
        save_epoch(trainer, tmp_path)
    kept = tmp_path / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["epoch0002.pt", "epoch0004.pt"]
    assert (kept / "epoch0004.pt").stat().st_ino == (tmp_path / "checkpoint.pt").stat().st_ino  # a hard link
    assert load_checkpoint(kept / "epoch0002.pt")["epoch"] == 2  # a later save is a new file, not this one


def test_article_preset_sets_its_recipe_unless_overridden(make_sprites, tmp_path, no_training):
    data = make_sprites(8)
    args = ["--data", data, "--ngf", 4, "--ndf", 4, "-q", "--preset", "article", "--epochs", 1]
    assert invoke(train_main, *args, "--out", tmp_path / "a").exit_code == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg = config["train"]
    assert (cfg["preset"], cfg["batch_size"], cfg["flip"], cfg["epochs"]) == ("article", 8, False, 1)  # 32 > 8 images
    # the plain DCGAN: BCE, batch norm in D, no augmentation, no EMA
    assert (cfg["loss"], cfg["diffaugment"], cfg["ema_half_life"]) == ("bce", "", 0)
    assert (config["model"]["d_norm"], config["model"]["ngf"]) == ("batch", 4)  # --ngf given beats the preset's 64
    assert invoke(train_main, *args, "--batch-size", 4, "--flip", "--out", tmp_path / "b").exit_code == 0
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())["train"]
    assert (cfg["batch_size"], cfg["flip"]) == (4, True)


def test_a_diffaugment_policy_it_does_not_know_is_refused(make_sprites, tmp_path):
    args = ["--data", make_sprites(4), "--out", tmp_path / "c", "--epochs", 1, "--diffaugment", "rotate", *TINY]
    result = invoke(train_main, *args)
    assert result.exit_code == 2 and "rotate" in result.output and not (tmp_path / "c").exists()


def test_an_epoch_stopped_midway_keeps_its_place_and_ends_as_an_unbroken_one():
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
