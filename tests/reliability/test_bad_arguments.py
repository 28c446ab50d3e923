"""Arguments a user gets wrong: each is one line naming the option, exit 2, and nothing is created."""

import os
from pathlib import Path

import pytest

from conftest import invoke
from dcgan.export.cli import main as export_main
from dcgan.serve.cli import main as sample_main
from dcgan.train.evaluate import main as eval_main


@pytest.mark.parametrize("args, message", [
    (["-n", "0"], "-n"),
    (["-n", "-3"], "-n"),
    (["--batch-size", "0", "-n", "2"], "--batch-size"),
    (["--seeds", "5-2"], "backwards"),
    (["--seeds", "1,x"], "is not a seed"),
    (["--seeds", "-4"], "is not a seed"),
    (["--seeds", ""], "is not a seed"),
    (["--seeds", "0-9,5"], "overlap"),
    (["-n", "2", "--seeds", "1"], "not both"),
    ([], "-n N"),
    (["--provider", "tpu", "-n", "1"], "--provider"),
    (["--scale", "0", "-n", "1"], "--scale"),
])  # fmt: skip
def test_bad_sampling_arguments(tiny_export, tmp_path, args, message):
    result = invoke(sample_main, *args, "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file(tiny_export, tmp_path):
    (tmp_path / "f").write_text("x")
    result = invoke(sample_main, "-n", 1, "--model", tiny_export, tmp_path / "f")
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert (tmp_path / "f").read_text() == "x"


def test_output_folder_that_cannot_be_created(tiny_export, tmp_path):
    (tmp_path / "f").write_text("x")
    result = invoke(sample_main, "-n", 1, "--model", tiny_export, tmp_path / "f" / "sub")
    assert result.exit_code == 2 and "cannot create" in result.output and "Not a directory" in result.output


def unwritable_folder(tmp_path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    if os.path.isdir("/sys/fs"):
        return Path("/sys/fs")  # sysfs refuses new files even to root
    pytest.skip("no folder here refuses writes to this user")


def test_output_folder_that_cannot_be_written_fails_before_generating(tiny_export, tmp_path):
    folder = unwritable_folder(tmp_path)
    result = invoke(sample_main, "-n", 1, "--model", tiny_export, folder)
    assert result.exit_code == 2 and f"cannot write into {folder}" in result.output, result.output
    assert "Permission denied" in result.output


def test_eval_and_export_arguments(tiny_export, make_sprites, tmp_path):
    data = make_sprites(4)
    result = invoke(eval_main, tiny_export, "--data", data, "-n", 3)
    assert result.exit_code == 2 and "-n" in result.output  # too few sprites to measure
    result = invoke(eval_main, tiny_export, "--data", data, "-n", 16, "--bins", 8)
    assert result.exit_code == 2 and "need at least 8 training" in result.output
    result = invoke(export_main, tmp_path / "no-such-run", "--onnx")
    assert result.exit_code == 2 and "does not exist" in result.output
