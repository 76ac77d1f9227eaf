"""The registry of architectures and the one factory, ``build_model`` (docs/architectures.md).

The paper's six (docs/method.md §7) are registered in ``gevb.models.families``, one file per family, in
table order: ``fc-vec``, ``fc``, ``conv-vec``, ``conv``, ``lc-vec``, ``lc``. Each is a decorated builder giving
its layer specs for inputs of some number of channels (one channel: the MNIST layout; more: the CIFAR-10
layout; both adapt to any height and width), with its family, kind, table title and a small test variant.
``build_model`` also takes an ``ArchitectureSpec`` or a YAML file describing one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gevb.layers import TGate, VecLinear
from gevb.models.network import Network
from gevb.models.specs import ArchitectureSpec, LayerSpec, is_spec_file, read_spec
from gevb.plugins import Registry


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: ``layers(channels)`` gives its specs for inputs of that many channels;
    ``small_widths`` = (one-channel, multi-channel) hidden widths of a variant small enough for tests."""

    name: str
    family: str
    vectorized: bool
    title: str
    layers: Callable[[int], tuple[LayerSpec, ...]]
    small_widths: tuple[tuple[int, ...], tuple[int, ...]]

    def spec(self, channels: int) -> ArchitectureSpec:
        return ArchitectureSpec(self.name, self.vectorized, tuple(self.layers(channels)))

    def test_widths(self, channels: int) -> tuple[int, ...]:
        return self.small_widths[channels > 1]


# the built-in architectures (``gevb.models.families``), then those of plugins (``gevb.plugins``), on first read
ARCHITECTURES: dict[str, Architecture] = Registry("gevb.architectures", builtins="gevb.models.families")


def register_architecture(
    name: str, family: str, vectorized: bool, title: str, small_widths: tuple[tuple[int, ...], tuple[int, ...]]
):
    """Decorator: register ``builder(channels) -> layer specs`` as architecture ``name``."""

    def register(builder: Callable[[int], tuple[LayerSpec, ...]]):
        if ARCHITECTURES.has(name):
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCHITECTURES[name] = Architecture(name, family, vectorized, title, builder, small_widths)
        return builder

    return register


def architecture_names(vectorized: bool | None = None) -> list[str]:
    """Registered names in registration order; only one kind when ``vectorized`` is given."""
    return [name for name, arch in ARCHITECTURES.items() if vectorized is None or arch.vectorized == vectorized]


def counterpart(name: str) -> str:
    """The registered network of the same family and the other kind (``fc`` for ``fc-vec`` and back)."""
    arch = ARCHITECTURES[name]
    for other in ARCHITECTURES.values():
        if other.family == arch.family and other.vectorized != arch.vectorized:
            return other.name
    raise ValueError(f"architecture {name!r} has no registered counterpart of the other kind")


def resolve_spec(model: str | ArchitectureSpec, channels: int) -> ArchitectureSpec:
    """A registered name, a YAML file (``.yaml`` / ``.yml``) or a spec, as the spec for ``channels`` inputs."""
    if isinstance(model, ArchitectureSpec):
        return model
    if model in ARCHITECTURES:
        return ARCHITECTURES[model].spec(channels)
    if is_spec_file(model):
        return read_spec(Path(model).expanduser())
    raise ValueError(
        f"unknown architecture {model!r}; choose one of {', '.join(ARCHITECTURES)} or pass a .yaml file describing one"
    )


def is_vectorized(model: str | ArchitectureSpec) -> bool:
    """Whether a model (name, file or spec) is a vectorized network."""
    if isinstance(model, str) and model in ARCHITECTURES:
        return ARCHITECTURES[model].vectorized
    return resolve_spec(model, 1).vectorized


def _assemble(spec: ArchitectureSpec, input_shape: tuple[int, int, int], k: int, n_out: int, sign: str, factory):
    """Instantiate a spec: each layer checks and builds itself (``gevb.layers.kinds``), a t-gate follows each
    weight layer; ``shape`` tracks one component's activation shape."""
    shape: tuple[int, ...] = (math.prod(input_shape),) if spec.layers[0].flat else tuple(input_shape)
    layers: list[nn.Module] = []
    for index, layer in enumerate(spec.layers):
        where = f"{spec.name} layers[{index}] ({layer.op})"
        layer.check(shape, where, sign)
        module, shape = layer.build(shape, k, k > 1 and not layers, spec.vectorized, factory)
        layers.append(module)
        if min(shape) < 1:
            raise ValueError(
                f"{where}: input_shape {input_shape} is too small for this architecture; use larger images"
            )
        if layer.weighted:
            layers.append(TGate(shape[0], k, **factory))
    if len(shape) != 1:
        raise ValueError(f"{spec.name}: the last layer leaves a {'x'.join(map(str, shape))} map; end with a flatten")
    layers.append(VecLinear(shape[0], n_out, k, **factory))
    return layers


def build_model(
    name: str | ArchitectureSpec,
    input_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    sign: str = "nonneg",
    widths: Sequence[int] | None = None,
    seed: int = 0,
    device=None,
    dtype=None,
) -> Network:
    """Build architecture ``name`` for inputs ``(C, H, W)`` and initialize it from ``seed``.

    ``name``: a registered name (``ARCHITECTURES``), a YAML file describing one
    (docs/architectures.md) or an ``ArchitectureSpec``. Vectorized networks have K = num_classes,
    input expansion in the first layer and one readout unit; conventional ones K = 1 and
    num_classes readout units. ``widths`` overrides the hidden widths (units for linear,
    channels for conv/local layers). The resolved spec is ``model.spec``.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, e.g. (1, 28, 28); got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    spec = resolve_spec(name, input_shape[0]).with_widths(widths)
    k, n_out = (num_classes, 1) if spec.vectorized else (1, num_classes)
    layers = _assemble(spec, input_shape, k, n_out, sign, {"device": device, "dtype": dtype})
    model = Network(layers, input_shape, num_classes, spec.vectorized, sign, spec.name, spec)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model
