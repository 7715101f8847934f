"""Uplift and response metrics: agreement with scikit-uplift, hand-computed cases, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from tasks.analytics import metrics as m
from tasks.core.errors import ConfigError, DataValidationError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from sklift import metrics as sk

TOL = 1e-9


@pytest.fixture(autouse=True)
def _quiet_sklift():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="The inplace keyword")
        yield


def _dataset(seed: int, n: int, ties: bool = False, p_treat: float = 0.5):
    rng = np.random.default_rng(seed)
    t = (rng.random(n) < p_treat).astype(int)
    x = rng.normal(size=n)
    p = 0.2 + 0.1 * t * (x > 0) - 0.05 * t * (x < -1)
    y = (rng.random(n) < p).astype(int)
    score = np.round(x + rng.normal(scale=0.5, size=n), 0 if ties else 6)
    return y, score, t


CASES = [(seed, n, ties, p) for seed, (n, ties, p) in enumerate(
    [(50, False, 0.5), (333, True, 0.3), (1000, False, 0.7), (2500, True, 0.5), (4000, False, 0.2)]
)]


@pytest.mark.parametrize("seed,n,ties,p_treat", CASES)
def test_auc_scores_match_sklift(seed, n, ties, p_treat):
    y, u, t = _dataset(seed, n, ties, p_treat)
    assert m.qini_auc(y, u, t) == pytest.approx(sk.qini_auc_score(y, u, t), abs=TOL)
    assert m.uplift_auc(y, u, t) == pytest.approx(sk.uplift_auc_score(y, u, t), abs=TOL)
    gain = y[t == 1].sum() - t.sum() * y[t == 0].sum() / (t == 0).sum()
    if gain >= 0:
        assert m.qini_auc(y, u, t, negative_effect=False) == pytest.approx(
            sk.qini_auc_score(y, u, t, negative_effect=False), abs=TOL
        )
    else:
        with pytest.raises(DataValidationError, match="negative"):
            m.qini_auc(y, u, t, negative_effect=False)


@pytest.mark.parametrize("seed,n,ties,p_treat", CASES)
def test_curves_match_sklift(seed, n, ties, p_treat):
    y, u, t = _dataset(seed, n, ties, p_treat)
    for ours, theirs in [
        (m.qini_curve(y, u, t), sk.qini_curve(y, u, t)),
        (m.uplift_curve(y, u, t), sk.uplift_curve(y, u, t)),
        (m.perfect_qini_curve(y, t), sk.perfect_qini_curve(y, t)),
        (m.perfect_uplift_curve(y, t), sk.perfect_uplift_curve(y, t)),
    ]:
        np.testing.assert_allclose(ours[0], theirs[0], atol=TOL)
        np.testing.assert_allclose(ours[1], theirs[1], atol=TOL)


@pytest.mark.parametrize("seed,n,ties,p_treat", CASES)
@pytest.mark.parametrize("k", [0.1, 0.3, 0.5, 17])
@pytest.mark.parametrize("strategy", ["overall", "by_group"])
def test_uplift_at_k_matches_sklift(seed, n, ties, p_treat, k, strategy):
    y, u, t = _dataset(seed, n, ties, p_treat)
    expected = sk.uplift_at_k(y, u, t, strategy=strategy, k=k)
    assert m.uplift_at_k(y, u, t, k=k, strategy=strategy) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed,n,ties,p_treat", CASES[1:])
@pytest.mark.parametrize("bins", [10, 7])
@pytest.mark.parametrize("strategy", ["overall", "by_group"])
def test_uplift_by_percentile_bins_match_sklift(seed, n, ties, p_treat, bins, strategy):
    y, u, t = _dataset(seed, n, ties, p_treat)
    ours = m.uplift_by_percentile(y, u, t, bins=bins, strategy=strategy)
    theirs = sk.uplift_by_percentile(y, u, t, bins=bins, strategy=strategy, std=True)
    assert list(ours.index[:-1]) == list(theirs.index)
    np.testing.assert_allclose(ours.iloc[:-1][theirs.columns].to_numpy(dtype=float),
                               theirs.to_numpy(dtype=float), atol=TOL)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(-3, 3)), min_size=4, max_size=60
    )
)
def test_qini_and_uplift_auc_match_sklift_on_arbitrary_small_data(data):
    y, t, u = (np.array(c) for c in zip(*data))
    if len(set(t)) < 2 or len(set(y)) < 2:
        with pytest.raises(DataValidationError):
            m.qini_auc(y, u, t)
        return
    for ours, theirs in [(m.qini_auc, sk.qini_auc_score), (m.uplift_auc, sk.uplift_auc_score)]:
        try:
            expected = theirs(y, u, t)
        except ZeroDivisionError:  # the perfect curve has no area above the baseline
            expected = np.nan
        if np.isfinite(expected):
            assert ours(y, u, t) == pytest.approx(expected, abs=TOL)
        else:
            with pytest.raises(DataValidationError, match="undefined"):
                ours(y, u, t)


# ---- hand-computed tiny examples

Y4, T4, U4 = [1, 0, 1, 0], [1, 1, 0, 0], [4.0, 3.0, 2.0, 1.0]


def test_qini_curve_by_hand():
    # top 1: 1 treated responder, no control yet -> 1; top 2: still 1;
    # top 3: 1 - 1 control responder * (2 treated / 1 control) = -1; all 4: 1 - 1 * 2/2 = 0
    x, q = m.qini_curve(Y4, U4, T4)
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(q, [0, 1, 1, -1, 0])


def test_qini_auc_by_hand():
    # actual area (trapezoids): 0.5 + 1 + 0 - 0.5 = 1.0.
    # perfect order: treated responder, the two non-responders, control responder:
    # points (0,0) (1,1) (3,1) (4,0) -> area 0.5 + 2 + 0.5 = 3.0; baseline ends at (4, 0): area 0.
    assert m.qini_auc(Y4, U4, T4) == pytest.approx((1.0 - 0.0) / (3.0 - 0.0))


def test_uplift_curve_by_hand():
    # top 3: treated rate 1/2, control rate 1/1 -> (0.5 - 1) * 3 = -1.5; all: (0.5 - 0.5) * 4 = 0
    x, u = m.uplift_curve(Y4, U4, T4)
    np.testing.assert_allclose(u, [0, 1 * 1, (0.5 - 0) * 2, (0.5 - 1) * 3, 0])


def test_uplift_at_k_by_hand():
    y = [1, 0, 1, 0, 0, 1]
    t = [1, 0, 1, 0, 1, 0]
    u = [6, 5, 4, 3, 2, 1]
    # top 4 overall: treated rows 0, 2 respond (2/2); control rows 1, 3 do not (0/2)
    assert m.uplift_at_k(y, u, t, k=4) == pytest.approx(2 / 2 - 0 / 2)
    # top 3 overall: treated 0, 2 -> 1.0; control 1 -> 0.0
    assert m.uplift_at_k(y, u, t, k=0.5) == pytest.approx(1.0)
    # by group, k=2 of each arm: treated rows 0, 2 -> 1.0; control rows 1, 3 -> 0.0
    assert m.uplift_at_k(y, u, t, k=2, strategy="by_group") == pytest.approx(1.0)
    # whole treated arm (2/3) against whole control arm (1/3) via the total row of the table
    table = m.uplift_by_percentile(y, u, t, bins=2)
    assert table.loc["total", "uplift"] == pytest.approx(2 / 3 - 1 / 3)


def test_uplift_by_percentile_by_hand():
    y = [1, 0, 1, 0, 0, 1]
    t = [1, 0, 1, 0, 1, 0]
    u = [6, 5, 4, 3, 2, 1]
    table = m.uplift_by_percentile(y, u, t, bins=2, alpha=0.05)
    assert list(table.index) == ["0-50", "50-100", "total"]
    top = table.loc["0-50"]  # rows 0, 1, 2: treated 0, 2 (both respond), control 1 (not)
    assert (top.n_treatment, top.n_control) == (2, 1)
    assert top.response_rate_treatment == pytest.approx(1.0)
    assert top.response_rate_control == pytest.approx(0.0)
    bottom = table.loc["50-100"]  # rows 3, 4, 5: treated 4 (no), control 3 (no), 5 (yes)
    assert bottom.uplift == pytest.approx(0.0 - 0.5)
    se = np.sqrt(0.0 * 1.0 / 1 + 0.5 * 0.5 / 2)
    assert bottom.std_uplift == pytest.approx(se)
    assert bottom.ci_low == pytest.approx(-0.5 - 1.959963984540054 * se)
    total = table.loc["total"]
    assert (total.n_treatment, total.n_control) == (3, 3)
    assert total.std_uplift == pytest.approx(np.sqrt((2 / 3) * (1 / 3) / 3 * 2))


# ---- behaviour on realistic data

def _simulated(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p_c = 0.1 + 0.02 * (x > 0)
    p_t = p_c + 0.08 * (x > 0.5) - 0.03 * (x < -1.0)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(t == 1, p_t, p_c)).astype(int)
    return x, p_t - p_c, t, y, rng


def test_random_scores_give_qini_near_zero_and_true_uplift_beats_them():
    x, tau, t, y, rng = _simulated(200_000, 3)
    random_q = m.qini_auc(y, rng.random(y.size), t)
    # spread of random-score Qini here is about 0.003 (20 draws); the true-uplift ranking ~0.09
    assert abs(random_q) < 0.015
    assert m.qini_auc(y, tau, t) > random_q + 0.05
    assert abs(m.uplift_at_k(y, rng.random(y.size), t) - (y[t == 1].mean() - y[t == 0].mean())) < 0.01


def test_perfect_ranking_gives_qini_one():
    x, tau, t, y, _ = _simulated(5_000, 4)
    perfect = y * t - y * (1 - t)  # the ranking the perfect Qini curve assumes
    assert m.qini_auc(y, perfect, t) == pytest.approx(1.0)
    assert m.uplift_auc(y, 2 * (y == t) + (t if ((y == 1) & (t == 0)).sum() <= ((y == 0) & (t == 1)).sum() else y), t) \
        == pytest.approx(1.0)


def test_all_equal_scores_give_the_baseline_and_ties_do_not_depend_on_row_order():
    _, _, t, y, rng = _simulated(3_000, 5)
    assert m.qini_auc(y, np.zeros(y.size), t) == pytest.approx(0.0, abs=1e-12)
    assert m.uplift_auc(y, np.ones(y.size), t) == pytest.approx(0.0, abs=1e-12)
    u = rng.integers(0, 4, y.size).astype(float)
    perm = rng.permutation(y.size)
    assert m.qini_auc(y[perm], u[perm], t[perm]) == pytest.approx(m.qini_auc(y, u, t), abs=1e-12)
    first = m.uplift_at_k(y, u, t, k=0.3)
    assert m.uplift_at_k(y, u, t, k=0.3) == first


def test_accepts_series_and_bool_and_leaves_inputs_unchanged():
    y, u, t = _dataset(11, 500)
    ys, us, ts = pd.Series(y), pd.Series(u), pd.Series(t.astype(bool))
    before = (ys.copy(), us.copy(), ts.copy())
    assert m.qini_auc(ys, us, ts) == pytest.approx(m.qini_auc(y, u, t))
    m.uplift_by_percentile(ys, us, ts)
    for a, b in zip((ys, us, ts), before):
        pd.testing.assert_series_equal(a, b)


# ---- bad input

@pytest.mark.parametrize(
    "fn", [m.qini_auc, m.uplift_auc, m.uplift_at_k, m.uplift_by_percentile, m.qini_curve, m.uplift_curve]
)
def test_bad_input_raises_one_clear_error(fn):
    y, u, t = _dataset(7, 100)
    with pytest.raises(DataValidationError, match="different lengths"):
        fn(y[:-1], u, t)
    with pytest.raises(DataValidationError, match="column 'y'.*not 0/1"):
        fn(np.where(y == 1, 2, 0), u, t)
    with pytest.raises(DataValidationError, match="column 'treatment'.*both arms"):
        fn(y, u, np.ones_like(t))
    bad_u = u.copy()
    bad_u[3] = np.nan
    with pytest.raises(DataValidationError, match="column 'uplift'.*missing"):
        fn(y, bad_u, t)
    with pytest.raises(DataValidationError, match="numeric"):
        fn(y, ["a"] * 100, t)
    with pytest.raises(DataValidationError, match="column 'y': 1 missing"):
        fn(pd.Series(y, dtype="Int64").mask(pd.Series(np.arange(100) == 5)), u, t)
    with pytest.raises(DataValidationError, match="empty"):
        fn([], [], [])


def test_bad_parameters_raise_config_errors():
    y, u, t = _dataset(8, 100)
    with pytest.raises(DataValidationError, match="both outcomes"):
        m.qini_auc(np.zeros(100), u, t)
    for k in (0.0, 1.0, 0, 100, True, "0.3"):
        with pytest.raises(ConfigError, match="k"):
            m.uplift_at_k(y, u, t, k=k)
    with pytest.raises(ConfigError, match="strategy"):
        m.uplift_at_k(y, u, t, strategy="top")
    with pytest.raises(ConfigError, match="larger than an arm"):
        m.uplift_at_k(y, u, t, k=99, strategy="by_group")
    with pytest.raises(ConfigError, match="bins"):
        m.uplift_by_percentile(y, u, t, bins=100)
    with pytest.raises(ConfigError, match="bins"):
        m.uplift_by_percentile(y, u, t, bins=0)
    with pytest.raises(ConfigError, match="negative_effect"):
        m.qini_auc(y, u, t, negative_effect="yes")


def test_uplift_at_k_without_a_control_client_in_the_top_is_an_error():
    y = [1, 0, 1, 0]
    t = [1, 1, 0, 0]
    with pytest.raises(DataValidationError, match="no control client"):
        m.uplift_at_k(y, [4, 3, 2, 1], t, k=2)


# ---- bootstrap

def test_bootstrap_ci_is_deterministic_and_brackets_the_point():
    _, _, t, y, _ = _simulated(4_000, 9)
    u = np.random.default_rng(1).random(y.size)
    res1 = m.bootstrap_ci(m.uplift_at_k, y, u, t, n_boot=50, seed=3)
    res2 = m.bootstrap_ci(m.uplift_at_k, y, u, t, n_boot=50, seed=3)
    assert res1 == res2
    point, lo, hi = res1
    assert point == pytest.approx(m.uplift_at_k(y, u, t))
    assert lo < point < hi
    assert m.bootstrap_ci(m.uplift_at_k, y, u, t, n_boot=50, seed=4) != res1


def test_bootstrap_ci_of_a_mean_matches_the_normal_interval():
    x = np.random.default_rng(0).normal(loc=2.0, size=2_000)
    point, lo, hi = m.bootstrap_ci(np.mean, x, n_boot=400, seed=1)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert point == pytest.approx(x.mean())
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_bootstrap_ci_stratified_keeps_stratum_sizes():
    t = np.r_[np.ones(30), np.zeros(70)]
    sizes = []

    def treated_count(tt):
        sizes.append(tt.sum())
        return float(tt.sum())

    point, lo, hi = m.bootstrap_ci(treated_count, t, n_boot=20, stratify=t)
    assert set(sizes) == {30.0} and (point, lo, hi) == (30.0, 30.0, 30.0)


def test_bootstrap_ci_bad_input():
    with pytest.raises(DataValidationError, match="different lengths"):
        m.bootstrap_ci(np.mean, [1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="n_boot"):
        m.bootstrap_ci(np.mean, [1, 2, 3], n_boot=1)
    with pytest.raises(DataValidationError, match="stratify"):
        m.bootstrap_ci(np.mean, [1, 2, 3], stratify=[0, 1])
    x = np.arange(50.0)

    def defined_on_the_original_only(a):
        if not np.array_equal(a, x):
            raise DataValidationError("sample", None, "undefined on a resample")
        return 1.0

    with pytest.raises(DataValidationError, match="0 of 40 bootstrap replicates"):
        m.bootstrap_ci(defined_on_the_original_only, x, n_boot=40)


# ---- response models

@pytest.mark.parametrize("seed,decimals", [(2, 6), (3, 1), (4, 2)])
def test_response_metrics_match_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.round(np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1), decimals)
    for threshold in (0.5, float(p[7]), 2.0):
        res = m.response_metrics(y, p, threshold=threshold)
        pred = (p >= threshold).astype(int)
        assert res["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=TOL)
        assert res["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=TOL)
        assert res["f1"] == pytest.approx(f1_score(y, pred, zero_division=0), abs=TOL)
        assert res["precision"] == pytest.approx(precision_score(y, pred, zero_division=0), abs=TOL)
        assert res["recall"] == pytest.approx(recall_score(y, pred, zero_division=0), abs=TOL)



def test_roc_auc_by_hand_with_ties_and_against_sklearn():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # the positive at 1 ties the negative (1/2), the positive at 2 beats it (1): (0.5 + 1) / 2
    assert m.roc_auc([0, 1, 1], [1, 1, 2]) == 0.75
    assert m.roc_auc([0, 1], [2.0, 1.0]) == 0.0
    for seed, decimals in ((2, 6), (3, 1)):
        rng = np.random.default_rng(seed)
        y = (rng.random(400) < 0.3).astype(int)
        p = np.round(np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1), decimals)
        assert m.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=TOL)
        # one implementation: response_metrics reports the same number
        assert m.roc_auc(y, p) == m.response_metrics(y, p)["roc_auc"]


def test_roc_auc_bad_input():
    with pytest.raises(DataValidationError, match="both classes"):
        m.roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(DataValidationError, match="column 'score'"):
        m.roc_auc([0, 1], [0.1, np.inf])
    with pytest.raises(DataValidationError, match="different lengths"):
        m.roc_auc([0, 1], [0.5])
    with pytest.raises(DataValidationError, match="column 'y'"):
        m.roc_auc([0, 2], [0.1, 0.2])

def test_tune_threshold_f1_beats_every_candidate():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.round(np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1), 2)
    best = m.tune_threshold_f1(y, p)
    f1s = {c: f1_score(y, (p >= c).astype(int)) for c in np.unique(p)}
    assert f1_score(y, (p >= best).astype(int)) == pytest.approx(max(f1s.values()))
    assert best == min(c for c, v in f1s.items() if v == pytest.approx(max(f1s.values())))


def test_tune_threshold_f1_by_hand():
    # thresholds 0.8 -> F1 2/3 (1 of 2 found, precision 1); 0.35 -> TP 2, FP 0 -> F1 1.0
    assert m.tune_threshold_f1([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8]) == pytest.approx(0.35)


def test_response_metrics_bad_input():
    with pytest.raises(DataValidationError, match="both classes"):
        m.response_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(DataValidationError, match="proba"):
        m.tune_threshold_f1([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(DataValidationError, match="different lengths"):
        m.response_metrics([0, 1], [0.5])
    with pytest.raises(ConfigError, match="threshold"):
        m.response_metrics([0, 1], [0.2, 0.5], threshold=float("nan"))
