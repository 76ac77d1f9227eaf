"""Layer kinds: the spec each kind of layer is written as (in code and as an architecture file's
``{op: ..., sizes...}`` entry, docs/architectures.md) and how it checks its input and builds its module.

A layer kind is one file in ``gevb.layers`` (or a plugin's module, entry-point group ``gevb.layers``)
defining its module and its spec, registered with ``@register_layer`` (docs/extending.md). Nothing outside
the kind dispatches on it: ``build_model`` calls ``check`` and ``build`` on each spec in turn, adding the
t-gate after every spec with ``weighted`` set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from gevb.plugins import Registry

Shape = tuple[int, ...]  # one component's activation shape: (features,) or (channels, height, width)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of an architecture. Class attributes: ``op`` (its name in files), ``weighted`` (it has
    weights and a t-gate follows it), ``flat`` (it takes features, not feature maps), ``minimum`` (the least
    value of each size when it is not 1; ``padding``'s is 0)."""

    op: ClassVar[str] = ""
    weighted: ClassVar[bool] = False
    flat: ClassVar[bool] = False
    minimum: ClassVar[dict[str, int]] = {"padding": 0}

    def check(self, shape: Shape, where: str, sign: str) -> None:
        """Raise a ValueError naming ``where`` if the layer cannot take one component's input ``shape``."""
        spatial = len(shape) == 3
        if self.flat and spatial:
            raise ValueError(f"{where}: its input is a {'x'.join(map(str, shape))} map; put a flatten before it")
        if not self.flat and not spatial:
            raise ValueError(f"{where}: its input is flat ({shape[0]} features); {self.op} needs feature maps")
        kernel = getattr(self, "kernel", None)
        if kernel is not None and kernel > min(shape[1:]) + 2 * getattr(self, "padding", 0):
            raise ValueError(
                f"{where}: kernel {kernel} is larger than its {shape[1]}x{shape[2]} input; "
                "use a smaller kernel, fewer pooling layers or larger images"
            )
        if self.weighted and sign == "nonneg" and self.width % 2:
            raise ValueError(
                f"{where}: width {self.width} is odd, but sign='nonneg' pairs units (ON/OFF); "
                "use an even width or sign='mixed'"
            )

    def build(self, shape: Shape, k: int, expand: bool, vectorized: bool, factory: dict[str, Any]):
        """(module, output shape) for one component's input ``shape`` in a network of K = ``k``; ``expand``: the
        first layer of a vectorized network (input expansion); ``factory``: device and dtype."""
        raise NotImplementedError


@dataclass(frozen=True)
class Window(LayerSpec):
    """A weight layer sliding a window: ``width`` channels, square ``kernel``, ``stride``, zero ``padding``."""

    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    weighted: ClassVar[bool] = True


@dataclass(frozen=True)
class Pooling(LayerSpec):
    """A weightless layer pooling each channel over windows of ``kernel`` x ``kernel`` (stride = kernel, odd sizes
    floored); ``module`` is the pooling layer's class, built as ``module(kernel)``."""

    kernel: int = 2
    minimum: ClassVar[dict[str, int]] = {"kernel": 2}
    module: ClassVar[type[nn.Module]]

    def build(self, shape, k, expand, vectorized, factory):
        return self.module(self.kernel), (shape[0], shape[1] // self.kernel, shape[2] // self.kernel)


# the layer kinds by op: the built-in ones (each module of gevb.layers), then those of plugins
LAYER_KINDS: dict[str, type[LayerSpec]] = Registry("gevb.layers", builtins="gevb.layers")


def register_layer(spec_type: type[LayerSpec]) -> type[LayerSpec]:
    """Class decorator: register a layer kind under its ``op``."""
    if not spec_type.op or LAYER_KINDS.has(spec_type.op):
        raise ValueError(f"layer kind {spec_type.op!r} has no op or is registered twice")
    LAYER_KINDS[spec_type.op] = spec_type
    return spec_type


def module_kind(module: nn.Module) -> str:
    """A built module's short kind for layer names (``fc``, ``conv``, ``gate``, ...): its ``kind`` attribute."""
    return getattr(module, "kind", type(module).__name__.lower())
