"""Layers of vectorized networks; with vector_dim = 1 they are the conventional layers. Each module defines a
layer kind: its module and its spec (``gevb.layers.kinds``); a new kind is one new file here."""

import importlib
import pkgutil

# Import order is registration order, which error messages and listings follow.
from gevb.layers.linear import Linear, VecLinear  # isort: skip
from gevb.layers.conv import Conv, VecConv2d  # isort: skip
from gevb.layers.local import Local, VecLocal2d  # isort: skip
from gevb.layers.shape import Flatten, Pool, VecAvgPool2d, VecFlatten  # isort: skip
from gevb.layers.base import WeightLayer, contract, expand_input
from gevb.layers.gate import TGate, gate_mask
from gevb.layers.kinds import LAYER_KINDS, LayerSpec, Window, register_layer

# every other module of this package is imported too, so that the layer kinds it defines are registered
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "LAYER_KINDS",
    "Conv",
    "Flatten",
    "LayerSpec",
    "Linear",
    "Local",
    "Pool",
    "TGate",
    "VecAvgPool2d",
    "VecConv2d",
    "VecFlatten",
    "VecLinear",
    "VecLocal2d",
    "WeightLayer",
    "Window",
    "contract",
    "expand_input",
    "gate_mask",
    "register_layer",
]
