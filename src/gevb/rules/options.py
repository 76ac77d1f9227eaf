"""What a learning rule declares of its own settings: ``RuleOption`` (name, type, default, valid range,
one-line help, and for a float the log-uniform range ``gevb tune`` searches). From these declarations alone come
``make_rule``'s checks, the ``gevb train`` flags, the ``rule_options`` of a run's config (part of its identity),
the tuning's search space, and the options column of docs/rules.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gevb.intervals import Interval

KINDS = (float, int, bool)


@dataclass(frozen=True)
class RuleOption:
    """One setting of a rule. ``name``: a Python identifier, the constructor's keyword and the attribute the
    rule reads (``self.<name>``), the key under ``rule_options:`` in YAML and the flag ``--<name with
    dashes>``; ``kind``: float, int or bool; ``valid``: the values allowed (None: any of ``kind``); ``search``:
    the (low, high) range ``gevb tune`` draws it from, log-uniform (None: not tuned unless asked)."""

    name: str
    kind: type
    default: float | int | bool
    help: str
    valid: Interval | None = None
    search: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.kind not in KINDS:
            raise ValueError(f"a rule option needs an identifier name and a kind of float, int or bool: {self}")
        self.check(self.default, "its default")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, owner: str) -> float | int | bool:
        """``value`` as this option's kind (an int is taken for a float), or ValueError naming the option."""
        if self.kind is float and type(value) is int:
            value = float(value)
        if type(value) is not self.kind:
            kind = self.kind.__name__
            raise ValueError(f"{owner}: {self.name} must be {kind}, got {type(value).__name__} {value!r}")
        if self.valid is not None and value not in self.valid:
            raise ValueError(f"{owner}: {self.name} must be {self.valid}, got {value}")
        return value

    def describe(self) -> str:
        """``name`` (default, range): help, as docs/rules.md and ``--help`` show it."""
        allowed = f", {self.valid}" if self.valid is not None else ""
        return f"{self.name} (default {self.default}{allowed}): {self.help}"


def settings(rule: str, declared: Iterable[RuleOption], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option of ``rule``, each the value ``given`` or its default, checked; an option
    ``given`` that ``rule`` does not declare is a ValueError naming those it does."""
    declared = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        takes = f"it takes {', '.join(declared)}" if declared else "it takes none"
        raise ValueError(f"rule {rule!r} has no option {', '.join(map(repr, unknown))}; {takes}")
    return {name: option.check(given.get(name, option.default), f"rule {rule!r}") for name, option in declared.items()}
