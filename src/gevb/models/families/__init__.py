"""The built-in architectures, one file per family (docs/architectures.md): the paper's six in its tables'
row order, then any other module here in name order. A new family is one new file."""

import importlib
import pkgutil

# Import order is registration order, which listings and the paper's tables follow.
from gevb.models.families import fc  # isort: skip
from gevb.models.families import conv  # isort: skip
from gevb.models.families import lc  # isort: skip

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["conv", "fc", "lc"]
