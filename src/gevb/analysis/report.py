"""Summaries of a folder of runs: ``results.csv`` (one row per run) and ``table.md`` in the paper's layout.

Table layout (docs/method.md §7): rows FC-Vec, FC, Conv-Vec, Conv, LC-Vec, LC; columns rule nonneg | BP
nonneg | rule mixed | BP mixed, where *rule* is GEVB in the vectorized rows and DFA in the others.
A cell is "test ± std (train)": the mean test error % over seeds, its sample standard deviation
(ddof = 1; left out for one seed) and the mean train error %, each run counted at its last
evaluation. Only finished runs enter the table; ``results.csv`` lists every run that has been
evaluated, with a ``finished`` column. For MNIST and CIFAR-10 each column is followed by the
published value (``published.csv``, from the paper's Tables 1 and 2) and our difference to it.
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

from gevb.files import atomic_file
from gevb.paper import COLUMNS, DATASET_TITLES, GRID_MODELS, ROW_TITLES, column_rule
from gevb.runs import Run, collect_runs

CSV_FIELDS = (
    "dataset", "model", "rule", "sign", "seed", "epochs", "train_error", "test_error", "seconds", "finished", "run",
)  # fmt: skip


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


def table_cells(rows: Sequence[dict[str, Any]], dataset: str) -> dict[tuple[str, str, str], Cell]:
    """(model, kind, sign) -> Cell over the finished rows of ``dataset``."""
    cells: dict[tuple[str, str, str], Cell] = {}
    for row in rows:
        if row["dataset"] != dataset or not row["finished"] or row["model"] not in GRID_MODELS:
            continue
        kind = "bp" if row["rule"] == "bp" else "rule"
        if column_rule(row["model"], kind) != row["rule"]:
            continue
        cell = cells.setdefault((row["model"], kind, row["sign"]), Cell([], []))
        cell.test.append(row["test_error"])
        cell.train.append(row["train_error"])
    return cells


def render_table(rows: Sequence[dict[str, Any]], dataset: str) -> str:
    """The Markdown table of ``dataset`` in the paper's layout, with a caption."""
    cells = table_cells(rows, dataset)
    mine = [row for row in rows if row["dataset"] == dataset]
    seeds = max((len(cell.test) for cell in cells.values()), default=0)
    published = {key[1:]: value for key, value in published_results().items() if key[0] == dataset}
    header = [DATASET_TITLES.get(dataset, dataset)]
    for kind, sign in COLUMNS:
        header.append(f"{'rule' if kind == 'rule' else 'BP'} {sign}")
        if published:
            header.append("paper (Δ)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in GRID_MODELS:
        line = [ROW_TITLES[model]]
        for kind, sign in COLUMNS:
            cell = cells.get((model, kind, sign))
            line.append(cell.text(seeds) if cell else "–")
            if published:
                line.append(paper_text(published.get((model, column_rule(model, kind), sign)), cell))
        lines.append("| " + " | ".join(line) + " |")
    finished = sum(row["finished"] for row in mine)
    epochs = max((row["epochs"] for row in mine if row["finished"]), default=0)
    spread = f"mean ± sample std over {seeds} seeds" if seeds > 1 else "one seed"
    caption = (
        f"{DATASET_TITLES.get(dataset, dataset)}: test error % (train error % in brackets), {spread}, "
        f"each run at its last evaluation; {finished} of {len(mine)} runs "
        f"finished, at most {epochs} epochs. rule = GEVB in the -Vec rows, DFA in the others."
    )
    if published:
        caption += " paper: the published mean of 5 runs (train error in brackets where not ~0); Δ = ours - paper."
    return caption + "\n\n" + "\n".join(lines) + "\n"


def paper_text(published: tuple[float, float | None] | None, cell: Cell | None) -> str:
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
            path = out / f"curves-{dataset}.png"
            figure = learning_curves_figure([run for run in runs if run.config.dataset == dataset])
            with atomic_file(path) as file:
                figure.savefig(file, format="png", dpi=120)
            files.append(path)
    return {"runs": len(runs), "files": [str(path) for path in files], "tables": tables, "skipped": skipped}
