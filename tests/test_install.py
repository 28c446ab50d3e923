"""The CPU-only install the README gives: its requirements are pyproject.toml's runtime, with the CPU onnxruntime.
(.ci/run runs the README's line itself, in a fresh environment.)"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def names(requirements: list[str]) -> dict[str, str]:
    """{distribution: specifier} for requirement lines, markers dropped."""
    out = {}
    for line in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*([^;]*)(;.*)?", line.strip())
        out[m.group(1).lower()] = m.group(2).strip()
    return out


def test_the_cpu_requirements_are_the_runtime_with_the_cpu_onnxruntime():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    runtime = names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    lines = (ROOT / "requirements-cpu.txt").read_text().splitlines()
    cpu = names([line for line in lines if line.strip() and not line.startswith("#")])
    assert "onnxruntime-gpu" not in cpu and "onnxruntime-gpu" in runtime
    assert cpu == {name: spec for name, spec in runtime.items() if name != "onnxruntime-gpu"}


def test_the_readme_gives_the_cpu_only_line_that_ci_runs():
    block = re.search(r"<!-- cpu-install -->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block and block.group(1).strip() == "pip install -r requirements-cpu.txt && pip install --no-deps ."
    assert "<!-- cpu-install -->" in (ROOT / ".ci" / "run").read_text()
