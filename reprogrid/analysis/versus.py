"""Is A better than B, beyond seed noise? Two arms compared on one metric: two library
configurations under one seed setting (and, with variants, two variants under one
setting and library configuration). Comparing two *seed settings* says nothing about a
change, so versus.csv does not.

The verdict is the two-sided t-test at level 0.05 on the mean difference: paired where
the arms share seeds replicate by replicate (replicate r of a setting draws the same
seeds under every library configuration), Welch's otherwise. `A better` or `B better`
when the 95 % interval of the mean difference excludes 0, else `within seed noise`. It
is the test reprogrid.analysis.power plans for, so the seeds power.csv recommends give this
verdict the power it states.

A verdict needs independent observations. An arm whose runs end with identical weights
(every source it draws from is fixed) is one observation however often it ran: no
verdict (`one observation`), and one whose runs partly repeat is not a sample of
independent runs either (`runs repeat`). Fewer than MIN_RUNS runs a side: no verdict.

Beside it, P(A better): the share of replicates on which A beats B (ties count ½), with
the Clopper–Pearson interval of that count (exact, conservative: it covers at least 95 %
whatever the true share), for paired arms; for unpaired ones the share of all pairs of
runs (Mann–Whitney), without an interval.
"""

from __future__ import annotations

import math

import numpy as np

from reprogrid.analysis import power

LEVEL = 0.95
MIN_RUNS = power.MIN_RUNS
LOWER_IS_BETTER = {"test_loss", "test_rmse"}
ONE_OBSERVATION = "one observation"
TOO_FEW = f"too few runs (fewer than {MIN_RUNS} a side)"


def wins(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    """How often A beats B (ties ½): per replicate when paired, over all pairs otherwise."""
    if paired:
        return float(((a > b) + (a == b) / 2).sum())
    return float(((a[:, None] > b[None, :]) + (a[:, None] == b[None, :]) / 2).sum())


def clopper_pearson(successes: float, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact interval of a proportion; a half success (a tie) widens it to both neighbours."""
    from scipy.stats import beta

    low_count, high_count, tail = math.floor(successes), math.ceil(successes), (1 - level) / 2
    low = 0.0 if low_count == 0 else float(beta.ppf(tail, low_count, trials - low_count + 1))
    high = 1.0 if high_count == trials else float(beta.ppf(1 - tail, high_count + 1, trials - high_count))
    return low, high


def difference_interval(a: np.ndarray, b: np.ndarray, paired: bool,
                        level: float = LEVEL) -> tuple[float, float, float, float | None]:
    """(mean of A − mean of B, low, high, the SD the test ran on: of the per-replicate
    differences when paired, pooled otherwise)."""
    from scipy.stats import t

    if paired:
        differences = a - b
        mean, sd = float(differences.mean()), float(differences.std(ddof=1))
        error, dof = sd / math.sqrt(len(a)), len(a) - 1
    else:
        mean = float(a.mean() - b.mean())
        var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        error = math.sqrt(var_a + var_b)
        dof = (var_a + var_b) ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1)) if error else 1
        sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    half = float(t.ppf(1 - (1 - level) / 2, dof)) * error
    return mean, mean - half, mean + half, sd


def compare_arms(a, b, paired: bool, metric: str, distinct_a: int, distinct_b: int, effect_size: float) -> dict:
    """One row of versus.csv (or variants.csv): A against B on `metric`, where `distinct_*`
    count each arm's distinct outcomes (distinct final weights)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    lower = metric in LOWER_IS_BETTER
    oriented_a, oriented_b = (-a, -b) if lower else (a, b)
    row = {"runs_a": len(a), "runs_b": len(b), "distinct_a": distinct_a, "distinct_b": distinct_b,
           "paired": paired, "mean_difference": float(a.mean() - b.mean()), "ci_low": None, "ci_high": None,
           "p_a_better": wins(oriented_a, oriented_b, paired) / (len(a) if paired else len(a) * len(b)),
           "p_ci_low": None, "p_ci_high": None, "seeds_needed": None}
    if min(distinct_a, distinct_b) == 1:
        return row | {"verdict": ONE_OBSERVATION}
    if distinct_a < len(a) or distinct_b < len(b):
        return row | {"verdict": f"runs repeat ({distinct_a} and {distinct_b} distinct of {len(a)} and {len(b)})"}
    if min(len(a), len(b)) < MIN_RUNS:
        return row | {"verdict": TOO_FEW}
    mean, low, high, sd = difference_interval(a, b, paired)
    if paired:
        row["p_ci_low"], row["p_ci_high"] = clopper_pearson(wins(oriented_a, oriented_b, True), len(a))
    better_low, better_high = (-high, -low) if lower else (low, high)  # in "A better" units
    verdict = "A better" if better_low > 0 else "B better" if better_high < 0 else "within seed noise"
    return row | {"mean_difference": mean, "ci_low": low, "ci_high": high, "verdict": verdict,
                  "seeds_needed": power.seeds_needed(effect_size, sd, paired)}
