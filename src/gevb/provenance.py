"""Where a result came from: gevb, torch and Python versions, the git commit of the gevb source (when
it is a git checkout), the device and its name, the thread count and the time."""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

SOURCE = Path(__file__).resolve().parent


def git_commit(folder: Path = SOURCE) -> str | None:
    """The short commit hash of the checkout holding ``folder``, or None outside one (e.g. a wheel)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo (else what ``platform`` knows)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return name or platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict[str, Any]:
    """``gevb``, ``torch``, ``python``, ``git_commit``, ``device``, ``device_name``, ``threads``, ``time`` (UTC)."""
    from gevb import __version__

    return {
        "gevb": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
        "git_commit": git_commit(), "device": str(device), "device_name": device_name(device),
        "threads": torch.get_num_threads(), "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
