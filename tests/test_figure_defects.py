"""Issue 25's figure defects: the format follows --plot's extension, a missing folder is one line, a run's
validation curves are drawn, legends beside the curves, only panels and table cells that have runs, integer
epoch ticks, a YAML network titled by its file's name, one value for the last hidden layer's angle."""

from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from gevb.analysis.report import render_table, result_rows
from gevb.cli import common, main
from gevb.cli.common import save_figure
from gevb.paper import paper_protocol
from gevb.runs import Run, RunFolder

plots = pytest.importorskip("gevb.analysis.plots", reason="needs matplotlib: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--widths", "16,12", "--device", "cpu", "--quiet", "--threads", "1"]
MAGIC = {".png": (b"\x89PNG",), ".pdf": (b"%PDF",), ".svg": (b"<?xml", b"<svg")}


@pytest.fixture(scope="module")
def val_run(tmp_path_factory) -> Path:
    """A tiny run with a validation split, evaluated at epochs 0, 1 and 2."""
    run = tmp_path_factory.mktemp("val") / "run"
    assert main(["train", "--epochs", "2", "--val-fraction", "0.2", "--out", str(run), *TINY]) == 0
    return run


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("suffix", list(MAGIC))
def test_the_figure_format_follows_the_extension(val_run, tmp_path, suffix):
    path = tmp_path / f"curves{suffix}"
    assert main(["plot", str(val_run), "--plot", str(path)]) == 0
    assert path.read_bytes().lstrip().startswith(MAGIC[suffix])


@pytest.mark.parametrize(
    "argv",
    [
        ["plot", "RUN"],
        ["width-scaling", "--widths", "4,8", "--seeds", "1", "--device", "cpu"],
        ["cluster-quality", "RUN"],
    ],
)
def test_a_figure_name_of_another_format_is_refused_before_any_work(val_run, tmp_path, capsys, argv):
    argv = [str(val_run) if part == "RUN" else part for part in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--plot", str(tmp_path / "out.txt")])
    assert exit_.value.code == 2
    line = one_line_error(capsys)
    assert "--plot" in line and all(f".{kind}" in line for kind in ("png", "pdf", "svg")), line
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"\.png, \.pdf or \.svg"):
        save_figure(lambda: pytest.fail("drawn before the name was checked"), str(tmp_path / "out.txt"))


def test_a_figure_into_a_missing_folder_is_one_line_naming_it_and_leaves_nothing(val_run, tmp_path, capsys):
    target = tmp_path / "missing" / "curves.png"
    assert main(["plot", str(val_run), "--plot", str(target)]) == 2
    line = one_line_error(capsys)
    assert f"cannot write figure {target}: folder {target.parent} does not exist" in line, line
    assert ".part" not in line and "--plot" in line
    assert not list(tmp_path.iterdir())  # the folder is not made, and no temporary file is left


def test_a_figure_that_cannot_be_written_names_the_figure_not_its_temporary_file(monkeypatch, tmp_path):
    def refusing(target):
        temp = Path(target).with_name(f".{Path(target).name}.0123.part")
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(temp))

    monkeypatch.setattr(common, "atomic_file", refusing)
    target = tmp_path / "curves.png"
    with pytest.raises(ValueError) as error:
        save_figure(lambda: plots.run_figure(tracked_run()), str(target))
    assert str(error.value).startswith(f"cannot write figure {target}: Permission denied") and ".part" not in str(
        error.value
    )


def test_a_run_with_a_validation_split_shows_validation_loss_and_error(val_run):
    figure = plots.run_figure(Run.read(RunFolder(val_run)))
    panels = {ax.get_title(): ax for ax in figure.get_axes()}
    assert {"error", "loss"} <= set(panels)
    record = Run.read(RunFolder(val_run)).metrics
    for title, key in (("error", "val_error"), ("loss", "val_loss")):
        lines = [line for line in panels[title].get_lines() if line.get_label() == "validation"]
        assert len(lines) == 1, [line.get_label() for line in panels[title].get_lines()]
        assert list(lines[0].get_ydata()) == pytest.approx([r[key] for r in record])


def grid_run(model: str, rule: str, sign: str, seed: int = 0, epochs: tuple[int, ...] = (10, 20)) -> Run:
    config = paper_protocol("mnist").replace(model=model, rule=rule, sign=sign, seed=seed)
    metrics = [{"epoch": e, "train_error": 5.0 - e / 10, "test_error": 6.0 - e / 10, "seconds": 1.0} for e in epochs]
    result = {**metrics[-1], "epochs": epochs[-1], "stopped_early": False}
    return Run(Path(f"{model}-{rule}-{sign}-seed{seed}"), config, metrics, result)


def tracked_run(epochs: tuple[int, ...] = (0, 1, 2), model: str = "fc-vec") -> Run:
    config = paper_protocol("digits").replace(model=model, rule="gevb", sign="nonneg")
    metrics = [
        {
            "epoch": e, "train_error": 50.0 - e, "test_error": 55.0 - e, "train_loss": 2.0 - e / 10,
            "test_loss": 2.1 - e / 10, "alignment": {
                "signal_deg": {"fc1": 30.0 + e, "fc2": 55.0},
                "update_deg": {"fc1": 20.0, "fc2": 50.0, "readout": 0.0},
            },
        }
        for e in epochs
    ]  # fmt: skip
    return Run(Path("r"), config, metrics, None)


def width_result() -> dict:
    net = {"layers": ["fc1", "fc2"], "mean_deg": [[23, 55], [17, 55], [12, 55]], "std_deg": [[1, 1]] * 3,
           "slope": [-0.45, 0.0]}  # fmt: skip
    keys = ("gevb-nonneg", "gevb-mixed", "dfa-nonneg", "dfa-mixed")
    return {"model": "fc-vec", "dataset": "digits", "batch_size": 64, "seeds": 2, "widths": [64, 128, 256],
            "networks": dict.fromkeys(keys, net)}  # fmt: skip


def full_grid() -> list[Run]:
    return [
        grid_run(model, rule, sign)
        for model in ("fc-vec", "fc", "conv-vec", "conv")
        for rule in (("gevb" if model.endswith("-vec") else "dfa"), "bp")
        for sign in ("nonneg", "mixed")
    ]


FIGURES = {
    "learning curves": lambda: plots.learning_curves_figure(full_grid()),
    "run": lambda: plots.run_figure(tracked_run()),
    "width scaling": lambda: plots.width_scaling_figure(width_result()),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_no_legend_covers_a_panel(name):
    figure = FIGURES[name]()
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.get_axes() if ax.get_legend())]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in figure.get_axes():
            area = ax.get_window_extent(renderer)
            width = min(box.x1, area.x1) - max(box.x0, area.x0)
            height = min(box.y1, area.y1) - max(box.y0, area.y0)
            assert width <= 0 or height <= 0, (name, ax.get_title(), box, area)


def test_a_filtered_grid_draws_only_panels_that_have_runs():
    runs = [grid_run("fc-vec", "gevb", "nonneg"), grid_run("conv", "dfa", "nonneg")]
    figure = plots.learning_curves_figure(runs)
    assert [ax.get_title() for ax in figure.get_axes()] == ["FC-Vec", "Conv"]
    assert not [text for ax in figure.get_axes() for text in ax.texts if text.get_text() == "no runs"]


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line[:1] == "|"]


def test_a_filtered_grid_s_table_has_only_rows_and_columns_that_have_runs():
    runs = [grid_run("fc-vec", "gevb", "nonneg"), grid_run("conv", "bp", "nonneg", seed=0)]
    header, _, *body = table_rows(render_table(result_rows(runs), "mnist"))
    assert header == ["MNIST", "rule nonneg", "paper (Δ)", "BP nonneg", "paper (Δ)"]
    assert [row[0] for row in body] == ["FC-Vec", "Conv"]
    assert body[0][3] == "–" and body[0][4] == "1.93 (0.05)"  # a kept column: the paper's value beside no run


def test_report_of_a_grid_run_with_models_rules_and_signs_filtered(tmp_path, capsys):
    argv = ["reproduce", "--dataset", "digits", "--models", "fc", "--rules", "gevb,bp", "--signs", "nonneg"]
    assert main([*argv, "--seeds", "1", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path)]) == 0
    header, _, *body = table_rows((tmp_path / "table.md").read_text())
    assert header == ["Digits", "BP nonneg"] and [row[0] for row in body] == ["FC"]


@pytest.mark.parametrize("name", ["run", "learning curves"])
def test_epoch_axes_have_integer_ticks(name):
    figure = (
        plots.run_figure(tracked_run())
        if name == "run"
        else plots.learning_curves_figure([grid_run("fc", "bp", "mixed", epochs=(0, 1, 2))])
    )
    figure.draw(FigureCanvasAgg(figure).get_renderer())
    for ax in figure.get_axes():
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)


def test_a_yaml_network_s_run_is_titled_by_its_file_name():
    run = tracked_run()
    run = Run(run.path, run.config.replace(model="/home/someone/nets/my-net.yaml"), run.metrics, None)
    title = plots.run_figure(run)._suptitle.get_text()
    assert "my-net.yaml" in title and "/home/someone" not in title, title


def test_the_last_hidden_angle_reads_the_same_in_the_legend_and_the_docs():
    value = f"{math.degrees(math.acos(1 / math.sqrt(math.pi))):.2f}"
    figure = plots.width_scaling_figure(width_result())
    labels = [text.get_text() for text in figure.get_axes()[0].get_legend().get_texts()]
    assert any(label.startswith(f"{value} deg") for label in labels), labels
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stated = [
        (path.name, number)
        for path in docs
        for number in re.findall(r"arccos\(1/sqrt\(pi\)\)`?\s*[=≈]\s*([0-9.]+)", path.read_text())
    ]
    assert len(stated) >= 3 and all(number == value for _, number in stated), stated
