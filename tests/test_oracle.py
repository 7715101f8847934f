"""Oracle measures on outcomes simulated from known response probabilities."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.analytics import metrics
from tasks.analytics import oracle
from tasks.core.errors import DataValidationError, NotFoundError


def _world(n: int, seed: int):
    """A truth table with four client types and outcomes of a 50/50 randomised offer."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, size=n, p=[0.3, 0.2, 0.4, 0.1])  # persuadable, sure thing, lost cause, sleeping dog
    base = rng.uniform(0.02, 0.08, n)
    p_control = np.select([kind == 1, kind == 3], [base + 0.3, base + 0.1], base)
    lift = np.select([kind == 0, kind == 3], [rng.uniform(0.05, 0.25, n), -rng.uniform(0.02, 0.08, n)], 0.0)
    truth = pd.DataFrame({
        "client_id": np.arange(1000, 1000 + n),
        "p_control": p_control,
        "p_treated": p_control + lift,
        "uplift_type": np.array(["persuadable", "sure_thing", "lost_cause", "sleeping_dog"])[kind],
    })
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(t == 1, truth.p_treated, truth.p_control)).astype(int)
    return truth, t, y, rng


def test_true_uplift_aligns_to_the_requested_ids():
    truth, _, _, rng = _world(50, 0)
    ids = rng.permutation(truth.client_id.to_numpy())[:20]
    got = oracle.true_uplift(truth, pd.Series(ids))
    expected = [truth.set_index("client_id").loc[i, "p_treated"] - truth.set_index("client_id").loc[i, "p_control"]
                for i in ids]
    np.testing.assert_allclose(got, expected)
    before = truth.copy()
    oracle.true_uplift(truth, ids)
    pd.testing.assert_frame_equal(truth, before)


def test_true_uplift_bad_input():
    truth, _, _, _ = _world(10, 1)
    with pytest.raises(NotFoundError, match="2 client id.*not in the truth table.*5, 6"):
        oracle.true_uplift(truth, [1000, 5, 6])
    with pytest.raises(DataValidationError, match="column 'p_treated'"):
        oracle.true_uplift(truth.drop(columns="p_treated"), [1000])
    with pytest.raises(DataValidationError, match="repeat"):
        oracle.true_uplift(pd.concat([truth, truth.head(1)]), [1000])


def test_oracle_beats_a_noisy_ranking_which_beats_random_scores():
    truth, t, y, rng = _world(100_000, 2)
    tau = oracle.true_uplift(truth, truth.client_id)
    best = oracle.oracle_measures(y, t, tau, k=0.3)
    noisy_scores = tau + rng.normal(scale=tau.std(), size=tau.size)
    noisy = oracle.oracle_measures(y, t, noisy_scores, k=0.3)
    random = oracle.oracle_measures(y, t, rng.random(tau.size), k=0.3)
    for key in ("qini_auc", "uplift_auc", "uplift_at_k"):
        assert best[key] > noisy[key] > random[key], key
    assert best["qini_auc"] == pytest.approx(metrics.qini_auc(y, tau, t))
    ratios = oracle.relative_to_oracle(noisy, best)
    assert 0 < ratios["qini_auc"] < 1
    assert oracle.oracle_measures_for_clients(truth, truth.client_id, y, t) == best


def test_relative_to_oracle_by_hand():
    ratios = oracle.relative_to_oracle(
        {"qini_auc": 0.06, "uplift_at_k": 0.05, "roc_auc": 0.7},
        {"qini_auc": 0.08, "uplift_at_k": -0.01},
    )
    assert set(ratios) == {"qini_auc", "uplift_at_k"}
    assert ratios["qini_auc"] == pytest.approx(0.06 / 0.08)
    assert math.isnan(ratios["uplift_at_k"])  # a non-positive oracle gives no meaningful fraction
    with pytest.raises(DataValidationError, match="share no name"):
        oracle.relative_to_oracle({"a": 1.0}, {"b": 1.0})


def test_oracle_measures_bad_input():
    truth, t, y, _ = _world(100, 3)
    tau = oracle.true_uplift(truth, truth.client_id)
    with pytest.raises(DataValidationError, match="both arms"):
        oracle.oracle_measures(y, np.zeros_like(t), tau)
    with pytest.raises(DataValidationError, match="different lengths"):
        oracle.oracle_measures(y, t, tau[:-1])


def test_expected_qini_gain_is_the_mean_of_realised_gains():
    """The gain with probabilities in place of outcomes equals the average realised gain
    over many draws of the outcomes (same clients, same assignment, same ranking)."""
    truth, t, _, rng = _world(4_000, 5)
    tau = oracle.true_uplift(truth, truth.client_id)
    score = tau + rng.normal(scale=tau.std(), size=tau.size)
    p_arm = np.where(t == 1, truth.p_treated, truth.p_control)
    expected = metrics.expected_qini_gain(p_arm, score, t)
    draws = np.array([
        metrics.expected_qini_gain((rng.random(t.size) < p_arm).astype(int), score, t) for _ in range(600)
    ])
    se = draws.std(ddof=1) / np.sqrt(draws.size)
    assert abs(draws.mean() - expected) < 4 * se
    assert se < 0.05 * abs(expected)  # the check above has teeth


def test_expected_qini_gain_with_outcomes_matches_qini_auc():
    truth, t, y, rng = _world(20_000, 6)
    tau = oracle.true_uplift(truth, truth.client_id)
    a, b = tau + rng.normal(scale=tau.std(), size=tau.size), rng.random(tau.size)
    # qini_auc divides the same gain by the perfect curve's gain on these outcomes
    ratio_auc = metrics.qini_auc(y, a, t) / metrics.qini_auc(y, b, t)
    ratio_gain = metrics.expected_qini_gain(y, a, t) / metrics.expected_qini_gain(y, b, t)
    assert ratio_gain == pytest.approx(ratio_auc, rel=1e-9)


def test_expected_qini_ratio_orders_rankings():
    truth, t, _, rng = _world(50_000, 7)
    tau = oracle.true_uplift(truth, truth.client_id)
    pc, pt = truth.p_control, truth.p_treated
    best = oracle.expected_qini_ratio(tau, pc, pt, t)
    assert best["ratio"] == pytest.approx(1.0)
    assert best["model_gain"] == pytest.approx(best["oracle_gain"]) and best["oracle_gain"] > 0
    noisy = oracle.expected_qini_ratio(tau + rng.normal(scale=tau.std(), size=tau.size), pc, pt, t)["ratio"]
    random = oracle.expected_qini_ratio(rng.random(tau.size), pc, pt, t)["ratio"]
    worst = oracle.expected_qini_ratio(-tau, pc, pt, t)["ratio"]
    assert 1.0 > noisy > 0.3 > abs(random) and worst < -0.5


def test_expected_qini_bad_input():
    t = np.array([0, 1, 0, 1])
    with pytest.raises(DataValidationError, match=r"p_outcome.*outside \[0, 1\].*\[2\]"):
        metrics.expected_qini_gain([0.1, 0.2, 1.5, 0.3], [1, 2, 3, 4], t)
    with pytest.raises(DataValidationError, match="p_outcome.*missing or infinite"):
        metrics.expected_qini_gain([0.1, np.nan, 0.5, 0.3], [1, 2, 3, 4], t)
    with pytest.raises(DataValidationError, match="both arms"):
        metrics.expected_qini_gain([0.1, 0.2, 0.5, 0.3], [1, 2, 3, 4], [1, 1, 1, 1])
    with pytest.raises(DataValidationError, match="different lengths"):
        oracle.expected_qini_ratio([1, 2, 3], [0.1] * 4, [0.2] * 4, t)
    with pytest.raises(DataValidationError, match="uplift.*missing or infinite"):
        oracle.expected_qini_ratio([1, np.inf, 3, 4], [0.1] * 4, [0.2] * 4, t)


def test_true_gain_ratio_by_hand_and_ties():
    tu = np.array([0.3, -0.1, 0.0, 0.1])
    # oracle order 0.3, 0.1, 0.0, -0.1: cumulative 0.3, 0.4, 0.4, 0.3 -> area 1.25 - chord 0.6 = 0.65
    # scores 3, 2, 1, 4 take 0.1, 0.3, -0.1, 0.0: cumulative 0.1, 0.4, 0.3, 0.3 -> area 0.95 - 0.6 = 0.35
    assert oracle.true_gain_ratio([3, 2, 1, 4], tu) == pytest.approx(0.35 / 0.65)
    assert oracle.true_gain_ratio(tu, tu) == pytest.approx(1.0)
    assert oracle.true_gain_ratio(-tu, tu) < 0
    # one tie group: the curve is the chord itself, whatever the input order
    assert oracle.true_gain_ratio(np.zeros(4), tu) == pytest.approx(0.0)
    with pytest.raises(DataValidationError, match="equally long"):
        oracle.true_gain_ratio([1, 2], tu)
    with pytest.raises(DataValidationError, match="score.*missing or infinite"):
        oracle.true_gain_ratio([1, np.nan, 2, 3], tu)


def test_true_gain_ratio_agrees_with_the_expected_qini_ratio_on_a_large_balanced_world():
    truth, t, _, rng = _world(200_000, 8)
    tau = oracle.true_uplift(truth, truth.client_id)
    score = tau + rng.normal(scale=tau.std(), size=tau.size)
    expected = oracle.expected_qini_ratio(score, truth.p_control, truth.p_treated, t)["ratio"]
    assert oracle.true_gain_ratio(score, tau) == pytest.approx(expected, abs=0.02)
