"""Figures (matplotlib, the ``plots`` extra). Drawn on ``matplotlib.figure.Figure``: no pyplot, no GUI backend."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import ScalarFormatter

from gevb.models import ARCHITECTURES
from gevb.paper import COLUMNS, GRID_MODELS, ROW_TITLES, column_rule, dataset_title, table_columns
from gevb.rules import RULES
from gevb.runs import Run

LAST_HIDDEN_DEG = math.degrees(math.acos(1 / math.sqrt(math.pi)))  # docs/method.md §6


def fitted_title(figure: Figure, text: str) -> None:
    """``figure.suptitle(text)``, wrapped to the figure's width (about 11 characters per inch at the
    default size) so that a narrow figure does not cut it."""
    figure.suptitle(textwrap.fill(text, width=max(24, int(figure.get_figwidth() * 11))))


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
    """Test (solid) and train (dashed) error vs epoch, mean ± std over seeds; one panel per architecture
    present, rows vectorized / conventional, one color per (rule, sign)."""
    models = [name for name in GRID_MODELS if name in {run.config.model for run in runs}]
    families = list(dict.fromkeys(ARCHITECTURES[name].family for name in models))
    kinds = {ARCHITECTURES[name].vectorized for name in models}
    rows = [vectorized for vectorized in (True, False) if vectorized in kinds]
    figure = Figure(figsize=(4.2 * len(families), 3.4 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(families), squeeze=False, sharex=True)
    columns = table_columns(run.config.rule for run in runs)
    for row, vectorized in enumerate(rows):
        for column, family in enumerate(families):
            model = next(
                name for name, arch in ARCHITECTURES.items() if arch.family == family and arch.vectorized == vectorized
            )
            draw_panel(axes[row][column], model, [run for run in runs if run.config.model == model], columns)
    dataset = runs[0].config.dataset if runs else ""
    fitted_title(figure, f"{dataset_title(dataset)}: error during training (mean ± std over seeds)")
    return figure


def draw_panel(ax, model: str, runs: Sequence[Run], columns: Sequence[tuple[str, str]] = COLUMNS) -> None:
    """One architecture: a test and a train curve per (rule, sign) of ``columns`` present in ``runs``."""
    ax.set_title(ROW_TITLES[model])
    ax.set_xlabel("epoch")
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
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        return
    handles += [Line2D([], [], color="k", label="test"), Line2D([], [], color="k", linestyle="--", label="train")]
    ax.set_yscale("symlog", linthresh=1, linscale=0.5)  # linear below 1%, logarithmic above: 2% and 3%
    ax.set_ylim(bottom=0)  # stay apart beside a diverged 90%
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.legend(handles=handles, fontsize=7, loc="upper right")


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
    figure = Figure(figsize=(4.0 * len(keys), 3.6), layout="constrained")
    axes = figure.subplots(1, len(keys), squeeze=False, sharey=True)[0]
    widths = np.array(result["widths"])
    for ax, key in zip(axes, keys, strict=True):
        net = result["networks"][key]
        mean, std = np.array(net["mean_deg"]), np.array(net["std_deg"])
        for i, layer in enumerate(net["layers"]):
            ax.errorbar(widths, mean[:, i], yerr=std[:, i], marker="o", markersize=3, capsize=2,
                        label=f"hidden {i + 1}, {layer} (slope {net['slope'][i]:+.2f})")  # fmt: skip
        ax.axhline(90, color="grey", linewidth=0.8, linestyle=":", label="90 deg (no alignment)")
        ax.axhline(LAST_HIDDEN_DEG, color="grey", linewidth=0.8, linestyle="--", label="55.7 deg, last hidden (theory)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_yscale("log")
        ax.set_title(NETWORK_TITLES.get(key, key))
        ax.set_xlabel("hidden width (units or channels)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("angle to BP update (degrees)")
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


def run_figure(run: Run) -> Figure:
    """One run: error against epoch, and, when it tracked alignment, each layer's signal and update angle."""
    aligned = [record for record in run.metrics if "alignment" in record]
    figure = Figure(figsize=(13 if aligned else 5, 3.8), layout="constrained")
    axes = figure.subplots(1, 3 if aligned else 1, squeeze=False)[0]
    epochs = [record["epoch"] for record in run.metrics]
    for key, style in (("test_error", "-"), ("train_error", "--")):
        axes[0].plot(epochs, [r[key] for r in run.metrics], style, marker="o", markersize=3, color="k",
                     label=key.split("_")[0])  # fmt: skip
    axes[0].set_title("error")
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(bottom=0)
    panels = (("signal_deg", "signal angle to BP (hidden layers)"), ("update_deg", "update angle to BP gradient"))
    for ax, (key, title) in zip(axes[1:], panels if aligned else (), strict=True):
        for layer in aligned[0]["alignment"][key]:
            angles = [np.nan if r["alignment"][key][layer] is None else r["alignment"][key][layer] for r in aligned]
            ax.plot([r["epoch"] for r in aligned], angles, marker="o", markersize=3, label=layer)
        angle_axis(ax, [a for r in aligned for a in r["alignment"][key].values()])
        ax.set_title(title)
        ax.set_ylabel("degrees")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    c = run.config
    dataset = dataset_title(c.dataset)
    fitted_title(figure, f"{c.model} / {c.rule} / {c.sign} on {dataset}, seed {c.seed}")
    return figure
