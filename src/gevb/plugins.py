"""Plugins: other packages add rules, architectures, data sets and layer kinds through entry points, and the registries
load them lazily, on first read (importing gevb imports no plugin).

A plugin distribution declares, in its ``pyproject.toml``::

    [project.entry-points."gevb.rules"]
    my-rule = "my_package.my_rule"

Each entry point names a module (or an object in one) whose import registers what it defines
(``register_rule``, ``register_architecture``, ``register_dataset``). A plugin that fails to load is one
line on stderr naming it, and everything else still works (docs/extending.md).
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from typing import Any

GROUPS = ("gevb.rules", "gevb.architectures", "gevb.datasets", "gevb.layers")


def load_plugins(group: str) -> list[str]:
    """Import every entry point of ``group``; return the names of those that failed (each reported once)."""
    failed = []
    for point in entry_points(group=group):
        try:
            point.load()
        except Exception as error:  # a plugin's own bug must not take down gevb: name it and go on
            failed.append(point.name)
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            print(
                f"gevb: plugin {point.name!r} ({point.value}, entry point group {group}) failed to load, {message}; "
                "fix or uninstall it",
                file=sys.stderr,
            )
    return failed


class Registry(dict):
    """A dict of registered things that, before its first read, imports ``builtins`` (the module whose import
    registers the built-in ones, if any) and the plugins of entry-point group ``group``."""

    def __init__(self, group: str, builtins: str | None = None) -> None:
        super().__init__()
        self.group, self.builtins, self.loaded = group, builtins, False

    def load(self) -> None:
        if not self.loaded:
            self.loaded = True  # first: registering a plugin reads the registry
            if self.builtins is not None:
                importlib.import_module(self.builtins)
            load_plugins(self.group)

    def has(self, key: Any) -> bool:
        """Whether ``key`` is registered, without loading anything (for the registering functions themselves)."""
        return super().__contains__(key)

    def registered(self) -> list[Any]:
        """What is registered so far, without loading anything."""
        return list(super().values())

    def __getitem__(self, key: Any) -> Any:
        self.load()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.load()
        return super().__contains__(key)

    def __iter__(self):
        self.load()
        return super().__iter__()

    def __len__(self) -> int:
        self.load()
        return super().__len__()

    def get(self, key: Any, default: Any = None) -> Any:
        self.load()
        return super().get(key, default)

    def keys(self):
        self.load()
        return super().keys()

    def values(self):
        self.load()
        return super().values()

    def items(self):
        self.load()
        return super().items()

    def copy(self) -> Registry:
        """A loaded registry holding what this one does (to register into without touching this one)."""
        self.load()
        copied = Registry(self.group, self.builtins)
        copied.loaded = True
        dict.update(copied, self)
        return copied

    def __repr__(self) -> str:
        self.load()
        return super().__repr__()
