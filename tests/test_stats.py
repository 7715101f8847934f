"""Campaign-evaluation statistics against hand-computed values and scipy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tasks.analytics import stats as s
from tasks.core.errors import ConfigError, DataValidationError

Z975 = 1.959963984540054


def test_diff_in_means_of_proportions_by_hand():
    y_t = [1, 1, 1, 0]      # 0.75
    y_c = [1, 0, 0, 0, 0]   # 0.20
    eff = s.diff_in_means(y_t, y_c)
    se = math.sqrt(0.75 * 0.25 / 4 + 0.2 * 0.8 / 5)
    assert eff.estimate == pytest.approx(0.55)
    assert eff.se == pytest.approx(se)
    assert eff.ci_low == pytest.approx(0.55 - Z975 * se)
    assert eff.ci_high == pytest.approx(0.55 + Z975 * se)
    assert eff.p_value == pytest.approx(2 * (1 - sps.norm.cdf(0.55 / se)))
    assert (eff.n_t, eff.n_c, eff.mean_t, eff.mean_c) == (4, 5, 0.75, 0.2)
    assert "proportions" in eff.method


def test_diff_in_means_welch_by_hand_and_against_scipy():
    y_t = [1.0, 2.0, 3.0, 4.0]   # mean 2.5, sample variance 5/3
    y_c = [2.0, 4.0, 6.0]        # mean 4.0, sample variance 4
    eff = s.diff_in_means(y_t, y_c, alpha=0.1)
    v_t, v_c = (5 / 3) / 4, 4 / 3
    se = math.sqrt(v_t + v_c)
    df = (v_t + v_c) ** 2 / (v_t**2 / 3 + v_c**2 / 2)
    assert eff.estimate == pytest.approx(-1.5)
    assert eff.se == pytest.approx(se)
    assert eff.ci_high == pytest.approx(-1.5 + sps.t.ppf(0.95, df) * se)
    ref = sps.ttest_ind(y_t, y_c, equal_var=False)
    assert eff.p_value == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.9)
    assert (eff.ci_low, eff.ci_high) == pytest.approx((ci.low, ci.high))


def test_diff_in_means_without_variance_gives_a_point_interval():
    eff = s.diff_in_means([0, 0, 0], [0, 0])
    assert (eff.estimate, eff.ci_low, eff.ci_high, eff.p_value) == (0.0, 0.0, 0.0, 1.0)
    eff = s.diff_in_means([5.0, 5.0], [3.0, 3.0])
    assert (eff.estimate, eff.se, eff.p_value) == (2.0, 0.0, 0.0)


def test_diff_in_means_intervals_cover_the_true_effect_about_95_percent():
    rng = np.random.default_rng(0)
    covered = [
        s.diff_in_means(rng.random(2000) < 0.12, rng.random(2000) < 0.10).covers(0.02) for _ in range(300)
    ]
    # binomial sd of the coverage over 300 runs is about 0.013
    assert 0.91 <= np.mean(covered) <= 0.99


def test_effect_to_dict_is_plain():
    d = s.diff_in_means(np.array([1, 0, 1]), pd.Series([0, 0, 1])).to_dict()
    assert set(d) >= {"estimate", "se", "ci_low", "ci_high", "p_value", "n_t", "n_c", "mean_t", "mean_c"}
    assert all(type(v) in (float, int, str) for v in d.values())


def test_diff_in_means_bad_input():
    with pytest.raises(DataValidationError, match="y_c.*at least 2"):
        s.diff_in_means([1, 0], [1])
    with pytest.raises(DataValidationError, match="y_t.*missing"):
        s.diff_in_means([1, np.nan, 0], [1, 0])
    with pytest.raises(DataValidationError, match="numeric"):
        s.diff_in_means(["a", "b"], [1, 0])
    with pytest.raises(ConfigError, match="alpha"):
        s.diff_in_means([1, 0], [1, 0], alpha=1.5)


def test_relative_lift_by_hand():
    y_t = [1, 1, 0, 0]   # 0.5
    y_c = [1, 0, 0, 0]   # 0.25
    eff = s.relative_lift(y_t, y_c)
    v_t, v_c = 0.5 * 0.5 / 4, 0.25 * 0.75 / 4
    se = math.sqrt(v_t / 0.25**2 + 0.5**2 * v_c / 0.25**4)
    assert eff.estimate == pytest.approx(1.0)
    assert eff.se == pytest.approx(se)
    assert eff.ci_low == pytest.approx(1.0 - Z975 * se)
    with pytest.raises(DataValidationError, match="control mean is 0"):
        s.relative_lift([1, 0], [0, 0])


def test_two_proportion_ztest_by_hand():
    z, p = s.two_proportion_ztest(30, 100, 20, 100)
    pooled = 50 / 200
    z_hand = (0.3 - 0.2) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert z == pytest.approx(z_hand)
    assert p == pytest.approx(2 * sps.norm.sf(z_hand))
    with pytest.raises(DataValidationError, match="more successes"):
        s.two_proportion_ztest(5, 4, 1, 10)
    with pytest.raises(DataValidationError, match="n_c"):
        s.two_proportion_ztest(0, 4, 0, 0)


def test_srm_test_by_hand_and_against_scipy():
    chi2, p = s.srm_test({"a": 510, "b": 490}, {"a": 0.5, "b": 0.5})
    assert chi2 == pytest.approx(10**2 / 500 + 10**2 / 500)
    assert p == pytest.approx(sps.chi2.sf(0.4, 1))
    observed = {"targeted": 8123, "random_target": 950, "control": 927}
    shares = {"targeted": 0.8, "random_target": 0.1, "control": 0.1}
    chi2, p = s.srm_test(observed, shares)
    ref = sps.chisquare([8123, 950, 927], [8000, 1000, 1000])
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_srm_test_catches_a_five_percent_imbalance_at_100k():
    # control planned 10% but 5% of its clients went missing: 100k * 0.1 * 0.95
    chi2, p = s.srm_test({"targeted": 80_000, "random_target": 10_000, "control": 9_500},
                         {"targeted": 0.8, "random_target": 0.1, "control": 0.1})
    assert p < 0.001


def test_srm_test_bad_input():
    with pytest.raises(ConfigError, match="sum to 1"):
        s.srm_test({"a": 1, "b": 2}, {"a": 0.5, "b": 0.6})
    with pytest.raises(DataValidationError, match="differ"):
        s.srm_test({"a": 1, "b": 2}, {"a": 0.5, "c": 0.5})
    with pytest.raises(DataValidationError, match="non-negative integer"):
        s.srm_test({"a": -1, "b": 2}, {"a": 0.5, "b": 0.5})
    with pytest.raises(ConfigError, match="positive"):
        s.srm_test({"a": 1, "b": 2}, {"a": 0.0, "b": 1.0})
    with pytest.raises(DataValidationError, match="all observed counts are 0"):
        s.srm_test({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5})
    with pytest.raises(DataValidationError, match="two groups"):
        s.srm_test({"a": 3}, {"a": 1.0})


def test_standardized_mean_difference_by_hand():
    # means 2 and 3, sample variances 1 and 1 -> (2 - 3) / sqrt((1 + 1) / 2)
    assert s.standardized_mean_difference([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0)
    # equal means 2 and 2 (the NaN is ignored) -> 0
    assert s.standardized_mean_difference([1, 2, 3], [0, 2, 4, np.nan]) == pytest.approx(0.0)
    # means 2 and 4, variances 1 and 4 -> -2 / sqrt(2.5)
    assert s.standardized_mean_difference([1, 2, 3], [2, 4, 6]) == pytest.approx(-2 / math.sqrt(2.5))
    assert s.standardized_mean_difference([1, 1], [1, 1]) == 0.0
    assert s.standardized_mean_difference([2, 2], [1, 1]) == math.inf
    with pytest.raises(DataValidationError, match="column 'b'.*at least 2"):
        s.standardized_mean_difference([1, 2], [np.nan, 1])



def test_standardized_mean_difference_signs_nan_and_infinite_values():
    # constant groups: a signed infinity with the sign of mean_a - mean_b
    assert s.standardized_mean_difference([1, 1], [2, 2]) == -math.inf
    assert s.standardized_mean_difference([2, 2, np.nan], [1, 1]) == math.inf
    # NaN cells are dropped from either group before the means and variances
    assert s.standardized_mean_difference([1, np.nan, 2, 3], [2, 3, 4, np.nan]) == pytest.approx(-1.0)
    assert s.standardized_mean_difference([np.nan, 1, 1], [1, 1, np.nan]) == 0.0
    assert s.standardized_mean_difference(pd.Series([1.0, 2.0, None]), pd.Series([1.0, 2.0])) == 0.0
    # an infinite value is an error naming its group, as is a group with one value left
    with pytest.raises(DataValidationError, match="column 'a'.*missing or infinite"):
        s.standardized_mean_difference([1, np.inf, 2], [1, 2])
    with pytest.raises(DataValidationError, match="column 'a'.*at least 2"):
        s.standardized_mean_difference([np.nan, 1], [1, 2])
    assert isinstance(s.standardized_mean_difference(np.array([1, 2, 3]), np.array([2, 3, 4])), float)


def test_diff_in_proportions_by_hand():
    # 0.75 of 4 against 0.2 of 5: the unpooled SE and a normal interval
    eff = s.diff_in_proportions(0.75, 4, 0.2, 5)
    se = math.sqrt(0.75 * 0.25 / 4 + 0.2 * 0.8 / 5)
    assert eff.estimate == pytest.approx(0.55) and eff.se == pytest.approx(se)
    assert (eff.ci_low, eff.ci_high) == pytest.approx((0.55 - Z975 * se, 0.55 + Z975 * se))
    assert eff.p_value == pytest.approx(2 * sps.norm.sf(0.55 / se))
    assert (eff.n_t, eff.n_c, eff.mean_t, eff.mean_c, eff.alpha) == (4, 5, 0.75, 0.2, 0.05)
    # one client per group is enough
    assert s.diff_in_proportions(1.0, 1, 0.0, 1).estimate == 1.0
    # rates of 0 or 1 in both groups: no variance, a point interval
    eff = s.diff_in_proportions(0.0, 3, 0.0, 2)
    assert (eff.estimate, eff.se, eff.ci_low, eff.ci_high, eff.p_value) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert s.diff_in_proportions(1.0, 3, 0.0, 2).p_value == 0.0


def test_diff_in_proportions_is_what_diff_in_means_gives_for_0_1_outcomes():
    rng = np.random.default_rng(4)
    y_t, y_c = (rng.random(300) < 0.3).astype(int), (rng.random(200) < 0.2).astype(int)
    by_rates = s.diff_in_proportions(float(y_t.mean()), y_t.size, float(y_c.mean()), y_c.size, alpha=0.1)
    assert s.diff_in_means(y_t, y_c, alpha=0.1) == by_rates


def test_diff_in_proportions_bad_input():
    with pytest.raises(DataValidationError, match="column 'n_c'"):
        s.diff_in_proportions(0.5, 4, 0.5, 0)
    with pytest.raises(DataValidationError, match="column 'n_t'"):
        s.diff_in_proportions(0.5, 2.5, 0.5, 3)
    with pytest.raises(DataValidationError, match="column 'p_t'.*\\[0, 1\\]"):
        s.diff_in_proportions(1.5, 4, 0.5, 4)
    with pytest.raises(DataValidationError, match="column 'p_c'"):
        s.diff_in_proportions(0.5, 4, float("nan"), 4)
    with pytest.raises(ConfigError, match="alpha"):
        s.diff_in_proportions(0.5, 4, 0.5, 4, alpha=1.0)


def test_normal_effect_by_hand():
    eff = s.normal_effect(0.3, 0.1, 0.05, 10, 20, 0.5, 0.2, "m")
    assert (eff.ci_low, eff.ci_high) == pytest.approx((0.3 - Z975 * 0.1, 0.3 + Z975 * 0.1))
    assert eff.p_value == pytest.approx(2 * sps.norm.sf(3.0))
    assert (eff.n_t, eff.n_c, eff.mean_t, eff.mean_c, eff.method) == (10, 20, 0.5, 0.2, "m")
    point = s.normal_effect(0.0, 0.0, 0.05, 1, 1, 0.0, 0.0, "m")
    assert (point.ci_low, point.ci_high, point.p_value) == (0.0, 0.0, 1.0)

def test_benjamini_hochberg_by_hand_and_against_scipy():
    p = [0.01, 0.04, 0.03, 0.2]
    # sorted 0.01, 0.03, 0.04, 0.2 against 0.05 * i / 4 = 0.0125, 0.025, 0.0375, 0.05:
    # only 0.01 passes and no larger one does -> reject the first only
    np.testing.assert_array_equal(s.benjamini_hochberg(p, alpha=0.05), [True, False, False, False])
    # adjusted: 0.01*4/1 = 0.04, 0.03*4/2 = 0.06, 0.04*4/3 = 0.0533, 0.2 -> running min from the top
    np.testing.assert_allclose(s.bh_adjusted(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    rng = np.random.default_rng(1)
    many = np.r_[rng.random(40), rng.random(10) * 1e-3]
    np.testing.assert_allclose(s.bh_adjusted(many), sps.false_discovery_control(many))
    assert s.benjamini_hochberg([]).size == 0


def test_holm_by_hand():
    # sorted 0.01 <= 0.05/4; 0.03 > 0.05/3 stops the procedure
    np.testing.assert_array_equal(s.holm([0.01, 0.04, 0.03, 0.2]), [True, False, False, False])
    # 0.001 <= 0.05/3, 0.01 <= 0.05/2, 0.02 <= 0.05/1
    np.testing.assert_array_equal(s.holm([0.02, 0.001, 0.01]), [True, True, True])


def test_multiple_testing_bad_input():
    with pytest.raises(DataValidationError, match="outside"):
        s.benjamini_hochberg([0.1, 1.2])
    with pytest.raises(DataValidationError, match="missing"):
        s.holm([0.1, np.nan])
    with pytest.raises(ConfigError, match="alpha"):
        s.holm([0.1], alpha=0)


def test_holm_adjusted_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(s.holm_adjusted([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(s.holm_adjusted([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert s.holm_adjusted([]).size == 0


# --------------------------------------------------------------------------- small cells


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_against_published_values(k, n, low, high):
    assert s.wilson_interval(k, n) == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize("counts, low, high", [
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", method 10
    ((56, 70, 48, 80), 0.0524, 0.3339), ((9, 10, 3, 10), 0.1705, 0.8090), ((6, 7, 2, 7), 0.0582, 0.8062),
    ((5, 56, 0, 29), -0.0381, 0.1926), ((0, 10, 0, 20), -0.1611, 0.2775), ((0, 10, 0, 10), -0.2775, 0.2775),
])
def test_newcombe_interval_against_published_values(counts, low, high):
    assert s.newcombe_interval(*counts) == pytest.approx((low, high), abs=5e-5)


def test_rate_difference_uses_newcombe_only_in_small_cells():
    small = s.rate_difference(9, 10, 3, 10)
    assert "Newcombe" in small.method and (small.ci_low, small.ci_high) == pytest.approx(s.newcombe_interval(9, 10, 3, 10))
    assert small.p_value == pytest.approx(s.two_proportion_ztest(9, 10, 3, 10)[1])
    assert small.se == pytest.approx(math.sqrt(0.9 * 0.1 / 10 + 0.3 * 0.7 / 10))
    big = s.rate_difference(300, 1000, 200, 1000)
    wald = s.diff_in_proportions(0.3, 1000, 0.2, 1000)
    assert (big.ci_low, big.ci_high, big.p_value, big.method) == (wald.ci_low, wald.ci_high, wald.p_value, wald.method)
    # 29 responders in an arm is a small cell; so are 29 non-responders
    assert "Newcombe" in s.rate_difference(29, 1000, 200, 1000).method
    assert "Newcombe" in s.rate_difference(971, 1000, 200, 1000).method
    with pytest.raises(DataValidationError, match="k <= n"):
        s.rate_difference(5, 4, 1, 4)


def test_newcombe_keeps_its_level_where_wald_does_not():
    # three responders in 200 against one in 200: Wald's interval is too short
    rng = np.random.default_rng(4)
    kt, kc = rng.binomial(200, 0.015, 4000), rng.binomial(200, 0.005, 4000)
    newcombe = np.mean([lo <= 0.01 <= hi for lo, hi in (s.newcombe_interval(a, 200, b, 200) for a, b in zip(kt, kc))])
    wald = np.mean([s.diff_in_proportions(a / 200, 200, b / 200, 200).covers(0.01) for a, b in zip(kt, kc)])
    # measured: Newcombe 0.993 (on the safe side), Wald 0.933 (short of 0.95)
    assert newcombe >= 0.95 > wald


# --------------------------------------------------------------------------- design checks and power


def test_equal_shares_test_by_hand_and_against_scipy():
    hits, totals = {"a": 50, "b": 10, "c": 10}, {"a": 1000, "b": 1000, "c": 500}
    chi2, p = s.equal_shares_test(hits, totals)
    ref = sps.chi2_contingency([[50, 950], [10, 990], [10, 490]], correction=False)
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue))
    # nothing missing anywhere: nothing to compare
    assert s.equal_shares_test({"a": 0, "b": 0}, {"a": 10, "b": 10}) == (0.0, 1.0)
    # a 2 x 2 table with a small expected count: Fisher's exact test
    _, p = s.equal_shares_test({"a": 3, "b": 0}, {"a": 10, "b": 10})
    assert p == pytest.approx(sps.fisher_exact([[0, 10], [3, 7]])[1])
    with pytest.raises(DataValidationError, match="hits among"):
        s.equal_shares_test({"a": 11}, {"a": 10})


def test_mde_by_hand():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)  # 2.8016
    assert s.mde_from_se(0.01) == pytest.approx(z * 0.01)
    # base rate 3%, 4,658 offered against 568 control clients
    se = math.sqrt(0.03 * 0.97 * (1 / 4658 + 1 / 568))
    assert s.mde_rate_difference(0.03, 4658, 568) == pytest.approx(z * se)
    assert s.mde_rate_difference(0.03, 4658, 568) == pytest.approx(0.0212, abs=5e-5)
    # a test at that effect has 80% power: z_alpha/2 standard errors below it is the 20% quantile
    assert sps.norm.cdf(s.mde_from_se(se) / se - sps.norm.ppf(0.975)) == pytest.approx(0.8)
    with pytest.raises(DataValidationError, match="base_rate"):
        s.mde_rate_difference(0.0, 10, 10)
    with pytest.raises(ConfigError, match="power"):
        s.mde_from_se(0.1, power=1.0)


def test_diff_in_amounts_by_hand():
    y_t, y_c = [10.0, 20.0, 0.0, 0.0], [6.0, 0.0, 0.0]
    # buyers' amounts pooled: 10, 20, 6 -> E[A] = 12, E[A^2] = 536/3; shares of buyers 1/2 and 1/3
    m1, m2 = 12.0, 536 / 3
    v_t = (0.5 * m2 - (0.5 * m1) ** 2) * 4 / 3
    v_c = (m2 / 3 - (m1 / 3) ** 2) * 3 / 2
    eff = s.diff_in_amounts(y_t, y_c)
    assert eff.estimate == pytest.approx(7.5 - 2.0) and eff.se == pytest.approx(math.sqrt(v_t / 4 + v_c / 3))
    assert s.amount_moments(y_t, y_c) == pytest.approx((m1, m2))
    assert s.diff_in_amounts([0.0, 0.0], [0.0, 0.0]).se == 0.0
