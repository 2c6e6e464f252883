"""A cell's runs and the statistics of their pairs (disagreement, correlation, ensemble
gain, weight distance, ...), and the pairs of one replicate under two library
configurations (reprogrid.analysis.stats does the arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reprogrid.analysis import divergence, stats
from reprogrid.analysis.runs import RunResult


def first_divergent_epoch(a: RunResult, b: RunResult) -> int | None:
    return divergence.first_divergent_epoch(a.init_weights, a.fingerprints, b.init_weights, b.fingerprints)


def first_divergent_step(a: RunResult, b: RunResult) -> int | None:
    """Training.command runs only: their fingerprints are by optimizer step."""
    return divergence.first_divergent_step(a.step_fingerprints, b.step_fingerprints) if a.command else None


@dataclass
class Cell:
    """The runs of one cell and their pairwise statistics (None where not applicable)."""
    runs: list[RunResult]
    disagreement: np.ndarray | None = None
    correlation: np.ndarray | None = None
    ensemble_gain: np.ndarray | None = None
    spearman: np.ndarray | None = None
    ensemble_ce_gain: np.ndarray | None = None
    distance: np.ndarray | None = None

    @classmethod
    def of(cls, runs: list[RunResult]) -> Cell:
        cell = cls(runs)
        if len(runs) > 1 and all(r.classifies for r in runs):
            logits = np.stack([r.logits for r in runs])
            cell.disagreement = stats.disagreements(np.stack([r.predicted() for r in runs]))
            cell.correlation = stats.logit_correlations(logits)
            cell.ensemble_gain = stats.ensemble_gains(logits, runs[0].labels)
            cell.spearman = stats.logit_spearman(logits)
            cell.ensemble_ce_gain = stats.ensemble_ce_gains(logits, runs[0].labels)
        weights = [r.final_weights() for r in runs] if len(runs) > 1 else []
        if weights and all(w is not None for w in weights) and len({w.size for w in weights}) == 1:
            i, j = stats.pairs(len(runs))
            hashes = np.array([r.weights for r in runs])
            cell.distance = stats.weight_distances(np.stack(weights), identical=hashes[i] == hashes[j])
        return cell

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    def predicted(self) -> np.ndarray:
        return np.stack([r.predicted() for r in self.runs])

    def pair_rows(self, kind: str = "replicates") -> list[dict]:
        i, j = stats.pairs(len(self.runs))
        measures = {"disagreement": self.disagreement, "logit_correlation": self.correlation,
                    "ensemble_gain": self.ensemble_gain, "weight_distance": self.distance,
                    "logit_spearman": self.spearman, "ensemble_ce_gain": self.ensemble_ce_gain}
        columns = {name: _values(values, len(i)) for name, values in measures.items()}
        return [pair_row(kind, self.runs[a], self.runs[b], {name: column[n] for name, column in columns.items()})
                for n, (a, b) in enumerate(zip(i, j))]


def _values(values: np.ndarray | None, count: int) -> list:
    """Per-pair values as Python floats, None where missing."""
    if values is None:
        return [None] * count
    return [None if np.isnan(v) else v for v in values.tolist()]


def _mean(values: np.ndarray | None) -> float | None:
    if values is None or values.size == 0 or np.isnan(values).all():
        return None
    return float(np.nanmean(values))


def pair_row(kind: str, a: RunResult, b: RunResult, measures: dict) -> dict:
    return {
        "kind": kind, "setting": a.setting, "libconf_a": a.libconf, "libconf_b": b.libconf,
        "run_a": a.key, "run_b": b.key, "same_init_weights": a.init_weights == b.init_weights,
        "same_weights": a.weights == b.weights, "same_predictions": a.predictions == b.predictions,
        **measures, "first_divergent_epoch": first_divergent_epoch(a, b),
        "first_divergent_step": first_divergent_step(a, b),
    }


def libconf_pairs(runs: list[RunResult]) -> list[dict]:
    """Each replicate against the same replicate (same seeds) under every other library
    configuration of its setting: what the implementation alone changes."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.replicate), []).append(run)
    return [row for group in groups.values() if len(group) > 1 for row in Cell.of(group).pair_rows("libconfs")]


