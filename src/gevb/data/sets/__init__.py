"""The built-in data sets, one definition per file (``gevb.data.registry``): registered in import order,
first those below, then every other module here in name order, so a new data set is one new file."""

import importlib
import pkgutil

# Import order is registration order, which the command line's choices and error messages follow.
from gevb.data.sets import digits, mnist, fashion_mnist, cifar10  # noqa: F401  # isort: skip

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
