"""How many seeds: the exact power of the two-sided t-test that versus gives its verdicts
by (noncentral t), checked against a simulation of that test, and power.csv on a grid."""

import csv

import numpy as np
import pytest
from scipy import stats

from reprogrid.analysis import power


@pytest.mark.parametrize("effect, sd, runs, paired", [(0.005, 0.004, 10, False), (0.01, 0.02, 30, False),
                                                      (0.004, 0.003, 6, True)])
def test_the_power_is_what_a_simulated_t_test_finds(effect, sd, runs, paired):
    rng = np.random.default_rng(5)
    trials = 4000
    if paired:  # sd is the SD of the per-replicate differences
        found = sum(stats.ttest_1samp(rng.normal(effect, sd, runs), 0).pvalue < 0.05 for _ in range(trials))
    else:
        found = sum(stats.ttest_ind(rng.normal(effect, sd, runs), rng.normal(0, sd, runs), equal_var=False).pvalue
                    < 0.05 for _ in range(trials))
    assert found / trials == pytest.approx(power.power_of(effect, sd, runs, paired), abs=0.025)


def test_seeds_needed_is_the_fewest_that_reach_80_percent_power():
    for effect, sd, paired in ((0.005, 0.0037, False), (0.005, 0.02, False), (0.01, 0.05, True)):
        needed = power.seeds_needed(effect, sd, paired)
        assert power.power_of(effect, sd, needed, paired) >= 0.8
        assert needed == power.MIN_RUNS or power.power_of(effect, sd, needed - 1, paired) < 0.8


def test_the_minimum_detectable_effect_is_detected_with_80_percent_power():
    for sd, runs in ((0.0037, 10), (0.02, 3)):
        assert power.power_of(power.min_detectable_effect(sd, runs), sd, runs) == pytest.approx(0.8, abs=1e-9)


def test_without_seed_noise_no_number_of_seeds_makes_a_test():
    assert power.seeds_needed(0.005, 0.0) is None and power.min_detectable_effect(0.0, 10) is None


def test_power_csv_on_the_grid(grid):
    with open(grid / "results" / "compare" / "power.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["setting"], r["libconf"], r["metric"]) for r in rows} == {
        (s, lc, m) for s in ("all_fixed", "init") for lc in ("t1", "numpy_unseeded")
        for m in ("test_accuracy", "test_loss")}
    for row in rows:
        sd, runs = float(row["sd"]), int(row["runs"])
        if sd == 0:  # one observation, repeated: no seeds make a test of it
            assert row["seeds_needed"] == row["min_detectable_effect"] == ""
        else:
            assert int(row["seeds_needed"]) == power.seeds_needed(float(row["effect_size"]), sd)
            assert float(row["min_detectable_effect"]) == pytest.approx(power.min_detectable_effect(sd, runs))
