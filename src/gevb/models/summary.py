"""A model's layers in order: their names by kind (``conv1``, ``gate1``, ``pool1``, ``fc1``, ``readout``),
output shapes per example and parameter counts."""

from __future__ import annotations

import torch

from gevb.layers.kinds import module_kind
from gevb.models.network import Network


def layer_titles(model: Network) -> list[str]:
    """One name per layer: the kind and its count so far; the last weight layer is ``readout``."""
    counts: dict[str, int] = {}
    titles = []
    for index, layer in enumerate(model.layers):
        if index == len(model.layers) - 1:
            titles.append("readout")
            continue
        kind = module_kind(layer)
        if kind == "flatten":  # a network has one
            titles.append(kind)
            continue
        counts[kind] = counts.get(kind, 0) + 1
        titles.append(f"{kind}{counts[kind]}")
    return titles


@torch.no_grad()
def summary_rows(model: Network) -> list[dict]:
    """Per layer: ``key`` (``layers.i``), ``name``, ``layer`` (its class), ``output`` shape of one example
    (vectorized: (K, ...)), ``parameters`` (trained ones; t-gates and DFA feedback are not trained)."""
    weight = model.layers[0].weight
    x = torch.zeros(1, *model.input_shape, dtype=weight.dtype, device=weight.device)
    count = len(model.layers)
    outputs = [tuple(model.activation_before(x, i + 1).shape[1:]) for i in range(count - 1)]
    outputs.append(tuple(model(x).shape[1:]))
    return [
        {
            "key": f"layers.{i}", "name": name, "layer": type(layer).__name__, "output": output,
            "parameters": sum(p.numel() for p in layer.parameters()),
        }
        for i, (layer, name, output) in enumerate(zip(model.layers, layer_titles(model), outputs, strict=True))
    ]  # fmt: skip


def summary_text(model: Network) -> str:
    """``summary_rows`` as an aligned table, with the input and the total."""
    rows = summary_rows(model)
    lines = [f"{model.name}, {model.sign}, input {model.input_shape}, {model.num_classes} classes"]
    lines.append(f"{'key':<10} {'name':<8} {'layer':<13} {'output':<20} {'parameters':>12}")
    for row in rows:
        output = "x".join(map(str, row["output"]))
        lines.append(f"{row['key']:<10} {row['name']:<8} {row['layer']:<13} {output:<20} {row['parameters']:>12,}")
    lines.append(f"{'total':<54} {sum(row['parameters'] for row in rows):>12,}")
    return "\n".join(lines)
