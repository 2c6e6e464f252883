"""The report: one self-contained HTML file, read top to bottom.

Verdicts first (which cells reproduce bit for bit, from which epoch the others part),
then which source matters and by how much (attribution), every run's accuracy, where
runs disagree, and what determinism costs. Rendered from a Jinja2 template
(reprogrid/report/templates/report.html.j2) with autoescaping on: every value reaches
the page escaped, and only the sentences reprogrid.report.lessons builds (as Markup,
with their own values escaped) carry markup. Figures (reprogrid.report.figures) are
inlined as base64, so the HTML travels alone. No timestamps: the same results give the
same bytes.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from reprogrid.analysis import stats
from reprogrid.analysis.comparison import Comparison
from reprogrid.report.figures import HEATMAP_RUNS_PER_CELL
from reprogrid.report.lessons import cell_details, lessons, missing, verdict

ATTRIBUTION_SHOWN = ["libconf", "source", "setting", "runs", "test_accuracy_std", "std_ratio", "std_ratio_ci_low",
                     "std_ratio_ci_high", "disagreement_mean", "disagreement_ratio", "disagreement_ratio_ci_low",
                     "disagreement_ratio_ci_high"]
ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("reprogrid.report", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def number(value, digits: int = 4) -> str:
    return "" if missing(value) else f"{value:.{digits}g}"


def cell(value) -> tuple[str, str]:
    """(text, css class) of a table cell."""
    if missing(value):
        return "", ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower(), "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}", "num"
    if isinstance(value, (int, np.integer)):
        return str(value), "num"
    return str(value), ""


def table(frame: pd.DataFrame, columns: list[str] | None = None) -> dict:
    columns = columns or list(frame.columns)
    return {"columns": columns, "rows": [[cell(row[c]) for c in columns] for _, row in frame.iterrows()]}


def verdict_table(summary: pd.DataFrame) -> dict:
    rows = []
    for _, row in summary.iterrows():
        text, css = verdict(row)
        std, low, high = row["test_accuracy_std"], row["test_accuracy_std_ci_low"], row["test_accuracy_std_ci_high"]
        if not missing(row.get("test_rmse_mean")):
            spread = f"RMSE {number(row['test_rmse_mean'])} ± {number(row['test_rmse_std'], 3)}"
        elif missing(row["test_accuracy_mean"]):
            spread = f"loss {number(row['test_loss_mean'])} ± {number(row['test_loss_std'])}"
        else:
            interval = f" [{number(low, 3)}, {number(high, 3)}]" if not missing(low) else ""
            spread = f"{number(row['test_accuracy_mean'])} ± {number(std, 3)}{interval}"
        first = "" if missing(row["first_divergent_epoch"]) else str(row["first_divergent_epoch"])
        libconf = row["libconf"] + (f" × {row['variant']}" if "variant" in row else "")
        rows.append([(row["setting"], ""), (libconf, ""), (str(row["runs"]), "num"),
                     ("bitwise" if row["expect_bitwise"] else "—", ""), (text, css), (first, "num"),
                     (spread, "num"), (number(row["disagreement_mean"], 3), "num")])
    return {"columns": ["setting", "library configuration", "runs", "predicted", "observed", "first divergent epoch",
                        "test accuracy: mean ± SD [95% CI of SD]", "disagreement"], "rows": rows}


def versus_table(frame: pd.DataFrame) -> dict | None:
    if frame.empty:
        return None
    metric = frame["metric"].iloc[0]
    shown = frame[frame["metric"] == metric]
    rows = []
    for _, row in shown.iterrows():
        difference = "" if missing(row["ci_low"]) else (
            f"{row['mean_difference']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]")
        share = f"{row['p_a_better']:.2f}" + ("" if missing(row["p_ci_low"]) else
                                              f" [{row['p_ci_low']:.2f}, {row['p_ci_high']:.2f}]")
        setting = row["setting"] + (f" × {row['variant']}" if "variant" in row else "")
        rows.append([(setting, ""), (row["a_libconf"], ""), (row["b_libconf"], ""), (str(row["runs_a"]), "num"),
                     (difference, "num"), (share, "num"),
                     (row["verdict"], "yes" if row["verdict"] in ("A better", "B better") else ""),
                     ("" if missing(row["seeds_needed"]) else str(row["seeds_needed"]), "num")])
    return {"columns": ["setting", "A", "B", "runs", f"{metric}: A − B [95% CI]", "P(A better) [95% CI]", "verdict",
                        "seeds for the effect size"], "rows": rows, "metric": metric,
            "count": int(shown["comparisons"].iloc[0])}


def variants_table(frame: pd.DataFrame) -> dict | None:
    """variants.csv's rows of its first metric, as the report shows them."""
    if frame.empty:
        return None
    metric = frame["metric"].iloc[0]
    rows = []
    for _, row in frame[frame["metric"] == metric].iterrows():
        difference = f"{row['mean_difference']:+.3g}" + ("" if missing(row["ci_low"]) else
                                                         f" [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]")
        rows.append([(row["setting"], ""), (row["libconf"], ""), (row["variant_a"], ""), (row["variant_b"], ""),
                     (str(row["runs"]), "num"), (difference, "num"), (f"{row['p_a_better']:.2f}", "num"),
                     (row["verdict"], "yes" if row["verdict"] in ("A better", "B better") else ""),
                     ("yes" if row["bitwise_identical"] else "no", ""),
                     ("" if missing(row["seeds_needed"]) else str(row["seeds_needed"]), "num"),
                     ("" if missing(row["seeds_to_tell_observed"]) else str(row["seeds_to_tell_observed"]), "num")])
    return {"columns": ["setting", "library configuration", "A", "B", "runs", f"{metric}: B − A [95% CI]",
                        "P(A better)", "verdict", "B repeats A bit for bit", "seeds for the effect size",
                        "seeds to tell the observed difference"], "rows": rows, "metric": metric}


def image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(title: str, comparison: Comparison, figures: dict[str, Path]) -> str:
    summary = comparison.summary.astype(object).where(comparison.summary.notna(), None)
    attribution = comparison.attribution.astype(object).where(comparison.attribution.notna(), None)
    power = comparison.power
    return ENVIRONMENT.get_template("report.html.j2").render(
        title=title, runs=int(summary["runs"].sum()), cells=len(summary), verdicts=verdict_table(summary),
        lessons=lessons(summary, comparison.divergences),
        cell_details=cell_details(summary, comparison.divergences),
        power=table(power[power["metric"] == power["metric"].iloc[0]]) if not power.empty else None,
        versus=versus_table(comparison.versus), variants=variants_table(comparison.variants),
        attribution=table(attribution, ATTRIBUTION_SHOWN) if not attribution.empty else None,
        libconfs=table(comparison.libconfs), summary=table(summary), reference_libconf=comparison.reference_libconf,
        bootstrap_min_runs=stats.BOOTSTRAP_MIN_RUNS, heatmap_runs=HEATMAP_RUNS_PER_CELL,
        images={name: image(path) for name, path in figures.items()})
