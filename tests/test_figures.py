"""Figures show what they plot: no clipped angles or titles, readable error axes, labelled references."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from gevb.paper import paper_protocol
from gevb.runs import Run

plots = pytest.importorskip("gevb.analysis.plots", reason="needs matplotlib: pip install -e '.[test]'")


def tracked_run(max_angle: float, title_model: str = "conv") -> Run:
    config = paper_protocol("cifar10").replace(model=title_model, rule="dfa", sign="nonneg")
    metrics = [
        {
            "epoch": epoch, "train_error": 50.0 - epoch, "test_error": 55.0 - epoch,
            "alignment": {
                "signal_deg": {"layers.0": max_angle - 10 + epoch, "layers.3": 88.0},
                "update_deg": {"layers.0": 95.0, "layers.3": 80.0, "layers.7": 20.0},
            },
        }
        for epoch in range(0, 11, 5)
    ]  # fmt: skip
    return Run(Path("r"), config, metrics, None)


def test_angle_panels_show_angles_above_100_degrees():
    figure = plots.run_figure(tracked_run(max_angle=124.0))
    for ax in figure.get_axes()[1:]:
        top = ax.get_ylim()[1]
        highest = max(max(line.get_ydata()) for line in ax.get_lines())
        assert top >= highest and top <= 180


def test_titles_fit_inside_single_and_multi_panel_figures():
    config = paper_protocol("fashion-mnist").replace(model="conv-vec", rule="bp-autograd", seed=12)
    untracked = Run(Path("r"), config, [{"epoch": 1, "train_error": 5.0, "test_error": 6.0}], None)
    one_panel = plots.learning_curves_figure([grid_run("conv", "dfa", "mixed", 0, 5.0)])
    for figure in (plots.run_figure(untracked), plots.run_figure(tracked_run(100.0)), one_panel):
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)  # lay out (constrained layout) as when saved
        box = figure.bbox
        for text in [figure._suptitle, *(ax.title for ax in figure.get_axes())]:
            extent = text.get_window_extent(renderer)
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()


def grid_run(model: str, rule: str, sign: str, seed: int, test_error: float) -> Run:
    config = paper_protocol("mnist").replace(model=model, rule=rule, sign=sign, seed=seed)
    metrics = [{"epoch": e, "train_error": test_error / 2, "test_error": test_error} for e in (10, 20)]
    result = {**metrics[-1], "epochs": 20, "stopped_early": False}
    return Run(Path(f"{model}-{rule}-{sign}-{seed}"), config, metrics, result)


def test_close_error_curves_stay_apart_beside_a_diverged_one():
    """A 90% run must not squeeze GEVB (2%) and BP (3%) into one line at the bottom of the panel."""
    runs = [
        grid_run("fc-vec", "gevb", "nonneg", 0, 2.0),
        grid_run("fc-vec", "bp", "nonneg", 0, 3.0),
        grid_run("fc-vec", "gevb", "mixed", 0, 90.0),
    ]
    ax = plots.learning_curves_figure(runs).get_axes()[0]
    to_axes = ax.transData + ax.transAxes.inverted()
    low, high = (to_axes.transform((10, value))[1] for value in (2.0, 3.0))
    assert high - low > 0.05


def test_width_scaling_figure_has_its_reference_lines_and_says_what_the_bars_are():
    result = {
        "model": "fc-vec", "dataset": "digits", "batch_size": 64, "seeds": 2, "widths": [64, 128],
        "networks": {
            "gevb-nonneg": {"layers": ["layers.0", "layers.3"], "mean_deg": [[23, 55], [17, 55]],
                            "std_deg": [[1, 1], [1, 1]], "slope": [-0.45, 0.0]},
        },
    }  # fmt: skip
    figure = plots.width_scaling_figure(result)
    ax = figure.get_axes()[0]
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1)
    assert any(math.isclose(level, 90) for level in levels)
    assert any(math.isclose(level, math.degrees(math.acos(1 / math.sqrt(math.pi))), abs_tol=0.01) for level in levels)
    assert "std over seeds" in " ".join(figure._suptitle.get_text().split())
