"""Is A better than B, beyond seed noise: verdicts only where the data carry them, checked
by simulation (what a verdict claims must happen at the stated rates), and versus.csv on
a real grid."""

import csv

import numpy as np
import pytest

from reprogrid.analysis import power, versus

SIMULATIONS = 2000


def arms(a, b, paired=True, metric="test_accuracy", effect=0.005, distinct_a=None, distinct_b=None):
    """Every run distinct (different final weights) unless said otherwise."""
    return versus.compare_arms(a, b, paired, metric, distinct_a or len(a), distinct_b or len(b), effect)


def test_an_arm_whose_every_run_beats_the_other_is_better_with_a_t_interval():
    b = np.array([0.89, 0.93, 0.94, 0.96, 0.95, 0.91, 0.92, 0.94, 0.93, 0.95])
    a = b + np.linspace(0.008, 0.012, 10)
    row = arms(a, b)
    assert row["verdict"] == "A better" and 0 < row["ci_low"] < row["mean_difference"] < row["ci_high"]
    assert row["p_a_better"] == 1.0 and row["p_ci_low"] == pytest.approx(0.025 ** (1 / 10))  # Clopper-Pearson
    assert arms(b, a)["verdict"] == "B better"
    # a loss: lower is better, so the same numbers read the other way
    assert arms(a, b, metric="test_loss")["verdict"] == "B better"


def test_an_arm_of_identical_runs_is_one_observation_and_gets_no_verdict():
    row = arms([0.95] * 10, np.linspace(0.90, 0.94, 10), distinct_a=1)
    assert row["verdict"] == versus.ONE_OBSERVATION and row["ci_low"] is None and row["seeds_needed"] is None
    assert arms([0.95, 0.95, 0.96, 0.97], [0.9, 0.91, 0.92, 0.93], distinct_a=3)["verdict"].startswith("runs repeat")


def test_a_deterministic_arm_against_a_varied_one_from_the_same_distribution_is_rarely_given_a_verdict():
    rng = np.random.default_rng(1)
    verdicts = 0
    for _ in range(SIMULATIONS):
        a = np.full(10, rng.normal(0.95, 0.01))  # every source fixed: one draw, repeated
        b = rng.normal(0.95, 0.01, 10)
        verdicts += arms(a, b, paired=False, distinct_a=1)["verdict"] in ("A better", "B better")
    assert verdicts / SIMULATIONS <= 0.06


@pytest.mark.parametrize("paired", [True, False])
def test_two_varied_arms_from_the_same_distribution_get_a_verdict_at_the_test_level(paired):
    rng = np.random.default_rng(2)
    verdicts = sum(arms(rng.normal(0.95, 0.01, 10), rng.normal(0.95, 0.01, 10), paired)["verdict"]
                   in ("A better", "B better") for _ in range(SIMULATIONS))
    assert verdicts / SIMULATIONS <= 0.06


@pytest.mark.parametrize("share", [0.5, 0.6, 0.69, 0.75, 0.84, 0.85])
def test_the_paired_interval_of_p_a_better_covers_the_true_share(share):
    """Paired differences with P(A beats B) = share; the interval must cover it ≥ 93 % at n = 10."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    shift = norm.ppf(share)
    covered = 0
    for _ in range(SIMULATIONS):
        b = rng.normal(0, 1, 10)
        row = arms(b + rng.normal(shift, 1, 10), b)  # P(A beats B) = P(difference > 0) = share
        covered += row["p_ci_low"] <= share <= row["p_ci_high"]
    assert covered / SIMULATIONS >= 0.93


@pytest.mark.parametrize("paired", [False, True])
def test_at_the_seeds_power_recommends_the_verdict_has_the_stated_power(paired):
    """power.csv's seeds_needed (unpaired arms) and a versus row's (paired: from the SD of
    the differences) plan for the very test the verdict is given by."""
    sd, effect = 0.01, 0.006
    planned_sd = sd * np.sqrt(2) if paired else sd  # the differences of two independent arms
    runs = power.seeds_needed(effect, planned_sd, paired)
    rng = np.random.default_rng(4)
    found = sum(arms(rng.normal(0.95 + effect, sd, runs), rng.normal(0.95, sd, runs), paired)["verdict"]
                == "A better" for _ in range(SIMULATIONS))
    assert found / SIMULATIONS >= 0.78


def test_versus_csv_on_the_grid(grid):
    with open(grid / "results" / "compare" / "versus.csv") as handle:
        rows = list(csv.DictReader(handle))
    # library configurations under one setting, never two seed settings
    assert sorted((r["setting"], frozenset((r["a_libconf"], r["b_libconf"])), r["metric"]) for r in rows) == sorted(
        (s, frozenset(("t1", "numpy_unseeded")), m) for s in ("all_fixed", "init") for m in ("test_accuracy", "test_loss"))
    for row in rows:
        assert row["paired"] == "true" and row["comparisons"] == "2" and row["ci_low"] == ""
        # all_fixed under t1 is one observation however often it ran; two replicates are too few anyway
        expected = versus.ONE_OBSERVATION if row["setting"] == "all_fixed" else versus.TOO_FEW
        assert row["verdict"] == expected
