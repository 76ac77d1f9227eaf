"""Run under torchrun by ``test_step.py``: the engine's steps of each ``PARALLEL_CASES`` case in float64,
data-parallel over the launched processes; rank 0 saves initial state, batches and final parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from test_step import PARALLEL_CASES, engine, engine_steps

if __name__ == "__main__":
    out = Path(sys.argv[1])
    for index, (arch, rule, sign, shape) in enumerate(PARALLEL_CASES):
        trainer = engine(arch, rule, sign, shape, torch.float64)
        initial, batches = engine_steps(trainer)
        if trainer.group.main:
            final = {name: param.detach() for name, param in trainer.model.named_parameters()}
            state = {"initial": initial, "batches": batches, "final": final, "processes": trainer.group.world}
            torch.save(state, out / f"case{index}.pt")
