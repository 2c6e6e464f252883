"""How many seeds a claim needs: the power of the t-test that versus.csv and
variants.csv give their verdicts by (two-sided, level 0.05), for arms that spread as a
cell's runs do (after Colas, Sigaud & Oudeyer, "How Many Random Seeds?", 2018).

Two arms of N runs each, standard deviation s, true difference ε. Unpaired (Welch's test,
which with equal arms is Student's): ν = 2(N − 1), δ = ε / (s·sqrt(2/N)). Paired (the
arms share seeds replicate by replicate; s is then the SD of the per-replicate
differences): ν = N − 1, δ = ε / (s / sqrt(N)). The power is exact, from the noncentral t
distribution:

    power = 1 − F(t_crit; ν, δ) + F(−t_crit; ν, δ),  t_crit = t.ppf(1 − α/2, ν).

An arm with no seed noise (SD 0) is one observation repeated: no number of its runs makes
a test, so it gets no seeds-needed and no detectable effect.
"""

from __future__ import annotations

import math

ALPHA, POWER = 0.05, 0.8
MIN_RUNS = 3  # the fewest runs a side a verdict is given from (reprogrid.analysis.versus)
MAX_SEEDS = 100_000


def _shape(sd: float, runs: int, paired: bool) -> tuple[int, float]:
    """(degrees of freedom, standard error of the mean difference per unit effect)."""
    if paired:
        return runs - 1, sd / math.sqrt(runs)
    return 2 * (runs - 1), sd * math.sqrt(2 / runs)


def power_of(effect: float, sd: float, runs: int, paired: bool = False, alpha: float = ALPHA) -> float:
    """The probability that the two-sided t-test with `runs` per arm finds a true `effect`."""
    from scipy.stats import nct, t

    dof, error = _shape(sd, runs, paired)
    if dof < 1 or error == 0:
        return float("nan")
    critical, shift = t.ppf(1 - alpha / 2, dof), abs(effect) / error
    wrong_side = float(nct.cdf(-critical, dof, shift))  # NaN far in the tail, where it is 0
    return float(nct.sf(critical, dof, shift)) + (0.0 if math.isnan(wrong_side) else wrong_side)


def seeds_needed(effect: float, sd: float | None, paired: bool = False, alpha: float = ALPHA,
                 power: float = POWER) -> int | None:
    """The fewest runs per arm (at least MIN_RUNS) whose test finds `effect` with `power`;
    None without seed noise (sd 0 or unknown) or past MAX_SEEDS."""
    if not sd or effect == 0:
        return None
    high = MIN_RUNS
    while power_of(effect, sd, high, paired, alpha) < power:
        high *= 2
        if high > MAX_SEEDS:
            return None
    low = max(MIN_RUNS, high // 2)
    while low < high:  # the first N that suffices (power grows with N)
        middle = (low + high) // 2
        if power_of(effect, sd, middle, paired, alpha) < power:
            low = middle + 1
        else:
            high = middle
    return high


def min_detectable_effect(sd: float | None, runs: int, paired: bool = False, alpha: float = ALPHA,
                          power: float = POWER) -> float | None:
    """The smallest difference `runs` runs per arm find with `power`; None without seed
    noise or below two runs."""
    from scipy.optimize import brentq

    if not sd or runs < 2:
        return None
    _, error = _shape(sd, runs, paired)
    high = error
    while power_of(high, sd, runs, paired, alpha) < power:
        high *= 2
    return float(brentq(lambda effect: power_of(effect, sd, runs, paired, alpha) - power, 0.0, high, xtol=1e-12 * high))
