"""The single runs whose numbers docs/rules.md reports ("Measured on the digits"): how each is trained and what it
measures, and the table the docs hold, read back. tests/test_doc_numbers.py retrains them against the table;
tests/measure_spread.py (``docs``) measures their spread over thread counts and the fast paths.

A documented run is ``gevb train --dataset digits --model M --rule R --epochs 20 --track-alignment --threads 1``
(the paper's widths, ``nonneg``, Adam 3e-4, batch 128, seed 0). Its numbers: test and train error in %, and per
hidden layer the signal and update angles to exact BP at initialization and after the 20 epochs, in degrees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
HEADING = "## Measured on the digits"
ANGLES = ("signal_init", "signal_end", "update_init", "update_end")
THREADS = 1  # what the table was measured with
# Every documented run, in the table's order: the field's rules in each network, then GEVB, DFA and BP beside them.
RUNS = [
    (model, rule)
    for rule in ("fa", "usf", "drtp", "node-perturbation")
    for model in ("fc", "conv", "fc-vec", "conv-vec")
] + [("fc-vec", "gevb"), ("conv-vec", "gevb"), ("fc", "dfa"), ("conv", "dfa"), ("fc", "bp"), ("fc-vec", "bp")]


def documented(path: Path = DOCS) -> dict[tuple[str, str], dict[str, Any]]:
    """The table under ``HEADING``: (model, rule) -> its test and train error and ``ANGLES`` (lists, per hidden
    layer in order); the table's column of test error ranges (over the measured configurations) is left out."""
    text = path.read_text()
    section = text[text.index(HEADING) :]
    rows = {}
    for line in section.splitlines():
        found = re.fullmatch(r"\| `(\S+) (\S+)` \| ([\d.]+) \(([\d.]+)\) \| [\d.]+-[\d.]+ \| (.+) \|", line.strip())
        if found is None:
            if rows and not line.startswith("|"):
                break
            continue
        model, rule, test_error, train_error, cells = found.groups()
        angles = [[int(value) for value in cell.split(",")] for cell in cells.split(" | ")]
        rows[model, rule] = {"test_error": float(test_error), "train_error": float(train_error)}
        rows[model, rule] |= dict(zip(ANGLES, angles, strict=True))
    return rows


def measure(model: str, rule: str, threads: int = THREADS) -> dict[str, Any]:
    """Train the documented run of (``model``, ``rule``) at ``threads`` torch threads; its numbers as
    ``documented`` gives them, unrounded."""
    from gevb import TrainConfig
    from gevb.hooks import Hook
    from gevb.training import Trainer

    records = []

    class Records(Hook):  # every evaluation's record
        def after_epoch(self, trainer, loss, record):
            if record is not None:
                records.append(record)

    config = TrainConfig(model=model, rule=rule, epochs=20, track_alignment=True, threads=threads, device="cpu")
    result = Trainer(config, hooks=[Records()]).fit()
    first, last = records[0]["alignment"], records[-1]["alignment"]
    hidden = list(first["signal_deg"])  # the hidden layers, in order (the readout has no signal angle)
    return {
        "test_error": result["test_error"],
        "train_error": result["train_error"],
        "signal_init": [first["signal_deg"][name] for name in hidden],
        "signal_end": [last["signal_deg"][name] for name in hidden],
        "update_init": [first["update_deg"][name] for name in hidden],
        "update_end": [last["update_deg"][name] for name in hidden],
    }
