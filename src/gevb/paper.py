"""The paper's experiment design (docs/method.md §7): its six architectures in table order, its
rules, the tables' columns and titles, and its training protocol. Data only; nothing here trains."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gevb.config import TrainConfig
from gevb.data import DATASETS
from gevb.init import SIGNS
from gevb.models import ARCHITECTURES, is_vectorized
from gevb.rules import RULES

GRID_MODELS = tuple(ARCHITECTURES)  # the built-in six, registered in the tables' row order
GRID_RULES = ("gevb", "dfa", "bp")
ROW_TITLES = {name: ARCHITECTURES[name].title for name in GRID_MODELS}
COLUMNS = tuple((kind, sign) for sign in SIGNS for kind in ("rule", "bp"))  # rule nonneg, BP nonneg, rule mixed, ...


def dataset_title(name: str) -> str:
    """How tables and figures name a data set: its registered title (``MNIST`` for ``mnist``), or ``my`` for
    ``/data/my.npz``."""
    return DATASETS[name].title if name in DATASETS else Path(name).stem


def model_title(name: str) -> str:
    """How figures name a model: ``fc-vec`` for a registered one, ``my-net.yaml`` for ``/nets/my-net.yaml``."""
    return name if name in ARCHITECTURES else Path(name).name


def broadcast_rule(model: str) -> str:
    """The paper's error-broadcasting rule for ``model``: GEVB in a vectorized network, else DFA."""
    return "gevb" if is_vectorized(model) else "dfa"


def column_rule(model: str, kind: str) -> str:
    """The rule of column ``kind`` in ``model``'s row: "rule" is the broadcast rule, any other kind a rule's name."""
    return broadcast_rule(model) if kind == "rule" else kind


def column_kind(model: str, rule: str) -> str:
    """Inverse of ``column_rule``: the column a run of ``rule`` in ``model``'s row goes to."""
    return "rule" if rule == broadcast_rule(model) else rule


def table_columns(rules: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(kind, sign) columns for a table of runs of ``rules``: per sign, the paper's "rule" (GEVB or DFA by
    row), every other rule that ran in registry order, then "bp"; with only the paper's rules, ``COLUMNS``."""
    ran = set(rules)
    others = [name for name in RULES if name in ran and name not in GRID_RULES]
    return tuple((kind, sign) for sign in SIGNS for kind in ("rule", *others, "bp"))


def column_title(kind: str) -> str:
    """A column's heading: "rule" for the broadcast rule, else the rule's title (``Rule.title``)."""
    return "rule" if kind == "rule" else RULES[kind].title


def paper_protocol(dataset: str, base: TrainConfig | None = None) -> TrainConfig:
    """Adam 3e-4, batch 128, up to 200 epochs, evaluation every 10, stop at 100% train accuracy."""
    base = base or TrainConfig()
    return base.replace(dataset=dataset, epochs=200, eval_every=10, stop_at_100=True)
