"""Architectures as data: typed layer specs, a network spec, and its YAML form (docs/architectures.md).

A spec lists the hidden layers in order; a t-gate follows every weight layer (linear, conv,
local) and a readout ends the network, both implied. ``ArchitectureSpec.from_dict`` checks
every entry and names the bad one; the sizes are checked against the input when the network is
built (``gevb.models.architectures``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from gevb.files import read_yaml


@dataclass(frozen=True)
class Linear:
    """Fully connected: ``width`` vector units (after a ``flatten``, or on the raw input if first)."""

    width: int
    op: ClassVar[str] = "linear"


@dataclass(frozen=True)
class Window:
    """A layer sliding a window: ``width`` channels, square ``kernel``, ``stride``, zero ``padding``."""

    width: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Conv(Window):
    """Convolution (the window's weights shared over positions)."""

    op: ClassVar[str] = "conv"


@dataclass(frozen=True)
class Local(Window):
    """Locally connected (a convolution without weight sharing)."""

    op: ClassVar[str] = "local"


@dataclass(frozen=True)
class Pool:
    """Average pooling, window = stride = ``kernel``."""

    kernel: int = 2
    op: ClassVar[str] = "pool"


@dataclass(frozen=True)
class Flatten:
    """Feature maps to a vector, in the order of the network's kind (docs/method.md §2, §3)."""

    op: ClassVar[str] = "flatten"


LayerSpec = Linear | Conv | Local | Pool | Flatten
LAYER_OPS: dict[str, type] = {cls.op: cls for cls in (Linear, Conv, Local, Pool, Flatten)}
WEIGHT_SPECS = (Linear, Conv, Local)
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
        return tuple(layer.width for layer in self.layers if isinstance(layer, WEIGHT_SPECS))

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
            dataclasses.replace(layer, width=next(given)) if isinstance(layer, WEIGHT_SPECS) else layer
            for layer in self.layers
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
        if not any(isinstance(layer, WEIGHT_SPECS) for layer in parsed):
            raise ValueError(f"{source}: layers need at least one linear, conv or local layer before the readout")
        return cls(name, vectorized, parsed)


def parse_layer(entry: Any, where: str) -> LayerSpec:
    """One ``{op: ..., size: ...}`` entry as its typed spec; unknown ops, keys and bad sizes raise."""
    if not isinstance(entry, Mapping) or "op" not in entry:
        raise ValueError(f"{where}: expected a mapping with an op ({', '.join(LAYER_OPS)})")
    op = entry["op"]
    if op not in LAYER_OPS:
        raise ValueError(f"{where}: unknown op {op!r}; use one of {', '.join(LAYER_OPS)}")
    spec_type = LAYER_OPS[op]
    allowed = [field.name for field in dataclasses.fields(spec_type)]
    values = {key: value for key, value in entry.items() if key != "op"}
    for key, value in values.items():
        if key not in allowed:
            expected = ", ".join(allowed) or "no sizes"
            raise ValueError(f"{where} ({op}): unknown key {key!r}; {op} takes {expected}")
        if type(value) is not int or value < (0 if key == "padding" else 1):
            least = "a non-negative" if key == "padding" else "a positive"
            raise ValueError(f"{where} ({op}): {key} must be {least} integer, got {value!r}")
    try:
        spec = spec_type(**values)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(spec_type) if f.default is dataclasses.MISSING]
        raise ValueError(f"{where} ({op}): needs {', '.join(missing)}") from None
    if isinstance(spec, Pool) and spec.kernel < 2:
        raise ValueError(f"{where} (pool): kernel must be at least 2, got {spec.kernel}")
    return spec


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
