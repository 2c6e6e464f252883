"""Compare the runs of a grid: one row per cell (summary.csv), one per pair (pairs.csv).

Works only on what the train and evaluate steps wrote (train.json, eval.json,
predictions.npz); no torch, no MLflow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprogrid.config import varied_sources
from reprogrid.pipeline import read_json

SUMMARY_COLUMNS = [
    "setting", "libconf", "runs", "expect_bitwise", "distinct_weights",
    "distinct_predictions", "bitwise_reproducible", "test_accuracy_mean",
    "test_accuracy_std", "test_accuracy_min", "test_accuracy_max", "test_loss_mean",
    "test_loss_std", "disagreement_mean", "train_seconds_median",
    # beyond the contract's columns:
    "varied_sources", "first_divergent_epoch", "same_weights_as",
]
INTEGER_COLUMNS = ["runs", "distinct_weights", "distinct_predictions", "first_divergent_epoch"]
PAIR_COLUMNS = [
    "kind", "setting", "libconf_a", "libconf_b", "run_a", "run_b", "same_init_weights",
    "same_weights", "same_predictions", "disagreement", "first_divergent_epoch",
]


@dataclass
class RunResult:
    key: str
    setting: str
    libconf: str
    replicate: int
    expect_bitwise: bool
    varied_sources: str
    init_weights: str
    weights: str
    predictions: str
    fingerprints: list[str]
    metrics: dict
    train_seconds: float
    predicted_class: np.ndarray | None  # None where the model does not classify


def load_run(run_dir: str | Path) -> RunResult:
    run_dir = Path(run_dir)
    train, evaluation = read_json(run_dir / "train.json"), read_json(run_dir / "eval.json")
    run_config = train["run_config"]
    classifies = "test_accuracy" in evaluation["metrics"]
    predicted = None
    if classifies:
        with np.load(run_dir / "predictions.npz") as stored:
            predicted = stored["logits"].argmax(axis=1)
    return RunResult(
        key=train["run_key"],
        setting=run_config["setting"],
        libconf=run_config["libconf"],
        replicate=run_config["replicate"],
        expect_bitwise=train["expect_bitwise"],
        varied_sources=",".join(varied_sources(run_config)),
        init_weights=train["hashes"]["init_weights"],
        weights=train["hashes"]["weights"],
        predictions=evaluation["hashes"]["predictions"],
        fingerprints=[e["weights"] for e in train["epochs"]],
        metrics=evaluation["metrics"],
        train_seconds=train["train_seconds"],
        predicted_class=predicted,
    )


def first_divergent_epoch(a: RunResult, b: RunResult) -> int | None:
    """0 if the initial weights differ, else the first epoch whose fingerprint differs;
    None if the two runs never part."""
    if a.init_weights != b.init_weights:
        return 0
    for epoch, (fa, fb) in enumerate(zip(a.fingerprints, b.fingerprints), start=1):
        if fa != fb:
            return epoch
    if len(a.fingerprints) != len(b.fingerprints):
        return min(len(a.fingerprints), len(b.fingerprints)) + 1
    return None


def disagreement(a: RunResult, b: RunResult) -> float | None:
    """Share of test points whose predicted class differs between the two runs."""
    if a.predicted_class is None or b.predicted_class is None:
        return None
    return float(np.mean(a.predicted_class != b.predicted_class))


def pair_row(kind: str, a: RunResult, b: RunResult) -> dict:
    return {
        "kind": kind,
        "setting": a.setting,
        "libconf_a": a.libconf,
        "libconf_b": b.libconf,
        "run_a": a.key,
        "run_b": b.key,
        "same_init_weights": a.init_weights == b.init_weights,
        "same_weights": a.weights == b.weights,
        "same_predictions": a.predictions == b.predictions,
        "disagreement": disagreement(a, b),
        "first_divergent_epoch": first_divergent_epoch(a, b),
    }


def group_cells(runs: list[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    cells: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        cells.setdefault((run.setting, run.libconf), []).append(run)
    return cells


def libconf_pairs(runs: list[RunResult]) -> list[dict]:
    """Each replicate against the same replicate (same seeds) under every other library
    configuration of its setting."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.replicate), []).append(run)
    return [
        pair_row("libconfs", a, b)
        for group in groups.values()
        for a, b in itertools.combinations(group, 2)
    ]


def _std(values: pd.Series) -> float | None:
    return float(values.std(ddof=1)) if len(values) > 1 else None


def _stat(values: pd.Series, how: str) -> float | None:
    values = values.dropna()
    if values.empty:
        return None
    return _std(values) if how == "std" else float(getattr(values, how)())


def same_weights_as(runs: list[RunResult], setting: str, libconf: str) -> str:
    """Other library configurations of the setting whose every shared replicate ends
    with bit-identical weights to this cell's."""
    weights = {(r.libconf, r.replicate): r.weights for r in runs if r.setting == setting}
    mine = {rep: w for (lc, rep), w in weights.items() if lc == libconf}
    others = sorted({lc for lc, _ in weights} - {libconf})
    same = []
    for other in others:
        shared = [rep for (lc, rep) in weights if lc == other and rep in mine]
        if shared and all(weights[(other, rep)] == mine[rep] for rep in shared):
            same.append(other)
    return ";".join(same)


def summary_row(cell_runs: list[RunResult], cell_pairs: list[dict], all_runs: list[RunResult]) -> dict:
    first = cell_runs[0]
    frame = pd.DataFrame([r.metrics | {"train_seconds": r.train_seconds} for r in cell_runs])
    accuracy = frame.get("test_accuracy", pd.Series(dtype=float))
    n = len(cell_runs)
    distinct_weights = len({r.weights for r in cell_runs})
    distinct_predictions = len({r.predictions for r in cell_runs})
    divergences = [p["first_divergent_epoch"] for p in cell_pairs if p["first_divergent_epoch"] is not None]
    disagreements = [p["disagreement"] for p in cell_pairs if p["disagreement"] is not None]
    return {
        "setting": first.setting,
        "libconf": first.libconf,
        "runs": n,
        "expect_bitwise": first.expect_bitwise,
        "distinct_weights": distinct_weights,
        "distinct_predictions": distinct_predictions,
        "bitwise_reproducible": (distinct_weights == 1 and distinct_predictions == 1) if n > 1 else None,
        "test_accuracy_mean": _stat(accuracy, "mean"),
        "test_accuracy_std": _stat(accuracy, "std"),
        "test_accuracy_min": _stat(accuracy, "min"),
        "test_accuracy_max": _stat(accuracy, "max"),
        "test_loss_mean": _stat(frame["test_loss"], "mean"),
        "test_loss_std": _stat(frame["test_loss"], "std"),
        "disagreement_mean": float(np.mean(disagreements)) if disagreements else None,
        "train_seconds_median": _stat(frame["train_seconds"], "median"),
        "varied_sources": first.varied_sources,
        "first_divergent_epoch": min(divergences) if divergences else None,
        "same_weights_as": same_weights_as(all_runs, first.setting, first.libconf),
    }


def compare_runs(runs: list[RunResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, pairs); cells keep the order in which their runs come."""
    rows, pairs = [], []
    for members in group_cells(runs).values():
        cell_pairs = [pair_row("replicates", a, b) for a, b in itertools.combinations(members, 2)]
        rows.append(summary_row(members, cell_pairs, runs))
        pairs += cell_pairs
    pairs += libconf_pairs(runs)
    return _typed(pd.DataFrame(rows, columns=SUMMARY_COLUMNS)), _typed(pd.DataFrame(pairs, columns=PAIR_COLUMNS))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns stay integers where some values are missing (not 1.0 and NaN)."""
    for column in INTEGER_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    out = frame.copy()
    for column in out.columns:  # lowercase booleans, like the MLflow tags
        if out[column].map(lambda v: isinstance(v, (bool, np.bool_))).any():
            out[column] = out[column].map(lambda v: str(v).lower() if isinstance(v, (bool, np.bool_)) else v)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
