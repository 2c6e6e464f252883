"""How many seeds: Welch's test power (Colas, Sigaud & Oudeyer 2018), against the
formula computed by hand, and power.csv on a real grid."""

import csv
import math

import pytest
from scipy.stats import t

from reprogrid import power


def by_hand_miss(effect, sd, runs):
    nu = (2 * sd ** 2) ** 2 * (runs - 1) / (2 * sd ** 4)
    t_effect = effect / math.sqrt(2 * sd ** 2 / runs)
    return t.cdf(t.ppf(0.95, nu) - t_effect, nu)


@pytest.mark.parametrize("effect, sd, runs", [(0.005, 0.0037, 10), (0.01, 0.02, 30), (0.003, 0.001, 3)])
def test_the_miss_probability_is_the_formula(effect, sd, runs):
    assert power.miss_probability(effect, sd, sd, runs) == pytest.approx(by_hand_miss(effect, sd, runs), rel=1e-12)


def test_seeds_needed_is_the_fewest_that_reach_80_percent_power():
    for effect, sd in ((0.005, 0.0037), (0.005, 0.02), (0.01, 0.05)):
        needed = power.seeds_needed(effect, sd)
        assert by_hand_miss(effect, sd, needed) <= 0.2 < by_hand_miss(effect, sd, needed - 1)


def test_the_minimum_detectable_effect_is_detected_with_80_percent_power():
    for sd, runs in ((0.0037, 10), (0.02, 3)):
        effect = power.min_detectable_effect(sd, runs)
        assert by_hand_miss(effect, sd, runs) == pytest.approx(0.2, abs=1e-9)


def test_power_csv_on_the_grid(grid):
    with open(grid / "results" / "compare" / "power.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["setting"], r["libconf"], r["metric"]) for r in rows} == {
        (s, lc, m) for s in ("all_fixed", "init") for lc in ("t1", "numpy_unseeded")
        for m in ("test_accuracy", "test_loss")}
    for row in rows:
        sd, runs = float(row["sd"]), int(row["runs"])
        if sd == 0:
            assert row["seeds_needed"] == "2" and float(row["min_detectable_effect"]) == 0
        else:
            assert int(row["seeds_needed"]) == power.seeds_needed(float(row["effect_size"]), sd)
            assert float(row["min_detectable_effect"]) == pytest.approx(power.min_detectable_effect(sd, runs))
