"""The report's figures, as PNG files (registered with Snakemake's `report()` and inlined in
the HTML): attribution, every run's accuracy, where runs disagree, the cost of
determinism, the paired differences between variants. No timestamps in their metadata: the same results give the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprogrid.analysis import stats
from reprogrid.analysis.attribution import primary_metric
from reprogrid.analysis.cells import Cell
from reprogrid.analysis.comparison import Comparison
from reprogrid.record.sealed import write_atomically

FIGURES = ("attribution", "accuracy", "disagreement", "cost", "variants")
HEATMAP_RUNS_PER_CELL = 10  # bounds the heatmap's cost on large grids
MAX_INCHES = 18  # figures of large grids stay readable on a page (and fast to draw)
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    write_atomically(path, lambda partial: fig.savefig(partial, format="png", dpi=110, metadata={"Software": None}))
    _pyplot().close(fig)


def _placeholder(path: Path, message: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, color="#555")
    _save(fig, path)


def attribution_figure(attribution: pd.DataFrame, path: Path) -> None:
    if attribution.empty:
        _placeholder(path, "No attribution: the grid needs a setting that varies one source and one "
                           "that varies several, under the same library configuration.")
        return
    plt = _pyplot()
    labels = [f"{s}  ({lc}{', ' + v if v else ''})" for s, lc, v in
              zip(attribution["source"], attribution["libconf"], attribution.get("variant", [""] * len(attribution)))]
    y = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(labels) + 1.6), sharey=True)
    for ax, column, title in ((axes[0], "std_ratio", "accuracy SD ratio"),
                              (axes[1], "disagreement_ratio", "disagreement ratio")):
        values = attribution[column].astype(float).to_numpy()
        low = attribution[f"{column}_ci_low"].astype(float).to_numpy()
        high = attribution[f"{column}_ci_high"].astype(float).to_numpy()
        error = np.vstack([np.nan_to_num(values - low), np.nan_to_num(high - values)])
        ax.barh(y, np.nan_to_num(values), xerr=error, color="#4c72b0", alpha=0.8, capsize=3)
        for position, value in zip(y, values):  # a zero bar is invisible: say the number
            ax.annotate("n/a" if np.isnan(value) else f"{value:.2f}", (0, position), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.axvline(1.0, color="#c44e52", lw=1, ls="--")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("relative to all sources varied (dashed: as much as all sources)", fontsize=10)
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    fig.tight_layout()
    _save(fig, path)


def _cell_name(cell: Cell) -> str:
    return " × ".join(filter(None, (cell.first.setting, cell.first.libconf, cell.first.variant)))


def accuracy_figure(comparison: Comparison, path: Path) -> str:
    """Every run's test accuracy (or test loss, for models without classes)."""
    plt = _pyplot()
    cells = list(comparison.cells.values())
    metrics = {primary_metric(c.first) for c in cells}
    metric = metrics.pop() if len(metrics) == 1 else "test_loss"
    fig, ax = plt.subplots(figsize=(8, min(0.4 * len(cells) + 1.2, MAX_INCHES)))
    for row, cell in enumerate(cells):
        values = [r.metrics[metric] for r in cell.runs]
        ax.scatter(values, row + stacked_offsets(values), alpha=0.6, s=26)
    ax.set_yticks(range(len(cells)), [_cell_name(c) for c in cells],
                  fontsize=10 if len(cells) <= 40 else max(3, 400 / len(cells)))
    ax.invert_yaxis()
    ax.set_xlabel(metric.replace("_", " "))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return metric


def stacked_offsets(values, step: float = 0.09, limit: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread runs with equal values (accuracy takes few values on a
    small test set) so that every run stays visible."""
    seen: dict[float, int] = {}
    offsets = []
    for value in values:
        k = seen.get(value, 0)
        seen[value] = k + 1
        offsets.append(((k + 1) // 2) * step * (1 if k % 2 else -1))
    return np.clip(np.array(offsets, dtype=np.float64), -limit, limit)


def cross_cell_disagreement(cells: list[Cell]) -> np.ndarray:
    """Mean disagreement between runs of two cells (within a cell: between its distinct
    runs), over at most HEATMAP_RUNS_PER_CELL runs of each."""
    predicted = [c.predicted()[:HEATMAP_RUNS_PER_CELL] for c in cells]
    matrix = np.full((len(cells), len(cells)), np.nan)
    for a, pa in enumerate(predicted):
        for b, pb in enumerate(predicted):
            if a == b:
                matrix[a, b] = stats.disagreements(pa).mean() if len(pa) > 1 else np.nan
            elif a < b:
                matrix[a, b] = matrix[b, a] = (pa[:, None, :] != pb[None, :, :]).mean()
    return matrix


def disagreement_figure(comparison: Comparison, path: Path) -> None:
    cells = list(comparison.cells.values())
    if not all(c.first.classifies for c in cells):
        _placeholder(path, "No disagreement heatmap: the model has no classes to disagree on.")
        return
    plt = _pyplot()
    matrix = cross_cell_disagreement(cells)
    names = [_cell_name(c) for c in cells]
    size = min(0.45 * len(cells) + 2.5, MAX_INCHES)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="viridis")
    fontsize = 10 if len(cells) <= 30 else max(3, 300 / len(cells))  # many cells: small labels, same page
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=fontsize)
    ax.set_yticks(range(len(names)), names, fontsize=fontsize)
    if len(cells) <= 12:
        for a in range(len(cells)):
            for b in range(len(cells)):
                if not np.isnan(matrix[a, b]):
                    ax.text(b, a, f"{matrix[a, b]:.3f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(image, ax=ax, label="share of test points predicted differently")
    fig.tight_layout()
    _save(fig, path)


def cost_figure(libconfs: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(libconfs) + 1.2))
    names = libconfs["libconf"] + (" × " + libconfs["variant"] if "variant" in libconfs else "")
    ax.barh(list(names), libconfs["relative_to_reference"], color="#55a868")
    ax.axvline(1.0, color="#555", lw=1, ls="--")
    ax.invert_yaxis()
    ax.set_xlabel(f"median train time relative to {libconfs['reference'].iloc[0]}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def write_figures(comparison: Comparison, directory: Path) -> dict[str, Path]:
    paths = {name: directory / f"{name}.png" for name in FIGURES}
    attribution_figure(comparison.attribution, paths["attribution"])
    accuracy_figure(comparison, paths["accuracy"])
    disagreement_figure(comparison, paths["disagreement"])
    cost_figure(comparison.libconfs, paths["cost"])
    variants_figure(comparison.variants, paths["variants"])
    return paths


def variants_figure(variants: pd.DataFrame, path: Path) -> None:
    """Per pair of variants (the first metric), each replicate's difference B − A and
    their mean with its paired 95 % interval: a change is real where the interval
    clears 0."""
    shown = variants[variants["metric"] == variants["metric"].iloc[0]] if not variants.empty else variants
    if shown.empty:
        _placeholder(path, "No variants: a grid with `variants` compares them here, run for run.")
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, min(MAX_INCHES, 0.5 * len(shown) + 1.4)))
    for y, (_, row) in enumerate(shown.iterrows()):
        differences = [float(d) for d in str(row["differences"]).split()]
        ax.scatter(differences, [y] * len(differences), s=14, color="#4c72b0", alpha=0.6, zorder=2)
        if not pd.isna(row["ci_low"]):
            ax.errorbar(row["mean_difference"], y, xerr=[[row["mean_difference"] - row["ci_low"]],
                                                         [row["ci_high"] - row["mean_difference"]]],
                        fmt="D", color="#c44e52", capsize=4, zorder=3)
    ax.axvline(0.0, color="#555", lw=1, ls="--")
    ax.set_yticks(range(len(shown)), [f"{r.setting} × {r.libconf}: {r.variant_b} − {r.variant_a}"
                                      for r in shown.itertuples()])
    ax.invert_yaxis()
    ax.set_xlabel(f"{shown['metric'].iloc[0]}, B − A per replicate (dots) and mean with 95 % interval")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


# --- the page -------------------------------------------------------------------------

