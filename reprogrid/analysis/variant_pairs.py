"""variants.csv: is a change of the training real, or seed noise? Every two variants under
one seed setting and library configuration, per metric, compared run for run: replicate r
of a setting draws the same seeds under every variant, so the arms are paired and the
noise the seeds share cancels (reprogrid.analysis.versus makes the test and the verdict).

`mean_difference` is B − A, with its paired 95 % interval; `seeds_needed`, the runs per
arm the paired test needs to find the config's effect size with power 0.8 (on the SD
of these differences); `seeds_to_tell_observed`, the same for the difference observed.
Arms that repeat one outcome (every source fixed) are one observation each: no verdict,
but `bitwise_identical` says whether B repeated A run for run (a placebo must).
"""

from __future__ import annotations

import numpy as np

from reprogrid.analysis import power, versus
from reprogrid.analysis.runs import RunResult

VARIANT_COLUMNS = ["setting", "libconf", "variant_a", "variant_b", "metric", "runs", "mean_difference", "ci_low",
                   "ci_high", "p_a_better", "p_ci_low", "p_ci_high", "verdict", "effect_size", "seeds_needed",
                   "seeds_to_tell_observed", "bitwise_identical", "differences"]
METRICS = ("test_accuracy", "test_loss", "test_rmse")


def _arms(runs: list[RunResult]) -> dict[tuple[str, str], dict[str, dict[int, RunResult]]]:
    """(setting, libconf) -> variant -> replicate -> run, in the order runs come in."""
    arms: dict[tuple[str, str], dict[str, dict[int, RunResult]]] = {}
    for run in runs:
        arms.setdefault((run.setting, run.libconf), {}).setdefault(run.variant, {})[run.replicate] = run
    return arms


def variant_rows(runs: list[RunResult], effect_sizes: dict[str, float]) -> list[dict]:
    """Rows of variants.csv; none for a grid without variants."""
    rows = []
    for (setting, libconf), by_variant in _arms(runs).items():
        names = [name for name in by_variant if name]
        for i, name_a in enumerate(names):
            for name_b in names[i + 1:]:
                a, b = by_variant[name_a], by_variant[name_b]
                shared = sorted(set(a) & set(b))  # replicates both arms ran: the pairs
                pairs = [(a[r], b[r]) for r in shared]
                for metric in METRICS:
                    if not pairs or metric not in pairs[0][0].metrics or metric not in pairs[0][1].metrics:
                        continue
                    rows.append({"setting": setting, "libconf": libconf, "variant_a": name_a, "variant_b": name_b,
                                 "metric": metric} | _compared(pairs, metric, effect_sizes[metric]))
    return rows


def _compared(pairs: list[tuple[RunResult, RunResult]], metric: str, effect: float) -> dict:
    a = np.array([run_a.metrics[metric] for run_a, _ in pairs], dtype=np.float64)
    b = np.array([run_b.metrics[metric] for _, run_b in pairs], dtype=np.float64)
    found = versus.compare_arms(a, b, True, metric, len({r.weights for r, _ in pairs}),
                                len({r.weights for _, r in pairs}), effect)
    differences = b - a
    sd = float(differences.std(ddof=1)) if len(differences) > 1 else None
    observed = float(abs(differences.mean()))
    low, high = found["ci_low"], found["ci_high"]  # of A − B: turned into B − A
    return {
        "runs": len(pairs), "mean_difference": float(differences.mean()),
        "ci_low": None if high is None else 0.0 - high, "ci_high": None if low is None else 0.0 - low,
        "p_a_better": found["p_a_better"], "p_ci_low": found["p_ci_low"], "p_ci_high": found["p_ci_high"],
        "verdict": found["verdict"], "effect_size": effect,
        "seeds_needed": power.seeds_needed(effect, sd, paired=True),
        "seeds_to_tell_observed": power.seeds_needed(observed, sd, paired=True),
        "bitwise_identical": all(run_a.weights == run_b.weights and run_a.predictions == run_b.predictions
                                 for run_a, run_b in pairs),
        "differences": " ".join(f"{value:.6g}" for value in differences),
    }
