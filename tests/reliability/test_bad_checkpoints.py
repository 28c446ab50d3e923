"""Every command that reads a checkpoint (dcgan-train --resume, dcgan-export, dcgan-eval) refuses a missing,
truncated, foreign, incompatible, old-format or code-carrying file in one line, exit 2, and runs nothing."""

import os

import pytest
import torch

from conftest import invoke
from dcgan.export.cli import main as export_main
from dcgan.train.checkpoint import CheckpointError, load_checkpoint
from dcgan.train.cli import main as train_main
from dcgan.train.evaluate import main as eval_main


@pytest.fixture
def good(tiny_run):
    """A checkpoint that loads (the session's run: broken copies are written elsewhere) and its sprites."""
    return tiny_run / "checkpoint.pt", tiny_run.parent / "sprites"


class Exploit:
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def commands(path, data):
    """Each reader of checkpoints, as a user would call it on `path`."""
    return {
        "dcgan-train --resume": (train_main, ["--resume", path, "--epochs", 5, "-q"]),
        "dcgan-export": (export_main, [path, "--onnx", "--out", path.parent / "export-test", "-q"]),
        "dcgan-eval": (eval_main, [path, "--data", data, "-n", 16, "--bins", 2]),
    }


def broken_files(tmp_path, good_ckpt):
    blob = good_ckpt.read_bytes()
    state = load_checkpoint(good_ckpt)
    files = {}

    files["missing"] = (tmp_path / "nope.pt", "no checkpoint at")

    files["truncated"] = (tmp_path / "half.pt", "not a readable checkpoint")
    files["truncated"][0].write_bytes(blob[: len(blob) // 2])

    files["not a checkpoint"] = (tmp_path / "notes.pt", "not a readable checkpoint")
    files["not a checkpoint"][0].write_text("hello")

    files["another torch file"] = (tmp_path / "other.pt", "not a dcgan checkpoint")
    torch.save({"weights": torch.zeros(2)}, files["another torch file"][0])

    files["older format"] = (tmp_path / "old.pt", "format 0, this version reads format 1")
    torch.save({**state, "format": 0}, files["older format"][0])

    files["unknown setting"] = (tmp_path / "newer.pt", "settings this version does not know")
    torch.save({**state, "model_config": {**state["model_config"], "attention": True}}, files["unknown setting"][0])

    wider = {**state["model_config"], "ngf": 8}  # the config says 8, the weights are width 4
    files["weights that do not fit"] = (tmp_path / "mismatch.pt", "does not fit its recorded model config")
    torch.save({**state, "model_config": wider}, files["weights that do not fit"][0])

    Exploit.marker = tmp_path / "pwned"
    files["a pickle with code"] = (tmp_path / "evil.pt", "refused: it holds more than weights")
    torch.save({**state, "generator": Exploit()}, files["a pickle with code"][0])
    return files


CASES = [
    "missing",
    "truncated",
    "not a checkpoint",
    "another torch file",
    "older format",
    "unknown setting",
    "weights that do not fit",
    "a pickle with code",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["dcgan-train --resume", "dcgan-export", "dcgan-eval"])
def test_bad_checkpoint_is_one_clear_line_and_nothing_runs(good, tmp_path, case, command):
    good_ckpt, data = good
    path, says = broken_files(tmp_path, good_ckpt)[case]
    main, args = commands(path, data)[command]
    result = invoke(main, *args)
    if case == "missing" and command != "dcgan-train --resume":
        says = "does not exist"  # click checks the argument before the checkpoint reader sees it
    assert result.exit_code == 2, result.output
    assert says in result.output, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "pwned").exists()  # the pickle's code never ran
    assert not (path.parent / "export-test").exists()  # nothing was exported


def test_the_reader_names_what_differs(good, tmp_path):
    good_ckpt, _ = good
    files = broken_files(tmp_path, good_ckpt)
    with pytest.raises(CheckpointError, match=r"attention"):
        load_checkpoint(files["unknown setting"][0])
    with pytest.raises(CheckpointError, match=r"posix.system|system"):
        load_checkpoint(files["a pickle with code"][0])
    assert not (tmp_path / "pwned").exists()
