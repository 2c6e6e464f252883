"""Compare the runs of a grid: one row per cell (summary.csv), one per pair of runs
(pairs.csv), the attribution of variability to sources (attribution.csv) and the cost
of each library configuration (libconfs.csv).

Works only on what the train and evaluate steps wrote (train.json, eval.json,
predictions.npz, weights.npy); no torch, no MLflow. Metrics are recomputed from the
predictions (reprogrid.recompute), never taken on trust from eval.json. The statistics are in
`reprogrid.stats`; metrics that do not apply (no classes for the VAE) stay empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reprogrid import divergence, rngtrace, stats
from reprogrid.hashing import file_digest, predictions_digest
from reprogrid.prediction import (
    cell_expects_bitwise,
    entropy_seeded_drawn,
    of_record,
    unseeded_drawn,
    unused_sources,
    varied_sources,
)
from reprogrid.recompute import disagreements, metrics_from
from reprogrid.records import IntegrityError, read_sealed, write_atomically

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
    # the RNG trace: global generators drawn while training (reprogrid.rngtrace)
    "rng_train", "rng_train_epochs", "rng_unseeded", "rng_os_entropy", "worker_rng_duplicated",
    # what the runs never used: varied sources whose stream they never drew; knobs that never reached them
    "unused_sources", "library_unreached",
    # regression only
    "test_rmse_mean", "test_rmse_std", "test_rmse_std_ci_low", "test_rmse_std_ci_high",
    "test_rmse_min", "test_rmse_max",
]
PAIR_COLUMNS = [
    "kind", "setting", "libconf_a", "libconf_b", "run_a", "run_b", "same_init_weights",
    "same_weights", "same_predictions", "disagreement", "logit_correlation", "ensemble_gain",
    "weight_distance", "first_divergent_epoch", "logit_spearman", "ensemble_ce_gain",
]
ATTRIBUTION_COLUMNS = [
    "libconf", "source", "setting", "reference_setting", "runs", "test_accuracy_std",
    "std_ratio", "std_ratio_ci_low", "std_ratio_ci_high", "disagreement_mean",
    "disagreement_ratio", "disagreement_ratio_ci_low", "disagreement_ratio_ci_high",
]
LIBCONF_COLUMNS = ["libconf", "runs", "train_seconds_median", "relative_to_reference", "reference"]
INTEGER_COLUMNS = ["runs", "distinct_weights", "distinct_predictions", "first_divergent_epoch"]


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
    logits: np.ndarray | None  # (examples, classes); None where the model does not classify
    labels: np.ndarray | None
    weights_path: Path | None  # flattened final weights, read only when compared
    mlflow_run_id: str | None = None  # the MLflow run that records it
    unused_sources: str = ""  # varied or unseeded, but the run never drew from the source's stream
    library_unreached: str = ""  # library knobs that never reached the training (num_workers: no worker started)
    rng: dict = field(default_factory=dict)  # phase -> global generators drawn (reprogrid.rngtrace)
    rng_epochs: dict = field(default_factory=dict)  # generator -> in how many training epochs it was drawn
    unseeded_drawn: list = field(default_factory=list)  # drawn while training, left unseeded by the libconf
    os_entropy_drawn: list = field(default_factory=list)  # drawn while training, seeded from an unseeded source
    worker_duplicates: list = field(default_factory=list)  # generators loader workers started from in one state

    @property
    def classifies(self) -> bool:
        return self.logits is not None

    def final_weights(self) -> np.ndarray | None:
        """Read once, when first compared (a run meets every other run of its cell and
        of its replicate)."""
        if not hasattr(self, "_weights"):
            present = self.weights_path is not None and self.weights_path.is_file()
            self._weights = np.load(self.weights_path) if present else None
        return self._weights

    def predicted(self) -> np.ndarray:
        if not hasattr(self, "_predicted"):
            self._predicted = self.logits.argmax(axis=1)
        return self._predicted


def load_run(run_dir: str | Path) -> RunResult:
    run_dir = Path(run_dir)
    train, evaluation = read_sealed(run_dir / "train.json"), read_sealed(run_dir / "eval.json")
    for name, recorded in evaluation["files"].items():  # predictions.npz, weights.npy
        if file_digest(run_dir / name) != recorded:
            raise IntegrityError(f"{run_dir / name}: its sha256 is not the one {run_dir / 'eval.json'} recorded, "
                                 f"so it was changed after evaluation: rerun evaluate "
                                 f"(snakemake --forcerun evaluate {run_dir / 'eval.json'})")
    run_config = train["run_config"]
    with np.load(run_dir / "predictions.npz") as stored:
        outputs, targets = stored["logits"], stored["labels"]
    if predictions_digest(outputs, targets) != evaluation["hashes"]["predictions"]:
        raise IntegrityError(f"{run_dir / 'predictions.npz'}: its predictions do not hash to the "
                             f"reprogrid.hash.predictions in {run_dir / 'eval.json'}")
    task = train.get("task", "classification")
    own_evaluation = "evaluation" in run_config
    if run_config["model"].get("name") == "vae" or own_evaluation:
        task = "own"  # metrics that need the inputs or the user's code: taken as sealed
    recomputed = metrics_from(outputs, targets, task, run_config.get("training", {}).get("loss", "auto"))
    wrong = disagreements(evaluation["metrics"], recomputed)
    if wrong:
        raise IntegrityError(f"{run_dir / 'eval.json'}: its metrics are not what its predictions give "
                             f"({'; '.join(wrong)}): it was edited after evaluation; rerun evaluate "
                             f"(snakemake --forcerun evaluate {run_dir / 'eval.json'})")
    classifies = "test_accuracy" in recomputed or (own_evaluation and "test_accuracy" in evaluation["metrics"]
                                                    and outputs.ndim == 2 and outputs.shape[1] > targets.max())
    return RunResult(
        key=train["run_key"], setting=run_config["setting"], libconf=run_config["libconf"],
        replicate=run_config["replicate"], expect_bitwise=train["expect_bitwise"],
        varied_sources=",".join(varied_sources(run_config, **of_record(train))),
        unused_sources=",".join(unused_sources(run_config, train.get("sources_used"))),
        library_unreached=",".join(train.get("library_unreached", [])),
        init_weights=train["hashes"]["init_weights"], weights=train["hashes"]["weights"],
        predictions=evaluation["hashes"]["predictions"],
        fingerprints=[e["weights"] for e in train["epochs"]],
        # the recorded loss is kept (within tolerance of the recomputed one); the rest is exact
        metrics=evaluation["metrics"] | {k: v for k, v in recomputed.items() if k != "test_loss"},
        train_seconds=train["train_seconds"], mlflow_run_id=evaluation.get("mlflow_run_id"),
        rng=train.get("rng", {}), rng_epochs=_epochs_drawing(train["epochs"]),
        unseeded_drawn=unseeded_drawn(run_config, train.get("rng", {})),
        os_entropy_drawn=entropy_seeded_drawn(run_config, train.get("rng", {})),
        worker_duplicates=train.get("worker_duplicates", []),
        logits=outputs if classifies else None, labels=targets if classifies else None,
        weights_path=run_dir / "weights.npy",
    )


def _epochs_drawing(epochs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for epoch in epochs:
        for generator in epoch.get("rng", []):
            counts[generator] = counts.get(generator, 0) + 1
    return counts


def first_divergent_epoch(a: RunResult, b: RunResult) -> int | None:
    return divergence.first_divergent_epoch(a.init_weights, a.fingerprints, b.init_weights, b.fingerprints)


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
    }


def libconf_pairs(runs: list[RunResult]) -> list[dict]:
    """Each replicate against the same replicate (same seeds) under every other library
    configuration of its setting: what the implementation alone changes."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.replicate), []).append(run)
    return [row for group in groups.values() if len(group) > 1 for row in Cell.of(group).pair_rows("libconfs")]


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
        predicted, labels = cell.predicted(), first.labels
        row |= stats.per_class_spread(predicted, labels)
        row["independent_errors_std"] = stats.independent_errors_std(predicted, labels)
    rmse = frame["test_rmse"].to_numpy() if "test_rmse" in frame else None
    if rmse is not None:
        row |= _spread("test_rmse", rmse)
    # best of k: by accuracy where there are classes, else by lowest RMSE or test loss
    primary = accuracy if accuracy is not None else -(rmse if rmse is not None else loss)
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
    epochs = len(runs[0].fingerprints)
    return {
        "rng_train": drawn,
        "rng_train_epochs": ",".join(f"{g}:{min(r.rng_epochs.get(g, 0) for r in runs)}/{epochs}"
                                     for g in drawn.split(",") if g),
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


VERSUS_COLUMNS = ["setting", "a_libconf", "b_libconf", "metric", "runs_a", "runs_b", "distinct_a", "distinct_b",
                  "paired", "mean_difference", "ci_low", "ci_high", "p_a_better", "p_ci_low", "p_ci_high",
                  "verdict", "seeds_needed", "comparisons"]
METRICS = ("test_accuracy", "test_loss", "test_rmse")


def versus_rows(cells: dict[tuple[str, str], Cell], effect_sizes: dict[str, float]) -> list[dict]:
    """Every two library configurations under one seed setting, per metric: is A better
    than B beyond seed noise (reprogrid.versus)? Comparisons between two seed settings
    say nothing about a change, so there are none. `comparisons`: how many the table
    makes per metric (at 95 % each, one in twenty of arms that do not differ reads
    `better` by chance)."""
    from reprogrid import versus

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
    spreads alike, by the test versus gives its verdicts by (reprogrid.power). A cell
    without seed noise (SD 0) gets neither: no number of its runs makes a test."""
    from reprogrid import power

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
    """All tables for runs ordered cell by cell (cells keep the order their runs come in)."""
    cells = {key: Cell.of(members) for key, members in group_cells(runs).items()}
    effects = DEFAULT_EFFECT_SIZES | (effect_sizes or {})
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
    )


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
