"""Training under torchrun: 2 gloo ranks on the CPU keep one model, and the run resumes on 1 process.

The ranks meet through a file store (what torchrun's TCP store would be), so nothing listens on a network port.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY, invoke, write_sprites
from dcgan.train.checkpoint import load_checkpoint

GLOO_ON_LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo"}


def _join(rank: int, tmp: str) -> None:
    os.environ.update(GLOO_ON_LOOPBACK, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=2)


def _steps_on_two_ranks(rank: int, tmp: str) -> None:
    from dcgan.train.config import ModelConfig, TrainConfig
    from dcgan.train.distributed import Group
    from dcgan.train.loop import Trainer

    _join(rank, tmp)
    torch.set_num_threads(1)
    # each rank initialises differently and gets different sprites: only the broadcast and the averaging agree them
    cfg = TrainConfig(batch_size=2, seed=rank, amp=False)
    trainer = Trainer(ModelConfig(ngf=4, ndf=4), cfg, torch.device("cpu"), {}, group=Group(rank, 2))
    start = torch.cat([p.detach().flatten().clone() for p in trainer.G.parameters()])
    batch = torch.full((2, 4, 96, 96), 40 + 100 * rank, dtype=torch.uint8)
    for _ in range(3):
        trainer.train_step(batch)
    weights = {name: torch.cat([p.detach().flatten() for p in m.parameters()]) for name, m in
               (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema))}  # fmt: skip
    torch.save({"start": start, **weights}, f"{tmp}/rank{rank}.pt")
    dist.destroy_process_group()


def _train_cli_on_two_ranks(rank: int, tmp: str) -> None:
    from dcgan.train.cli import main

    _join(rank, tmp)
    try:
        main([f"--data={tmp}/sprites", f"--out={tmp}/run", "--epochs=1", "--device=cpu", *TINY], standalone_mode=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_ranks_start_from_rank_0_s_weights_and_stay_identical_after_steps(tmp_path):
    mp.spawn(_steps_on_two_ranks, args=(str(tmp_path),), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name in ("G", "D", "G_ema"):
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
    assert not torch.equal(ranks[0]["G"], ranks[0]["start"])  # they trained
    # rank 1's own initialisation (seed 1) was replaced by rank 0's
    torch.manual_seed(1)
    from dcgan.train.config import ModelConfig
    from dcgan.train.model import build_models

    own = torch.cat([p.detach().flatten() for p in build_models(ModelConfig(ngf=4, ndf=4))[0].parameters()])
    assert torch.equal(ranks[1]["start"], ranks[0]["start"]) and not torch.equal(own, ranks[0]["start"])


@pytest.mark.slow
def test_a_two_rank_run_writes_once_and_resumes_on_one_process(tmp_path, capfd):
    write_sprites(tmp_path / "sprites", 12)
    mp.spawn(_train_cli_on_two_ranks, args=(str(tmp_path),), nprocs=2)
    out = capfd.readouterr().out
    assert out.count("epoch 1/1") == 1  # rank 0 alone reports
    assert "batch 2 x 2 = 4" in out
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["world"] == 2 and state["epoch"] == 1
    assert state["step"] == 3 and state["images"] == 12  # 12 sprites, 2 per rank, 2 ranks: 3 steps of 4
    from dcgan.train.cli import main

    result = invoke(main, "--resume", tmp_path / "run", "--epochs", 2)  # on one process
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["world"] == 1 and state["epoch"] == 2
    assert state["step"] == 3 + 6 and state["images"] == 12 + 12  # now 6 steps of 2
