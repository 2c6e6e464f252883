"""Is A better than B, beyond seed noise: the probability of improvement and its
interval on pairs with a known ordering, and on equal cells."""

import csv

import numpy as np
import pytest

from reprogrid import versus


def by_hand(a, b):
    return np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b])


def test_a_cell_whose_every_run_beats_the_others_is_better():
    a, b = np.linspace(0.97, 0.99, 10), np.linspace(0.95, 0.96, 10)
    p, low, high = versus.probability_of_improvement(a, b)
    assert (p, low, high) == (1.0, 1.0, 1.0) and versus.verdict(low, high) == "A better"
    p, low, high = versus.probability_of_improvement(b, a)
    assert p == 0.0 and versus.verdict(low, high) == "B better"


def test_equal_cells_are_within_seed_noise():
    rng = np.random.default_rng(3)
    a = rng.normal(0.97, 0.004, 10)
    p, low, high = versus.probability_of_improvement(a, a.copy())
    assert p == 0.5 and low < 0.5 < high and versus.verdict(low, high) == "within seed noise"


def test_the_point_estimate_is_the_mann_whitney_share_with_ties_as_half():
    a, b = [0.9, 0.92, 0.92, 0.95], [0.92, 0.91, 0.96]
    assert versus.probability_of_improvement(a, b)[0] == pytest.approx(by_hand(a, b))
    # lower is better for a loss: the same runs, the other way round
    assert versus.probability_of_improvement(a, b, lower_is_better=True)[0] == pytest.approx(by_hand(b, a))


def test_paired_cells_compare_replicate_by_replicate():
    b = np.array([0.89, 0.93, 0.94, 0.96, 0.95, 0.91, 0.92, 0.94, 0.93, 0.95])
    a = b + [0.01, 0, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]  # A ahead on 9, a tie on one
    p, low, high = versus.probability_of_improvement(a, b, paired=True)
    assert p == pytest.approx(9.5 / 10) and low <= p <= high
    # unpaired, the same numbers overlap far more
    unpaired = versus.probability_of_improvement(a, b)[0]
    assert unpaired == pytest.approx(by_hand(a, b)) and unpaired < p


def test_versus_csv_on_the_grid(grid):
    with open(grid / "results" / "compare" / "versus.csv") as handle:
        rows = list(csv.DictReader(handle))
    pairs = {(r["a_setting"], r["a_libconf"], r["b_setting"], r["b_libconf"]) for r in rows}
    # cells sharing a setting or a library configuration, never neither
    assert pairs == {("all_fixed", "numpy_unseeded", "all_fixed", "t1"), ("all_fixed", "numpy_unseeded", "init",
                     "numpy_unseeded"), ("all_fixed", "t1", "init", "t1"), ("init", "numpy_unseeded", "init", "t1")}
    assert not any(a_s != b_s and a_l != b_l for a_s, a_l, b_s, b_l in pairs)
    for row in rows:  # two replicates a cell: estimates without intervals or verdicts
        assert row["ci_low"] == row["ci_high"] == "" and row["verdict"] == versus.TOO_FEW
        assert 0 <= float(row["p_a_better"]) <= 1
        assert row["paired"] == ("true" if row["a_setting"] == row["b_setting"] else "false")


def test_below_ten_runs_there_is_no_interval_and_no_verdict():
    p, low, high = versus.probability_of_improvement([0.99, 0.98, 0.97] * 3, [0.9, 0.91, 0.92] * 3)
    assert p == 1.0 and (low, high) == (None, None) and versus.verdict(low, high) == versus.TOO_FEW


def test_interval_ends_are_stable_to_the_printed_digits():
    """The report prints P(A better) to two decimals: another bootstrap seed must not move
    an end by half of that."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.970, 0.004, 10), rng.normal(0.968, 0.004, 10)
    for paired in (False, True):
        ends = np.array([versus.probability_of_improvement(a, b, paired, seed=seed)[1:] for seed in range(4)])
        assert np.ptp(ends, axis=0).max() < 0.005, (paired, ends)
