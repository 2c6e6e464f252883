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

import numpy as np

from reprogrid import stats

SEED = 20211  # fixed: the same runs give the same table
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
                               samples: int | None = None) -> tuple[float, float | None, float | None]:
    """(P(A better), 95 % low, 95 % high); no interval below MIN_RUNS runs a side."""
    a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
    if lower_is_better:
        a, b = -a, -b
    differences = a - b if paired else None
    wins = None if paired else _win_matrix(a, b)
    point = float(((differences > 0) + (differences == 0) / 2).mean()) if paired else float(wins.mean())
    if min(len(a), len(b)) < MIN_RUNS:
        return point, None, None
    samples = samples or stats.bootstrap_samples(max(len(a), len(b)))
    rng = np.random.default_rng(SEED)
    if paired:
        draws = differences[rng.integers(0, len(differences), size=(samples, len(differences)))]
        estimates = ((draws > 0) + (draws == 0) / 2).mean(axis=1)
    else:
        # a resample is a count of each run: its estimate is counts_a · W · counts_b / (n·m)
        counts_a = rng.multinomial(len(a), np.full(len(a), 1 / len(a)), size=samples)
        counts_b = rng.multinomial(len(b), np.full(len(b), 1 / len(b)), size=samples)
        estimates = np.einsum("sm,sm->s", counts_a @ wins, counts_b) / (len(a) * len(b))
    low, high = np.percentile(estimates, [2.5, 97.5])
    return point, float(low), float(high)


def verdict(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return TOO_FEW
    if low > 0.5:
        return "A better"
    if high < 0.5:
        return "B better"
    return "within seed noise"
