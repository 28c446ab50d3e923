"""The README's embedding example, run exactly as written, without this package."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from dcgan.serve.cli import main as sample_main

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK_DCGAN = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, *args):
        if name == "dcgan" or name.startswith("dcgan."):
            raise ImportError("this package is blocked: the example must not need it")
sys.meta_path.insert(0, Block())
"""


def embed_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- embed-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its embed example"
    return match.group(1)


def test_readme_example_runs_without_the_package_and_matches_dcgan_sample(tiny_export, tmp_path):
    code = embed_example()
    assert len(code.strip().splitlines()) <= 12
    shutil.copy(tiny_export / "generator-rgba8.onnx", tmp_path / "generator-rgba8.onnx")
    result = subprocess.run([sys.executable, "-c", BLOCK_DCGAN + code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = sorted(tmp_path.glob("seed*.png"))
    assert len(made) == 16

    ours = CliRunner().invoke(sample_main, ["-n", "16", "--model", str(tiny_export), str(tmp_path / "ours")])
    assert ours.exit_code == 0, ours.output
    for path in made:
        np.testing.assert_array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "ours" / path.name))
        )
