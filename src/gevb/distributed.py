"""Data-parallel training over processes with ``torch.distributed``, launched by ``torchrun``.

Every process holds the whole model and data set and draws the same batch order; each takes its
slice of every global batch, and after the rule has set ``.grad`` the gradients (and the loss) are
averaged over the global batch in one flat all-reduce. The rules set gradients by hand, so this
replaces the autograd hooks of ``DistributedDataParallel``. Every process then takes the same
optimizer step and constraint, so the weights stay identical; only rank 0 logs and writes files.
gloo on the CPU, NCCL on GPUs.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among ``world`` data-parallel processes."""

    rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """True unless this is a torchrun worker of rank > 0 (those stay quiet)."""
    return int(os.environ.get("RANK", "0")) == 0


def process_device(device: torch.device) -> torch.device:
    """Under torchrun, each process drives the GPU of its ``LOCAL_RANK``."""
    if launched_by_torchrun() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def join_process_group(device: torch.device) -> ProcessGroup | None:
    """Join torchrun's process group (gloo for CPU, NCCL for CUDA); None when running alone."""
    if not launched_by_torchrun():
        return None
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(leave_process_group)
    return ProcessGroup(dist.get_rank(), dist.get_world_size())


def leave_process_group() -> None:
    """Wait for every process, then tear the group down (before interpreter shutdown: a gloo group left to
    the finalizer can abort the process)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_agree(ok: bool, group: ProcessGroup | None) -> bool:
    """Whether ``ok`` holds in every process (a barrier: no process returns before all have called it)."""
    if group is None:
        return ok
    flag = torch.tensor([int(ok)])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def local_part(index: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """This process's contiguous slice of a global batch's indices (sizes differ by at most one)."""
    return index if group is None else index.tensor_split(group.world)[group.rank]


def average_over_processes(tensors: list[torch.Tensor], weight: float) -> None:
    """In place: ``t <- sum over processes of weight_p * t_p`` for every tensor, in one flat all-reduce.

    With ``weight = local batch / global batch`` and per-process batch means, this is the mean
    over the global batch.
    """
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors]).mul_(weight)
    dist.all_reduce(flat)
    for tensor, part in zip(tensors, flat.split([tensor.numel() for tensor in tensors]), strict=True):
        tensor.copy_(part.view_as(tensor))


def sum_over_processes(values: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """``values`` summed over processes (unchanged when running alone)."""
    if group is not None:
        dist.all_reduce(values)
    return values
