"""The three losses: their values on known scores, the gradient penalty on a critic whose gradient is known, R1,
LeCam, adaptive augmentation, a joint batch in D, and a short real training run with each, through the CLI."""

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import flat_ripple
from dcgan.train.augment import ada_adjust
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.config import ModelConfig, TrainConfig
from dcgan.train.loop import LECAM_DECAY, Trainer, discriminator_loss, generator_loss, lecam_penalty
from dcgan.train.model import Generator, upsampling_layers

REAL = torch.tensor([2.0, 0.0, -1.0])
FAKE = torch.tensor([-2.0, 0.5, 1.0])


def test_hinge_loss_only_counts_scores_inside_the_margin():
    # real: max(0, 1 - s) = 0, 1, 2 -> mean 1; fake: max(0, 1 + s) = 0, 1.5, 2 -> mean 7/6
    assert discriminator_loss("hinge", REAL, FAKE).item() == pytest.approx(1 + 7 / 6)
    assert generator_loss("hinge", FAKE).item() == pytest.approx(-(-2 + 0.5 + 1) / 3)


def test_bce_is_the_non_saturating_loss():
    softplus = nn.functional.softplus  # -log sigmoid(s) = softplus(-s)
    expected_d = softplus(-REAL).mean() + softplus(FAKE).mean()
    assert discriminator_loss("bce", REAL, FAKE).item() == pytest.approx(expected_d.item())
    assert generator_loss("bce", FAKE).item() == pytest.approx(softplus(-FAKE).mean().item())


def test_label_smoothing_moves_d_s_best_real_score_to_the_smoothed_target():
    """BCE's gradient in a real score s is sigmoid(s) - target: with smoothing 0.1, D gains nothing by scoring a
    real sprite past logit(0.9) = log 9, and is pushed back when it does; generated sprites' targets stay 0."""
    at_target = torch.tensor([9.0]).log().requires_grad_(True)
    discriminator_loss("bce", at_target, FAKE, label_smoothing=0.1).backward()
    assert at_target.grad.item() == pytest.approx(0.0, abs=1e-6)
    confident = torch.tensor([6.0]).requires_grad_(True)
    discriminator_loss("bce", confident, FAKE, label_smoothing=0.1).backward()
    assert confident.grad.item() > 0  # descending the loss lowers an over-confident real score
    fake = FAKE.clone().requires_grad_(True)
    discriminator_loss("bce", REAL, fake, label_smoothing=0.1).backward()
    assert fake.grad.tolist() == pytest.approx((torch.sigmoid(FAKE) / 3).tolist())
    assert (
        discriminator_loss("bce", REAL, FAKE, label_smoothing=0.0).item()
        == discriminator_loss("bce", REAL, FAKE).item()
    )


def test_label_smoothing_without_bce_is_refused(make_sprites, tmp_path):
    args = ["--data", make_sprites(4), "--out", tmp_path / "run", "--loss", "hinge", "--label-smoothing", "0.1"]
    result = CliRunner().invoke(train_main, [*map(str, args), "-q"])
    assert result.exit_code == 2 and "--label-smoothing" in result.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(loss="hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=0.5)


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


@pytest.mark.parametrize(
    "loss, d_norm", [("hinge", "spectral-batch"), ("hinge", "spectral"), ("bce", "batch"), ("wgan-gp", "none")]
)
def test_each_loss_trains_and_is_recorded(make_sprites, tmp_path, loss, d_norm):
    run = tmp_path / "run"
    args = ["--data", make_sprites(8), "--out", run, "--epochs", 2, "--loss", loss, "--d-norm", d_norm]
    result = CliRunner().invoke(train_main, [*map(str, args), "--ngf", "4", "--ndf", "4", "--batch-size", "4", "-q"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run)
    assert (state["train_config"]["loss"], state["model_config"]["d_norm"]) == (loss, d_norm)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(abs(r["loss_d"]) < 1e3 and abs(r["loss_g"]) < 1e3 for r in records)
    assert all(torch.isfinite(t).all() for t in state["generator"].values())


def test_wgan_gp_with_a_batch_norm_critic_is_refused(make_sprites, tmp_path):
    args = ["--data", make_sprites(4), "--out", tmp_path / "run", "--loss", "wgan-gp", "--d-norm", "batch"]
    result = CliRunner().invoke(train_main, [*map(str, args), "-q"])
    assert result.exit_code == 2 and "batch norm" in result.output
    assert not (tmp_path / "run").exists()


def test_minibatch_std_with_one_batch_for_d_is_refused(make_sprites, tmp_path):
    args = ["--data", make_sprites(4), "--out", tmp_path / "run", "--d-joint-batch", "--mbstd-group", "4"]
    result = CliRunner().invoke(train_main, [*map(str, args), "-q"])
    assert result.exit_code == 2 and "use one or the other" in result.output
    assert not (tmp_path / "run").exists()


def test_default_recipe_is_the_small_data_one_and_old_checkpoints_keep_theirs():
    model, train = ModelConfig(), TrainConfig()
    assert (model.d_norm, model.mbstd_group, train.loss, train.batch_size) == ("batch", 0, "bce", 32)
    assert set(train.diffaugment.split(",")) == {"color", "translation", "cutout"} and train.ema_half_life > 0
    # a checkpoint's train_config from before these settings existed: the plain DCGAN
    old = {"epochs": 5, "batch_size": 8, "lr": 2e-4}
    plain = TrainConfig(epochs=5, batch_size=8, loss="bce", diffaugment="", ema_half_life=0)
    assert TrainConfig.from_dict(old) == plain


def test_the_discriminator_can_learn_faster_than_the_generator():
    cfg = ModelConfig(ngf=4, ndf=4)
    fast = Trainer(cfg, TrainConfig(lr=2e-4, lr_d=6e-4, amp=False), torch.device("cpu"), {})
    same = Trainer(cfg, TrainConfig(lr=2e-4, amp=False), torch.device("cpu"), {})
    assert fast.opt_d.param_groups[0]["lr"] == 6e-4 and fast.opt_g.param_groups[0]["lr"] == 2e-4
    assert same.opt_d.param_groups[0]["lr"] == same.opt_g.param_groups[0]["lr"] == 2e-4


def test_r1_adds_half_its_weight_times_the_squared_gradient_at_the_real_sprites():
    """The same step with and without R1: the D losses differ by exactly (r1 / 2) E|grad_x D(x)|^2, computed
    here on a copy of D at the real batch (no flips, no augmentation, so D sees the batch as given)."""
    import copy

    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0)
    plain = Trainer(cfg, TrainConfig(**settings), torch.device("cpu"), {})
    with_r1 = Trainer(cfg, TrainConfig(**settings, r1=10.0), torch.device("cpu"), {})
    real_u8 = torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    real = (real_u8.float() / 127.5 - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(copy.deepcopy(with_r1.D)(real).sum(), real)
    penalty = 10.0 / 2 * grad.flatten(1).square().sum(dim=1).mean().item()
    assert penalty > 0
    gap = with_r1.train_step(real_u8)["loss_d"] - plain.train_step(real_u8)["loss_d"]
    assert gap == pytest.approx(penalty, rel=1e-4)


def test_r1_and_icnr_init_train_are_recorded_and_stay_on_resume(make_sprites, tmp_path):
    run = tmp_path / "run"
    args = ["--data", make_sprites(8), "--out", run, "--epochs", 2, "--r1", "0.05", "--g-init", "icnr"]
    result = CliRunner().invoke(train_main, [*map(str, args), "--batch-size", "4", "--ngf", "4", "--ndf", "4", "-q"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run)
    assert (state["train_config"]["r1"], state["train_config"]["g_init"]) == (0.05, "icnr")
    assert all(torch.isfinite(t).all() for t in state["discriminator"].values() if t.is_floating_point())
    for option, value in (("--r1", "1"), ("--g-init", "normal")):
        refused = CliRunner().invoke(train_main, ["--resume", str(run), "--epochs", "3", option, value, "-q"])
        assert refused.exit_code == 2 and option in refused.output
    assert CliRunner().invoke(train_main, ["--data", "x", "--r1", "-1"]).exit_code == 2
    with pytest.raises(ValueError, match="r1"):
        TrainConfig(r1=-0.1)
    old = TrainConfig.from_dict({"epochs": 5})  # checkpoints from before these settings: neither
    assert (old.r1, old.g_init, old.even_upsampling) == (0.0, "normal", False)


def test_even_upsampling_keeps_both_generators_checkerboard_free_through_training(make_sprites, tmp_path):
    """After training with --even-upsampling, a flat feature map through any upsampling layer of the trained
    and of the EMA generator comes out flat; without it, training leaves the four phases apart."""

    def worst_ripple(weights: dict) -> float:
        g = Generator(ModelConfig(ngf=4))
        g.load_state_dict(weights)
        return max(flat_ripple(layer) for layer in upsampling_layers(g))

    common = ["--data", str(make_sprites(8)), "--epochs", "2", "--batch-size", "4", "--ngf", "4", "--ndf", "4", "-q"]
    runs = [tmp_path / "plain", tmp_path / "even"]
    for run, flags in zip(runs, ([], ["--even-upsampling"]), strict=True):
        result = CliRunner().invoke(train_main, [*common, "--out", str(run), *flags])
        assert result.exit_code == 0, result.output
    even, plain = load_checkpoint(runs[1]), load_checkpoint(runs[0])
    assert even["train_config"]["even_upsampling"] and not plain["train_config"]["even_upsampling"]
    assert even["step"] == 4 and "generator_ema" in even
    assert max(worst_ripple(even["generator"]), worst_ripple(even["generator_ema"])) < 1e-4
    assert worst_ripple(plain["generator"]) > 0.1
    refused = CliRunner().invoke(train_main, ["--resume", str(runs[0]), "--epochs", "3", "--even-upsampling"])
    assert refused.exit_code == 2 and "--even-upsampling" in refused.output


def test_lecam_penalises_scores_past_the_other_sides_average_only():
    # real scores above the fake average (-0.5): 2.5 and 0.5; fake scores below the real average (0.5): 2.5
    assert lecam_penalty(REAL, FAKE, torch.tensor([0.5, -0.5])).item() == pytest.approx((6.25 + 0.25) / 3 + 6.25 / 3)
    assert lecam_penalty(REAL, FAKE, torch.tensor([-3.0, 3.0])).item() == 0


def test_lecam_adds_its_penalty_at_moving_averages_of_the_scores():
    """The same steps with and without LeCam. The first step's anchors are its own mean scores and its D loss grows
    by exactly lecam * penalty, with D's scores recomputed here on copies of D and G; later steps move the anchors
    by 1 - LECAM_DECAY towards their means."""
    import copy

    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0)
    plain = Trainer(cfg, TrainConfig(**settings), torch.device("cpu"), {})
    lecam = Trainer(cfg, TrainConfig(**settings, lecam=0.3), torch.device("cpu"), {})
    real_u8 = torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    z = torch.randn(6, cfg.nz, generator=copy.deepcopy(lecam.rng))
    D, G = copy.deepcopy(lecam.D), copy.deepcopy(lecam.G)
    with torch.no_grad():
        d_real, d_fake = D(real_u8.float() / 127.5 - 1), D(G(z))
    anchors = torch.stack([d_real.mean(), d_fake.mean()])
    penalty = 0.3 * lecam_penalty(d_real, d_fake, anchors).item()
    assert penalty > 0
    first = lecam.train_step(real_u8)
    assert first["loss_d"] - plain.train_step(real_u8)["loss_d"] == pytest.approx(penalty, rel=1e-4)
    assert lecam.lecam_anchors.tolist() == pytest.approx([first["d_x"], first["d_g_z"]], rel=1e-5)
    before = lecam.lecam_anchors.clone()
    second = lecam.train_step(real_u8)
    expected = LECAM_DECAY * before + (1 - LECAM_DECAY) * torch.tensor([second["d_x"], second["d_g_z"]])
    assert lecam.lecam_anchors.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert plain.lecam_anchors is None


def train_whole_and_resumed(make_sprites, tmp_path, option: list[str]) -> tuple[dict, dict]:
    """The checkpoints of two tiny runs with `option`: "a" trained to epoch 2 at once, "b" to epoch 1 then resumed
    to 2, with D's weights checked equal (a resumed run must be the run that never stopped)."""
    data, tiny = make_sprites(8), ["--batch-size", "4", "--ngf", "4", "--ndf", "4", "-q", *option]
    for run, epochs in (("a", 2), ("b", 1)):
        args = ["--data", data, "--out", tmp_path / run, "--epochs", epochs, *tiny]
        assert CliRunner().invoke(train_main, [*map(str, args)]).exit_code == 0
    resumed = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "b"), "--epochs", "2", "-q"])
    assert resumed.exit_code == 0, resumed.output
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for name, tensor in a["discriminator"].items():
        assert torch.equal(tensor, b["discriminator"][name]), name
    return a, b


def test_label_smoothing_is_recorded_and_stays_on_resume(make_sprites, tmp_path):
    a, b = train_whole_and_resumed(make_sprites, tmp_path, ["--label-smoothing", "0.1"])
    assert a["train_config"]["label_smoothing"] == b["train_config"]["label_smoothing"] == 0.1
    args = ["--resume", str(tmp_path / "a"), "--epochs", "3", "--label-smoothing", "0", "-q"]
    refused = CliRunner().invoke(train_main, args)
    assert refused.exit_code == 2 and "--label-smoothing" in refused.output


def test_lecam_is_recorded_resumes_exactly_and_stays_on_resume(make_sprites, tmp_path):
    a, b = train_whole_and_resumed(make_sprites, tmp_path, ["--lecam", "0.3"])
    assert a["train_config"]["lecam"] == b["train_config"]["lecam"] == 0.3
    assert torch.equal(a["lecam_anchors"], b["lecam_anchors"]) and torch.isfinite(a["lecam_anchors"]).all()
    refused = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "a"), "--epochs", "3", "--lecam", "0", "-q"])
    assert refused.exit_code == 2 and "--lecam" in refused.output
    assert CliRunner().invoke(train_main, ["--data", "x", "--lecam", "-1"]).exit_code == 2
    with pytest.raises(ValueError, match="lecam"):
        TrainConfig(lecam=-0.1)
    assert TrainConfig.from_dict({"epochs": 5}).lecam == 0.0  # checkpoints from before the option: off


def test_ada_starts_as_the_plain_step_and_moves_its_probability_by_the_real_scores():
    import copy

    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0)
    plain = Trainer(cfg, TrainConfig(**settings), torch.device("cpu"), {})
    ada = Trainer(cfg, TrainConfig(**settings, ada_target=0.6), torch.device("cpu"), {})
    real_u8 = torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    first, reference = ada.train_step(real_u8), plain.train_step(real_u8)
    assert first["ada_p"] == 0 and first["loss_d"] == reference["loss_d"]  # p = 0: no transform, no draw
    assert ada.ada_p == ada_adjust(0.0, first["ada_r"], 0.6, 6)
    untransformed = copy.deepcopy(ada)
    ada.ada_p, untransformed.ada_p = 0.9, 0.0  # the same next step, with and without the transforms
    transformed = ada.train_step(real_u8)
    assert transformed["ada_p"] == 0.9 and transformed["d_x"] != untransformed.train_step(real_u8)["d_x"]


def test_ada_is_recorded_resumes_exactly_and_stays_on_resume(make_sprites, tmp_path):
    a, b = train_whole_and_resumed(make_sprites, tmp_path, ["--ada-target", "0.05"])
    assert a["train_config"]["ada_target"] == b["train_config"]["ada_target"] == 0.05
    assert a["ada_p"] == b["ada_p"] > 0  # it rose, so the transforms drew from the run's generator
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= line["ada_p"] <= 1 and -1 <= line["ada_r"] <= 1 for line in lines)
    refused = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "a"), "--epochs", "3", "--ada-target", "0.6"])
    assert refused.exit_code == 2 and "--ada-target" in refused.output
    for bad in ("-0.1", "1"):
        assert CliRunner().invoke(train_main, ["--data", "x", "--ada-target", bad]).exit_code == 2
    with pytest.raises(ValueError, match="ada_target"):
        TrainConfig(ada_target=1.0)
    assert TrainConfig.from_dict({"epochs": 5}).ada_target == 0.0  # checkpoints from before the option: off


def test_a_joint_batch_scores_real_and_generated_sprites_in_one_pass_of_d():
    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0)
    rng = torch.Generator().manual_seed(2)
    real, fake, other_fake = (torch.rand(6, 4, 96, 96, generator=rng) * 2 - 1 for _ in range(3))
    for joint in (False, True):
        trainer = Trainer(cfg, TrainConfig(**settings, d_joint_batch=joint), torch.device("cpu"), {})
        d_real, _ = trainer.score(real, fake)
        d_real_beside_other, _ = trainer.score(real, other_fake)
        # batch norm in train mode: together, a real sprite's score depends on the generated ones beside it
        assert torch.equal(d_real, d_real_beside_other) != joint
        sizes = []
        trainer.D.register_forward_hook(lambda module, args, out, sizes=sizes: sizes.append(len(args[0])))
        trainer.train_step(torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=rng))
        assert sizes == ([12, 12] if joint else [6, 6, 6])  # D's step, then G's (beside the same real sprites)


def test_a_joint_batch_is_recorded_resumes_exactly_and_stays_on_resume(make_sprites, tmp_path):
    a, b = train_whole_and_resumed(make_sprites, tmp_path, ["--d-joint-batch"])
    assert a["train_config"]["d_joint_batch"] is b["train_config"]["d_joint_batch"] is True
    refused = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "a"), "--epochs", "3", "--d-joint-batch"])
    assert refused.exit_code == 2 and "--d-joint-batch" in refused.output
    assert TrainConfig.from_dict({"epochs": 5}).d_joint_batch is False  # checkpoints from before the option: off


def test_replay_shows_d_earlier_sprites_once_its_buffer_is_full(monkeypatch):
    """Until the buffer holds REPLAY_SIZE sprites D sees this step's only; then round(replay * B) of them are
    sprites of earlier steps, taken from the buffer, and this step's take their places there."""
    from dcgan.train import loop

    monkeypatch.setattr(loop, "REPLAY_SIZE", 12)
    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0)
    trainer = Trainer(cfg, TrainConfig(**settings, replay=0.5), torch.device("cpu"), {})
    seen = []
    trainer.D.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    real_u8 = torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for filled in (6, 12):
        trainer.train_step(real_u8)
        assert len(trainer.replay_buffer) == filled
        fake, replayed = seen[-1], seen[-2]  # G's step scores this step's sprites; D's step scored these
        assert torch.equal(replayed, fake)
    before = trainer.replay_buffer.clone()
    trainer.train_step(real_u8)
    fake, replayed = seen[-1], seen[-2]
    assert torch.equal(replayed[:3], fake[:3])
    earlier = before.float() / 127.5 - 1
    for row in replayed[3:]:
        assert any(torch.equal(row, old) for old in earlier)
        assert not any(torch.allclose(row, new, atol=0.01) for new in fake)
    changed = (trainer.replay_buffer != before).flatten(1).any(dim=1)
    assert changed.sum() == 3  # this step's last three sprites, quantised like real ones, took the drawn places
    for slot in changed.nonzero().flatten():
        assert any(torch.equal(trainer.replay_buffer[slot], loop.to_levels(new)) for new in fake[3:])


def test_replay_is_recorded_resumes_exactly_and_stays_on_resume(make_sprites, tmp_path, monkeypatch):
    from dcgan.train import loop

    monkeypatch.setattr(loop, "REPLAY_SIZE", 8)  # full after two steps, so both runs replay from the third on
    a, b = train_whole_and_resumed(make_sprites, tmp_path, ["--replay", "0.5"])
    assert a["train_config"]["replay"] == b["train_config"]["replay"] == 0.5
    assert a["replay_buffer"].shape == (8, 4, 96, 96) and torch.equal(a["replay_buffer"], b["replay_buffer"])
    refused = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "a"), "--epochs", "3", "--replay", "0", "-q"])
    assert refused.exit_code == 2 and "--replay" in refused.output
    for bad in ("-0.1", "1"):
        assert CliRunner().invoke(train_main, ["--data", "x", "--replay", bad]).exit_code == 2
    with pytest.raises(ValueError, match="replay"):
        TrainConfig(replay=1.0)
    assert TrainConfig.from_dict({"epochs": 5}).replay == 0.0  # checkpoints from before the option: off


def test_instance_noise_reaches_every_sprite_d_sees_and_falls_linearly_to_zero():
    """Noise of the step's sigma is added to the real and the generated sprites D scores, in both steps; sigma falls
    by instance_noise / (epochs * steps per epoch) a step, and at zero D sees the sprites as they are."""
    cfg = ModelConfig(ngf=4, ndf=4)
    settings = dict(amp=False, channels_last=False, flip=False, diffaugment="", ema_half_life=0, batch_size=6)
    noisy = TrainConfig(**settings, instance_noise=0.4, instance_noise_epochs=2)
    trainer = Trainer(cfg, noisy, torch.device("cpu"), {"count": 13})  # 2 full batches an epoch: 4 noisy steps
    seen = []
    trainer.D.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    real_u8 = torch.randint(0, 256, (6, 4, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    real = real_u8.float() / 127.5 - 1
    for sigma in (0.4, 0.3, 0.2, 0.1, 0.0, 0.0):
        stats = trainer.train_step(real_u8)
        trainer.step += 1  # as the training loop counts them
        assert stats["noise"] == pytest.approx(sigma)
        d_real, d_fake, d_gen = seen[-3:]  # D's step: real, generated; G's step: the same generated sprites
        assert (d_real - real).std().item() == pytest.approx(sigma, rel=0.02)
        assert (d_gen - d_fake).std().item() == pytest.approx(sigma * 2**0.5, rel=0.02)  # two independent draws
    assert torch.equal(d_real, real)


def test_instance_noise_is_recorded_resumes_exactly_and_stays_on_resume(make_sprites, tmp_path):
    option = ["--instance-noise", "0.2", "--instance-noise-epochs", "3"]
    a, b = train_whole_and_resumed(make_sprites, tmp_path, option)
    for state in (a, b):
        assert (state["train_config"]["instance_noise"], state["train_config"]["instance_noise_epochs"]) == (0.2, 3)
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["noise"] > lines[1]["noise"] > 0  # each epoch's mean sigma, falling
    for changed in (["--instance-noise", "0"], ["--instance-noise-epochs", "9"]):
        refused = CliRunner().invoke(train_main, ["--resume", str(tmp_path / "a"), "--epochs", "3", *changed, "-q"])
        assert refused.exit_code == 2 and changed[0] in refused.output
    for bad in (["--instance-noise", "-0.1"], ["--instance-noise-epochs", "0"]):
        assert CliRunner().invoke(train_main, ["--data", "x", *bad]).exit_code == 2
    for bad in ({"instance_noise": -0.1}, {"instance_noise_epochs": 0}):
        with pytest.raises(ValueError, match="instance_noise"):
            TrainConfig(**bad)
    assert TrainConfig.from_dict({"epochs": 5}).instance_noise == 0.0  # checkpoints from before the option: off
