"""Interruptions: SIGTERM during training, SIGKILL in the middle of a checkpoint write, NaN losses, and Ctrl-C
during sampling. Each leaves complete files only, says what happened, and can be continued.
(Ctrl-C during training, with a bit-exact resume, is tests/train/test_training.py's SIGINT test.)"""

import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

import dcgan.train.loop as loop
from conftest import TINY, copy_run, invoke, read_until
from dcgan.train.checkpoint import load_checkpoint
from dcgan.train.cli import main as train_main

pytestmark = pytest.mark.slow

# the collapse watch only at a run's last epoch: these tests are about files and signals
QUIET_WATCH = ["--sample-every", "1000"]


@contextmanager
def running(cmd, **kwargs):
    """A subprocess that is killed on the way out, whatever the test did (a stray sampler fills the disk)."""
    proc = subprocess.Popen(cmd, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def test_sigterm_during_training_saves_a_checkpoint_and_says_how_to_continue(make_sprites, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dcgan.train", "--data", str(make_sprites(6)), "--out", str(run), "--epochs", "500"]
    with running([*cmd, *TINY, *QUIET_WATCH], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        seen = read_until(proc.stdout, "epoch 1/500")
        proc.send_signal(signal.SIGTERM)
        out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "SIGTERM: saving a checkpoint" in out and f"dcgan-train --resume {run}" in out and "Traceback" not in out
    assert 1 <= load_checkpoint(run)["epoch"] < 500


KILLED_MID_SAVE = textwrap.dedent(
    """
    import sys, time
    import torch
    real_save, calls = torch.save, []

    def slow_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the checkpoint at the end of epoch 2: half of it, then stuck until killed
            f.write(b"half a checkpoint" * 1000)
            f.flush()
            print("mid-save", flush=True)
            time.sleep(600)
        return real_save(obj, f, *args, **kwargs)

    torch.save = slow_save
    from dcgan.train.cli import main
    main(sys.argv[1:])
    """
)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_and_a_resumable_run(make_sprites, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(make_sprites(6)), "--out", str(run), "--epochs", "3", *TINY, *QUIET_WATCH]
    with running([sys.executable, "-c", KILLED_MID_SAVE, *args], stdout=subprocess.PIPE, text=True) as proc:
        read_until(proc.stdout, "mid-save")
        proc.kill()
        proc.wait(timeout=60)
    assert load_checkpoint(run)["epoch"] == 1  # the previous checkpoint, whole
    assert list(run.glob(".checkpoint.pt.*.tmp"))  # the half-written temporary the kill left behind

    result = invoke(train_main, "--resume", run, "-q")
    assert result.exit_code == 0, result.output
    assert "removed .checkpoint.pt." in result.output and "killed mid-save" in result.output
    assert load_checkpoint(run)["epoch"] == 3 and not list(run.glob(".*.tmp"))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_run, tmp_path, monkeypatch):
    run = copy_run(tiny_run, tmp_path / "run")  # 2 epochs of 4 steps
    good = (run / "checkpoint.pt").read_bytes()
    real_loss, calls = loop.discriminator_loss, []

    def exploding(*args, **kwargs):
        calls.append(1)
        value = real_loss(*args, **kwargs)
        return value * float("nan") if len(calls) == 2 else value

    monkeypatch.setattr(loop, "discriminator_loss", exploding)
    result = invoke(train_main, "--resume", run, "--epochs", 4, "-q")
    assert result.exit_code == 1, result.output
    assert "training diverged (non-finite loss at step 10" in result.output
    assert "the last good checkpoint is" in result.output and "(epoch 2)" in result.output
    assert (run / "checkpoint.pt").read_bytes() == good
    assert all(torch.isfinite(t).all() for t in load_checkpoint(run)["generator"].values())


SAMPLER_THAT_SAYS_WHEN = textwrap.dedent(
    """
    import sys
    from dcgan.serve.generator import SpriteGenerator
    real_batches = SpriteGenerator.batches

    def batches(self, seeds):  # dcgan-sample's batches, saying when it holds the fourth
        for i, batch in enumerate(real_batches(self, seeds)):
            if i == 3:
                print("4 batches in hand", flush=True)
            yield batch

    SpriteGenerator.batches = batches
    from dcgan.serve.cli import main
    main(sys.argv[1:])
    """
)


def test_ctrl_c_during_sampling_leaves_only_complete_files(tiny_export, tmp_path):
    out = tmp_path / "out"
    args = [str(out), "-n", "1000000", "--batch-size", "16", "--model", str(tiny_export), "-q"]
    cmd = [sys.executable, "-c", SAMPLER_THAT_SAYS_WHEN, *args]
    with running(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        seen = read_until(proc.stdout, "4 batches in hand")  # the sampler says so: no polling of its folder
        proc.send_signal(signal.SIGINT)
        text = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, text
    assert "Interrupted:" in text and "no partial file" in text and "Traceback" not in text
    written = int(text.split("Interrupted: ")[1].split(" ")[0])
    files = sorted(out.iterdir())
    assert len(files) == written and all(p.name.startswith("seed") for p in files)  # no temporary files
    for path in files:
        with Image.open(path) as img:
            img.load()
    assert Path(files[-1]).stat().st_size > 0
