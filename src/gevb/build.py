"""Building a run: a config becomes its device, data, model, rule and optimizer.

``build_run`` is a pure factory: it writes no file, joins no process group and seeds no global
random state (the model, the gate vectors and DFA's feedback are drawn from ``config.seed``
through their own generators). ``load_run`` builds the same parts from a saved run. Training
them is ``gevb.training``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gevb.checkpoint import load_checkpoint, load_module_state
from gevb.config import TrainConfig, check_applies, config_from_mapping
from gevb.data import Dataset, load_dataset, with_validation
from gevb.data.fingerprint import check_same_data
from gevb.models import ArchitectureSpec, Network, build_model
from gevb.rules import Rule, make_rule
from gevb.runs import RunFolder


@dataclass
class RunParts:
    """What a run trains: ``model`` with ``rule`` and ``optimizer`` on ``data``, at ``epoch``."""

    config: TrainConfig
    device: torch.device
    data: Dataset
    model: Network
    rule: Rule
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    epoch: int = 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def make_optimizer(
    model: nn.Module, lr: float, kind: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam (the fused kernel where this torch has it for the model's device; the CPU needs torch >= 2.4)
    or SGD with ``momentum`` over ``model``'s parameters (a network, or one of its layers);
    ``weight_decay`` is the optimizer's L2 term."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    fused = next(model.parameters()).device.type == "cuda" or (major, minor) >= (2, 4)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once per epoch: cosine to 0 over ``config.epochs`` (as set when
    the run started), or x0.1 every ``config.lr_step_epochs``; None for a constant rate."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_epochs, gamma=0.1)
    return None


def saved_architecture(checkpoint: dict[str, Any], source: Path) -> ArchitectureSpec | None:
    """The resolved architecture a checkpoint was trained with (None in checkpoints from before gevb 0.4)."""
    saved = checkpoint.get("architecture")
    return None if saved is None else ArchitectureSpec.from_dict(saved, f"{source} (its architecture)")


def build_run(
    config: TrainConfig,
    data: Dataset | None = None,
    device: torch.device | None = None,
    architecture: ArchitectureSpec | None = None,
) -> RunParts:
    """The parts of ``config``'s run at initialization, on ``device`` (default: ``config.device`` resolved).

    ``data``: the loaded ``config.dataset`` on that device (to share one copy between runs; None loads it).
    ``architecture``: the resolved spec to build instead of ``config.model`` (a saved run's own, so that a
    run whose model file changed or moved rebuilds as it was trained).
    """
    config = config.validate()
    device = device or resolve_device(config.device)
    if data is None:
        data = load_dataset(config.dataset, config.data_dir, config.download, device)
    elif data.name != config.dataset or data.train.x.device.type != device.type:
        raise ValueError(f"data holds {data.name} on {data.train.x.device}, not {config.dataset} on {device}")
    data = with_validation(data, config.val_fraction, config.seed)
    model = build_model(
        architecture or config.model,
        data.input_shape,
        data.num_classes,
        config.sign,
        config.widths,
        config.seed,
        device=device,
    )
    rule = make_rule(config.rule, model, config.seed, **config.rule_options).to(device)
    optimizer = make_optimizer(model, config.lr, config.optimizer, config.momentum, config.weight_decay)
    return RunParts(config, device, data, model, rule, optimizer, make_schedule(optimizer, config))


def load_run(path: str | Path, device: str = "auto", data_dir: str | None = None, download: bool = False) -> RunParts:
    """The parts of the run saved in a run folder or checkpoint file, with its model and rule at the
    checkpoint's epoch (the optimizer is fresh). ``device``, ``data_dir``, ``download`` replace the run's own."""
    path = Path(path)
    checkpoint_path = path
    if path.is_dir():
        folder = RunFolder(path)
        folder.lock_file.check_free()  # never read a run while it trains
        checkpoint_path = folder.checkpoint_path
    checkpoint = load_checkpoint(checkpoint_path)
    config = config_from_mapping(checkpoint["config"], str(checkpoint_path))
    check_applies([config], {name for name, value in (("data_dir", data_dir), ("download", download)) if value})
    config = config.replace(device=device, data_dir=data_dir or config.data_dir, download=download)
    data = load_dataset(config.dataset, config.data_dir, config.download, resolve_device(config.device))
    fix = "restore the data it was trained on (or pass --data-dir with it)"
    check_same_data(checkpoint.get("data"), data.record(), checkpoint_path.parent, fix)
    parts = build_run(config, data, architecture=saved_architecture(checkpoint, checkpoint_path))
    load_module_state(parts.model, checkpoint["model"], f"model {config.model!r}", checkpoint_path)
    load_module_state(parts.rule, checkpoint["rule"], f"rule {config.rule!r}", checkpoint_path)
    parts.epoch = checkpoint["epoch"]
    return parts
