"""Writes that fail mid-run: disk full, the file-size limit, permission lost. The command stops with one line
saying what was written; every file left behind is complete; nothing half-written remains. Disk-full and
lost permissions are injected at the file layer (a test cannot fill the real disk); the file-size limit is real
(RLIMIT_FSIZE in a subprocess, where Python turns SIGXFSZ into an OSError)."""

import errno
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import dcgan.serve.writer as writer_module
from conftest import TINY, copy_run, invoke
from dcgan.export import formats
from dcgan.export.cli import main as export_main
from dcgan.serve.cli import main as sample_main
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main


def failing_open(after: int, err: OSError):
    """An `open` for the sprite writer that lets `after` files through, then writes half of the next one and
    fails the way a full disk or a revoked permission does."""
    opened = []

    class HalfWritten:
        def __init__(self, path):
            self.f = open(path, "wb")  # noqa: SIM115

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise err

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        opened.append(path)
        if len(opened) > after:
            return HalfWritten(path)
        return open(path, mode, *args, **kwargs)

    return fake_open


def assert_only_complete_sprites(folder: Path, count: int):
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == count and all(n.startswith("seed") and n.endswith(".png") for n in names), names
    for name in names:
        with Image.open(folder / name) as img:
            img.load()  # a truncated PNG would raise here
            assert img.size == (96, 96)


@pytest.mark.parametrize(
    "err, says",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    ],
)
def test_sampling_stops_with_the_count_and_leaves_only_complete_files(tiny_export, tmp_path, monkeypatch, err, says):
    monkeypatch.setattr(writer_module, "open", failing_open(after=10, err=err), raising=False)
    out = tmp_path / "out"
    result = invoke(sample_main, out, "-n", 40, "--batch-size", 8, "--model", tiny_export)
    assert result.exit_code == 1, result.output
    assert f"failed after 10 complete sprites: {says}" in result.output and "Traceback" not in result.output
    assert_only_complete_sprites(out, 10)


def limited(limit_bytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return preexec


def cli(module: str, *args, limit: int | None = None, cwd=None):
    code = f"import sys; from {module} import main; sys.argv[0] = 'cli'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        preexec_fn=limited(limit) if limit else None,
    )


def test_file_size_limit_on_the_sheet_keeps_the_sprites_and_no_partial_sheet(tiny_export, tmp_path):
    out = tmp_path / "out"
    ok = cli("dcgan.serve.cli", out / "probe", "-n", 16, "--sheet", "--model", tiny_export, "-q")
    assert ok.returncode == 0, ok.stderr
    biggest_sprite = max(p.stat().st_size for p in (out / "probe").glob("seed*.png"))
    sheet = (out / "probe" / "sheet.png").stat().st_size
    limit = 2 * biggest_sprite
    assert sheet > limit  # the limit stops the sheet, not the sprites
    result = cli("dcgan.serve.cli", out / "real", "-n", 16, "--sheet", "--model", tiny_export, "-q", limit=limit)
    assert result.returncode == 1, result.stderr
    assert "failed after 16 complete sprites: File too large" in result.stderr and "Traceback" not in result.stderr
    assert_only_complete_sprites(out / "real", 16)  # no sheet.png, no temporary file


def test_file_size_limit_on_the_first_checkpoint_is_one_line_and_no_partial_file(make_sprites, tmp_path):
    run = tmp_path / "run"
    result = cli("dcgan.train.cli", "--data", make_sprites(4), "--out", run, "--epochs", 1, *TINY, limit=60_000)
    assert result.returncode == 1, result.stderr
    assert "File too large" in result.stderr and "Traceback" not in result.stderr
    assert not list(run.glob("*checkpoint*")) and not list(run.glob(".*.tmp"))


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tiny_run, tmp_path, monkeypatch):
    run = copy_run(tiny_run, tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes reach the temporary file first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    result = invoke(train_main, "--resume", run, "--epochs", 4, "-q")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "still holds the last complete save" in result.output
    assert (run / "checkpoint.pt").read_bytes() == before and load_checkpoint(run)["epoch"] == 2
    assert not list(run.glob(".*.tmp"))
    resumed = invoke(train_main, "--resume", run, "--epochs", 3, "-q")
    assert resumed.exit_code == 0 and load_checkpoint(run)["epoch"] == 3


def test_disk_full_during_export_publishes_nothing(tiny_run, tmp_path, monkeypatch):
    run = copy_run(tiny_run, tmp_path / "run")
    real_write = formats.write
    written = []

    def write(fmt, generator, nz, path, metadata):
        if written:  # the first file is written whole, the second half-way
            Path(path).write_bytes(b"\x08" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real_write(fmt, generator, nz, path, metadata)

    monkeypatch.setattr(formats, "write", write)
    result = invoke(export_main, run, "--onnx", "-q")
    assert result.exit_code == 1, result.output
    assert "No space left on device; nothing was published" in result.output
    export = run / "export"
    assert not export.exists() or not any(export.iterdir())  # no model file, no staging folder


def test_sprites_already_there_are_never_touched_by_a_failing_run(tiny_export, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = invoke(sample_main, out, "--seeds", "0-3", "--model", tiny_export, "-q")
    assert first.exit_code == 0, first.output
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    full = failing_open(after=2, err=OSError(errno.ENOSPC, "No space left"))
    monkeypatch.setattr(writer_module, "open", full, raising=False)
    result = invoke(sample_main, out, "--seeds", "10-19", "--model", tiny_export, "-q")
    assert result.exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in kept} == kept  # byte for byte
    assert_only_complete_sprites(out, 6)  # the earlier four and the two written before the disk filled
