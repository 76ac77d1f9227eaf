"""The paper's experiment design (docs/method.md §7): its six architectures in table order, its
rules, the tables' columns and titles, and its training protocol. Data only; nothing here trains."""

from __future__ import annotations

from pathlib import Path

from gevb.config import TrainConfig
from gevb.init import SIGNS

GRID_MODELS = ("fc-vec", "fc", "conv-vec", "conv", "lc-vec", "lc")  # the tables' row order
GRID_RULES = ("gevb", "dfa", "bp")
ROW_TITLES = {"fc-vec": "FC-Vec", "fc": "FC", "conv-vec": "Conv-Vec", "conv": "Conv", "lc-vec": "LC-Vec", "lc": "LC"}
COLUMNS = tuple((kind, sign) for sign in SIGNS for kind in ("rule", "bp"))  # rule nonneg, BP nonneg, rule mixed, ...
DATASET_TITLES = {"digits": "Digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def dataset_title(name: str) -> str:
    """How tables and figures name a data set: ``MNIST`` for ``mnist``, ``my`` for ``/data/my.npz``."""
    return DATASET_TITLES.get(name) or Path(name).stem


def broadcast_rule(model: str) -> str:
    """The paper's error-broadcasting rule for ``model``: GEVB in a vectorized network, else DFA."""
    return "gevb" if model.endswith("-vec") else "dfa"


def column_rule(model: str, kind: str) -> str:
    """The rule of column ``kind`` ("rule" or "bp") in ``model``'s row."""
    return broadcast_rule(model) if kind == "rule" else "bp"


def paper_protocol(dataset: str, base: TrainConfig | None = None) -> TrainConfig:
    """Adam 3e-4, batch 128, up to 200 epochs, evaluation every 10, stop at 100% train accuracy."""
    base = base or TrainConfig()
    return base.replace(dataset=dataset, epochs=200, eval_every=10, stop_at_100=True)
