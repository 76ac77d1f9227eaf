"""Layers of vectorized networks; with vector_dim = 1 they are the conventional layers."""

from gevb.layers.base import WeightLayer, contract, expand_input
from gevb.layers.conv import VecConv2d
from gevb.layers.gate import TGate, gate_mask
from gevb.layers.linear import VecLinear
from gevb.layers.local import VecLocal2d
from gevb.layers.shape import VecAvgPool2d, VecFlatten

__all__ = [
    "TGate",
    "VecAvgPool2d",
    "VecConv2d",
    "VecFlatten",
    "VecLinear",
    "VecLocal2d",
    "WeightLayer",
    "contract",
    "expand_input",
    "gate_mask",
]
