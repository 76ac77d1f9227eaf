"""Width scaling at initialization (docs/method.md §6): the angle between each hidden layer's GEVB and BP updates
against the width, in nonneg and mixed VNNs, with DFA in the conventional network for contrast.

Every hidden width (units, or channels and units) is set to the same ``w``. For each width and
seed, a fresh network's batch-mean weight updates on the first ``batch_size`` training examples
are compared with exact BP's (``measure_alignment``'s update angles). Values are means over seeds;
slopes are least-squares fits of log(angle) on log(width).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gevb.alignment import measure_alignment
from gevb.build import resolve_device
from gevb.data import load_dataset
from gevb.models import ARCHITECTURES, architecture_names, build_model
from gevb.models.architectures import counterpart
from gevb.rules import make_rule

DEFAULT_WIDTHS = {"fc": (64, 128, 256, 512, 1024, 2048), "conv": (16, 32, 64, 128, 256), "lc": (16, 32, 64, 128)}


def networks(model: str) -> dict[str, tuple[str, str, str]]:
    """The compared networks: key -> (architecture, rule, sign)."""
    if model not in architecture_names(vectorized=True):
        names = ", ".join(architecture_names(vectorized=True))
        raise ValueError(f"width-scaling needs a registered vectorized model ({names}), got {model!r}")
    conventional = counterpart(model)
    return {
        "gevb-nonneg": (model, "gevb", "nonneg"),
        "gevb-mixed": (model, "gevb", "mixed"),
        "dfa-nonneg": (conventional, "dfa", "nonneg"),
        "dfa-mixed": (conventional, "dfa", "mixed"),
    }


def log_log_slope(widths: Sequence[int], angles: Sequence[float]) -> float:
    """Least-squares slope of log(angle) against log(width)."""
    return float(np.polyfit(np.log(widths), np.log(angles), 1)[0])


def width_scaling(
    model: str = "fc-vec",
    widths: Sequence[int] | None = None,
    seeds: int = 3,
    dataset: str = "digits",
    batch_size: int = 128,
    device: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Angles (degrees) of every hidden layer for each network of ``networks(model)``, width and seed.

    Returns ``{"model", "dataset", "widths", "seeds", "batch_size", "networks": {key: {"layers",
    "mean_deg" [width][layer], "std_deg", "slope" [layer]}}, "summary"}``; ``summary`` holds
    ``first_hidden_slope``, ``last_hidden_deg_min`` / ``_max`` (over widths) of the nonneg VNN,
    ``mixed_min_deg`` (any layer, any width, of the mixed VNN) and ``dfa_min_deg`` (of DFA, both signs).
    """
    widths = tuple(widths or DEFAULT_WIDTHS[ARCHITECTURES[model].family])
    if seeds < 1 or len(widths) < 2 or min(widths) < 2 or any(w % 2 for w in widths):
        raise ValueError("width-scaling needs --seeds >= 1 and at least two even --widths, e.g. 64,128,256")
    device = resolve_device(device)
    data = load_dataset(dataset, data_dir, download, device)
    x, y = data.train.x[:batch_size], data.train.y[:batch_size]
    results: dict[str, Any] = {}
    for key, (name, rule, sign) in networks(model).items():
        depth = len(ARCHITECTURES[name].spec(data.input_shape[0]).widths)
        try:
            angles = np.zeros((len(widths), seeds, depth))
        except (ValueError, MemoryError):  # NumPy's "Maximum allowed dimension exceeded", or no memory
            too_many = f"--seeds {seeds} x {len(widths)} --widths are too many angles to hold; lower --seeds"
            raise ValueError(too_many) from None
        for w, width in enumerate(widths):
            for seed in range(seeds):
                net = build_model(name, data.input_shape, data.num_classes, sign, [width] * depth, seed, device=device)
                update = measure_alignment(net, make_rule(rule, net, seed), x, y)["update_deg"]
                angles[w, seed] = [math.nan if a is None else a for a in list(update.values())[:depth]]
            log(f"{key} width {width}: " + ", ".join(f"{a:.1f}" for a in angles[w].mean(0)) + " deg")
        mean = angles.mean(1)
        results[key] = {
            "layers": list(update)[:depth],
            "mean_deg": mean.tolist(),
            "std_deg": angles.std(1, ddof=1).tolist() if seeds > 1 else np.zeros_like(mean).tolist(),
            "slope": [log_log_slope(widths, mean[:, layer]) for layer in range(depth)],
        }
    vnn, mixed = results["gevb-nonneg"], np.array(results["gevb-mixed"]["mean_deg"])
    dfa = [np.array(results[key]["mean_deg"]) for key in ("dfa-nonneg", "dfa-mixed")]
    last = [row[-1] for row in vnn["mean_deg"]]
    summary = {
        "first_hidden_slope": vnn["slope"][0],
        "last_hidden_deg_min": min(last),
        "last_hidden_deg_max": max(last),
        "mixed_min_deg": float(mixed.min()),
        "dfa_min_deg": float(min(angles.min() for angles in dfa)),
    }
    return {
        "model": model, "dataset": dataset, "widths": list(widths), "seeds": seeds, "batch_size": len(x),
        "networks": results, "summary": summary,
    }  # fmt: skip


def width_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per width, one column per (network, layer), then the fitted slopes."""
    columns = [(key, i, layer) for key, net in result["networks"].items() for i, layer in enumerate(net["layers"])]
    header = ["width", *(f"{key} {layer}" for key, _, layer in columns)]
    rows = [
        [str(width), *(f"{result['networks'][key]['mean_deg'][w][i]:.1f}" for key, i, _ in columns)]
        for w, width in enumerate(result["widths"])
    ]
    rows.append(["slope", *(f"{result['networks'][key]['slope'][i]:+.2f}" for key, i, _ in columns)])
    sizes = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.rjust(size) for cell, size in zip(row, sizes, strict=True)) for row in [header, *rows]]
    return "\n".join(lines)
