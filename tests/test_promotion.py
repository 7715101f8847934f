"""The promotion rule: the paired interval's lower bound, not the point difference, decides."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.analytics import metrics, stats
from tasks.core.errors import DataValidationError
from tasks.modelling.promotion import other_rows_decision, promotion_evidence


def _rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    tau = rng.uniform(0, 0.2, n)
    y = (rng.random(n) < 0.05 + t * tau).astype(int)
    return rng, tau, y, t


def test_paired_difference_is_the_difference_of_the_two_metrics():
    rng, tau, y, t = _rows(3000, 0)
    a, b = rng.random(len(y)), tau
    d = stats.paired_metric_difference(metrics.qini_auc, y, a, b, t, n_boot=50, seed=3)
    assert d["value_a"] == pytest.approx(metrics.qini_auc(y, a, t))
    assert d["difference"] == pytest.approx(d["value_b"] - d["value_a"])
    assert d["ci_low"] < d["difference"] < d["ci_high"] and d["n"] == 3000
    # the same scores: every replicate's difference is 0
    same = stats.paired_metric_difference(metrics.qini_auc, y, a, a, t, n_boot=20)
    assert same["ci_low"] == same["ci_high"] == 0.0
    with pytest.raises(DataValidationError, match="lengths differ"):
        stats.paired_metric_difference(metrics.qini_auc, y, a[:10], b, t)


def test_fires_for_a_clearly_better_challenger():
    rng, tau, y, t = _rows(4000, 1)
    ev = promotion_evidence("qini_auc", metrics.qini_auc, y, rng.random(len(y)), tau, t, n_boot=100,
                            champion="champion v0003")
    assert ev["promote"] is True and ev["difference_ci_low"] > 0
    assert ev["reason"].startswith("qini_auc: challenger - champion v0003 = +")
    assert "95% CI [" in ev["reason"] and "on the same 4,000 held-out rows: lower bound above margin 0" in ev["reason"]


def test_quiet_for_equal_challengers_where_a_point_rule_fires_half_the_time():
    """20 pairs of equal-quality models (the same true signal seen through independent noise):
    the point difference is positive in about half, the rule promotes in about alpha / 2."""
    point_wins = promoted = 0
    for trial in range(20):
        rng, tau, y, t = _rows(2000, 100 + trial)
        champ = tau + rng.normal(0, 0.1, len(y))
        chall = tau + rng.normal(0, 0.1, len(y))
        ev = promotion_evidence("qini_auc", metrics.qini_auc, y, champ, chall, t, n_boot=100, seed=trial)
        point_wins += ev["difference"] > 0
        promoted += ev["promote"]
    assert 4 <= point_wins <= 16
    assert promoted <= 1


def test_margin_and_response_metrics():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 3000)
    good = y + rng.normal(0, 0.8, len(y))
    bad = rng.random(len(y))
    auc = lambda yy, p: metrics.response_metrics(yy, p)["roc_auc"]  # noqa: E731
    ev = promotion_evidence("roc_auc", auc, y, bad, good, n_boot=50)
    assert ev["promote"] is True
    assert promotion_evidence("roc_auc", auc, y, bad, good, margin=0.5, n_boot=50)["promote"] is False


def test_different_rows_are_never_promoted_and_say_so():
    out = other_rows_decision("qini_auc", 0.31, 0.12, "champion v0001")
    assert out["promote"] is False and out["same_rows"] is False
    assert "not measured on the same rows" in out["reason"] and "different one" not in out["reason"]
