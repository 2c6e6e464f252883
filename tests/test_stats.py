"""The statistics against values worked out by hand on small inputs."""

import math

import numpy as np
import pytest

from reprogrid.analysis import stats


def test_std_is_the_sample_standard_deviation():
    assert stats.std([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3))
    assert stats.std([7]) is None
    assert stats.std([0.1 + 0.2] * 7) == 0.0  # no rounding noise from the mean


@pytest.mark.parametrize("values", [[0.96, 0.97, 0.975], [0.96 + 0.001 * k for k in range(10)]])
def test_the_sd_interval_is_the_chi_square_interval(values):
    from scipy.stats import chi2

    n, sd = len(values), stats.std(values)
    low, high = stats.std_interval(values)
    assert low == pytest.approx(sd * math.sqrt((n - 1) / chi2.ppf(0.975, n - 1)))
    assert high == pytest.approx(sd * math.sqrt((n - 1) / chi2.ppf(0.025, n - 1)))
    assert 0 < low < sd < high  # at n = 3 too: a bootstrap's lower end would be 0 there


def test_the_sd_interval_of_agreeing_or_single_runs():
    assert stats.std_interval([3.0, 3.0, 3.0]) == (0.0, 0.0)
    assert stats.std_interval([1.0]) == (None, None)


def test_ratio_of_standard_deviations_has_the_f_interval():
    from scipy.stats import f

    a, b = [0.0, 2.0, 1.0, 3.0], [0.0, 1.0, 0.5]
    ratio, low, high = stats.ratio_interval(a, b)
    assert ratio == pytest.approx(stats.std(a) / stats.std(b))
    assert low == pytest.approx(ratio / math.sqrt(f.ppf(0.975, 3, 2)))
    assert high == pytest.approx(ratio / math.sqrt(f.ppf(0.025, 3, 2)))
    assert stats.ratio_interval([0.0, 2.0], [1.0, 1.0]) == (None, None, None)  # nothing to compare with


def test_mean_pairwise_ignores_a_run_paired_with_itself():
    predicted = np.array([[0, 0], [1, 1], [0, 1]])  # disagreements (0,1): 1, (0,2): .5, (1,2): .5
    statistic = stats.mean_pairwise(stats.square(stats.disagreements(predicted), 3))
    resamples = np.array([[0, 1, 2], [0, 0, 1], [2, 2, 2]])
    # the second resample's pair (0, 0) is no pair: the mean of (0,1) and (0,1); the third has none
    assert statistic(resamples).tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_below_ten_runs_a_bootstrapped_ratio_has_no_interval():
    predicted_a = np.array([[0, 0], [1, 1], [0, 1]])
    predicted_b = np.array([[0, 0], [1, 1]])
    a = stats.mean_pairwise(stats.square(stats.disagreements(predicted_a), 3))
    b = stats.mean_pairwise(stats.square(stats.disagreements(predicted_b), 2))
    assert stats.bootstrap_ratio(a, 3, b, 2) == (pytest.approx(2 / 3), None, None)


def test_a_resample_with_nothing_to_divide_by_is_kept_as_an_infinite_ratio():
    predicted_a = np.random.default_rng(0).integers(0, 3, (10, 40))
    predicted_b = np.zeros((10, 40), dtype=int)
    predicted_b[0, :4] = 1  # only run 0 differs: a resample without it has no disagreement
    a = stats.mean_pairwise(stats.square(stats.disagreements(predicted_a), 10))
    b = stats.mean_pairwise(stats.square(stats.disagreements(predicted_b), 10))
    ratio, low, high = stats.bootstrap_ratio(a, 10, b, 10)
    assert ratio == pytest.approx(a(np.arange(10)[None])[0] / 0.02) and low <= ratio and high == math.inf


def test_interval_ends_are_stable_to_the_printed_digits():
    """The README and report print ratios to two decimals: a different bootstrap seed must
    not move an end by half of that (here on disagreements spread like the ablation's)."""
    rng = np.random.default_rng(7)
    a = stats.mean_pairwise(stats.square(rng.beta(2, 100, 45), 10))
    b = stats.mean_pairwise(stats.square(rng.beta(3, 100, 45), 10))
    ends = np.array([stats.bootstrap_ratio(a, 10, b, 10, seed=seed)[1:] for seed in range(4)])
    assert np.ptp(ends, axis=0).max() < 0.005, ends


def test_disagreement_per_pair():
    predicted = np.array([[0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 2, 0]])
    assert stats.disagreements(predicted).tolist() == [0.25, 0.5, 0.25]


def test_logit_correlation():
    a = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert stats.logit_correlations(np.stack([a, 2 * a + 1])).tolist() == pytest.approx([1.0])
    assert stats.logit_correlations(np.stack([a, -a])).tolist() == pytest.approx([-1.0])


def test_ensemble_gain():
    labels = np.array([0, 1])
    a = np.array([[2.0, 0.0], [1.0, 0.0]])  # predicts 0, 0: accuracy 0.5
    b = np.array([[0.0, 1.0], [0.0, 2.0]])  # predicts 1, 1: accuracy 0.5
    # averaged: [[1, 0.5], [0.5, 1]] predicts 0, 1: accuracy 1.0, a gain of 0.5
    assert stats.ensemble_gains(np.stack([a, b]), labels).tolist() == [0.5]


def test_weight_distance():
    weights = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]], dtype=np.float32)
    assert stats.weight_distances(weights).tolist() == [5.0, 5.0, 0.0]


def test_per_class_spread():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])  # class accuracies (1, 1) and (0.5, 0.5)
    spread = stats.per_class_spread(predicted, labels)
    assert spread["per_class_accuracy_std_mean"] == pytest.approx(math.sqrt(0.125))
    assert spread["per_class_accuracy_std_max"] == pytest.approx(math.sqrt(0.125))
    assert spread["per_class_gap_max"] == 0.5


def test_independent_errors_std():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])  # error rates 0, .5, 0, .5
    assert stats.independent_errors_std(predicted, labels) == pytest.approx(math.sqrt(0.5) / 4)


def test_best_of_k():
    # subsets of two of {1, 2, 3}: maxima 2, 3, 3, so E[max] = 8/3 against a mean of 2
    assert stats.best_of_k_gain([3, 1, 2], 2) == pytest.approx(2 / 3)
    assert stats.best_of_k_gain([3, 1, 2], 3) == pytest.approx(1.0)
    assert stats.best_of_k_gain([3, 1, 2], 1) == pytest.approx(0.0)
    assert stats.best_of_k_gain([3, 1, 2], 4) is None


def test_weight_distance_of_a_one_ulp_pair_is_exact():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(20_000).astype(np.float32) * 10
    b = a.copy()
    b[123] = np.nextafter(b[123], np.float32(np.inf))
    exact = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64))
    assert stats.weight_distances(np.stack([a, b]))[0] == pytest.approx(exact, rel=1e-12)


def test_spearman_is_blind_to_a_monotone_rescaling_and_pearson_is_not():
    a = np.array([[1.0, 2.0], [3.0, 10.0]])
    b = np.exp(a)  # the same order, a different scale
    assert stats.logit_spearman(np.stack([a, b])).tolist() == pytest.approx([1.0])
    assert stats.logit_correlations(np.stack([a, b]))[0] < 0.999


def test_cross_entropy_ensemble_gain_by_hand():
    labels = np.array([0, 1])
    a = np.log(np.array([[0.9, 0.1], [0.6, 0.4]]))  # p(correct) 0.9 and 0.4
    b = np.log(np.array([[0.5, 0.5], [0.2, 0.8]]))  # p(correct) 0.5 and 0.8
    own = (-(math.log(0.9) + math.log(0.4)) / 2 - (math.log(0.5) + math.log(0.8)) / 2) / 2
    together = -(math.log(0.7) + math.log(0.6)) / 2
    assert stats.ensemble_ce_gains(np.stack([a, b]), labels).tolist() == pytest.approx([own - together])


def test_cross_entropy_ensemble_gain_of_every_pair_is_the_pair_taken_alone():
    """Many runs at once (as compare hands a cell) give each pair what the two runs give alone."""
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal((6, 40, 5)) * 4).astype(np.float32)
    labels = rng.integers(0, 5, 40)
    i, j = stats.pairs(6)
    alone = [stats.ensemble_ce_gains(logits[[a, b]], labels)[0] for a, b in zip(i, j)]
    assert stats.ensemble_ce_gains(logits, labels) == pytest.approx(alone, rel=1e-12, abs=1e-15)
