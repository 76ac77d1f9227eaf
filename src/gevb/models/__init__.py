"""Networks, the registry of architectures and their specs (docs/architectures.md)."""

from gevb.models.architectures import (
    ARCHITECTURES,
    Architecture,
    architecture_names,
    build_model,
    is_vectorized,
    register_architecture,
)
from gevb.models.network import Network, Trace
from gevb.models.specs import ArchitectureSpec, read_spec

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ArchitectureSpec",
    "Network",
    "Trace",
    "architecture_names",
    "build_model",
    "is_vectorized",
    "read_spec",
    "register_architecture",
]
