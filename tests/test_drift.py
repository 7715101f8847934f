"""Drift tests on hand-made distributions, with references built the way training stores them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError
from tasks.monitoring import drift
from tasks.modelling.reference import reference_distributions


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.lognormal(3.0 + shift, 0.5, n),
        "visits": rng.poisson(3.0 * (1 + shift), n),
        "age": rng.normal(40 + 10 * shift, 10, n),
        "region": rng.choice(["north", "south", "east"], n, p=[0.5 - 0.3 * shift, 0.3, 0.2 + 0.3 * shift]),
        "opt_out": rng.random(n) < 0.1 + 0.3 * shift,
    })


def _drift(**kw) -> drift.DriftConfig:
    """conf/monitor/default.yaml's drift limits with ``kw`` changed."""
    return from_conf(drift.DriftConfig, "monitor/default:drift", **kw)


CFG = _drift(fdr=0.05, psi_limit=0.25, max_drifted_share=0.2)


def test_psi_hand_computed():
    # (0.7 - 0.5) ln(0.7/0.5) + (0.3 - 0.5) ln(0.3/0.5)
    expected = 0.2 * math.log(1.4) - 0.2 * math.log(0.6)
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.7, 0.3])) == pytest.approx(expected)
    assert drift.psi(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == pytest.approx(0.0)


def test_bin_shares_outer_bins_take_out_of_range_values():
    # edges 0, 1, 2: bins [0, 1), [1, 2]; -5 -> first, 0.5 -> first, 1 -> second, 2 -> second, 9 -> second
    shares = drift.bin_shares(np.array([-5, 0.5, 1.0, 2.0, 9.0]), [0.0, 1.0, 2.0])
    assert shares.tolist() == [0.4, 0.6]


def test_same_distribution_not_flagged():
    ref = reference_distributions(frame(4000, 1), seed=0)
    table = drift.drift_table(ref, frame(6000, 2), CFG)
    assert table["kind"].tolist() == ["numeric", "numeric", "numeric", "categorical", "categorical"]
    assert not table["drifted"].any(), table
    assert (table["psi"] < 0.05).all()
    assert drift.drift_summary(table, CFG)["alarm"] is False


def test_shifted_distribution_flagged():
    ref = reference_distributions(frame(4000, 1), seed=0)
    table = drift.drift_table(ref, frame(6000, 3, shift=0.5), CFG)
    assert table["drifted"].all(), table
    summary = drift.drift_summary(table, CFG)
    assert summary["alarm"] is True and summary["drifted_share"] == 1.0
    assert set(summary["drifted_factors"]) == {"amount", "visits", "age", "region", "opt_out"}


def test_one_shifted_factor_is_below_the_share_limit():
    ref = reference_distributions(frame(4000, 1), seed=0)
    cur = frame(6000, 2).assign(age=lambda d: d["age"] + 15)
    table = drift.drift_table(ref, cur, CFG)
    assert table.set_index("feature")["drifted"].to_dict() == {
        "amount": False, "visits": False, "age": True, "region": False, "opt_out": False}
    summary = drift.drift_summary(table, CFG)
    # 1 of 5 = 0.2 is not above the limit 0.2
    assert summary["drifted_share"] == pytest.approx(0.2) and summary["alarm"] is False


def test_categorical_labels_agree_across_dtypes():
    ref = {"flag": {"kind": "categorical", "shares": {"0": 0.5, "1": 0.5}, "sample": ["0", "1"] * 200}}
    cur = pd.DataFrame({"flag": np.tile([0.0, 1.0], 300)})
    res = drift.drift_table(ref, cur, CFG).iloc[0]
    assert res["p_value"] == pytest.approx(1.0) and res["psi"] == pytest.approx(0.0)


def test_categorical_without_sample_uses_goodness_of_fit():
    ref = {"c": {"kind": "categorical", "shares": {"a": 0.5, "b": 0.5}}}
    # 60 a, 40 b vs expected 50/50: chi2 = (10^2 + 10^2) / 50 = 4, 1 df
    res = drift.categorical_test(ref["c"], pd.Series(["a"] * 60 + ["b"] * 40))
    assert res["statistic"] == pytest.approx(4.0)
    assert res["p_value"] == pytest.approx(0.0455, abs=1e-3)
    # a category the reference never saw is drift
    assert drift.categorical_test(ref["c"], pd.Series(["a", "z"] * 30))["p_value"] == 0.0


def test_score_drift():
    rng = np.random.default_rng(0)
    same = drift.score_drift(rng.normal(0, 1, 3000), rng.normal(0, 1, 3000))
    moved = drift.score_drift(rng.normal(0, 1, 3000), rng.normal(0.5, 1, 3000))
    assert same["p_value"] > 0.001 and same["psi"] < 0.05
    assert moved["p_value"] < 1e-10 and moved["psi"] > 0.1


def test_missing_factor_is_an_error():
    ref = reference_distributions(frame(500, 1), seed=0)
    with pytest.raises(DataValidationError, match=r"table 'factors', column 'age': 1 factor\(s\)"):
        drift.drift_table(ref, frame(500, 2).drop(columns="age"), CFG)


def test_too_few_rows_and_empty_reference():
    ref = reference_distributions(frame(500, 1), seed=0)
    with pytest.raises(DataValidationError, match="at least 50"):
        drift.drift_table(ref, frame(10, 2), CFG)
    with pytest.raises(DataValidationError, match="no reference distributions"):
        drift.drift_table({}, frame(100, 2), CFG)
    with pytest.raises(DataValidationError, match="unknown reference kind"):
        drift.drift_table({"age": {"kind": "text"}}, frame(100, 2), CFG)


def test_bad_config():
    with pytest.raises(ConfigError, match="fdr"):
        _drift(fdr=0)
    with pytest.raises(ConfigError, match="max_drifted_share"):
        _drift(max_drifted_share=1.5)


def test_false_alarm_rate_on_null_tables():
    # 40 independent same-distribution comparisons: BH at 5% should rarely reject anything
    ref = reference_distributions(frame(3000, 100), seed=0)
    alarms = sum(drift.drift_table(ref, frame(3000, 200 + s), CFG)["test_rejected"].any() for s in range(40))
    assert alarms <= 6


def test_min_psi_ignores_tiny_significant_shifts():
    ref = reference_distributions(frame(4000, 1), seed=0)
    cur = frame(20000, 2).assign(age=lambda d: d["age"] + 1.5)   # small but significant with 20k rows
    plain = drift.drift_table(ref, cur, CFG).set_index("feature")
    assert plain.loc["age", "test_rejected"] and plain.loc["age", "psi"] < 0.1
    floored = drift.drift_table(ref, cur, _drift(min_psi=0.1)).set_index("feature")
    assert not floored.loc["age", "drifted"]


def test_excluded_factors_do_not_count_towards_the_alarm():
    ref = reference_distributions(frame(4000, 1), seed=0)
    cur = frame(6000, 2).assign(age=lambda d: d["age"] + 15, amount=lambda d: d["amount"] * 3)
    cfg = _drift(max_drifted_share=0.2, exclude=["age"])
    summary = drift.drift_summary(drift.drift_table(ref, cur, cfg), cfg)
    # counted: amount (drifted), visits, region, opt_out -> 1 of 4 = 0.25 > 0.2
    assert summary["n_factors"] == 4 and summary["drifted_factors"] == ["amount"]
    assert summary["excluded_drifted"] == ["age"] and summary["alarm"] is True
