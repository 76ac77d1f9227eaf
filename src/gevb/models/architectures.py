"""The paper's six architectures (docs/method.md §7): ``fc-vec``, ``fc``, ``conv-vec``, ``conv``, ``lc-vec``, ``lc``.

A blueprint is a list of operations; a gate follows every weight operation and a readout ends
the stack. One-channel inputs get the MNIST layouts, multi-channel inputs the CIFAR-10 layouts;
both adapt to any height and width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gevb.layers import TGate, VecAvgPool2d, VecConv2d, VecFlatten, VecLinear, VecLocal2d
from gevb.layers.base import conv_output_size
from gevb.models.network import Network

# (op, width, kernel, stride, padding) for weight ops; ("pool",) and ("flatten",) otherwise.
Blueprint = list[tuple]


def fc_blueprint(channels: int, vectorized: bool) -> Blueprint:
    if channels == 1:  # MNIST: 784 -> 1024 -> 512 -> readout
        return [("linear", 1024), ("linear", 512)]
    return [("linear", 1024), ("linear", 512), ("linear", 512)]


def conv_blueprint(channels: int, vectorized: bool) -> Blueprint:
    if channels == 1:
        return [("conv", 64, 3, 1, 1), ("pool",), ("conv", 32, 3, 1, 1), ("pool",), ("flatten",), ("linear", 1024)]
    return [
        ("conv", 128, 5, 1, 2), ("pool",), ("conv", 64, 5, 1, 2), ("pool",),
        ("conv", 64, 2, 2, 0), ("flatten",), ("linear", 1024),
    ]  # fmt: skip


def lc_blueprint(channels: int, vectorized: bool) -> Blueprint:
    if channels == 1:
        return [("local", 32, 3, 1, 1), ("pool",), ("local", 32, 3, 1, 1), ("pool",), ("flatten",), ("linear", 1024)]
    return [
        ("local", 64, 5, 1, 2), ("pool",), ("local", 32, 5, 1, 2), ("pool",),
        ("local", 32, 2, 2, 0), ("flatten",), ("linear", 256 if vectorized else 512),
    ]  # fmt: skip


BLUEPRINTS = {"fc": fc_blueprint, "conv": conv_blueprint, "lc": lc_blueprint}
ARCHITECTURES = tuple(name for family in BLUEPRINTS for name in (f"{family}-vec", family))
WEIGHT_OPS = ("linear", "conv", "local")


def hidden_layer_count(name: str, channels: int) -> int:
    """How many hidden widths architecture ``name`` has for inputs of ``channels`` channels."""
    family, _, suffix = name.partition("-")
    return sum(op[0] in WEIGHT_OPS for op in BLUEPRINTS[family](channels, suffix == "vec"))


def _with_widths(blueprint: Blueprint, widths: Sequence[int] | None, name: str) -> Blueprint:
    """Replace the hidden widths (units or channels, in order) of a blueprint."""
    if widths is None:
        return blueprint
    slots = [i for i, op in enumerate(blueprint) if op[0] in WEIGHT_OPS]
    if len(widths) != len(slots) or any(int(w) < 1 for w in widths):
        raise ValueError(
            f"{name} has {len(slots)} hidden layers, so widths needs {len(slots)} positive integers; "
            f"got {tuple(widths)}"
        )
    out = list(blueprint)
    for i, width in zip(slots, widths, strict=True):
        out[i] = (out[i][0], int(width), *out[i][2:])
    return out


def _assemble(
    blueprint: Blueprint, input_shape: tuple[int, int, int], k: int, n_out: int, flatten_order: str, name: str, factory
) -> list[nn.Module]:
    """Instantiate a blueprint; ``shape`` tracks the per-component scalar activation shape."""
    shape = (math.prod(input_shape),) if blueprint[0][0] == "linear" else tuple(input_shape)
    layers: list[nn.Module] = []
    for op, *args in blueprint:
        expand = k > 1 and not layers
        if op == "linear":
            layers.append(VecLinear(shape[0], args[0], k, expand, **factory))
            shape = (args[0],)
        elif op == "conv":
            width, kernel, stride, padding = args
            layers.append(VecConv2d(shape[0], width, kernel, k, stride, padding, expand, **factory))
            shape = (width, *[conv_output_size(s, kernel, stride, padding) for s in shape[1:]])
        elif op == "local":
            width, kernel, stride, padding = args
            layers.append(VecLocal2d(shape[0], width, kernel, shape[1:], k, stride, padding, expand, **factory))
            shape = (width, *layers[-1].output_size)
        elif op == "pool":
            layers.append(VecAvgPool2d(2))
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
        else:
            layers.append(VecFlatten(flatten_order))
            shape = (math.prod(shape),)
        if min(shape) < 1:
            raise ValueError(f"{name}: input_shape {input_shape} is too small for this architecture; use larger images")
        if op in WEIGHT_OPS:
            layers.append(TGate(shape[0], k, **factory))
    layers.append(VecLinear(shape[0], n_out, k, **factory))
    return layers


def build_model(
    name: str,
    input_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    sign: str = "nonneg",
    widths: Sequence[int] | None = None,
    seed: int = 0,
    device=None,
    dtype=None,
) -> Network:
    """Build architecture ``name`` for inputs ``(C, H, W)`` and initialize it from ``seed``.

    ``-vec`` names give vectorized networks (K = num_classes, input expansion in the first
    layer, one readout unit); the others are conventional (K = 1, num_classes readout units).
    ``widths`` overrides the hidden widths (units for linear, channels for conv/LC layers).
    """
    family, _, suffix = name.partition("-")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, e.g. (1, 28, 28); got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    vectorized = suffix == "vec"
    blueprint = _with_widths(BLUEPRINTS[family](input_shape[0], vectorized), widths, name)
    k, n_out = (num_classes, 1) if vectorized else (1, num_classes)
    flatten_order = "hwc" if vectorized else "chw"  # conventional networks as published (docs/method.md §3)
    layers = _assemble(blueprint, input_shape, k, n_out, flatten_order, name, {"device": device, "dtype": dtype})
    model = Network(layers, input_shape, num_classes, vectorized, sign, name)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model
