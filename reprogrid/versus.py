"""Is A better than B, beyond seed noise? The probability of improvement between two
cells' runs (Agarwal et al.'s rliable; Bouthillier et al., MLSys 2021).

Independent cells: P(A better) is the Mann-Whitney U over all n·m pairs of runs, ties
counting one half, with a 95 % interval from a stratified bootstrap (A's and B's runs
resampled separately). Cells that share seeds replicate by replicate (one setting under
two library configurations) are paired: the share of replicates on which A beats B,
ties one half, with replicate pairs resampled together. The verdict is `A better` or
`B better` when the interval excludes ½, else `within seed noise`; P ≥ 0.75 (or ≤ 0.25)
is marked meaningful, the threshold Bouthillier et al. propose. Below ten runs a side
a bootstrap of the runs undercovers: the point estimate is given, no interval and no
verdict.
"""

from __future__ import annotations

import functools

import numpy as np

from reprogrid import stats

SEED = 20211  # fixed: the same runs give the same table
# resamples at ten runs a cell (fewer above, stats.bootstrap_samples): the probability's
# bootstrap spread is narrower than a ratio's, so fewer keep its ends to two decimals
SAMPLES_AT_MIN_RUNS = 100_000
RESAMPLED_ELEMENTS = 40_000_000
MEANINGFUL = 0.75
# below this many runs per cell a bootstrap of the runs undercovers: no interval, no verdict
MIN_RUNS = stats.BOOTSTRAP_MIN_RUNS
TOO_FEW = f"too few runs for a verdict (fewer than {MIN_RUNS} per cell)"
# for these metrics lower is better
LOWER_IS_BETTER = {"test_loss", "test_rmse"}


def _win_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W[i, j] = 1 when a_i beats b_j, ½ on a tie, 0 otherwise."""
    return (a[:, None] > b[None, :]) + (a[:, None] == b[None, :]) / 2


def probability_of_improvement(a, b, paired: bool = False, lower_is_better: bool = False,
                               seed: int = SEED) -> tuple[float, float | None, float | None]:
    """(P(A better), 95 % low, 95 % high); no interval below MIN_RUNS runs a side."""
    a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
    if lower_is_better:
        a, b = -a, -b
    if paired:
        wins = (a > b) + (a == b) / 2  # per replicate
        point = float(wins.mean())
    else:
        wins = _win_matrix(a, b)
        point = float(wins.mean())
    if min(len(a), len(b)) < MIN_RUNS:
        return point, None, None
    largest = max(len(a), len(b))  # the resample counts are samples x runs: bounded memory
    samples = min(stats.bootstrap_samples(min(len(a), len(b)), SAMPLES_AT_MIN_RUNS),
                  max(stats.bootstrap_samples(largest, SAMPLES_AT_MIN_RUNS), RESAMPLED_ELEMENTS // largest))
    counts_a, counts_b = _resample_counts(len(a), len(b), samples, seed)
    if paired:  # replicate pairs resampled together: counts of each pair
        estimates = counts_a @ wins / len(a)
    else:  # a resample is a count of each run: its estimate is counts_a · W · counts_b / (n·m)
        estimates = np.einsum("sm,sm->s", counts_a @ wins, counts_b) / (len(a) * len(b))
    low, high = np.percentile(estimates, [2.5, 97.5])
    return point, float(low), float(high)


@functools.lru_cache(maxsize=4)
def _resample_counts(runs_a: int, runs_b: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """How often each run is drawn in each resample of A's and of B's runs. Every pair of
    cells of the same sizes gets the same resamples (the seed is fixed): drawn once."""
    rng = np.random.default_rng(seed)

    def counts(runs: int) -> np.ndarray:
        drawn = rng.integers(0, runs, (samples, runs)) + runs * np.arange(samples)[:, None]
        out = np.bincount(drawn.ravel(), minlength=samples * runs).reshape(samples, runs).astype(np.float64)
        out.flags.writeable = False
        return out

    return counts(runs_a), counts(runs_b)


def verdict(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return TOO_FEW
    if low > 0.5:
        return "A better"
    if high < 0.5:
        return "B better"
    return "within seed noise"
