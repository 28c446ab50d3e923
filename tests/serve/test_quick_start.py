"""The README's quick start, typed in order as written, with the shipped model."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.slow


def quick_start() -> list[list[str]]:
    block = re.search(r"<!-- quick-start -->\n```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md lost its quick start"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    assert lines[0] == ["pip", "install", "."]  # this environment has it installed
    return lines[1:]


def test_the_quick_start_works_typed_in_order(tmp_path):
    commands = quick_start()
    assert [c[0] for c in commands] == ["dcgan-sample"] * 3
    seen = []
    for args in commands:
        exe = shutil.which(args[0]) or str(Path(sys.executable).parent / args[0])
        result = subprocess.run([exe, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stdout, result.stderr)
        seen.append({p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()})
    sprites = seen[0]
    assert sorted(sprites) == [f"seed{i:06d}.png" for i in range(64)]
    assert {k: v for k, v in seen[1].items() if k != "sheet.png"} == sprites  # the second command kept them
    assert Image.open(tmp_path / "out" / "seed000000.png").size == (96, 96)
    assert Image.open(tmp_path / "out" / "sheet.png").size == (2 * (8 * 98 + 2),) * 2  # 8 x 8 sprites, 2x
    with Image.open(tmp_path / "walk.gif") as walk:
        assert walk.n_frames == 64 and walk.size == (192, 192)
