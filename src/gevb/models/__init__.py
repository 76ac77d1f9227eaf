"""Networks and the registry of the paper's architectures."""

from gevb.models.architectures import ARCHITECTURES, build_model
from gevb.models.network import Network, Trace

__all__ = ["ARCHITECTURES", "Network", "Trace", "build_model"]
