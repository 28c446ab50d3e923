"""The two losses: their values on known scores, the gradient penalty on a critic whose gradient is known, the
combinations the config refuses, and a short real training run with each, through the CLI."""

import json

import pytest
import torch
from torch import nn

from conftest import TINY, invoke
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.config import ModelConfig, TrainConfig
from dcgan.train.loop import Trainer, discriminator_loss, generator_loss

REAL = torch.tensor([2.0, 0.0, -1.0])
FAKE = torch.tensor([-2.0, 0.5, 1.0])


def test_bce_is_the_non_saturating_loss():
    softplus = nn.functional.softplus  # -log sigmoid(s) = softplus(-s)
    expected_d = softplus(-REAL).mean() + softplus(FAKE).mean()
    assert discriminator_loss("bce", REAL, FAKE).item() == pytest.approx(expected_d.item())
    assert generator_loss("bce", FAKE).item() == pytest.approx(softplus(-FAKE).mean().item())


def test_wasserstein_loss_is_the_score_gap():
    assert discriminator_loss("wgan-gp", REAL, FAKE).item() == pytest.approx(FAKE.mean() - REAL.mean())
    assert generator_loss("wgan-gp", FAKE).item() == pytest.approx(-FAKE.mean())


@pytest.mark.parametrize("gain", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic_is_its_gain_off_one_squared(gain):
    cfg = ModelConfig(ngf=4, ndf=4, d_norm="none")
    trainer = Trainer(cfg, TrainConfig(loss="wgan-gp", amp=False, channels_last=False), torch.device("cpu"), {})
    direction = torch.randn(4 * 96 * 96)
    direction *= gain / direction.norm()  # the critic's gradient everywhere: a vector of length `gain`
    trainer.D = lambda x: x.flatten(1) @ direction
    real, fake = torch.randn(5, 4, 96, 96), torch.randn(5, 4, 96, 96)
    assert trainer.gradient_penalty(real, fake).item() == pytest.approx((gain - 1) ** 2, rel=1e-4, abs=1e-6)


def test_each_loss_trains_and_is_recorded(tiny_run, tmp_path):
    """bce, the default, is the session's run; wgan-gp trains here."""
    run = tmp_path / "run"
    args = ["--data", tiny_run.parent / "sprites", "--out", run, "--epochs", 2, *TINY]
    result = invoke(train_main, *args, "--loss", "wgan-gp", "--d-norm", "none")
    assert result.exit_code == 0, result.output
    for folder, loss, d_norm in ((tiny_run, "bce", "batch"), (run, "wgan-gp", "none")):
        check_recorded(folder, loss, d_norm)


def check_recorded(run, loss, d_norm):
    state = load_checkpoint(run)
    assert (state["train_config"]["loss"], state["model_config"]["d_norm"]) == (loss, d_norm)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(abs(r["loss_d"]) < 1e3 and abs(r["loss_g"]) < 1e3 for r in records)
    assert all(torch.isfinite(t).all() for t in state["generator"].values())


def test_wgan_gp_with_a_batch_norm_critic_is_refused_by_the_cli_and_the_python_api(make_sprites, tmp_path):
    args = ["--data", make_sprites(4), "--out", tmp_path / "run", "--loss", "wgan-gp", "--d-norm", "batch"]
    result = invoke(train_main, *args, "-q")
    assert result.exit_code == 2 and "batch norm" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="batch norm"):
        Trainer(ModelConfig(ngf=4, ndf=4), TrainConfig(loss="wgan-gp"), torch.device("cpu"), {})
    Trainer(ModelConfig(ngf=4, ndf=4, d_norm="none"), TrainConfig(loss="wgan-gp"), torch.device("cpu"), {})


@pytest.mark.parametrize(
    "settings, message",
    [({"diffaugment": "rotate"}, "DiffAugment"), ({"gp_weight": -1.0}, "gp_weight"), ({"loss": "hinge"}, "loss"),
     ({"preset": "nope"}, "preset"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr")],
)  # fmt: skip
def test_train_config_refuses_bad_values(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
