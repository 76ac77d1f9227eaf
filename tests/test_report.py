"""``gevb report``: results.csv, table.md in the paper's layout beside the published values, the curves figure."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import numpy as np
import pytest

from gevb.analysis.report import published_results, render_table, result_rows, write_report
from gevb.cli import main
from gevb.grid import grid_runs
from gevb.paper import ROW_TITLES, paper_protocol
from gevb.runs import Run, collect_runs

plots = pytest.importorskip("gevb.analysis.plots", reason="needs matplotlib: pip install -e '.[test]'")
image = pytest.importorskip("matplotlib.image")


@pytest.fixture(scope="module")
def digits_grid(tmp_path_factory) -> Path:
    """The full 24-configuration digits grid, one seed, one epoch, through the command line."""
    out = tmp_path_factory.mktemp("grid") / "digits"
    argv = ["reproduce", "--dataset", "digits", "--seeds", "1", "--epochs", "1", "--device", "cpu", "--quiet"]
    argv += ["--no-track-alignment", "--jobs", "1"]  # no angle is read; in this process, as xdist fills the cores
    assert main([*argv, "--out", str(out)]) == 0
    return out


def table_body(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_reproduce_writes_a_full_table_a_csv_and_the_curves(digits_grid):
    body = table_body((digits_grid / "table.md").read_text())
    assert [row[0] for row in body] == ["FC-Vec", "FC", "Conv-Vec", "Conv", "LC-Vec", "LC"]
    assert all(len(row) == 5 and "–" not in row for row in body)  # 24 filled cells, no paper columns for digits
    with open(digits_grid / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 24 and {row["finished"] for row in rows} == {"True"}
    cell = next(r for r in rows if (r["model"], r["rule"], r["sign"]) == ("lc", "dfa", "mixed"))
    assert body[5][3] == f"{float(cell['test_error']):.2f} ({float(cell['train_error']):.2f})"
    written = image.imread(digits_grid / "curves-digits.png")  # (height, width, RGBA) in [0, 1]
    figure = plots.learning_curves_figure(collect_runs(digits_grid))
    redrawn = io.BytesIO()
    figure.savefig(redrawn, format="png", dpi=120)
    redrawn.seek(0)
    width, height = figure.get_size_inches() * 120
    assert written.shape == (round(height), round(width), 4)
    assert np.array_equal(written, image.imread(redrawn))  # the figure of exactly these runs


def test_curves_plot_each_runs_errors(digits_grid):
    """Each panel's curves are its runs' errors: one seed, one epoch (and the initialization), so two points
    per (rule, sign) and split."""
    runs = collect_runs(digits_grid)
    for ax in plots.learning_curves_figure(runs).get_axes():
        model = next(name for name, title in ROW_TITLES.items() if title == ax.get_title())
        plotted = sorted(float(y) for line in ax.get_lines() for y in line.get_ydata())
        keys = ("test_error", "train_error")
        errors = [record[key] for run in runs if run.config.model == model for record in run.metrics for key in keys]
        assert len(errors) == 16 and plotted == pytest.approx(sorted(errors))


def test_curves_figure_has_a_labelled_panel_per_architecture(digits_grid):
    figure = plots.learning_curves_figure(collect_runs(digits_grid))
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["FC-Vec", "Conv-Vec", "LC-Vec", "FC", "Conv", "LC"]
    for ax in axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "error (%)"
        assert len(ax.get_lines()) == 8  # test and train for each of the 4 (rule, sign) columns
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels[-2:] == ["test", "train"] and len(labels) == 6
    only_conv = [run for run in collect_runs(digits_grid) if run.config.model == "conv"]
    assert [ax.get_title() for ax in plots.learning_curves_figure(only_conv).get_axes()] == ["Conv"]


def fake_run(model: str, rule: str, sign: str, seed: int, errors: list[tuple[float, float]], stopped: bool) -> Run:
    """A finished run with evaluations (train, test) at epochs 10, 20, ..."""
    config = paper_protocol("mnist").replace(model=model, rule=rule, sign=sign, seed=seed)
    metrics = [
        {"epoch": 10 * (i + 1), "train_error": train, "test_error": test, "seconds": 1.0}
        for i, (train, test) in enumerate(errors)
    ]
    result = {**metrics[-1], "epochs": metrics[-1]["epoch"], "stopped_early": stopped}
    return Run(Path(f"{model}-{rule}-{sign}-seed{seed}"), config, metrics, result)


def test_cells_are_mean_sample_std_and_train_with_the_paper_beside():
    runs = [
        fake_run("fc-vec", "gevb", "nonneg", 0, [(5.0, 6.0), (0.1, 2.0)], False),
        fake_run("fc-vec", "gevb", "nonneg", 1, [(4.0, 5.0), (0.3, 2.5)], False),
        fake_run("fc-vec", "gevb", "nonneg", 2, [(4.0, 5.0), (0.2, 1.5)], False),
        fake_run("conv", "dfa", "mixed", 0, [(3.0, 4.0)], False),
        fake_run("fc", "bp", "nonneg", 0, [(0.0, 1.5)], False),
    ]
    body = table_body(render_table(result_rows(runs), "mnist"))
    assert [row[0] for row in body] == ["FC-Vec", "FC", "Conv"]  # only the rows that hold runs
    assert len(body[0]) == 7  # model, then (ours, paper) for each of the 3 columns that hold runs
    assert body[0][1] == f"2.00 ± {statistics.stdev([2.0, 2.5, 1.5]):.2f} (0.20)"
    assert body[0][2] == "1.87 (0.06) (+0.13)"  # published FC-Vec GEVB nonneg, train in brackets, then ours - paper
    assert body[0][4] == "1.93 (0.05)" and body[0][3] == "–"  # no run: the paper value alone
    assert body[2][5] == "4.00 (3.00) [n=1]" and body[2][6] == "1.64 (0.42) (+2.36)"
    assert body[1][4] == "1.36 (+0.14)"  # published BP in FC has train ~0: no bracket


def test_every_other_rule_that_ran_gets_its_own_columns():
    runs = [
        fake_run("fc-vec", "gevb", "nonneg", 0, [(5.0, 6.0)], False),
        fake_run("fc-vec", "fa", "nonneg", 0, [(2.0, 3.0)], False),
        fake_run("fc", "node-perturbation", "mixed", 0, [(7.0, 8.0)], False),
        fake_run("fc", "bp", "mixed", 0, [(1.0, 1.5)], False),
    ]
    text = render_table(result_rows(runs), "mnist")
    header = [cell.strip() for cell in text.splitlines()[2].strip("|").split("|")]
    titles = ["rule nonneg", "FA nonneg", "node perturbation mixed", "BP mixed"]  # the columns that hold runs
    assert header == ["MNIST", *(cell for title in titles for cell in (title, "paper (Δ)"))]
    fc_vec, fc = table_body(text)  # (ours, paper) per column
    assert fc_vec[1] == "6.00 (5.00)" and fc_vec[3] == "3.00 (2.00)" and fc_vec[4] == "–"  # no published FA
    assert fc[5] == "8.00 (7.00)" and fc[7] == "1.50 (1.00)" and fc[1] == "–"
    assert "FA" not in render_table(result_rows(runs[:1]), "mnist").splitlines()[2]  # only the rules that ran


def test_a_rules_default_options_are_the_protocol_and_a_changed_one_is_named_alone():
    """Runs of rules with options (their defaults filled in by the config) pooled into tables of their own,
    labelled with every option as if it differed from the paper's protocol."""
    paper = paper_protocol("mnist")
    runs = [fake_run("fc", "bp", "nonneg", 0, [(1.0, 2.0)], False)]
    for decay, error in ((3e-3, 4.0), (1e-2, 6.0)):
        config = paper.replace(model="fc", rule="kolen-pollack", rule_options={"decay": decay}).validate()
        run = fake_run("fc", "kolen-pollack", "nonneg", 0, [(1.0, error)], False)
        runs.append(Run(Path(f"kp-{decay}"), config, run.metrics, run.result))
    tables = render_table(result_rows(runs), "mnist").split("\n\nMNIST")
    assert len(tables) == 2 and tables[0].startswith("MNIST, the paper's protocol")
    assert "KP nonneg" in tables[0] and "differ from the paper's protocol: decay=0.01:" in tables[1]


def test_published_tables_are_the_papers():
    published = published_results()
    assert len(published) == 48
    assert {key[0] for key in published} == {"mnist", "cifar10"}
    assert published[("cifar10", "conv-vec", "gevb", "nonneg")] == (33.74, 28.83)
    assert published[("cifar10", "conv", "dfa", "nonneg")] == (54.18, 48.43)
    assert published[("mnist", "lc-vec", "gevb", "nonneg")] == (1.78, None)
    for dataset in ("mnist", "cifar10"):
        for run in grid_runs(paper_protocol(dataset), 1):
            assert (dataset, run.config.model, run.config.rule, run.config.sign) in published


def test_seed_curves_hold_the_last_value_of_a_run_that_stopped_at_100():
    short = fake_run("fc", "bp", "mixed", 0, [(1.0, 3.0)], stopped=True)
    long = fake_run("fc", "bp", "mixed", 1, [(2.0, 4.0), (0.5, 2.0)], stopped=False)
    epochs, mean, std = plots.seed_curves([short, long], "test_error")
    assert epochs.tolist() == [10, 20] and mean.tolist() == [3.5, 2.5]
    assert std[1] == pytest.approx(statistics.stdev([3.0, 2.0]))
    unfinished = Run(short.path, short.config, short.metrics, None)
    assert plots.seed_curves([unfinished, long], "test_error")[1].tolist() == [3.5, 2.0]


def test_report_errors_are_one_line(capsys, tmp_path):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder of runs" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no evaluated run" in capsys.readouterr().err
    assert main(["reproduce", "--dataset", "digits", "--models", "fc-vec,vgg", "--list"]) == 2
    assert "unknown model 'vgg'" in capsys.readouterr().err


def test_report_of_a_partial_grid_leaves_unfinished_runs_out_of_the_table(tmp_path):
    main(["reproduce", "--dataset", "digits", "--models", "fc", "--seeds", "1", "--epochs", "1", "--device", "cpu",
          "--quiet", "--out", str(tmp_path)])  # fmt: skip
    (tmp_path / "fc-dfa-mixed-seed0" / "result.json").unlink()  # as if killed after its last evaluation
    report = write_report(tmp_path)
    body = table_body(report["tables"]["digits"])
    assert [row[0] for row in body] == ["FC"]  # the only model of the grid
    assert body[0][3] == "–" and "–" not in body[0][1:3] + body[0][4:]
    assert "3 of 4 runs finished" in report["tables"]["digits"]
    with open(tmp_path / "results.csv") as file:
        assert [row["finished"] for row in csv.DictReader(file)] == ["True", "True", "False", "True"]


def test_runs_pool_only_with_their_own_configuration_and_differ_from_the_paper_without_a_delta():
    """Issue 15: unrelated runs (other epochs, lr, widths, all seed 0) were pooled into one cell and
    compared with the paper."""
    paper = paper_protocol("mnist")
    runs = [
        fake_run("fc-vec", "gevb", "nonneg", 0, [(0.5, 2.0)], False),
        fake_run("fc-vec", "gevb", "nonneg", 1, [(0.5, 3.0)], False),
        fake_run("fc-vec", "gevb", "nonneg", 1, [(0.5, 9.0)], False),  # a repeat of seed 1
    ]
    for changes, test_error in (({"epochs": 3}, 40.0), ({"lr": 1e-3}, 50.0), ({"widths": [64, 64]}, 60.0)):
        run = fake_run("fc-vec", "gevb", "nonneg", 0, [(1.0, test_error)], False)
        runs.append(Run(Path(f"other-{test_error}"), paper.replace(**changes), run.metrics, run.result))
    text = render_table(result_rows(runs), "mnist")
    tables = text.split("\n\nMNIST")
    assert len(tables) == 4 and tables[0].startswith("MNIST, the paper's protocol")
    first = table_body(tables[0])
    assert first[0][1] == f"2.50 ± {statistics.stdev([2.0, 3.0]):.2f} (0.50)"  # seeds 0 and 1, the repeat left out
    assert first[0][2] == "1.87 (0.06) (+0.63)" and "1 run repeating a seed" in tables[0]
    for table, settings, error in zip(tables[1:], ("epochs=3", "lr=0.001", "widths=64,64"), (40, 50, 60), strict=True):
        assert f"differ from the paper's protocol: {settings}:" in table
        body = table_body(table)
        assert body[0][1] == f"{error:.2f} (1.00)" and body[0][2] == "1.87 (0.06)"  # the paper's value, no Δ
        assert "one seed" in table and "not comparable" in table


def test_report_of_unrelated_train_runs_groups_them(tmp_path, capsys):
    for name, extra in (("a", []), ("b", ["--lr", "1e-3"]), ("c", [])):
        argv = ["train", "--epochs", "1", "--widths", "16,12", "--device", "cpu", "--quiet", "--out"]
        assert main([*argv, str(tmp_path / name), *extra]) == 0
    report = write_report(tmp_path)
    text = report["tables"]["digits"]
    assert text.count("| FC-Vec |") == 2 and "1 run repeating a seed" in text
    assert "differ from the paper's protocol: widths=16,12, epochs=1, eval_every=1, stop_at_100=False:" in text
    with open(tmp_path / "results.csv") as file:
        settings = [row["settings"] for row in csv.DictReader(file)]
    assert len(set(settings)) == 2 and "lr=0.001" in settings[1]
