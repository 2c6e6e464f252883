"""How many seeds a claim needs: Welch's t-test power for two arms of runs that spread
as a cell's runs do (Colas, Sigaud & Oudeyer, "How Many Random Seeds?", 2018).

For two arms of N runs each with standard deviations s1, s2 and a true difference ε,
Welch's test at level α (one-sided, as Colas et al.) misses ε with probability

    β = t.cdf(t_crit − t_ε, ν),  t_ε = ε / sqrt((s1² + s2²) / N),
    ν = (s1² + s2²)² (N − 1) / (s1⁴ + s2⁴),  t_crit = t.ppf(1 − α, ν).

Here both arms spread like the cell (s1 = s2 = its SD): the question a user asks is
"is a difference of ε between this configuration and a rival one real, or seed noise?".
"""

from __future__ import annotations

import math

ALPHA, POWER = 0.05, 0.8
MAX_SEEDS = 100_000


def miss_probability(effect: float, sd1: float, sd2: float, runs: int, alpha: float = ALPHA) -> float:
    """β: the probability that Welch's test with `runs` per arm misses a true `effect`."""
    from scipy.stats import t

    variance = sd1 ** 2 + sd2 ** 2
    if variance == 0:
        return 0.0 if effect > 0 else 1.0
    dof = variance ** 2 * (runs - 1) / (sd1 ** 4 + sd2 ** 4)
    t_effect = effect / math.sqrt(variance / runs)
    return float(t.cdf(t.ppf(1 - alpha, dof) - t_effect, dof))


def min_detectable_effect(sd: float, runs: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest difference detected with `power` by `runs` runs per arm (both arms
    spreading by `sd`); None below two runs."""
    from scipy.stats import t

    if runs < 2:
        return None
    dof = 2 * (runs - 1)  # ν with s1 = s2
    return float((t.ppf(1 - alpha, dof) - t.ppf(1 - power, dof)) * sd * math.sqrt(2 / runs))


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest runs per arm that detect `effect` with `power` (None past MAX_SEEDS)."""
    if sd == 0:
        return 2
    runs = 2
    while miss_probability(effect, sd, sd, runs, alpha) > 1 - power:
        runs = runs * 2 if runs < 64 else runs + max(1, runs // 8)
        if runs > MAX_SEEDS:
            return None
    low = max(2, runs // 2)  # the doubling overshot: find the first N that suffices
    while low < runs:
        middle = (low + runs) // 2
        if miss_probability(effect, sd, sd, middle, alpha) > 1 - power:
            low = middle + 1
        else:
            runs = middle
    return runs
