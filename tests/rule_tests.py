"""The test files of single learning rules, ``tests/test_rule_<module>.py`` (one beside each rule file of
``gevb.rules`` that needs more than the registry-wide tests; docs/extending.md). Such a file may register its
rule's reference step (``reference.FEEDBACK``) and hold the learning tables of its triples (``LEARNS``,
``FAILS``, ``SEED_DEPENDENT``, and ``SIGNATURES`` for a rule that fails somewhere), which
``tests/test_learning.py`` merges with its own; its ``@learning.uses`` tests join the corruption meta-test."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent


def rule_test_modules() -> list[ModuleType]:
    """Every ``test_rule_*.py`` module of this folder, imported (once: pytest and this share the name)."""
    return [importlib.import_module(path.stem) for path in sorted(HERE.glob("test_rule_*.py"))]


def merged(table: str) -> dict:
    """The union of the dicts named ``table`` in the rule test modules that define one."""
    found: dict = {}
    for module in rule_test_modules():
        found |= getattr(module, table, {})
    return found
