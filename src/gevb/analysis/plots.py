"""Figures (matplotlib, the ``plots`` extra). Drawn on ``matplotlib.figure.Figure``: no pyplot, no GUI backend."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from gevb.models import ARCHITECTURES
from gevb.paper import COLUMNS, GRID_MODELS, ROW_TITLES, column_rule, dataset_title, model_title, table_columns
from gevb.rules import RULES
from gevb.runs import Run

LAST_HIDDEN_DEG = math.degrees(math.acos(1 / math.sqrt(math.pi)))  # docs/method.md §6


def fitted_title(figure: Figure, text: str) -> None:
    """``figure.suptitle(text)``, wrapped to the figure's width (about 11 characters per inch at the
    default size) so that a narrow figure does not cut it."""
    figure.suptitle(textwrap.fill(text, width=max(24, int(figure.get_figwidth() * 11))))


def side_legend(ax, **kwargs) -> None:
    """``ax``'s legend beside it on the right, where it covers no curve (constrained layout makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=7, **kwargs)


def epoch_axis(ax) -> None:
    """An x axis of epochs: whole numbers only, also for a run of two epochs."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def panel_grid(figure: Figure, count: int, columns: int, **kwargs) -> list:
    """``count`` axes in rows of ``columns``, read row by row; the unused cells of the last row removed."""
    rows = math.ceil(count / columns)
    axes = list(figure.subplots(rows, columns, squeeze=False, **kwargs).flat)
    for ax in axes[count:]:
        figure.delaxes(ax)
    return axes[:count]


def angle_axis(ax, angles: Sequence[float]) -> None:
    """0 degrees up to the largest angle drawn (at least 100, at most 180), with 90 marked."""
    finite = [a for a in angles if a is not None and math.isfinite(a)]
    ax.set_ylim(0, min(180, max(100, *(a + 5 for a in finite))))
    ax.axhline(90, color="grey", linewidth=0.8, linestyle=":")


def seed_curves(runs: Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) of ``key`` (e.g. "test_error") over the seeds ``runs``, at every evaluated epoch.

    A run that stopped early at 100% train accuracy keeps its last value at later epochs (it is
    finished, not missing); a run that is still going contributes only the epochs it has reached.
    """
    epochs = sorted({record["epoch"] for run in runs for record in run.metrics})
    values: list[list[float]] = [[] for _ in epochs]
    for run in runs:
        series = {record["epoch"]: record[key] for record in run.metrics}
        held = run.result is not None and run.result["stopped_early"]
        last = max(series)
        for slot, epoch in enumerate(epochs):
            if epoch in series:
                values[slot].append(series[epoch])
            elif held and epoch > last:
                values[slot].append(series[last])
    mean = np.array([np.mean(v) for v in values])
    std = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])
    return np.array(epochs), mean, std


def learning_curves_figure(runs: Sequence[Run]) -> Figure:
    """Test (solid) and train (dashed) error vs epoch, mean ± std over seeds; rows vectorized / conventional,
    columns architecture families, a panel only where an architecture has runs, one color per (rule, sign)."""
    models = [name for name in GRID_MODELS if name in {run.config.model for run in runs}]
    families = list(dict.fromkeys(ARCHITECTURES[name].family for name in models))
    kinds = {ARCHITECTURES[name].vectorized for name in models}
    rows = [vectorized for vectorized in (True, False) if vectorized in kinds]
    figure = Figure(figsize=(6.0 * len(families), 3.4 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(families), squeeze=False)
    columns = table_columns(run.config.rule for run in runs)
    for row, vectorized in enumerate(rows):
        for column, family in enumerate(families):
            model = next(
                name for name, arch in ARCHITECTURES.items() if arch.family == family and arch.vectorized == vectorized
            )
            ax = axes[row][column]
            if not draw_panel(ax, model, [run for run in runs if run.config.model == model], columns):
                figure.delaxes(ax)
    dataset = runs[0].config.dataset if runs else ""
    fitted_title(figure, f"{dataset_title(dataset)}: error during training (mean ± std over seeds)")
    return figure


def draw_panel(ax, model: str, runs: Sequence[Run], columns: Sequence[tuple[str, str]] = COLUMNS) -> bool:
    """One architecture: a test and a train curve per (rule, sign) of ``columns`` present in ``runs``;
    whether there was any to draw."""
    ax.set_title(ROW_TITLES[model])
    epoch_axis(ax)
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    handles = []
    for number, (kind, sign) in enumerate(columns):
        rule = column_rule(model, kind)
        series = [run for run in runs if run.config.rule == rule and run.config.sign == sign]
        if not series:
            continue
        color = f"C{number}"
        for key, style in (("test_error", "-"), ("train_error", "--")):
            epochs, mean, std = seed_curves(series, key)
            ax.plot(epochs, mean, style, color=color, marker="o", markersize=3)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        handles.append(Line2D([], [], color=color, label=f"{RULES[rule].title} {sign} (n={len(series)})"))
    if not handles:
        return False
    handles += [Line2D([], [], color="k", label="test"), Line2D([], [], color="k", linestyle="--", label="train")]
    ax.set_yscale("symlog", linthresh=1, linscale=0.5)  # linear below 1%, logarithmic above: 2% and 3%
    ax.set_ylim(bottom=0)  # stay apart beside a diverged 90%
    ax.yaxis.set_major_formatter(ScalarFormatter())
    side_legend(ax, handles=handles)
    return True


NETWORK_TITLES = {
    "gevb-nonneg": "GEVB, nonneg VNN",
    "gevb-mixed": "GEVB, mixed VNN",
    "dfa-nonneg": "DFA, conventional nonneg",
    "dfa-mixed": "DFA, conventional mixed",
}


def width_scaling_figure(result: dict) -> Figure:
    """Log-log angle to BP against width, one panel per network of ``gevb.analysis.width``, one line per
    hidden layer (mean ± std over seeds) with its fitted slope in the legend."""
    keys = list(result["networks"])
    columns = min(2, len(keys))
    figure = Figure(figsize=(6.4 * columns, 3.4 * math.ceil(len(keys) / columns)), layout="constrained")
    axes = panel_grid(figure, len(keys), columns, sharey=True)
    widths = np.array(result["widths"])
    for ax, key in zip(axes, keys, strict=True):
        net = result["networks"][key]
        mean, std = np.array(net["mean_deg"]), np.array(net["std_deg"])
        for i, layer in enumerate(net["layers"]):
            ax.errorbar(widths, mean[:, i], yerr=std[:, i], marker="o", markersize=3, capsize=2,
                        label=f"hidden {i + 1}, {layer} (slope {net['slope'][i]:+.2f})")  # fmt: skip
        ax.axhline(90, color="grey", linewidth=0.8, linestyle=":", label="90 deg (no alignment)")
        theory = f"{LAST_HIDDEN_DEG:.2f} deg, last hidden (theory)"  # 55.65, as docs/method.md §6 gives it
        ax.axhline(LAST_HIDDEN_DEG, color="grey", linewidth=0.8, linestyle="--", label=theory)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_yscale("log")
        ax.set_title(NETWORK_TITLES.get(key, key))
        ax.set_xlabel("hidden width (units or channels)")
        ax.grid(alpha=0.3, which="both")
        side_legend(ax)
    for ax in axes[::columns]:
        ax.set_ylabel("angle to BP update (degrees)")
    fitted_title(
        figure,
        f"{result['model']} at initialization, {result['dataset']}, batch {result['batch_size']}, "
        f"{result['seeds']} seeds; points: mean, bars: ± std over seeds",
    )
    return figure


def cluster_figure(result: dict, labels: np.ndarray, title: str) -> Figure:
    """The t-SNE embeddings at initialization and after training side by side, coloured by class."""
    figure = Figure(figsize=(10, 4.8), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, name in zip(axes, ("initial", "trained"), strict=True):
        points = result[name]["embedding"]
        for c in np.unique(labels):
            chosen = labels == c
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=f"C{c % 10}", label=str(c))
        when = "at initialization" if name == "initial" else "after training"
        ax.set_title(f"{when}: within/overall RMS distance {result[name]['ratio']:.3f}")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    axes[1].legend(title="class", fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fitted_title(figure, title)
    return figure


CURVES = (("test", "-", "test"), ("train", "--", "train"), ("val", ":", "validation"))  # split, style, label


def run_figure(run: Run) -> Figure:
    """One run: error and loss against epoch (test, train and, with a validation split, validation), and,
    when it tracked alignment, each layer's signal and update angle."""
    aligned = [record for record in run.metrics if "alignment" in record]
    measures = ["error", *(["loss"] if any("train_loss" in r for r in run.metrics) else [])]
    angles = (("signal_deg", "signal angle to BP (hidden layers)"), ("update_deg", "update angle to BP gradient"))
    count = len(measures) + (len(angles) if aligned else 0)
    columns = min(2, count)
    figure = Figure(figsize=(5.6 * columns, 3.4 * math.ceil(count / columns)), layout="constrained")
    axes = panel_grid(figure, count, columns)
    epochs = [record["epoch"] for record in run.metrics]
    for ax, name in zip(axes, measures, strict=False):
        for split, style, label in CURVES:
            key = f"{split}_{name}"
            if any(key in r for r in run.metrics):
                values = [np.nan if r.get(key) is None else r[key] for r in run.metrics]
                ax.plot(epochs, values, style, marker="o", markersize=3, color="k", label=label)
        ax.set_title(name)
        ax.set_ylabel("error (%)" if name == "error" else "cross-entropy loss")
        ax.set_ylim(bottom=0)
    for ax, (key, title) in zip(axes[len(measures) :], angles if aligned else (), strict=True):
        for layer in aligned[0]["alignment"][key]:
            values = [np.nan if r["alignment"][key][layer] is None else r["alignment"][key][layer] for r in aligned]
            ax.plot([r["epoch"] for r in aligned], values, marker="o", markersize=3, label=layer)
        angle_axis(ax, [a for r in aligned for a in r["alignment"][key].values()])
        ax.set_title(title)
        ax.set_ylabel("degrees")
    for ax in axes:
        epoch_axis(ax)
        ax.grid(alpha=0.3)
        side_legend(ax)
    c = run.config
    fitted_title(figure, f"{model_title(c.model)} / {c.rule} / {c.sign} on {dataset_title(c.dataset)}, seed {c.seed}")
    return figure
