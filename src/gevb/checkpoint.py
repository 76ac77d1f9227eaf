"""Checkpoints: atomic writes, safe loads (``weights_only=True``), and every RNG state.

A checkpoint is a plain dict of tensors, numbers and strings written with ``torch.save``:
``format``, ``version``, ``config`` (a dict), ``epoch``, ``model``, ``rule``, ``optimizer``,
``rng`` and run bookkeeping. Nothing is ever unpickled beyond what ``weights_only`` allows.
"""

from __future__ import annotations

import pickle
import random
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gevb.files import atomic_file

FORMAT, VERSION = "gevb-checkpoint", 2
# What torch.load raises for bytes that are not a checkpoint (its weights-only unpickler trusts nothing,
# and its errors on truncated or forged bytes range from IndexError to struct.error).
UNLOADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, struct.error)
# Version 1 (gevb 0.1): conventional conv/LC networks flattened in (H, W, C) order, so their weights mean
# something else now, and LC and one-channel conv-vec runs were trained by a partly wrong optimizer step.
OLDER = {1: "gevb 0.1, whose conventional networks were built differently and whose Adam step was partly wrong"}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) atomically with ``torch.save``.

    A failed write (a full disk, a quota, a file-size limit; torch reports some as RuntimeError)
    raises OSError naming the file and saying what is kept: the previous checkpoint, as it was, or none.
    """
    existed = path.exists()
    try:
        with atomic_file(path) as file:
            torch.save({"format": FORMAT, "version": VERSION, **state}, file)
    except (OSError, RuntimeError) as error:
        # torch's own text for a failed write is its C++ assertion ("[enforce fail at inline_container.cc...]")
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "the write failed"
        kept = (
            "the previous checkpoint is kept: free space, then continue with --resume"
            if existed
            else "no checkpoint was written, so nothing of this run is kept: free space, then run the command again"
        )
        raise OSError(f"cannot write {path} ({reason}); is the disk full? {kept}") from error


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a gevb checkpoint onto the CPU with ``weights_only=True``; raise ValueError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}; pass a run folder or its checkpoint.pt")
    try:
        with warnings.catch_warnings():  # a forged protocol byte would add a second line: "Detected pickle protocol"
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UNLOADABLE as error:
        raise ValueError(
            f"{path} is not a loadable gevb checkpoint ({unloadable_reason(error)}); pass a checkpoint.pt"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gevb checkpoint (no {FORMAT!r} tag); pass a checkpoint.pt")
    version = state.get("version")
    if version in OLDER:
        raise ValueError(
            f"{path} was written by {OLDER[version]}; train the run again (this gevb reads version {VERSION})"
        )
    if version != VERSION:
        raise ValueError(f"{path} has checkpoint version {version}, this gevb reads {VERSION}")
    return state


def unloadable_reason(error: BaseException) -> str:
    """Why ``torch.load`` refused a file, in a few words: for objects its weights-only unpickler will not build,
    which they are and that gevb never unpickles them, never torch's advice to load the file unsafely or to allow
    its classes (for a malicious file, the one step that would run its payload)."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text or "Weights only" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = found.group(1) if found else "objects other than tensors and plain values"
        return f"it holds {what}, which gevb never unpickles"
    return text.splitlines()[0][:200] if text else type(error).__name__


def load_module_state(module: nn.Module, state: dict[str, torch.Tensor], what: str, source: Path) -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the first mismatch."""
    own = module.state_dict()
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or extra:
        detail = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(f"{source} does not fit this {what}: {detail}; was it written for another model?")
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{source} does not fit this {what}: {key} is {tuple(state[key].shape)} in the checkpoint, "
                f"{tuple(tensor.shape)} here; was it written for another model?"
            )
    module.load_state_dict(state)


def capture_rng(batch_order: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random state a run touches: Python, NumPy, torch's CPU generator, the batch-order generator
    and, for a run on a GPU, that GPU's generator only (asking for every GPU's state would create a CUDA
    context on each, also for a CPU run on a GPU node)."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": position, "gauss": (has_gauss, gauss)},
        "torch": torch.get_rng_state(),
        "batch_order": batch_order.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], batch_order: torch.Generator, device: torch.device) -> None:
    """Inverse of ``capture_rng`` (a CUDA state saved as one tensor goes back to ``device``)."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy_state["pos"], *numpy_state["gauss"]))
    torch.set_rng_state(state["torch"])
    batch_order.set_state(state["batch_order"])
    if device.type == "cuda" and isinstance(state.get("cuda"), torch.Tensor):
        torch.cuda.set_rng_state(state["cuda"], device)
