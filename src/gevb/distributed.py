"""Data-parallel training over processes with ``torch.distributed``, launched by ``torchrun`` or by Slurm's
``srun`` (a job step of several tasks: ``srun -n 4 gevb train ...``, docs/cluster.md).

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
import subprocess
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


@dataclass(frozen=True)
class Launch:
    """How this process was started among others: its rank, their number, its rank on its node, and where rank 0
    listens (``address``; None: torchrun's environment says, ``env://``)."""

    rank: int
    world: int
    local_rank: int
    address: str | None = None


def launch() -> Launch | None:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK), else those of a Slurm job step of several tasks
    (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID; rank 0 on the step's first node, at MASTER_ADDR and
    MASTER_PORT where set, else at a port drawn from the job and step ids); None for a process alone. A batch
    script's own process is no step task (no SLURM_STEP_NUM_TASKS), so a grid's array task trains alone."""
    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) > 1:
        return Launch(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    if int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in env:
        host = env.get("MASTER_ADDR") or first_host(env.get("SLURM_STEP_NODELIST", "localhost"))
        port = env.get("MASTER_PORT") or str(
            20000 + (16 * int(env["SLURM_JOB_ID"]) + int(env["SLURM_STEP_ID"])) % 40000
        )
        world, rank = int(env["SLURM_STEP_NUM_TASKS"]), int(env["SLURM_PROCID"])
        return Launch(rank, world, int(env.get("SLURM_LOCALID", "0")), f"tcp://{host}:{port}")
    return None


def first_host(nodes: str) -> str:
    """The first host of a Slurm node list (``node[01-04],gpu7`` -> node01), by ``scontrol show hostnames``
    where the list is compressed."""
    if "[" not in nodes:
        return nodes.split(",")[0]
    shown = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True)
    return shown.stdout.split()[0]


def is_main_process() -> bool:
    """True unless this is a worker of rank > 0 (those stay quiet)."""
    started = launch()
    return started is None or started.rank == 0


def process_device(device: torch.device) -> torch.device:
    """Among several processes, each drives the GPU of its local rank."""
    started = launch()
    if started is not None and device.type == "cuda" and device.index is None:
        return torch.device("cuda", started.local_rank)
    return device


def join_process_group(device: torch.device) -> ProcessGroup | None:
    """Join the process group of torchrun or of a Slurm step (gloo for CPU, NCCL for CUDA); None when alone."""
    started = launch()
    if started is None:
        return None
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if started.address is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend, init_method=started.address, rank=started.rank, world_size=started.world)
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
