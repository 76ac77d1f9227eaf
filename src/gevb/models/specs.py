"""Architectures as data: typed layer specs, a network spec, and its YAML form (docs/architectures.md).

A spec lists the hidden layers in order (each a layer kind's spec, ``gevb.layers.kinds``); a t-gate
follows every weight layer (linear, conv, local) and a readout ends the network, both implied.
``ArchitectureSpec.from_dict`` checks every entry and names the bad one; the sizes are checked against
the input when the network is built (``gevb.models.architectures``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gevb.files import read_yaml
from gevb.layers import LAYER_KINDS, Conv, Flatten, LayerSpec, Linear, Local, Pool

__all__ = ["ArchitectureSpec", "Conv", "Flatten", "LayerSpec", "Linear", "Local", "Pool", "read_spec", "spec_yaml"]


SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ArchitectureSpec:
    """A network: ``name``, whether it is ``vectorized`` (K = classes) and its hidden ``layers``."""

    name: str
    vectorized: bool
    layers: tuple[LayerSpec, ...]

    @property
    def widths(self) -> tuple[int, ...]:
        """The hidden widths (units or channels) of the weight layers, in order."""
        return tuple(layer.width for layer in self.layers if layer.weighted)

    def with_widths(self, widths: Sequence[int] | None) -> ArchitectureSpec:
        """The same network with its hidden widths replaced (None: unchanged)."""
        if widths is None:
            return self
        if len(widths) != len(self.widths) or any(int(w) < 1 for w in widths):
            raise ValueError(
                f"{self.name} has {len(self.widths)} hidden layers, so widths needs {len(self.widths)} positive "
                f"integers; got {tuple(widths)}"
            )
        given = iter(int(width) for width in widths)
        layers = tuple(
            dataclasses.replace(layer, width=next(given)) if layer.weighted else layer for layer in self.layers
        )
        return dataclasses.replace(self, layers=layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, bool, int, lists), as a YAML file or a checkpoint holds it."""
        layers = [{"op": layer.op, **dataclasses.asdict(layer)} for layer in self.layers]
        return {"name": self.name, "vectorized": self.vectorized, "layers": layers}

    @classmethod
    def from_dict(cls, mapping: Any, source: str) -> ArchitectureSpec:
        """Parse and check ``to_dict``'s form; a ValueError names ``source`` and the bad entry."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{source}: expected a mapping with name, vectorized and layers")
        unknown = sorted(set(mapping) - {"name", "vectorized", "layers"})
        if unknown:
            raise ValueError(f"{source}: unknown key {unknown[0]!r}; an architecture has name, vectorized, layers")
        name = mapping.get("name", Path(source).stem)
        vectorized = mapping.get("vectorized")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: name must be a non-empty string")
        if type(vectorized) is not bool:
            raise ValueError(f"{source}: vectorized must be true (K = classes, GEVB) or false (conventional)")
        layers = mapping.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"{source}: layers must be a non-empty list, e.g. - {{op: linear, width: 256}}")
        parsed = tuple(parse_layer(entry, f"{source} layers[{i}]") for i, entry in enumerate(layers))
        if not any(layer.weighted for layer in parsed):
            weighted = ", ".join(op for op, kind in LAYER_KINDS.items() if kind.weighted)
            raise ValueError(f"{source}: layers need at least one weight layer ({weighted}) before the readout")
        return cls(name, vectorized, parsed)


def parse_layer(entry: Any, where: str) -> LayerSpec:
    """One ``{op: ..., size: ...}`` entry as its typed spec; unknown ops, keys and bad sizes raise."""
    if not isinstance(entry, Mapping) or "op" not in entry:
        raise ValueError(f"{where}: expected a mapping with an op ({', '.join(LAYER_KINDS)})")
    op = entry["op"]
    if op not in LAYER_KINDS:
        raise ValueError(f"{where}: unknown op {op!r}; use one of {', '.join(LAYER_KINDS)}")
    spec_type = LAYER_KINDS[op]
    allowed = [field.name for field in dataclasses.fields(spec_type)]
    values = {key: value for key, value in entry.items() if key != "op"}
    for key, value in values.items():
        if key not in allowed:
            expected = ", ".join(allowed) or "no sizes"
            raise ValueError(f"{where} ({op}): unknown key {key!r}; {op} takes {expected}")
        least = spec_type.minimum.get(key, 1)
        if type(value) is not int or value < least:
            wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(least, f"an integer >= {least}")
            raise ValueError(f"{where} ({op}): {key} must be {wanted}, got {value!r}")
    try:
        return spec_type(**values)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(spec_type) if f.default is dataclasses.MISSING]
        raise ValueError(f"{where} ({op}): needs {', '.join(missing)}") from None


def is_spec_file(name: str) -> bool:
    """Whether a model name is a path to an architecture file (``.yaml`` / ``.yml``)."""
    return name.lower().endswith(SPEC_SUFFIXES)


def read_spec(path: str | Path) -> ArchitectureSpec:
    """Read an architecture file (YAML: name, vectorized, layers)."""
    path = Path(path)
    mapping = read_yaml(path, "architecture file", "see docs/architectures.md for the format")
    return ArchitectureSpec.from_dict(mapping, str(path))


def spec_yaml(spec: ArchitectureSpec) -> str:
    """The spec as the YAML text ``read_spec`` reads."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
