"""The report: one self-contained HTML file, read top to bottom, and its figures.

Verdicts first (which cells reproduce bit for bit, from which epoch the others part),
then which source matters and by how much (attribution), every run's accuracy, where
runs disagree, and what determinism costs. Figures are PNG files (registered with
Snakemake's `report()`) and inlined as base64, so the HTML travels alone. Every
user-provided string is HTML-escaped. No timestamps: the same results give the same
bytes.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from reprogrid import rngtrace, stats
from reprogrid.compare import Cell, Comparison, primary_metric
from reprogrid.records import write_atomically

FIGURES = ("attribution", "accuracy", "disagreement", "cost")
HEATMAP_RUNS_PER_CELL = 10  # bounds the heatmap's cost on large grids
MAX_INCHES = 18  # figures of large grids stay readable on a page (and fast to draw)
STYLE = """
body{font-family:system-ui,sans-serif;max-width:75rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:.2rem .45rem}
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.yes{background:#e3f6e3}.violated{background:#f6c6c6;font-weight:600}.warn{background:#fff2cc}figure{margin:1.2rem 0}
figcaption{color:#555;font-size:.9rem;max-width:60rem}img{max-width:100%}.muted{color:#666}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _number(value, digits: int = 4) -> str:
    return "" if _missing(value) else f"{value:.{digits}g}"


def _cell(value) -> str:
    if _missing(value):
        return "<td></td>"
    if isinstance(value, (bool, np.bool_)):
        return f'<td class="{"yes" if value else "no"}">{str(bool(value)).lower()}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{value}</td>'
    return f"<td>{_e(value)}</td>"


def _table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    columns = columns or list(frame.columns)
    header = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row[c]) for c in columns) + "</tr>" for _, row in frame.iterrows())
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def verdict(row) -> tuple[str, str]:
    """(text, css class) of one cell's verdict, prediction against observation."""
    observed = row["bitwise_reproducible"]
    if _missing(observed):
        return "one run: cannot tell", ""
    expected = bool(row["expect_bitwise"])
    bound = row.get("divergence_rate_upper95")
    streak = "" if _missing(bound) else (f" ({row['runs']} of {row['runs']} identical: a further run could still "
                                         f"diverge up to {bound:.0%} of the time, 95% bound)")
    if observed and expected:
        return f"bitwise reproducible, as predicted{streak}", "yes"
    if not observed and not expected:  # the expected difference: nothing to flag
        return f"runs differ ({row['distinct_weights']} distinct weights), as predicted", ""
    if observed:
        return f"bitwise reproducible although a source varies (it does not reach the weights){streak}", "warn"
    return "NOT reproducible although predicted bitwise: a violated prediction", "violated"


def _cell_name(row) -> str:
    return f"<b>{_e(row['setting'])} × {_e(row['libconf'])}</b>"


def lessons(summary: pd.DataFrame) -> list[str]:
    """Plain sentences a newcomer can read off the grid."""
    out = []
    reproducible = summary[summary["bitwise_reproducible"] == True]  # noqa: E712 (None-safe)
    if not reproducible.empty:
        names = ", ".join(_cell_name(row) for _, row in reproducible.iterrows())
        out.append(f"Bitwise reproducible: {names}: every replicate ends with identical weights and predictions.")
    for _, row in summary[summary["bitwise_reproducible"] == False].iterrows():  # noqa: E712
        spread = f"{row['distinct_weights']} distinct final weights in {row['runs']} runs"
        if row["varied_sources"]:
            out.append(f"{_cell_name(row)}: varying {_e(row['varied_sources'])} gives {spread}.")
        elif not row["expect_bitwise"]:  # the cause is the condition of the prediction that failed
            unseeded = [g for g in str(row.get("rng_unseeded") or "").split(",") if g]
            cause = (f"leaves {_and([_e(rngtrace.NAMES[g]) for g in unseeded])} unseeded, and the runs drew from it"
                     if unseeded else "does not make the kernels deterministic")
            out.append(f"{_cell_name(row)}: every source is fixed, but the library configuration {cause}: {spread}.")
    for setting, rows in reproducible.groupby("setting", sort=False):
        libconfs = list(rows["libconf"])
        for i, a in enumerate(libconfs):
            same = set(str(rows.iloc[i]["same_weights_as"]).split(";"))
            for b in libconfs[i + 1:]:
                if b not in same:
                    out.append(f"<b>{_e(setting)}</b>: {_e(a)} and {_e(b)} draw exactly the same seeds but end "
                               "with different weights: the library configuration alone changes the bits.")
    for _, row in summary.iterrows():
        text, css = verdict(row)
        if css in ("warn", "violated"):
            out.append(f"{_cell_name(row)}: {_e(text)}.")
    out += [sentence for _, row in summary.iterrows() if (sentence := unused_in_words(row))]
    return out + [sentence for _, row in summary.iterrows() if (sentence := drawn_in_words(row))]


def unused_in_words(row) -> str | None:
    """What the cell's setting or library configuration asks for that never reached its runs."""
    parts = []
    unused = [s for s in str(row.get("unused_sources") or "").split(",") if s]
    if unused:
        one = len(unused) == 1
        parts.append(f"{_and([f'`{_e(s)}`' for s in unused])} {'changes' if one else 'change'} from run to run, but "
                     f"the runs never drew from {'its stream' if one else 'their streams'}: "
                     f"{'it' if one else 'they'} cannot make them differ")
    unreached = [k for k in str(row.get("library_unreached") or "").split(",") if k]
    if "num_workers" in unreached:
        parts.append(f"the num_workers of {_e(row['libconf'])} did not reach the runs: no run.loader worker started "
                     "(the training's loaders are its own), so its weights do not measure it")
    return f"{_cell_name(row)}: {'; '.join(parts)}." if parts else None


def drawn_in_words(row) -> str | None:
    """What the cell's training drew from, what its library configuration seeded, and
    what its loader workers duplicated, in a sentence (from the RNG trace)."""
    drawn = [g for g in str(row.get("rng_train") or "").split(",") if g]
    if not drawn:
        return None
    counts = dict(item.split(":") for item in str(row.get("rng_train_epochs") or "").split(",") if ":" in item)
    coverage = {g: counts.get(g, "?/?").split("/") for g in drawn}
    if all(k == n for k, n in coverage.values()):
        what = f"{_and([_e(rngtrace.NAMES[g]) for g in drawn])}, in every epoch"
    else:
        what = _and([f"{_e(rngtrace.NAMES[g])} in {k} of {n} epochs" for g, (k, n) in coverage.items()])
    text = f"{_cell_name(row)}: training drew from {what}"
    unseeded = [g for g in str(row.get("rng_unseeded") or "").split(",") if g]
    entropy = [g for g in str(row.get("rng_os_entropy") or "").split(",") if g and g not in unseeded]
    libconf = _e(row["libconf"])
    differ = "so runs differ" if row["bitwise_reproducible"] is False else "so runs may differ"
    if unseeded:
        text += f"; {libconf} leaves {_and([_e(rngtrace.NAMES[g]) for g in unseeded])} unseeded, {differ}"
    if entropy:  # seeded, but with a seed the setting draws from OS entropy
        text += (f"; {_and([_e(rngtrace.NAMES[g]) for g in entropy])} {'is' if len(entropy) == 1 else 'are'} "
                 f"seeded with a seed drawn from OS entropy (its source is unseeded in {_e(row['setting'])}), {differ}")
    if not unseeded and not entropy:
        text += f"; {libconf} seeds {'it' if len(drawn) == 1 else 'them all'}"
    duplicated = [g for g in str(row.get("worker_rng_duplicated") or "").split(",") if g]
    if duplicated:
        text += (f". Its data-loader workers started {_and([_e(rngtrace.NAMES[g]) for g in duplicated])} in one "
                 "same state: every worker draws the same \"random\" numbers (pytorch#5059)")
    return text + "."


def where_they_part(divergences: pd.DataFrame) -> list[str]:
    """One sentence per localised pair (divergence.csv): where the two runs part and why."""
    out = []
    for _, row in divergences.iterrows():
        if not row["diverged"]:
            continue
        where = f"epoch {row['epoch']}" if row["epoch"] == 0 or _missing(row["step"]) else \
            f"epoch {row['epoch']}, step {row['step']}, {row['phase']}"
        op = f" at <code>{_e(row['op'])}</code>" + (f" in {_e(row['module'])}" if not _missing(row["module"]) else "") \
            if not _missing(row["op"]) else ""
        out.append(f"{_cell_name(row)}: {_e(row['run_a'])} and {_e(row['run_b'])} part at {where}{op}: "
                   f"<b>{_e(row['cause'] or 'unknown')}</b>. {_e(row['detail'])}.")
    return out


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- figures --------------------------------------------------------------------------

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
    labels = [f"{s}  ({lc})" for s, lc in zip(attribution["source"], attribution["libconf"])]
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
    ax.set_yticks(range(len(cells)), [f"{c.first.setting} × {c.first.libconf}" for c in cells],
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
    names = [f"{c.first.setting} × {c.first.libconf}" for c in cells]
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
    ax.barh(list(libconfs["libconf"]), libconfs["relative_to_reference"], color="#55a868")
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
    return paths


# --- the page -------------------------------------------------------------------------

def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _verdict_table(summary: pd.DataFrame) -> str:
    rows = []
    for _, row in summary.iterrows():
        text, css = verdict(row)
        std, low, high = row["test_accuracy_std"], row["test_accuracy_std_ci_low"], row["test_accuracy_std_ci_high"]
        if not _missing(row.get("test_rmse_mean")):
            spread = f"RMSE {_number(row['test_rmse_mean'])} ± {_number(row['test_rmse_std'], 3)}"
        elif _missing(row["test_accuracy_mean"]):
            spread = f"loss {_number(row['test_loss_mean'])} ± {_number(row['test_loss_std'])}"
        else:
            interval = f" [{_number(low, 3)}, {_number(high, 3)}]" if not _missing(low) else ""
            spread = f"{_number(row['test_accuracy_mean'])} ± {_number(std, 3)}{interval}"
        rows.append(
            f"<tr><td>{_e(row['setting'])}</td><td>{_e(row['libconf'])}</td><td class='num'>{row['runs']}</td>"
            f"<td>{'bitwise' if row['expect_bitwise'] else '—'}</td><td class='{css}'>{_e(text)}</td>"
            f"<td class='num'>{'' if _missing(row['first_divergent_epoch']) else row['first_divergent_epoch']}</td>"
            f"<td class='num'>{spread}</td><td class='num'>{_number(row['disagreement_mean'], 3)}</td></tr>")
    header = ("<tr><th>setting</th><th>library configuration</th><th>runs</th><th>predicted</th><th>observed</th>"
              "<th>first divergent epoch</th><th>test accuracy: mean ± SD [95% CI of SD]</th>"
              "<th>disagreement</th></tr>")
    return f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"


def _versus_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    metric = frame["metric"].iloc[0]
    rows = []
    for _, row in frame[frame["metric"] == metric].iterrows():
        css = "yes" if row["verdict"] in ("A better", "B better") else ""
        difference = "" if _missing(row["ci_low"]) else (
            f"{row['mean_difference']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]")
        share = f"{row['p_a_better']:.2f}" + ("" if _missing(row["p_ci_low"]) else
                                              f" [{row['p_ci_low']:.2f}, {row['p_ci_high']:.2f}]")
        rows.append(f"<tr><td>{_e(row['setting'])}</td><td>{_e(row['a_libconf'])}</td><td>{_e(row['b_libconf'])}</td>"
                    f"<td class='num'>{row['runs_a']}</td><td class='num'>{difference}</td>"
                    f"<td class='num'>{share}</td><td class='{css}'>{_e(row['verdict'])}</td>"
                    f"<td class='num'>{'' if _missing(row['seeds_needed']) else row['seeds_needed']}</td></tr>")
    header = (f"<tr><th>setting</th><th>A</th><th>B</th><th>runs</th><th>{_e(metric)}: A − B [95% CI]</th>"
              "<th>P(A better) [95% CI]</th><th>verdict</th><th>seeds for the effect size</th></tr>")
    count = int(frame[frame["metric"] == metric]["comparisons"].iloc[0])
    note = (f"<p class='muted'>{count} comparison{'s' if count != 1 else ''} of {_e(metric)}: at 95 % each, about "
            f"{count * 0.05:.1f} of them would read <i>better</i> by chance alone where nothing differs.</p>")
    return f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>{note}"


def render_report(title: str, comparison: Comparison, figures: dict[str, Path]) -> str:
    summary = comparison.summary.astype(object).where(comparison.summary.notna(), None)
    attribution = comparison.attribution.astype(object).where(comparison.attribution.notna(), None)
    runs = int(summary["runs"].sum())
    lesson_items = "".join(f"<li>{item}</li>" for item in lessons(summary) + where_they_part(comparison.divergences))
    lesson_items = lesson_items or "<li>none</li>"
    attribution_table = _table(attribution, ["libconf", "source", "setting", "runs", "test_accuracy_std", "std_ratio",
                                             "std_ratio_ci_low", "std_ratio_ci_high", "disagreement_mean",
                                             "disagreement_ratio", "disagreement_ratio_ci_low",
                                             "disagreement_ratio_ci_high"]) if not attribution.empty else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{runs} runs in {len(summary)} cells. A cell is one <i>seed setting</i> (which sources of randomness
are fixed, varied or left unseeded) under one <i>library configuration</i> (threads, dtype,
deterministic algorithms, which global generators are seeded); its runs are replicates. A cell is
<i>bitwise reproducible</i> when every replicate ends with identical weights and identical test
predictions.</p>

<h2>1. Verdicts</h2>
{_verdict_table(summary)}
<p class="muted">First divergent epoch: the earliest epoch after which two replicates' weights differ
(0: their initial weights already differ). The interval of an SD is the chi-square interval
(exact at any number of runs for normally spread values).</p>
<h3>What this grid shows</h3>
<ul>{lesson_items}</ul>

<h3>How many seeds a claim needs</h3>
<p class="muted">Per cell: the smallest difference its runs would detect against a rival configuration that
spreads alike, and the runs per arm needed to detect the configured effect size, by the test the verdicts
below are given by (two-sided t-test, α = 0.05, power 0.8; after Colas, Sigaud &amp; Oudeyer 2018). A cell
without seed noise gets neither: its runs are one observation. All metrics: power.csv.</p>
{_table(comparison.power[comparison.power["metric"] == comparison.power["metric"].iloc[0]])
 if not comparison.power.empty else ""}

<h3>Is one library configuration better than another, beyond seed noise?</h3>
<p class="muted">Two library configurations under one seed setting, replicate by replicate on the same seeds:
the mean difference with the 95% interval of the paired t-test, whose verdict is "within seed noise" when
the interval includes 0; P(A better), the share of replicates on which A wins (ties half), with its exact
(Clopper–Pearson) interval. An arm whose runs are bitwise identical is one observation, however often it
ran: no verdict. Two seed settings are not compared: that says nothing about a change. All metrics:
versus.csv.</p>
{_versus_table(comparison.versus)}

<h2>2. Which source matters, and by how much</h2>
<p>Each cell that varies exactly one source, set against the cell that varies all of them under the
same library configuration (Summers &amp; Dinneen, ICML 2021): a ratio of 1 means that source alone
makes runs as different as all sources together. "implementation" rows set a library configuration's
runs against the same seeds under the reference configuration ({_e(comparison.reference_libconf)}),
replicate by replicate, in the all-sources setting where both have it (independent pairs, whose spread
carries the uncertainty), else in the deterministic control, which is one pair however often it ran
(`runs` counts distinct pairs): their SD is the one those paired differences imply (√(mean d² / 2)),
their disagreement that of the pairs, each set against the reference's own spread. Intervals: F for a
source's SD ratio; a bootstrap over runs (or replicate pairs) for the others, from
{stats.BOOTSTRAP_MIN_RUNS} runs a cell (below that it undercovers, so the ratio alone is given).</p>
{attribution_table}
<figure>{_image(figures["attribution"], "attribution chart")}
<figcaption>Accuracy SD and pairwise disagreement of each single-source cell, relative to the
all-sources cell, with the 95% intervals of the table; the dashed line is "as much as all sources".</figcaption></figure>

<h2>3. Every run</h2>
<figure>{_image(figures["accuracy"], "accuracy per run and cell")}
<figcaption>Test accuracy (RMSE for regression, test loss for the VAE) of every run, one row per cell.</figcaption></figure>

<h2>4. Where runs disagree</h2>
<figure>{_image(figures["disagreement"], "pairwise disagreement heatmap")}
<figcaption>Mean share of test points predicted differently between runs of two cells (diagonal:
between distinct runs of one cell), over at most {HEATMAP_RUNS_PER_CELL} runs per cell.</figcaption></figure>

<h2>5. Cost of determinism</h2>
{_table(comparison.libconfs)}
<figure>{_image(figures["cost"], "cost of determinism")}
<figcaption>Median training time of each library configuration relative to
{_e(comparison.reference_libconf)}.</figcaption></figure>

<h2>6. All statistics</h2>
<details><summary>summary.csv, one row per cell</summary>{_table(summary)}</details>
</body></html>
"""
