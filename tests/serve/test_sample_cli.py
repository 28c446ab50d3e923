"""dcgan-sample as a user runs it: files named by seed, reproducible, never overwriting by surprise."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from conftest import invoke
from dcgan.serve import runtime
from dcgan.serve.cli import main as sample_main


def sample(*args):
    return invoke(sample_main, *args)


def test_writes_n_distinct_sprites_named_by_seed_and_says_what_ran(tiny_export, tmp_path):
    result = sample("-n", 20, "--batch-size", 8, "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"seed{i:06d}.png" for i in range(20)]
    images = [Image.open(f) for f in files]
    assert all(img.mode == "RGBA" and img.size == (96, 96) for img in images)
    assert len({img.tobytes() for img in images}) == 20
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("20 sprites in") and "sprites/s" in last and "CPUExecutionProvider" in last


def test_same_seeds_give_identical_files_in_another_folder(tiny_export, tmp_path):
    assert sample("--seeds", "3-5,40", "--model", tiny_export, tmp_path / "a").exit_code == 0
    assert sample("-n", 2, "--seed", 4, "--model", tiny_export, tmp_path / "b").exit_code == 0
    for name in ("seed000004.png", "seed000005.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "seed000003.png", "seed000004.png", "seed000005.png", "seed000040.png",
    ]  # fmt: skip


def test_existing_sprites_are_refused_unless_overwrite(tiny_export, tmp_path):
    out = tmp_path / "out"
    assert sample("-n", 3, "--model", tiny_export, out).exit_code == 0
    (out / "seed000001.png").write_bytes(b"mine")
    result = sample("-n", 5, "--model", tiny_export, out)
    assert result.exit_code == 1 and "--overwrite" in result.output and "nothing was written" in result.output
    assert (out / "seed000001.png").read_bytes() == b"mine" and not (out / "seed000004.png").exists()
    assert sample("-n", 5, "--model", tiny_export, "--overwrite", out).exit_code == 0
    assert (out / "seed000001.png").read_bytes() != b"mine" and (out / "seed000004.png").exists()
    assert sample("--seeds", "10-11", "--model", tiny_export, out).exit_code == 0  # other seeds: no clash


def test_scale_enlarges_the_sheet_and_sprite_files_stay_the_model_s_pixels(tiny_export, tmp_path):
    out = tmp_path / "out"
    assert sample("-n", 6, "--model", tiny_export, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = sample("-n", 6, "--sheet", "--scale", 2, "--model", tiny_export, out)  # added after the first run
    assert result.exit_code == 0, result.output
    assert "0 sprites in" in result.output and "6 already there" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "sheet.png"} == before  # untouched, 96x96
    assert Image.open(out / "seed000000.png").size == (96, 96)
    sheet = Image.open(out / "sheet.png")
    assert sheet.size == (2 * (3 * 98 + 2), 2 * (2 * 98 + 2))  # 6 sprites: 3 columns, 2 rows, x2


def test_quiet_prints_nothing_on_success(tiny_export, tmp_path):
    for args in (["-n", 3], ["--walk", "1,2", "--frames", 2]):
        out = tmp_path / ("walk.gif" if "--walk" in args else "out")
        result = sample(*args, "-q", "--model", tiny_export, out)
        assert result.exit_code == 0 and out.exists() and result.output == ""


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers() and runtime.cuda_problem() is None,
                    reason="CUDA can run here")  # fmt: skip
def test_colours_is_an_opt_in_redraw_of_the_same_sprites(tiny_export, tmp_path):
    assert sample("--seeds", "0-3", "--model", tiny_export, tmp_path / "raw").exit_code == 0
    result = sample("--seeds", "0-3", "--colours", 6, "--model", tiny_export, tmp_path / "indexed")
    assert result.exit_code == 0, result.output
    for name in (f"seed{i:06d}.png" for i in range(4)):
        raw = np.asarray(Image.open(tmp_path / "raw" / name))
        indexed = np.asarray(Image.open(tmp_path / "indexed" / name))
        np.testing.assert_array_equal(indexed[..., 3], raw[..., 3])  # the same silhouette
        visible = raw[..., 3] > 0
        assert len(np.unique(indexed[visible][:, :3], axis=0)) <= 6 < len(np.unique(raw[visible][:, :3], axis=0))
    refused = sample("--walk", "1,2", "--colours", 6, "--model", tiny_export, tmp_path / "walk.gif")
    assert refused.exit_code == 2 and "--colours" in refused.output and "Traceback" not in refused.output
    assert sample("-n", 2, "--colours", 1, tmp_path / "x").exit_code == 2


def test_provider_cuda_without_cuda_names_the_cause(tiny_export, tmp_path):
    result = sample("-n", 1, "--provider", "cuda", "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 1 and "--provider cuda:" in result.output
    assert any(cause in result.output for cause in ("driver", "CPU-only", "libraries", "both onnxruntime"))


def test_both_onnxruntime_packages_is_named_as_the_cause(monkeypatch):
    monkeypatch.setattr(runtime, "_installed", lambda dist: dist in ("onnxruntime", "onnxruntime-gpu"))
    assert "both onnxruntime and onnxruntime-gpu" in runtime.cuda_problem()


def test_cpu_only_onnxruntime_is_named_and_auto_is_silent_there(monkeypatch, tiny_export):
    monkeypatch.setattr(runtime, "_installed", lambda dist: dist == "onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "CPU-only build" in runtime.cuda_problem()
    session = runtime.open_session(tiny_export / "generator.onnx", "auto")
    assert session.provider == "CPUExecutionProvider" and session.notice is None  # nothing fell back
    with pytest.raises(runtime.ProviderError, match="CPU-only"):
        runtime.open_session(tiny_export / "generator.onnx", "cuda")


def test_auto_fallback_is_announced_where_a_driver_is_there_but_cuda_cannot_run(monkeypatch, tiny_export, tmp_path):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "nvidia_driver", lambda: "libcuda.so.1")
    monkeypatch.setattr(runtime, "cuda_problem", lambda: "CUDA/cuDNN libraries not found (test)")
    result = sample("-n", 1, "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 0
    assert "note: running on the CPU: CUDA/cuDNN libraries not found (test)" in result.output


def test_auto_without_any_nvidia_driver_is_simply_the_cpu(monkeypatch, tiny_export, tmp_path):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "nvidia_driver", lambda: None)
    result = sample("-n", 1, "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 0 and "note:" not in result.output  # nothing fell back: there was no GPU
    assert "CPUExecutionProvider" in result.output.splitlines()[-1]
    with pytest.raises(runtime.ProviderError, match="no NVIDIA driver found"):
        runtime.open_session(tiny_export / "generator.onnx", "cuda")  # asked for by name: the reason, in one line


def test_sampling_never_imports_torch(tiny_export, tmp_path):
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    exe = Path(sys.executable).parent / "dcgan-sample"
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    result = subprocess.run([str(exe), "-n", "3", "--model", str(tiny_export), str(tmp_path / "out")],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("seed*.png"))) == 3


def test_no_temporary_files_are_left(tiny_export, tmp_path):
    assert sample("-n", 10, "--sheet", "--model", tiny_export, tmp_path / "out").exit_code == 0
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    arr = np.asarray(Image.open(tmp_path / "out" / "seed000003.png"))
    assert set(np.unique(arr[..., 3])) <= {0, 255}


def test_cuda_sessions_compute_fp32_without_tf32(monkeypatch, session_requests, tiny_export):
    """onnxruntime's CUDA provider defaults to TF32 convolutions (about 1e-3 off): the sampler turns that off."""
    monkeypatch.setattr(runtime, "cuda_problem", lambda: None)
    assert runtime.open_session(tiny_export / "generator.onnx", "cuda").on_cuda
    assert session_requests == [[(runtime.CUDA, {"use_tf32": "0"})]]


def test_shards_together_are_exactly_the_whole_run_byte_for_byte(tiny_export, tmp_path):
    assert sample("--seeds", "0-9,50-56", "--batch-size", 4, "--model", tiny_export, tmp_path / "whole").exit_code == 0
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    parts = {}
    for i in range(5):
        out = tmp_path / f"part{i}"
        result = sample("--seeds", "0-9,50-56", "--shard", f"{i}/5", "--batch-size", 4, "--model", tiny_export, out)
        assert result.exit_code == 0, result.output
        for p in out.iterdir():
            assert p.name not in parts, f"{p.name} written by two shards"
            parts[p.name] = p.read_bytes()
    assert len(whole) == 17 and parts == whole


def test_shard_auto_reads_slurm_or_an_indexed_job(tiny_export, tmp_path, monkeypatch):
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert sample("-n", 8, "--shard", "auto", "--model", tiny_export, tmp_path / "slurm").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "slurm").iterdir()) == ["seed000004.png", "seed000005.png"]
    for name in slurm:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    result = sample("-n", 8, "--shard", "auto", "--model", tiny_export, tmp_path / "k8s")
    assert result.exit_code == 2 and "auto/K" in result.output and not (tmp_path / "k8s").exists()
    assert sample("-n", 8, "--shard", "auto/2", "--model", tiny_export, tmp_path / "k8s").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "k8s").iterdir()) == [f"seed{i:06d}.png" for i in range(4, 8)]


@pytest.mark.parametrize("shard", ["3/3", "1", "a/2", "-1/2", "auto"])
def test_a_bad_shard_is_one_line(tiny_export, tmp_path, shard):
    result = sample("-n", 8, "--shard", shard, "--model", tiny_export, tmp_path / "out")
    assert result.exit_code == 2 and "--shard" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_lists_the_absent_seeds_and_a_rerun_fills_only_them(tiny_export, tmp_path):
    out = tmp_path / "out"
    assert sample("-n", 12, "--model", tiny_export, out).exit_code == 0
    for seed in (2, 3, 4, 9):
        (out / f"seed{seed:06d}.png").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = sample("-n", 12, "--missing", "-q", "--model", tiny_export, out)
    assert result.exit_code == 1 and result.output == "2-4,9\n"
    result = sample("-n", 12, "--shard", "0/2", "--missing", "-q", "--model", tiny_export, out)
    assert result.exit_code == 1 and result.output == "2-4\n"
    result = sample("-n", 12, "--model", tiny_export, out)
    assert result.exit_code == 0 and "4 sprites in" in result.output and "8 already there" in result.output
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert all(after[name] == t for name, t in before.items()) and len(after) == 12
    assert sample("-n", 12, "--missing", "--model", tiny_export, out).exit_code == 0
