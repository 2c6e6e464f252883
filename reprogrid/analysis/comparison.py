"""Compare the runs of a grid: one row per cell (summary.csv), one per pair of runs
(pairs.csv), the attribution of variability to sources (attribution.csv) and the cost
of each library configuration (libconfs.csv).

Works only on what the train and evaluate steps wrote (train.json, eval.json,
predictions.npz, weights.npy); no torch, no MLflow. Metrics are recomputed from the
predictions (reprogrid.analysis.recompute), never taken on trust from eval.json. The statistics are in
`reprogrid.analysis.stats`; metrics that do not apply (no classes for the VAE) stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reprogrid.analysis import stats
from reprogrid.analysis.attribution import ATTRIBUTION_COLUMNS, attribution_rows
from reprogrid.analysis.cells import Cell, libconf_pairs
from reprogrid.analysis.runs import RunResult
from reprogrid.analysis.summary import SUMMARY_COLUMNS, cell_row
from reprogrid.record.sealed import write_atomically

PAIR_COLUMNS = [
    "kind", "setting", "libconf_a", "libconf_b", "run_a", "run_b", "same_init_weights",
    "same_weights", "same_predictions", "disagreement", "logit_correlation", "ensemble_gain",
    "weight_distance", "first_divergent_epoch", "logit_spearman", "ensemble_ce_gain", "first_divergent_step",
]
LIBCONF_COLUMNS = ["libconf", "runs", "train_seconds_median", "relative_to_reference", "reference"]
INTEGER_COLUMNS = ["runs", "distinct_weights", "distinct_predictions", "first_divergent_epoch", "first_divergent_step"]



def group_cells(runs: list[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    cells: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        cells.setdefault((run.setting, run.libconf), []).append(run)
    return cells


@dataclass
class Comparison:
    summary: pd.DataFrame
    pairs: pd.DataFrame
    attribution: pd.DataFrame
    libconfs: pd.DataFrame
    cells: dict[tuple[str, str], Cell]
    reference_libconf: str
    divergences: pd.DataFrame = field(default_factory=pd.DataFrame)  # divergence.csv, when localised
    power: pd.DataFrame = field(default_factory=pd.DataFrame)  # power.csv: how many seeds a claim needs
    versus: pd.DataFrame = field(default_factory=pd.DataFrame)  # versus.csv: is A better than B?
    variants: pd.DataFrame = field(default_factory=pd.DataFrame)  # variants.csv: is a change real?


VERSUS_COLUMNS = ["setting", "a_libconf", "b_libconf", "metric", "runs_a", "runs_b", "distinct_a", "distinct_b",
                  "paired", "mean_difference", "ci_low", "ci_high", "p_a_better", "p_ci_low", "p_ci_high",
                  "verdict", "seeds_needed", "comparisons"]
METRICS = ("test_accuracy", "test_loss", "test_rmse")


def versus_rows(cells: dict[tuple[str, str], Cell], effect_sizes: dict[str, float]) -> list[dict]:
    """Every two library configurations under one seed setting, per metric: is A better
    than B beyond seed noise (reprogrid.analysis.versus)? Comparisons between two seed settings
    say nothing about a change, so there are none. `comparisons`: how many the table
    makes per metric (at 95 % each, one in twenty of arms that do not differ reads
    `better` by chance)."""
    from reprogrid.analysis import versus

    rows = []
    keys = list(cells)
    for i, (setting, libconf_a) in enumerate(keys):
        for setting_b, libconf_b in keys[i + 1:]:
            if setting_b != setting:
                continue
            a, b = cells[(setting, libconf_a)], cells[(setting, libconf_b)]
            # one setting, two library configurations: the same seeds, replicate by replicate
            paired = [r.replicate for r in a.runs] == [r.replicate for r in b.runs]
            for metric in METRICS:
                if metric not in a.first.metrics or metric not in b.first.metrics:
                    continue
                found = versus.compare_arms([r.metrics[metric] for r in a.runs], [r.metrics[metric] for r in b.runs],
                                            paired, metric, len({r.weights for r in a.runs}),
                                            len({r.weights for r in b.runs}), effect_sizes[metric])
                rows.append({"setting": setting, "a_libconf": libconf_a, "b_libconf": libconf_b, "metric": metric}
                            | found)
    for row in rows:
        row["comparisons"] = sum(other["metric"] == row["metric"] for other in rows)
    return rows


POWER_COLUMNS = ["setting", "libconf", "metric", "runs", "sd", "effect_size", "min_detectable_effect",
                 "seeds_needed"]
# the difference a user wants to tell from seed noise, per metric (config key effect_size)
DEFAULT_EFFECT_SIZES = {"test_accuracy": 0.005, "test_loss": 0.01, "test_rmse": 0.01}


def power_rows(cells: dict[tuple[str, str], Cell], effect_sizes: dict[str, float]) -> list[dict]:
    """Per cell and metric: the smallest difference its number of runs detects, and the
    runs per arm needed to detect the configured effect size, against a rival arm that
    spreads alike, by the test versus gives its verdicts by (reprogrid.analysis.power). A cell
    without seed noise (SD 0) gets neither: no number of its runs makes a test."""
    from reprogrid.analysis import power

    rows = []
    for (setting, libconf), cell in cells.items():
        for metric in METRICS:
            if metric not in cell.first.metrics:
                continue
            values = np.array([r.metrics[metric] for r in cell.runs], dtype=np.float64)
            sd = stats.std(values) if len(values) > 1 else None
            effect = effect_sizes[metric]
            rows.append({"setting": setting, "libconf": libconf, "metric": metric, "runs": len(values), "sd": sd,
                         "effect_size": effect, "min_detectable_effect": power.min_detectable_effect(sd, len(values)),
                         "seeds_needed": power.seeds_needed(effect, sd)})
    return rows


def compare_runs(runs: list[RunResult], reference_libconf: str | None = None,
                 effect_sizes: dict[str, float] | None = None) -> Comparison:
    """All tables for runs ordered cell by cell (cells keep the order their runs come in).
    In a grid with variants, each variant's runs are a grid of their own, compared as one
    (its rows carry a `variant` column, its cells the variant as a third key), and the
    variants are compared with each other run for run (variants.csv)."""
    from reprogrid.analysis.variant_pairs import VARIANT_COLUMNS, variant_rows

    effects = DEFAULT_EFFECT_SIZES | (effect_sizes or {})
    variants = list(dict.fromkeys(run.variant for run in runs))
    if variants == [""]:
        return _compare_grid(runs, reference_libconf, effects)
    parts = {name: _compare_grid([r for r in runs if r.variant == name], reference_libconf, effects)
             for name in variants}

    def joined(table: str) -> pd.DataFrame:
        frames = [getattr(part, table).assign(variant=name) for name, part in parts.items()]
        frame = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
        return frame[["variant", *[c for c in frame.columns if c != "variant"]]]

    first = next(iter(parts.values()))
    return Comparison(
        summary=joined("summary"), pairs=joined("pairs"), attribution=joined("attribution"),
        libconfs=joined("libconfs"),
        cells={(*key, name): cell for name, part in parts.items() for key, cell in part.cells.items()},
        reference_libconf=first.reference_libconf, power=joined("power"), versus=joined("versus"),
        variants=_typed(pd.DataFrame(variant_rows(runs, effects), columns=VARIANT_COLUMNS)).astype(
            {"seeds_needed": "Int64", "seeds_to_tell_observed": "Int64"}),
    )


def _compare_grid(runs: list[RunResult], reference_libconf: str | None, effects: dict[str, float]) -> Comparison:
    """compare_runs of the runs of one variant (or of a grid without variants)."""
    from reprogrid.analysis.variant_pairs import VARIANT_COLUMNS

    cells = {key: Cell.of(members) for key, members in group_cells(runs).items()}
    by_libconf: dict[str, list[RunResult]] = {}
    for run in runs:
        by_libconf.setdefault(run.libconf, []).append(run)
    reference = reference_libconf if reference_libconf in by_libconf else next(iter(by_libconf))
    reference_seconds = float(np.median([r.train_seconds for r in by_libconf[reference]]))
    rows = [cell_row(cell, by_libconf, reference_seconds) for cell in cells.values()]
    pair_rows = [row for cell in cells.values() for row in cell.pair_rows()] + libconf_pairs(runs)
    libconfs = [
        {"libconf": name, "runs": len(members),
         "train_seconds_median": float(np.median([r.train_seconds for r in members])),
         "relative_to_reference": float(np.median([r.train_seconds for r in members])) / reference_seconds,
         "reference": reference}
        for name, members in by_libconf.items()
    ]
    pairs = _typed(pd.DataFrame(pair_rows, columns=PAIR_COLUMNS))
    return Comparison(
        summary=_typed(pd.DataFrame(rows, columns=SUMMARY_COLUMNS)),
        pairs=pairs,
        attribution=pd.DataFrame(attribution_rows(cells, pairs, reference), columns=ATTRIBUTION_COLUMNS),
        libconfs=pd.DataFrame(libconfs, columns=LIBCONF_COLUMNS),
        cells=cells,
        reference_libconf=reference,
        power=pd.DataFrame(power_rows(cells, effects), columns=POWER_COLUMNS).astype({"seeds_needed": "Int64"}),
        versus=pd.DataFrame(versus_rows(cells, effects), columns=VERSUS_COLUMNS).astype(
            {"seeds_needed": "Int64", "distinct_a": "Int64", "distinct_b": "Int64"}),
        variants=pd.DataFrame(columns=VARIANT_COLUMNS),
    )


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns stay integers where some values are missing (not 1.0 and NaN)."""
    for column in INTEGER_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    out = frame.copy()
    for column in out.columns:  # lowercase booleans, like the MLflow tags
        values = out[column]
        first = values.dropna().iloc[0] if values.notna().any() else None
        if isinstance(first, (bool, np.bool_)):
            out[column] = values.map({True: "true", False: "false"})
    write_atomically(path, lambda partial: out.to_csv(partial, index=False))
