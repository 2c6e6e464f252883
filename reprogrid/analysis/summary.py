"""summary.csv: one row per cell: reproducible or not against the prediction, how much its
runs differ, what they drew from, what they never used."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprogrid.analysis import stats
from reprogrid.analysis.cells import Cell, _mean, first_divergent_epoch, first_divergent_step
from reprogrid.analysis.runs import RunResult
from reprogrid.inputs import rngtrace
from reprogrid.training.prediction import (
    cell_expects_bitwise,
)

BEST_OF = (2, 5, 10)
SUMMARY_COLUMNS = [
    # the contract's columns, in its order
    "setting", "libconf", "runs", "expect_bitwise", "distinct_weights",
    "distinct_predictions", "bitwise_reproducible", "test_accuracy_mean",
    "test_accuracy_std", "test_accuracy_min", "test_accuracy_max", "test_loss_mean",
    "test_loss_std", "disagreement_mean", "train_seconds_median",
    # and beyond them
    "test_accuracy_std_ci_low", "test_accuracy_std_ci_high", "test_loss_std_ci_low",
    "test_loss_std_ci_high", "test_loss_min", "test_loss_max", "logit_correlation_mean",
    "ensemble_gain_mean", "weight_distance_mean", "per_class_accuracy_std_mean",
    "per_class_accuracy_std_max", "per_class_gap_max", "independent_errors_std",
    *(f"best_of_{k}_gain" for k in BEST_OF), "first_divergent_epoch",
    "train_seconds_relative", "varied_sources", "same_weights_as", "divergence_rate_upper95",
    # the rest of the paper's metric set
    "logit_spearman_mean", "ensemble_ce_gain_mean",
    # the RNG trace: global generators drawn while training (reprogrid.inputs.rngtrace)
    "rng_train", "rng_train_epochs", "rng_unseeded", "rng_os_entropy", "worker_rng_duplicated",
    # what the runs never used: varied sources whose stream they never drew; knobs that never reached them
    "unused_sources", "library_unreached",
    # a training.command run's: where its replicates part, by optimizer step; what it seeded and drew, in words
    "first_divergent_step", "seeding",
    # regression only
    "test_rmse_mean", "test_rmse_std", "test_rmse_std_ci_low", "test_rmse_std_ci_high",
    "test_rmse_min", "test_rmse_max",
]
def cell_row(cell: Cell, all_runs_by_libconf: dict[str, list[RunResult]], reference_seconds: float | None) -> dict:
    runs, first = cell.runs, cell.first
    n = len(runs)
    frame = pd.DataFrame([r.metrics for r in runs])
    accuracy = frame["test_accuracy"].to_numpy() if "test_accuracy" in frame else None
    loss = frame["test_loss"].to_numpy() if "test_loss" in frame else None
    distinct_weights = len({r.weights for r in runs})
    distinct_predictions = len({r.predictions for r in runs})
    divergences = [first_divergent_epoch(runs[a], runs[b]) for a, b in zip(*stats.pairs(n))]
    divergences = [d for d in divergences if d is not None]
    steps = [first_divergent_step(runs[a], runs[b]) for a, b in zip(*stats.pairs(n))]
    steps = [s for s in steps if s is not None]
    seconds = float(np.median([r.train_seconds for r in runs]))
    row = {
        "setting": first.setting, "libconf": first.libconf, "runs": n,
        "expect_bitwise": cell_expects_bitwise([r.expect_bitwise for r in runs]),
        "distinct_weights": distinct_weights, "distinct_predictions": distinct_predictions,
        "bitwise_reproducible": (distinct_weights == 1 and distinct_predictions == 1) if n > 1 else None,
        "divergence_rate_upper95": divergence_rate_upper95(n) if n > 1 and distinct_weights == 1
        and distinct_predictions == 1 else None,
        "train_seconds_median": seconds,
        "train_seconds_relative": seconds / reference_seconds if reference_seconds else None,
        "disagreement_mean": _mean(cell.disagreement), "logit_correlation_mean": _mean(cell.correlation),
        "ensemble_gain_mean": _mean(cell.ensemble_gain), "weight_distance_mean": _mean(cell.distance),
        "logit_spearman_mean": _mean(cell.spearman), "ensemble_ce_gain_mean": _mean(cell.ensemble_ce_gain),
        "first_divergent_epoch": min(divergences) if divergences else None,
        "first_divergent_step": min(steps) if steps else None,
        "seeding": " | ".join(dict.fromkeys(r.seeding_story for r in runs if r.seeding_story)),
        "varied_sources": first.varied_sources,
        "unused_sources": first.unused_sources,
        "library_unreached": ",".join(dict.fromkeys(k for r in runs for k in r.library_unreached.split(",") if k)),
        "same_weights_as": same_weights_as(all_runs_by_libconf, first.setting, first.libconf),
        **rng_columns(runs),
    }
    if loss is not None:
        row |= _spread("test_loss", loss)
    if accuracy is not None:
        row |= _spread("test_accuracy", accuracy)
    if accuracy is not None and all(r.classifies for r in runs):  # a command may write no predictions
        predicted, labels = cell.predicted(), first.labels
        row |= stats.per_class_spread(predicted, labels)
        row["independent_errors_std"] = stats.independent_errors_std(predicted, labels)
    rmse = frame["test_rmse"].to_numpy() if "test_rmse" in frame else None
    if rmse is not None:
        row |= _spread("test_rmse", rmse)
    # best of k: by accuracy where there are classes, else by lowest RMSE or test loss
    primary = accuracy if accuracy is not None else rmse if rmse is not None else loss
    if primary is not None:  # a command's metrics file may hold none of these
        primary = primary if accuracy is not None else -primary
        row |= {f"best_of_{k}_gain": stats.best_of_k_gain(primary, k) for k in BEST_OF}
    return row


def divergence_rate_upper95(n: int) -> float:
    """n of n runs identical: the largest rate at which a further run could still diverge
    that such a streak would not rule out at 95 % (the rule of three's exact form)."""
    return 1 - 0.05 ** (1 / n)


def rng_columns(runs: list[RunResult]) -> dict:
    """What the cell's runs drew from while training (the union over its runs), in how
    many epochs at least (the minimum over runs, as `generator:k/n`), which of those the
    library configuration leaves unseeded, and which its loader workers duplicated."""
    def union(lists) -> str:
        return ",".join(rngtrace.union(lists))

    drawn = union(r.rng.get("train", []) for r in runs)
    epochs = len(runs[0].fingerprints)  # none for a training.command run: its trace is by steps
    return {
        "rng_train": drawn,
        "rng_train_epochs": ",".join(f"{g}:{min(r.rng_epochs.get(g, 0) for r in runs)}/{epochs}"
                                     for g in drawn.split(",") if g) if epochs else "",
        "rng_unseeded": union(r.unseeded_drawn for r in runs),
        "rng_os_entropy": union(r.os_entropy_drawn for r in runs),
        "worker_rng_duplicated": union(r.worker_duplicates for r in runs),
    }


def _spread(name: str, values: np.ndarray) -> dict:
    low, high = stats.std_interval(values)
    return {f"{name}_mean": float(values.mean()), f"{name}_std": stats.std(values),
            f"{name}_std_ci_low": low, f"{name}_std_ci_high": high,
            f"{name}_min": float(values.min()), f"{name}_max": float(values.max())}


def same_weights_as(runs_by_libconf: dict[str, list[RunResult]], setting: str, libconf: str) -> str:
    """Other library configurations of the setting whose every shared replicate ends
    with bit-identical weights to this cell's."""
    mine = {r.replicate: r.weights for r in runs_by_libconf[libconf] if r.setting == setting}
    same = []
    for other in sorted(set(runs_by_libconf) - {libconf}):
        theirs = {r.replicate: r.weights for r in runs_by_libconf[other] if r.setting == setting}
        shared = set(mine) & set(theirs)
        if shared and all(mine[rep] == theirs[rep] for rep in shared):
            same.append(other)
    return ";".join(same)


