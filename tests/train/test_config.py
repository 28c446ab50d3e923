"""Settings that cannot be lost: the defaults are the shipped recipe, unknown keys are named, and a checkpoint written
with a setting this version no longer has still exports but cannot be resumed."""

import json
from pathlib import Path

import pytest
import torch

from conftest import invoke
from dcgan.export.cli import main as export_main
from dcgan.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.config import LEGACY_TRAIN, ModelConfig, TrainConfig, retire
from dcgan.train.loop import Trainer

SHIPPED = Path(__file__).resolve().parents[2] / "serve" / "models" / "export.json"
# what belongs to one run rather than to its recipe: which seed it drew, how often it wrote grids and kept checkpoints
RUN_BOOKKEEPING = {"seed", "epochs", "sample_every", "keep_every"}


def test_a_bare_run_records_the_shipped_models_recipe(make_sprites, tmp_path, no_training):
    shipped = json.loads(SHIPPED.read_text())
    model, train, retired = retire(shipped["model_config"], shipped["train_config"])
    assert retired == {}  # it trained with nothing this version lacks
    result = invoke(train_main, "--data", make_sprites(32), "--out", tmp_path / "run", "--epochs", 1, "-q")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == ModelConfig.from_dict(model).to_dict()  # a key it lacks means what it trained with
    recipe = {k: v for k, v in config["train"].items() if k not in RUN_BOOKKEEPING}
    assert recipe == {k: v for k, v in TrainConfig.from_dict(train).to_dict().items() if k not in RUN_BOOKKEEPING}
    # and with no --epochs at all, a run trains to the epoch the shipped model was taken at
    assert TrainConfig().epochs == shipped["source"]["epoch"]


def test_unknown_keys_are_named_not_dropped():
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "colour": 3})
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig.from_dict({"epochs": 5, "warmup": 10})
    # a checkpoint from before a setting existed keeps what it trained with: the plain DCGAN
    assert TrainConfig.from_dict({"epochs": 5}) == TrainConfig(epochs=5, **LEGACY_TRAIN)


def test_retired_settings_are_named_only_where_they_were_on():
    model = {**ModelConfig().to_dict(), "mbstd_group": 0, "discriminator": "global", "d_norm": "spectral-batch"}
    train = {**TrainConfig().to_dict(), "lecam": 0.0, "label_smoothing": 0.1, "instance_noise_epochs": 50, "r1": 0.0}
    model_now, train_now, in_use = retire(model, train)
    assert in_use == {"d_norm": "spectral-batch", "label_smoothing": 0.1}  # r1 at 0 changed nothing
    assert ModelConfig.from_dict(model_now).generator == ModelConfig().generator  # the same generator; D differed
    assert TrainConfig.from_dict(train_now) == TrainConfig()
    assert retire({**model, "discriminator": "patch"}, train)[2] == {**in_use, "discriminator": "patch"}
    spectral_hinge = retire({**model, "d_norm": "spectral"}, {**train, "loss": "hinge", "r1": 0.05})[2]
    assert spectral_hinge == {"d_norm": "spectral", "loss": "hinge", "r1": 0.05, "label_smoothing": 0.1}


def old_checkpoint(checkpoint: Path, dest: Path, model: dict | None = None, **retired) -> Path:
    """A run folder `dest` holding `checkpoint` as an earlier version wrote it: every setting it had, with `retired`
    (and `model`, in its model config) turned on, and the state its options kept."""
    state = load_checkpoint(checkpoint)
    off = {"lr_d": 0.0, "lecam": 0.0, "label_smoothing": 0.0, "ada_target": 0.0, "replay": 0.0,
           "instance_noise": 0.0, "instance_noise_epochs": 100, "d_joint_batch": False, "g_init": "normal",
           "even_upsampling": False, "r1": 0.0}  # fmt: skip
    state["train_config"] = {**state["train_config"], **off, **retired}
    state["model_config"] = {**state["model_config"], "mbstd_group": 0, **(model or {})}
    state.update(lecam_anchors=None, ada_p=0.0, replay_buffer=None)
    del state["retired"]
    dest.mkdir()
    save_checkpoint(state, dest / "checkpoint.pt")
    return dest


@pytest.mark.parametrize(
    "name, model, train, says",
    [
        ("smoothed", {}, {"label_smoothing": 0.1}, "label_smoothing=0.1"),
        ("r1", {}, {"r1": 0.05}, "r1=0.05"),
        ("hinge", {}, {"loss": "hinge"}, "loss=hinge"),
        ("spectral", {"d_norm": "spectral"}, {}, "d_norm=spectral"),
    ],
)
def test_a_checkpoint_with_a_removed_option_exports_with_one_line_and_is_refused_on_resume(
    tiny_run, tmp_path, name, model, train, says
):
    old = old_checkpoint(tiny_run / "checkpoint.pt", tmp_path / name, model, **train)
    exported = invoke(export_main, old, "--torchscript", "--no-fp16")
    assert exported.exit_code == 0, exported.output
    notes = [line for line in exported.output.splitlines() if "no longer has" in line]
    assert len(notes) == 1 and says in notes[0]
    key, value = says.split("=")
    recorded = json.loads((old / "export" / "export.json").read_text())["retired_settings"]
    assert {k: str(v) for k, v in recorded.items()} == {key: value}

    resumed = invoke(train_main, "--resume", old, "--epochs", 3, "-q")
    assert resumed.exit_code == 2 and "Traceback" not in resumed.output
    (error,) = [line for line in resumed.output.splitlines() if line.startswith("Error")]  # one line
    assert says in error and "cannot go on" in error
    assert load_checkpoint(old)["epoch"] == 2  # nothing trained
    with pytest.raises(CheckpointError, match=says):  # nor through the Python API, whose configs only stand in
        Trainer.from_state(load_checkpoint(old), torch.device("cpu"))


def test_an_old_checkpoint_whose_removed_options_were_off_resumes_exactly_as_it_would_have(tiny_run, tmp_path):
    """Epoch 1 of the session's run as an earlier version saved it (r1 0.0, the keys of settings since removed, and
    the state they kept), resumed to epoch 2: it ends with the run's own weights."""
    old = old_checkpoint(tiny_run / "checkpoints" / "epoch0001.pt", tmp_path / "plain")
    resumed = invoke(train_main, "--resume", old, "--epochs", 2, "-q")
    assert resumed.exit_code == 0, resumed.output
    assert "no longer has" not in resumed.output
    ours, theirs = load_checkpoint(old), load_checkpoint(tiny_run)
    assert ours["epoch"] == 2 and ours["step"] == theirs["step"]
    for key in ("generator", "generator_ema", "discriminator"):
        for name, tensor in theirs[key].items():
            assert torch.equal(tensor, ours[key][name]), f"{key}.{name}"
