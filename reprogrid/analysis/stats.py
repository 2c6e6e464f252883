"""The statistics of a cell of runs, on plain NumPy arrays (no torch, no pandas).

Conventions: `logits` is (runs, examples, classes), `labels` (examples,), one row per
run; `predicted` is (runs, examples) of class indices. Functions return None where a
statistic needs more runs than there are. Everything is deterministic: the bootstrap
draws from a fixed seed, so the same runs always give the same report.
"""

from __future__ import annotations

import functools
from math import comb

import numpy as np

# enough resamples that an interval's ends move by less than the printed digits (two
# decimals) when the bootstrap's seed changes (tests/test_stats.py holds this at 10 runs).
# The resamples' spread shrinks as runs grow, so fewer are needed: this many at
# BOOTSTRAP_MIN_RUNS runs in the smaller group, scaled down in proportion above (never
# below 2,000), and fewer where a cell is so large that the work would not be bounded
BOOTSTRAP_SAMPLES_AT_MIN_RUNS = 400_000
BOOTSTRAP_WORK = 20_000_000_000  # resamples x runs² of the larger group, at most
BOOTSTRAP_SEED = 20210  # fixed: a report must not change between two compares of the same runs
BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000  # resamples x runs drawn at once: bounded memory
# below this many runs a percentile bootstrap undercovers badly (its ends rest on a handful
# of distinct resamples): the estimate is given without an interval
BOOTSTRAP_MIN_RUNS = 10


def std(values) -> float | None:
    """Sample standard deviation (n - 1), None for fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    if (values == values[0]).all():  # exactly 0, not the rounding noise of the mean
        return 0.0
    return float(values.std(ddof=1))


def std_interval(values, level: float = 0.95) -> tuple[float | None, float | None]:
    """The chi-square interval of an SD: exact coverage at any n for normal data, where a
    percentile bootstrap of so few runs undercovers (its lower end is 0 at n = 3 by
    construction). (0, 0) when every run agrees; None below two runs."""
    from scipy.stats import chi2

    values = np.asarray(values, dtype=np.float64)
    sd = std(values)
    if sd is None:
        return None, None
    dof = values.size - 1
    tail = (1 - level) / 2
    return float(sd * np.sqrt(dof / chi2.ppf(1 - tail, dof))), float(sd * np.sqrt(dof / chi2.ppf(tail, dof)))


def bootstrap_samples(runs: int, at_min_runs: int = BOOTSTRAP_SAMPLES_AT_MIN_RUNS) -> int:
    """How many resamples keep an interval's ends stable to two decimals when the smaller
    group has this many runs, given how many a statistic needs at BOOTSTRAP_MIN_RUNS."""
    return max(2_000, at_min_runs * BOOTSTRAP_MIN_RUNS // max(runs, 1))


def bootstrap_ratio(statistic_a, runs_a: int, statistic_b, runs_b: int, level: float = 0.95,
                    samples: int | None = None,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float | None, float | None, float | None]:
    """statistic_a / statistic_b with a percentile bootstrap interval. Each statistic maps
    an array of run indices, one row per resample, to one value per row; the two groups'
    runs are resampled independently. A resample whose denominator is 0 counts as an
    infinite ratio (not dropped): an upper end of inf says the data do not bound the ratio.
    (None, None, None) where the denominator itself is 0, the numerator has no run or
    the denominator fewer than two; the ratio without an interval below
    BOOTSTRAP_MIN_RUNS runs a group."""
    if runs_a < 1 or runs_b < 2:
        return None, None, None
    point_b = float(statistic_b(np.arange(runs_b)[None])[0])
    if not point_b:
        return None, None, None
    point = float(statistic_a(np.arange(runs_a)[None])[0]) / point_b
    if min(runs_a, runs_b) < BOOTSTRAP_MIN_RUNS:
        return point, None, None
    largest = max(runs_a, runs_b)
    samples = samples or min(bootstrap_samples(min(runs_a, runs_b)),
                             max(bootstrap_samples(largest), BOOTSTRAP_WORK // largest ** 2))
    rng = np.random.default_rng(seed)
    ratios = np.empty(samples)
    chunk = max(1, BOOTSTRAP_CHUNK_ELEMENTS // largest)
    for start in range(0, samples, chunk):  # bounded memory on big cells
        size = min(chunk, samples - start)
        b = statistic_b(rng.integers(0, runs_b, (size, runs_b)))
        a = statistic_a(rng.integers(0, runs_a, (size, runs_a)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[start:start + size] = np.where(b != 0, a / np.where(b != 0, b, 1), np.inf)
    tail = (1 - level) / 2 * 100
    # interpolating next to an infinite resample gives NaN: then take order statistics
    method = "linear" if np.isfinite(ratios).all() else "inverted_cdf"
    low, high = np.percentile(ratios, [tail, 100 - tail], method=method)
    return point, float(low), float(high)


def ratio_interval(numerator, denominator, level: float = 0.95):
    """SD(numerator) / SD(denominator) with the F interval of a ratio of SDs (exact at any
    n for normal data): (ratio, low, high); None where the denominator's SD is 0 or either
    group has fewer than two runs."""
    from scipy.stats import f

    a, b = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    sd_a, sd_b = std(a), std(b)
    if sd_a is None or not sd_b:
        return None, None, None
    ratio, tail = sd_a / sd_b, (1 - level) / 2
    dof = (a.size - 1, b.size - 1)
    return ratio, float(ratio / np.sqrt(f.ppf(1 - tail, *dof))), float(ratio / np.sqrt(f.ppf(tail, *dof)))


def mean_pairwise(matrix: np.ndarray):
    """A statistic for `bootstrap_ratio`: per resample (a row of run indices), the mean of a
    symmetric pairwise matrix with a zero diagonal (e.g. disagreement) over the pairs of
    resampled runs that are distinct runs (0 where there are none). From the resample's
    counts c: c·M·c / (n² - Σc²), in memory of resamples x runs."""
    def statistic(indices: np.ndarray) -> np.ndarray:
        rows, n = indices.shape
        runs = len(matrix)
        counts = np.bincount((indices + runs * np.arange(rows)[:, None]).ravel(),
                             minlength=rows * runs).reshape(rows, runs).astype(np.float64)
        pairs_total = np.einsum("sj,sj->s", counts @ matrix, counts)
        distinct = n * n - (counts ** 2).sum(axis=1)
        return np.divide(pairs_total, distinct, out=np.zeros(rows), where=distinct > 0)

    return statistic


def resampled_std(values) -> callable:
    """A statistic for `bootstrap_ratio`: per resample, the sample SD (n - 1) of `values`."""
    values = np.asarray(values, dtype=np.float64)
    return lambda indices: values[indices].std(axis=1, ddof=1)


def paired_std(differences) -> float | None:
    """The run-to-run SD implied by paired differences a_i - b_i (the same seeds under two
    implementations): sqrt(mean(d²) / 2), as two independent runs of SD σ differ by
    E[d²] = 2σ². Exactly 0 when every pair agrees; None without a pair."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return None
    return float(np.sqrt((d ** 2).mean() / 2)) if d.any() else 0.0


def resampled_paired_std(differences) -> callable:
    """`paired_std` per resample of the pairs, for `bootstrap_ratio`."""
    d = np.asarray(differences, dtype=np.float64)
    return lambda indices: np.sqrt((d[indices] ** 2).mean(axis=1) / 2)


def square(pairwise: np.ndarray, runs: int) -> np.ndarray:
    """The symmetric (runs, runs) matrix of per-pair values in `pairs` order."""
    matrix = np.zeros((runs, runs))
    i, j = pairs(runs)
    matrix[i, j] = matrix[j, i] = pairwise
    return matrix


@functools.lru_cache(maxsize=256)
def pairs(runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every pair of runs (cached: read-only arrays)."""
    i, j = np.triu_indices(runs, k=1)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def disagreements(predicted: np.ndarray) -> np.ndarray:
    """Per pair of runs, the share of examples whose predicted class differs."""
    i, j = pairs(len(predicted))
    return (predicted[i] != predicted[j]).mean(axis=1)


def logit_correlations(logits: np.ndarray) -> np.ndarray:
    """Per pair of runs, the Pearson correlation of their logits (all examples and
    classes flattened). NaN where a run's logits are constant."""
    flat = logits.reshape(len(logits), -1).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = (centred @ centred.T) / np.outer(norms, norms)
    i, j = pairs(len(logits))
    return np.clip(matrix[i, j], -1.0, 1.0)


def logit_spearman(logits: np.ndarray) -> np.ndarray:
    """Per pair of runs, the Spearman correlation of their logits: the Pearson
    correlation of their ranks (ties averaged), blind to monotone rescaling."""
    from scipy.stats import rankdata

    ranks = rankdata(logits.reshape(len(logits), -1), axis=1)
    return logit_correlations(ranks)


def ensemble_ce_gains(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per pair of runs: the mean of their test cross-entropies minus the cross-entropy of
    their averaged predicted probabilities (positive: the two together predict better)."""
    exponentials = np.exp(logits.astype(np.float64) - logits.max(axis=2, keepdims=True))
    probabilities = exponentials / exponentials.sum(axis=2, keepdims=True)
    # a cross-entropy reads only each example's true class: the pairs' averages are taken
    # of those (runs × examples), not of every class (a pair-sized copy of all the logits)
    of_label = probabilities[:, np.arange(len(labels)), labels]

    def cross_entropy(p):
        return -np.log(np.maximum(p, np.finfo(np.float64).tiny)).mean(axis=-1)

    own = cross_entropy(of_label)
    i, j = pairs(len(logits))
    return (own[i] + own[j]) / 2 - cross_entropy((of_label[i] + of_label[j]) / 2)


def ensemble_gains(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per pair of runs: accuracy of the two runs' averaged logits minus the mean of
    their own accuracies."""
    accuracy = (logits.argmax(axis=2) == labels).mean(axis=1)
    gains = []
    for a in range(len(logits) - 1):
        averaged = (logits[a] + logits[a + 1:]) / 2  # (later runs, examples, classes)
        together = (averaged.argmax(axis=2) == labels).mean(axis=1)
        gains.append(together - (accuracy[a] + accuracy[a + 1:]) / 2)
    return np.concatenate(gains) if gains else np.empty(0)


def weight_distances(weights: np.ndarray, identical: np.ndarray | None = None) -> np.ndarray:
    """Per pair of runs, the L2 distance between their flattened final weights, as
    norm(a - b) in float64 (the |a|² + |b|² - 2a·b shortcut loses digits exactly where
    runs are nearly equal, e.g. a one-ULP pair); exactly 0 for pairs known to be
    `identical` (e.g. by their hashes; else compared here)."""
    w = weights.astype(np.float64)
    i, j = pairs(len(w))
    distances = np.array([np.linalg.norm(w[a] - w[b]) for a, b in zip(i, j)], dtype=np.float64)
    if identical is None:
        identical = (w[i] == w[j]).all(axis=1)  # exactly 0, not rounding noise
    distances[identical] = 0.0
    return distances


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(runs, classes): each run's accuracy on the examples of each class present."""
    classes = np.unique(labels)
    return np.stack([(predicted[:, labels == c] == c).mean(axis=1) for c in classes], axis=1)


def per_class_spread(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """SD over runs of each class's accuracy (mean and max over classes), and the largest
    gap between the best and the worst run on one class."""
    if len(predicted) < 2:
        return {"per_class_accuracy_std_mean": None, "per_class_accuracy_std_max": None,
                "per_class_gap_max": None}
    per_class = per_class_accuracy(predicted, labels)
    sds = per_class.std(axis=0, ddof=1)
    gaps = per_class.max(axis=0) - per_class.min(axis=0)
    return {"per_class_accuracy_std_mean": float(sds.mean()), "per_class_accuracy_std_max": float(sds.max()),
            "per_class_gap_max": float(gaps.max())}


def independent_errors_std(predicted: np.ndarray, labels: np.ndarray) -> float | None:
    """The accuracy SD that independent per-example errors would give:
    sqrt(sum_i p_i (1 - p_i)) / n, with p_i example i's error rate across runs (Jordan,
    ICLR 2024). Compare with the observed SD: close means the run-to-run variance is
    what independent coin flips per example would produce."""
    if len(predicted) < 2:
        return None
    error_rate = (predicted != labels).mean(axis=0)
    return float(np.sqrt((error_rate * (1 - error_rate)).sum()) / labels.size)


def best_of_k_gain(values, k: int) -> float | None:
    """Expected gain of keeping the best of k runs drawn without replacement from these
    runs, over the mean run: E[max of a random k-subset] - mean. Exact, by order
    statistics: the j-th smallest of n is the maximum of C(j-1, k-1) of the C(n, k)
    subsets. None for fewer than k runs."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = values.size
    if n < k or k < 1:
        return None
    if values[0] == values[-1]:
        return 0.0  # exactly, not a rounding residue
    weights = np.array([comb(j - 1, k - 1) for j in range(1, n + 1)], dtype=np.float64) / comb(n, k)
    return float((weights * values).sum() - values.mean())
