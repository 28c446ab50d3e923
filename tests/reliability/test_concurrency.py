"""Two processes at once: two dcgan-sample runs into one folder never leave a corrupted file, and two
trainings into one run folder are refused by its lock."""

import signal
import subprocess
import sys

import pytest

from conftest import TINY, invoke, read_until
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main

pytestmark = pytest.mark.slow


def sample_cmd(out, seeds, model):
    return [sys.executable, "-m", "dcgan.serve", str(out), "--seeds", seeds, "--model", str(model), "-q"]


def test_two_samplers_into_one_folder_leave_only_whole_correct_files(tiny_export, tmp_path):
    shared, reference = tmp_path / "shared", tmp_path / "reference"
    subprocess.run(sample_cmd(reference, "0-599", tiny_export), check=True, capture_output=True, timeout=240)
    procs = [
        subprocess.Popen(sample_cmd(shared, seeds, tiny_export), stderr=subprocess.PIPE, text=True)
        for seeds in ("0-399", "200-599")  # 200-399 overlap
    ]
    try:
        results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    for code, err in results:
        assert code in (0, 1) and "Traceback" not in err, err
        if code == 1:  # the other run got to a shared seed first: refused up front, or lost the race mid-write
            refused = "already has" in err and "nothing was written" in err
            lost_race = "appeared in" in err and "another dcgan-sample" in err
            assert refused or lost_race, err
    assert 0 in [code for code, _ in results], results  # whoever got there first finished its seeds
    expected = {p.name: p.read_bytes() for p in reference.iterdir()}
    for path in shared.iterdir():
        assert path.name in expected, f"stray file {path.name}"  # no temporary file left
        assert path.read_bytes() == expected[path.name], f"{path.name} differs from a clean run"


def test_a_second_training_into_a_busy_run_folder_is_refused(make_sprites, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(make_sprites(6)), "--out", str(run), "--epochs", "500"]
    tiny = [*TINY, "--sample-every", "1000"]
    cmd = [sys.executable, "-m", "dcgan.train", *args, *tiny]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        read_until(proc.stdout, "epoch 2/500")  # epoch 1's checkpoint was written before epoch 2 began
        before = load_checkpoint(run)["epoch"]
        result = invoke(train_main, "--resume", run, "--epochs", 600, "-q")
        assert result.exit_code == 1, result.output
        assert f"in use by another dcgan-train (pid {proc.pid})" in result.output
        assert "Traceback" not in result.output
        again = invoke(train_main, *args, *tiny)  # a new run into the same folder
        assert again.exit_code == 2 and "never overwritten" in again.output
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=120)  # reads the pipe to its end, so the process never blocks writing
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert load_checkpoint(run)["epoch"] >= before  # the first run's checkpoints were its own
    # once the first training has ended, the lock is free (a killed process frees it too)
    result = invoke(train_main, "--resume", run, "--epochs", load_checkpoint(run)["epoch"] + 1, "-q")
    assert result.exit_code == 0, result.output
