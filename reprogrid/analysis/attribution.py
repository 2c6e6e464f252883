"""attribution.csv: which source matters, each single-source cell set against the cell that
varies all of them (Summers & Dinneen, ICML 2021), and what a library configuration
alone changes on the same seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprogrid.analysis import stats
from reprogrid.analysis.cells import Cell, _mean
from reprogrid.analysis.runs import RunResult

ATTRIBUTION_COLUMNS = [
    "libconf", "source", "setting", "reference_setting", "runs", "test_accuracy_std",
    "std_ratio", "std_ratio_ci_low", "std_ratio_ci_high", "disagreement_mean",
    "disagreement_ratio", "disagreement_ratio_ci_low", "disagreement_ratio_ci_high",
]

def all_sources_setting(cells: dict[tuple[str, str], Cell], libconf: str) -> str | None:
    """The setting that varies the most sources (at least two) under `libconf`: what each
    single source is set against, as in Summers & Dinneen's "all sources" row (which,
    like theirs, need not include the one-ULP nudge)."""
    varied = {s: c.first.varied_sources.split(",") for (s, lc), c in cells.items()
              if lc == libconf and c.first.varied_sources}
    candidates = [s for s, v in varied.items() if len(v) >= 2]
    return max(candidates, key=lambda s: len(varied[s]), default=None)


def attribution_rows(cells: dict[tuple[str, str], Cell], pairs: pd.DataFrame, reference_libconf: str) -> list[dict]:
    """Each single-source cell against the all-sources cell of its library configuration
    (accuracy SD and disagreement, as ratios with bootstrap intervals); and each library
    configuration against the reference one on the same seeds: the implementation's own
    effect, on the same scale."""
    rows = []
    libconfs = list(dict.fromkeys(lc for _, lc in cells))
    references = {lc: all_sources_setting(cells, lc) for lc in libconfs}
    for libconf in libconfs:
        reference_setting = references[libconf]
        if reference_setting is not None:
            everything = cells[(reference_setting, libconf)]
            for (setting, lc), cell in cells.items():
                sources = cell.first.varied_sources.split(",")
                if lc == libconf and cell.first.varied_sources and len(sources) == 1:
                    rows.append(_attribution_row(libconf, sources[0], setting, cell, everything, reference_setting))
        scale_setting = references.get(reference_libconf)  # all sources, under the reference configuration
        if libconf != reference_libconf and scale_setting is not None:
            arm, reference_arm = _implementation_arms(cells, libconf, reference_libconf, references)
            if arm is not None:
                rows.append(_implementation_row(libconf, arm, reference_arm, cells[(scale_setting, reference_libconf)],
                                                pairs, reference_libconf))
    return rows


def _implementation_arms(cells, libconf: str, reference_libconf: str, references: dict) -> tuple:
    """The two cells that show what `libconf` alone changes: one setting under it and under
    the reference configuration, replicate by replicate on the same seeds. The all-sources
    setting where both have it (independent runs: the spread carries its uncertainty), else
    the deterministic control (one pair of runs, however often it ran)."""
    setting = references.get(reference_libconf)
    if setting is None or (setting, libconf) not in cells:
        setting = next((s for (s, lc), c in cells.items() if lc == libconf and not c.first.varied_sources
                        and (s, reference_libconf) in cells), None)
    if setting is None:
        return None, None
    return cells[(setting, libconf)], cells[(setting, reference_libconf)]


def primary_metric(run: RunResult) -> str:
    """What a run is judged by: accuracy, else RMSE (regression), else test loss (VAE)."""
    return next(m for m in ("test_accuracy", "test_rmse", "test_loss") if m in run.metrics)


def _accuracy_or_loss(cell: Cell) -> np.ndarray:
    key = primary_metric(cell.first)
    return np.array([r.metrics[key] for r in cell.runs])


def _attribution_row(libconf, source, setting, cell: Cell, everything: Cell, reference_setting) -> dict:
    values, all_values = _accuracy_or_loss(cell), _accuracy_or_loss(everything)
    std_ratio = stats.ratio_interval(values, all_values)
    disagreement_ratio = (None, None, None)
    if cell.disagreement is not None and everything.disagreement is not None:
        disagreement_ratio = stats.bootstrap_ratio(
            stats.mean_pairwise(stats.square(cell.disagreement, len(cell.runs))), len(cell.runs),
            stats.mean_pairwise(stats.square(everything.disagreement, len(everything.runs))), len(everything.runs),
        )
    return _row(libconf, source, setting, reference_setting, len(cell.runs), stats.std(values),
                std_ratio, _mean(cell.disagreement), disagreement_ratio)


def _implementation_row(libconf, arm: Cell, reference_arm: Cell, everything: Cell, pairs, reference_libconf) -> dict:
    """One setting's runs under this library configuration against the same replicates
    (same seeds) under the reference one: the spread the implementation alone makes, as
    the SD implied by the paired differences (stats.paired_std) and as the mean
    disagreement of those pairs, each set against all sources' under the reference
    configuration (`everything`). `runs` counts the distinct pairs: a deterministic
    setting's replicates are one pair, repeated, and get no interval."""
    key = primary_metric(arm.first)
    reference_runs = {r.replicate: r for r in reference_arm.runs}
    matched = [(r, reference_runs[r.replicate]) for r in arm.runs if r.replicate in reference_runs]
    distinct = {(a.weights, b.weights) for a, b in matched}
    if len(distinct) < len(matched):  # replicates that repeat one another: count each pair once
        matched = list({(a.weights, b.weights): (a, b) for a, b in matched}.values())
    differences = np.array([a.metrics[key] - b.metrics[key] for a, b in matched])
    scale = _accuracy_or_loss(everything)
    std_ratio = stats.bootstrap_ratio(stats.resampled_paired_std(differences), differences.size,
                                      stats.resampled_std(scale), scale.size)
    setting = arm.first.setting
    mask = ((pairs["kind"] == "libconfs") & (pairs["setting"] == setting)
            & (((pairs["libconf_a"] == libconf) & (pairs["libconf_b"] == reference_libconf))
               | ((pairs["libconf_a"] == reference_libconf) & (pairs["libconf_b"] == libconf))))
    across = pairs.loc[mask, "disagreement"].dropna().to_numpy(dtype=np.float64)[:len(matched)]
    disagreement_ratio = (None, None, None)
    if everything.disagreement is not None and across.size:
        disagreement_ratio = stats.bootstrap_ratio(
            lambda i: across[i].mean(axis=1), across.size,
            stats.mean_pairwise(stats.square(everything.disagreement, len(everything.runs))), len(everything.runs),
        )
    return _row(libconf, f"implementation: {libconf} vs {reference_libconf}", setting, everything.first.setting,
                differences.size, stats.paired_std(differences), std_ratio,
                float(across.mean()) if across.size else None, disagreement_ratio)


def _row(libconf, source, setting, reference_setting, runs, std, std_ratio, disagreement, disagreement_ratio) -> dict:
    return {
        "libconf": libconf, "source": source, "setting": setting, "reference_setting": reference_setting,
        "runs": runs, "test_accuracy_std": std,
        "std_ratio": std_ratio[0], "std_ratio_ci_low": std_ratio[1], "std_ratio_ci_high": std_ratio[2],
        "disagreement_mean": disagreement, "disagreement_ratio": disagreement_ratio[0],
        "disagreement_ratio_ci_low": disagreement_ratio[1], "disagreement_ratio_ci_high": disagreement_ratio[2],
    }


