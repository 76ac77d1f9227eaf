"""Summaries of a folder of runs: ``results.csv`` (one row per run) and ``table.md`` in the paper's layout.

Table layout (docs/method.md §7): rows FC-Vec, FC, Conv-Vec, Conv, LC-Vec, LC; columns rule nonneg | BP
nonneg | rule mixed | BP mixed, where *rule* is GEVB in the vectorized rows and DFA in the others; every
other rule that ran (``gevb reproduce --rules``) gets its own column per sign, before BP's. Only the rows
and columns that hold a run appear (a grid filtered by ``--models``, ``--rules`` or ``--signs`` has no empty ones).
A cell is "test ± std (train)": the mean test error % over seeds, its sample standard deviation
(ddof = 1; left out for one seed) and the mean train error %, each run counted at its last
evaluation. Only runs of one configuration pool: each data set gets one table per set of settings
(``settings_label``: how the runs differ from the paper's protocol; the seed, device and data
folder do not count), and a cell counts each seed once. Only finished runs enter the tables;
``results.csv`` lists every run that has been evaluated, with ``finished`` and ``settings``
columns. For MNIST and CIFAR-10 each column is followed by the published value (``published.csv``,
from the paper's Tables 1 and 2) and, for runs that followed the paper's protocol, our difference
to it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gevb.config import TrainConfig
from gevb.files import atomic_file
from gevb.paper import (
    GRID_MODELS,
    ROW_TITLES,
    column_kind,
    column_rule,
    column_title,
    dataset_title,
    paper_protocol,
    table_columns,
)
from gevb.rules import RULES
from gevb.runs import Run, collect_runs
from gevb.text import counted

CSV_FIELDS = (
    "dataset", "model", "rule", "sign", "seed", "epochs", "train_error", "test_error", "seconds", "finished", "run",
    "settings",
)  # fmt: skip
CELL_FIELDS = ("dataset", "model", "rule", "sign")  # where a run goes in the tables
# Fields that do not change what a run computes; runs that differ only in these (and the seed) pool.
POOLING_IGNORES = ("seed", "device", "data_dir", "download", "eval_batch_size", "track_alignment", "threads")
PAPER = "the paper's protocol"


def settings_label(config: TrainConfig) -> str:
    """How ``config`` differs from the paper's protocol for its data set, e.g. ``"epochs=2, lr=0.001"``,
    or ``PAPER``; a rule option counts where it differs from the rule's default (e.g. ``"decay=0.01"``).
    Runs with one label (and one dataset, model, rule, sign) are the same configuration."""
    protocol = paper_protocol(config.dataset).to_dict()
    ignored = {*CELL_FIELDS, *POOLING_IGNORES, "rule_options"}
    differences = [
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in config.to_dict().items()
        if key not in ignored and value != protocol[key]
    ]
    defaults = {option.name: option.default for option in RULES[config.rule].options} if config.rule in RULES else {}
    differences += [f"{name}={value}" for name, value in config.rule_options.items() if value != defaults.get(name)]
    return ", ".join(differences) or PAPER


def result_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One ``CSV_FIELDS`` row per run."""
    rows = []
    for run in runs:
        c, last = run.config, run.last
        rows.append(
            {
                "dataset": c.dataset, "model": c.model, "rule": c.rule, "sign": c.sign, "seed": c.seed,
                "epochs": last["epochs"] if run.finished else last["epoch"],
                "train_error": round(last["train_error"], 4), "test_error": round(last["test_error"], 4),
                "seconds": round(last["seconds"], 2), "finished": run.finished, "run": run.path.name,
                "settings": settings_label(c),
            }
        )  # fmt: skip
    return rows


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def published_results() -> dict[tuple[str, str, str, str], tuple[float, float | None]]:
    """(dataset, model, rule, sign) -> (test error %, train error % or None where the paper gives ~0)."""
    text = resources.files("gevb.analysis").joinpath("published.csv").read_text()
    return {
        (row["dataset"], row["model"], row["rule"], row["sign"]): (
            float(row["test_error"]),
            float(row["train_error"]) if row["train_error"] else None,
        )
        for row in csv.DictReader(io.StringIO(text))
    }


@dataclass
class Cell:
    """Test and train errors (%) of the finished seeds of one table cell."""

    test: list[float]
    train: list[float]

    def text(self, seeds: int) -> str:
        """ "mean ± std (train)", with "[n=k]" when fewer than ``seeds`` seeds finished."""
        mean = f"{statistics.fmean(self.test):.2f}"
        spread = f" ± {statistics.stdev(self.test):.2f}" if len(self.test) > 1 else ""
        count = f" [n={len(self.test)}]" if len(self.test) < seeds else ""
        return f"{mean}{spread} ({statistics.fmean(self.train):.2f}){count}"


def table_cells(
    rows: Sequence[dict[str, Any]], dataset: str, settings: str
) -> tuple[dict[tuple[str, str, str], Cell], int]:
    """(model, kind, sign) -> Cell over the finished rows of ``dataset`` run with ``settings``, one run
    per seed; and how many runs were left out for repeating a seed already in their cell."""
    cells: dict[tuple[str, str, str], Cell] = {}
    seen, repeats = set(), 0
    for row in rows:
        if row["dataset"] != dataset or row["settings"] != settings or not row["finished"]:
            continue
        if row["model"] not in GRID_MODELS or row["rule"] not in RULES:
            continue
        kind = column_kind(row["model"], row["rule"])
        key = (row["model"], kind, row["sign"])
        if (key, row["seed"]) in seen:
            repeats += 1
            continue
        seen.add((key, row["seed"]))
        cell = cells.setdefault(key, Cell([], []))
        cell.test.append(row["test_error"])
        cell.train.append(row["train_error"])
    return cells, repeats


def render_table(rows: Sequence[dict[str, Any]], dataset: str) -> str:
    """The Markdown tables of ``dataset`` in the paper's layout, with captions: one table per
    configuration (``settings_label``), the paper's protocol first, so only runs of one configuration pool."""
    labels = sorted(
        {row["settings"] for row in rows if row["dataset"] == dataset}, key=lambda label: (label != PAPER, label)
    )
    return "\n".join(render_group(rows, dataset, label) for label in labels)


def render_group(rows: Sequence[dict[str, Any]], dataset: str, settings: str) -> str:
    """The table of the runs of ``dataset`` with ``settings``; the published values beside, and our
    difference to them only when the runs followed the paper's protocol."""
    cells, repeats = table_cells(rows, dataset, settings)
    mine = [row for row in rows if row["dataset"] == dataset and row["settings"] == settings]
    seeds = max((len(cell.test) for cell in cells.values()), default=0)
    published = {key[1:]: value for key, value in published_results().items() if key[0] == dataset}
    compare = settings == PAPER
    models, columns = table_layout(mine)
    header = [dataset_title(dataset)]
    for kind, sign in columns:
        header.append(f"{column_title(kind)} {sign}")
        if published:
            header.append("paper (Δ)" if compare else "paper")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        line = [ROW_TITLES[model]]
        for kind, sign in columns:
            cell = cells.get((model, kind, sign))
            line.append(cell.text(seeds) if cell else "–")
            if published:
                line.append(
                    paper_text(published.get((model, column_rule(model, kind), sign)), cell if compare else None)
                )
        lines.append("| " + " | ".join(line) + " |")
    finished = sum(row["finished"] for row in mine)
    epochs = max((row["epochs"] for row in mine if row["finished"]), default=0)
    spread = f"mean ± sample std over {seeds} seeds" if seeds > 1 else "one seed"
    caption = (
        f"{dataset_title(dataset)}, "
        + ("the paper's protocol" if compare else f"settings that differ from the paper's protocol: {settings}")
        + f": test error % (train error % in brackets), {spread}, each run at its last evaluation; "
        f"{finished} of {counted(len(mine), 'run')} finished, at most {counted(epochs, 'epoch')}. "
        "rule = GEVB in the -Vec rows, DFA in the others."
    )
    if repeats:
        caption += f" {counted(repeats, 'run')} repeating a seed of their cell are left out."
    if published and compare:
        caption += " paper: the published mean of 5 runs (train error in brackets where not ~0); Δ = ours - paper."
    elif published:
        caption += " paper: the published mean of 5 runs, not comparable with these settings (no Δ)."
    return caption + "\n\n" + "\n".join(lines) + "\n"


def table_layout(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The table's rows (models, in ``GRID_MODELS`` order) and (kind, sign) columns that hold at least one of
    ``rows`` (finished or not), so that a filtered grid (``gevb reproduce --models fc``) has no empty row or column."""
    cells = {
        (row["model"], column_kind(row["model"], row["rule"]), row["sign"])
        for row in rows
        if row["model"] in GRID_MODELS and row["rule"] in RULES
    }
    models = [model for model in GRID_MODELS if any(cell[0] == model for cell in cells)]
    ran = table_columns(row["rule"] for row in rows)
    columns = [column for column in ran if any(cell[1:] == column for cell in cells)]
    return models, columns


def paper_text(published: tuple[float, float | None] | None, cell: Cell | None) -> str:
    """The published value, and ``cell``'s mean minus it when a comparable ``cell`` is given."""
    if published is None:
        return "–"
    test, train = published
    text = f"{test:g}" + (f" ({train:g})" if train is not None else "")
    if cell is not None:
        text += f" ({statistics.fmean(cell.test) - test:+.2f})"
    return text


def write_report(out: str | Path) -> dict[str, Any]:
    """Write ``results.csv``, ``table.md`` and (with matplotlib) ``curves-<dataset>.png`` into ``out``.

    Returns {"runs": count, "files": [paths written], "tables": {dataset: markdown}, "skipped": reason or None}.
    """
    out = Path(out)
    runs = collect_runs(out)
    rows = result_rows(runs)
    datasets = sorted({row["dataset"] for row in rows})
    tables = {dataset: render_table(rows, dataset) for dataset in datasets}
    files = [out / "results.csv", out / "table.md"]
    with atomic_file(files[0]) as file:
        file.write(csv_text(rows).encode())
    with atomic_file(files[1]) as file:
        file.write("\n".join(tables.values()).encode())
    skipped = None
    if importlib.util.find_spec("matplotlib") is None:
        skipped = "learning curves need matplotlib: pip install 'gevb[plots]'"
    else:
        from gevb.analysis.plots import learning_curves_figure

        for dataset in datasets:
            path = out / f"curves-{dataset_title(dataset) if dataset.endswith('.npz') else dataset}.png"
            figure = learning_curves_figure([run for run in runs if run.config.dataset == dataset])
            with atomic_file(path) as file:
                figure.savefig(file, format="png", dpi=120)
            files.append(path)
    return {"runs": len(runs), "files": [str(path) for path in files], "tables": tables, "skipped": skipped}
