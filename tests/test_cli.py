"""The three entry points as installed: help, bad input, and the runtime without the training stack."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["dcgan-train", "dcgan-export", "dcgan-sample", "dcgan-eval", "dcgan-select", "dcgan-serve"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def command(name: str) -> list[str]:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(exe).exists(), f"{name} is not installed as an entry point"
    return [exe]


@pytest.mark.parametrize("name", COMMANDS)
def test_help(name):
    result = run(command(name) + ["--help"])
    assert result.returncode == 0 and result.stdout.startswith(f"Usage: {name}")


def test_train_help_shows_defaults_and_examples():
    out = run(command("dcgan-train") + ["--help"]).stdout
    assert "dcgan-train --resume" in out and "--amp / --no-amp" in out
    assert "Generator width.  [default: 54;" in out  # the shipped recipe's width
    assert len(out.splitlines()) <= 50  # one screen: options that measured no better are gone, not listed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "1"], "--batch-size"),
        (["--lr", "0"], "--lr"),
        (["--data", "MISSING_DIR"], "does not exist"),
        (["--nope"], "No such option"),
    ],
)
def test_bad_arguments_fail_in_one_clear_line(args, message, tmp_path):
    result = run(command("dcgan-train") + args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_data_path_that_is_a_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    result = run(command("dcgan-train") + ["--data", "x.png", "--out", "r"], cwd=tmp_path)
    assert result.returncode == 2 and "is a file" in result.stderr


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"garbage")
    result = run(command("dcgan-train") + ["--data", "d", "--out", "r"], cwd=tmp_path)
    assert result.returncode == 2
    assert "no usable images" in result.stderr and "skipped" in result.stderr and "a.png" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def no_torch_env(tmp_path):
    """An environment where `import torch` fails, as on a runtime-only install."""
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named torch (blocked for this test)')\n")
    return {**os.environ, "PYTHONPATH": str(blocker.parent)}


def test_train_without_torch_names_the_extra(no_torch_env, tmp_path):
    result = run(command("dcgan-train") + ["--data", str(tmp_path)], env=no_torch_env)
    assert result.returncode == 1
    assert "pip install 'dcgan-pokemon[train]'" in result.stderr and "Traceback" not in result.stderr


def test_export_without_torch_names_the_extra(no_torch_env, tmp_path):
    result = run(command("dcgan-export") + ["--onnx"], env=no_torch_env, cwd=tmp_path)
    assert result.returncode == 1
    assert "dcgan-export needs PyTorch" in result.stderr and "Traceback" not in result.stderr


def test_serve_imports_without_torch(no_torch_env):
    code = (
        "import dcgan.serve.latent, dcgan.serve.images, dcgan.serve.cli; import sys; assert 'torch' not in sys.modules"
    )
    result = run([sys.executable, "-c", code], env=no_torch_env)
    assert result.returncode == 0, result.stderr
    assert run(command("dcgan-sample") + ["--help"], env=no_torch_env).returncode == 0
