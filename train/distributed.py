"""Training one model on N processes under torchrun: NCCL on GPUs, gloo on CPUs.

StyleGAN3's pattern rather than DistributedDataParallel: the weights are broadcast from rank 0 once, then before each
optimiser step every rank's gradients are flattened into one buffer, summed with one all-reduce and averaged. (DDP
does not fit a GAN step whose discriminator runs twice before its backward pass, and its batch-norm buffers break
it on CUDA.) The model modules are the plain ones, so checkpoints keep their keys.

Each rank draws its own slice of every epoch's order (rank 0's order, broadcast) and its own noise, flips and
augmentations from a stream derived from the run's seed and its rank; the global batch is the per-rank batch x N.
Rank 0 alone writes checkpoints, grids and logs. A stop request (SIGTERM, Ctrl-C) on any rank stops every rank
after the same step: the flag is all-reduced with each step's gradients' bookkeeping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    """Where this process stands: its rank among `world` processes (1: a plain single-process run)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Group()


def from_environment(device: torch.device) -> Group:
    """Join torchrun's process group when its variables are set (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return Group(dist.get_rank(), dist.get_world_size())


def environment_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun), before the group is joined."""
    return int(os.environ.get("RANK", "0"))


def local_device(name: str) -> str:
    """--device auto under torchrun on GPUs: each process takes the GPU of its local rank."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return name


def broadcast_parameters(group: Group, *modules: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights and buffers."""
    if not group.active:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def broadcast_tensor(group: Group, tensor: torch.Tensor) -> torch.Tensor:
    if group.active:
        dist.broadcast(tensor, src=0)
    return tensor


def average_gradients(group: Group, module: torch.nn.Module) -> None:
    """Replace each gradient of `module` by its mean over the ranks: one flattened all-reduce."""
    if not group.active:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= group.world
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def any_rank(group: Group, flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any."""
    if not group.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def rank_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """Rank `rank`'s stream of noise, flips and augmentations from optimiser step `step` on (rank 0 keeps the run's
    own stream, which the checkpoint carries; the others derive theirs, so a resume on any number of ranks is
    reproducible)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63)


def leave(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()
