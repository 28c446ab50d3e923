"""How dcgan-export picks its source and refuses to lose or publish anything by surprise."""

import os

import onnx
import torch

from conftest import copy_run, invoke
from dcgan.export import formats, parity
from dcgan.export.cli import main as export_main


def test_bare_onnx_exports_the_newest_run_and_says_which(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copy_run(tiny_run, tmp_path / "runs" / "old")
    new = copy_run(tiny_run, tmp_path / "runs" / "new") / "checkpoint.pt"
    later = new.stat().st_mtime + 60
    os.utime(new, (later, later))  # written after the old run's, whatever the clock's resolution
    result = invoke(export_main, "--onnx", "--no-fp16", "-q")
    assert result.exit_code == 0, result.output
    assert "Exporting runs/new (the newest run under runs/)" in result.output
    assert sorted(p.name for p in (tmp_path / "runs" / "new" / "export").iterdir()) == [
        "export.json", "generator-rgba8.onnx", "generator.onnx",
    ]  # fmt: skip
    assert not (tmp_path / "runs" / "old" / "export").exists()


def test_existing_files_are_kept_unless_overwrite(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    assert invoke(export_main, run, "--torchscript", "--no-fp16", "-q").exit_code == 0
    model = run / "export" / "generator.torchscript"
    before = model.stat().st_mtime_ns
    result = invoke(export_main, run, "--torchscript", "--no-fp16", "-q")
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert model.stat().st_mtime_ns == before
    assert invoke(export_main, run, "--torchscript", "--no-fp16", "--overwrite", "-q").exit_code == 0
    assert model.stat().st_mtime_ns != before


def test_a_failed_parity_check_publishes_nothing(tiny_run, tmp_path, monkeypatch):
    run = tiny_run
    monkeypatch.setattr(parity, "FP32_MAX_ABS", -1.0)  # no fp32 file can pass
    result = invoke(export_main, run, "--torchscript", "--out", tmp_path / "models")
    assert result.exit_code == 1
    assert "parity check failed for generator.torchscript" in result.output and "NO" in result.output
    assert list((tmp_path / "models").iterdir()) == []  # not even the fp16 file that passed


def test_missing_source_and_no_runs_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(export_main, "--onnx")
    assert result.exit_code == 2 and "no run with a checkpoint under runs/" in result.output
    result = invoke(export_main, tmp_path / "nope")
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    result = invoke(export_main, tmp_path / "junk.pt")
    assert result.exit_code == 2 and "not a readable checkpoint" in result.output and "Traceback" not in result.output


def test_help_warns_that_torchscript_is_code():
    result = invoke(export_main, "--help")
    assert result.exit_code == 0 and "TorchScript file is code" in result.output


def test_without_onnxscript_the_torchscript_based_exporter_is_used(tiny_run, tmp_path, monkeypatch):
    run = copy_run(tiny_run, tmp_path / "run")
    monkeypatch.setattr(formats, "_has_onnxscript", lambda: False)
    calls = []
    real_export = torch.onnx.export

    def spy(*args, **kwargs):
        calls.append(kwargs["dynamo"])
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", spy)
    result = invoke(export_main, run, "--onnx", "--no-fp16", "-q")
    assert result.exit_code == 0, result.output  # and its parity check passed
    assert calls == [False, False]
    onnx.checker.check_model(onnx.load(str(run / "export" / "generator.onnx")), full_check=True)
