"""Data flows one way: train -> export -> serve. Every import in every module, at any depth (inside functions
too), read from the source, so a lazy import cannot slip past."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = {"train": "dcgan.train", "export": "dcgan.export", "serve": "dcgan.serve"}
# what each room may not import; serve is the base the others build on and runs without torch
FORBIDDEN = {
    "serve": ("dcgan.train", "dcgan.export", "torch", "torchvision", "onnx"),
    "train": ("dcgan.export",),
    "export": (),
}


def imports(path: Path, package: str) -> set[str]:
    """The absolute names of every module `path` imports, relative imports resolved against `package`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from dcgan import train`
    return names


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def offending(room: str) -> list[str]:
    found = []
    for path in modules(room):
        for name in sorted(imports(path, ROOMS[room])):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[room]):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_imports_only_downstream(room):
    assert modules(room), f"no modules found under {room}/"
    assert offending(room) == []


def test_the_reader_sees_lazy_relative_and_from_imports(tmp_path):
    """The check itself: a function-level relative import into train from serve, and torch by any spelling."""
    sample = tmp_path / "m.py"
    sample.write_text(
        "def f():\n    from ..train import loop\n    if True:\n        import torch.nn as nn\n"
        "from dcgan import export\n"
    )
    found = imports(sample, "dcgan.serve")
    assert {"dcgan.train.loop", "torch.nn", "dcgan.export"} <= found
