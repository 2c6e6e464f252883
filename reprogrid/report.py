"""The self-contained HTML report: verdicts, what the grid teaches, and a figure.

Every user-provided string is HTML-escaped; figures are inlined as base64 PNG, so the
file can be mailed or logged to MLflow on its own. No timestamps: the same results give
the same bytes.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

from reprogrid.compare import RunResult

STYLE = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f3f3f3}td.num{text-align:right}.yes{background:#e3f6e3}.no{background:#fbe3e3}
.warn{background:#fff2cc}figure{margin:1.5rem 0}figcaption{color:#555;font-size:.9rem}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<td></td>"
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{str(value).lower()}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{_e(value)}</td>"


def verdict(row: pd.Series) -> tuple[str, str]:
    """(text, css class) of one cell's verdict, prediction against observation."""
    observed = row["bitwise_reproducible"]
    if observed is None or pd.isna(observed):
        return "one run: cannot tell", ""
    expected = bool(row["expect_bitwise"])
    if observed and expected:
        return "bitwise reproducible, as predicted", "yes"
    if not observed and not expected:
        return f"runs differ ({row['distinct_weights']} distinct weights), as predicted", "no"
    if observed:
        return "bitwise reproducible although a source varies (it does not reach the weights)", "warn"
    return "NOT reproducible although every source is fixed and seeded", "warn"


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
        elif not row["expect_bitwise"]:
            out.append(
                f"{_cell_name(row)}: every source is fixed, but the library configuration leaves a "
                f"generator the run draws from unseeded: {spread}."
            )
    for setting, rows in reproducible.groupby("setting", sort=False):
        libconfs = list(rows["libconf"])
        for i, a in enumerate(libconfs):
            same = set(rows.iloc[i]["same_weights_as"].split(";"))
            for b in libconfs[i + 1:]:
                if b not in same:
                    out.append(
                        f"<b>{_e(setting)}</b>: {_e(a)} and {_e(b)} draw exactly the same seeds but end "
                        "with different weights: the library configuration alone changes the bits."
                    )
    for _, row in summary.iterrows():
        text, css = verdict(row)
        if css == "warn":
            out.append(f"{_cell_name(row)}: {_e(text)}.")
    return out


def strip_plot(runs: list[RunResult]) -> tuple[str, str]:
    """(base64 PNG, metric name): each run's test accuracy (or test loss, for models without classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "test_accuracy" if all("test_accuracy" in r.metrics for r in runs) else "test_loss"
    cells = list(dict.fromkeys((r.setting, r.libconf) for r in runs))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(cells) + 1.2))
    for row, cell in enumerate(cells):
        values = [r.metrics[metric] for r in runs if (r.setting, r.libconf) == cell]
        ax.scatter(values, [row] * len(values), alpha=0.6, s=28)
    ax.set_yticks(range(len(cells)), [f"{s} × {lc}" for s, lc in cells])
    ax.invert_yaxis()
    ax.set_xlabel(metric.replace("_", " "))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), metric


def render_report(title: str, summary: pd.DataFrame, runs: list[RunResult]) -> str:
    summary = summary.astype(object).where(summary.notna(), None)
    header = "".join(f"<th>{_e(c)}</th>" for c in ["verdict", *summary.columns])
    body = []
    for _, row in summary.iterrows():
        text, css = verdict(row)
        cells = "".join(_cell(row[c]) for c in summary.columns)
        body.append(f'<tr><td class="{css}">{_e(text)}</td>{cells}</tr>')
    lesson_items = "".join(f"<li>{item}</li>" for item in lessons(summary)) or "<li>none</li>"
    image, metric = strip_plot(runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{len(runs)} runs in {len(summary)} cells (seed setting × library configuration).
A cell is <i>bitwise reproducible</i> when all its replicates end with identical weights
and identical test predictions.</p>
<h2>Verdicts</h2>
<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>What this grid shows</h2>
<ul>{lesson_items}</ul>
<figure><img alt="{_e(metric)} per run and cell" src="data:image/png;base64,{image}">
<figcaption>{_e(metric.replace('_', ' '))} of every run, one row per cell.</figcaption></figure>
</body></html>
"""
