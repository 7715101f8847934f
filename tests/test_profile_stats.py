"""Each profile statistic against small hand-made frames with hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError
from tasks.profile import stats as P
from tasks.profile.config import ProfileConfig


def test_missing_values_counts_and_shares():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.nan], "b": ["x", "y", None, "y"]})
    out = P.missing_values(df).set_index("column")
    assert out.loc["a", "missing"] == 2 and out.loc["a", "share"] == 0.5
    assert out.loc["b", "missing"] == 1 and out.loc["b", "share"] == 0.25


def test_duplicates_full_row_and_key():
    df = pd.DataFrame({"id": [1, 1, 2, 2, 3], "v": ["x", "x", "y", "z", "w"]})
    assert P.duplicate_counts(df, ["id"]) == {"full_row": 1, "key_rows": 4}
    assert P.duplicate_counts(df) == {"full_row": 1, "key_rows": None}


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with NaN, None, categories and times, a third of them exact copies of others."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({
        "id": rng.integers(0, n // 2, n),
        "x": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n).astype(float)),
        "s": pd.Series(rng.choice(["a", "b", None], n), dtype="object"),
        "c": pd.Categorical(rng.choice(["u", "v"], n)),
        "t": pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 2, n), unit="D"),
        "flag": rng.random(n) < 0.5,
    })
    copies = base.iloc[rng.integers(0, n, n // 2)]
    return pd.concat([base, copies]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_duplicates_agree_with_pandas_on_messy_frames(seed):
    df = _mixed_frame(3_000, seed)
    expected = {"full_row": int(df.duplicated().sum()),
                "key_rows": int(df.duplicated(subset=["id", "c"], keep=False).sum())}
    assert expected["full_row"] > 100 and expected["key_rows"] > 100
    assert P.duplicate_counts(df, ["id", "c"]) == expected


def test_duplicates_exact_even_when_every_hash_collides(monkeypatch):
    """Rows sharing a hash are compared exactly, so collisions never count as repeats."""
    df = _mixed_frame(500, 3)
    expected = P.duplicate_counts(df, ["id"])
    monkeypatch.setattr(P, "_row_hashes", lambda frame: np.zeros(len(frame), dtype="uint64"))
    assert P.duplicate_counts(df, ["id"]) == expected
    unique = pd.DataFrame({"a": np.arange(50)})
    assert P.duplicate_counts(unique, ["a"]) == {"full_row": 0, "key_rows": 0}


def test_duplicates_of_unhashable_cells_and_empty_frames():
    lists = pd.DataFrame({"a": [[1, 2], [1, 2], [3]]})  # rows that cannot be hashed
    assert P.duplicate_counts(lists) == {"full_row": 1, "key_rows": None}
    empty = pd.DataFrame({"a": pd.Series([], dtype="int64")})
    assert P.duplicate_counts(empty, ["a"]) == {"full_row": 0, "key_rows": 0}


def test_duplicates_unknown_key_is_an_error():
    with pytest.raises(DataValidationError, match="client_id"):
        P.duplicate_counts(pd.DataFrame({"id": [1]}), ["client_id"])


def test_numeric_summary_by_hand():
    s = P.numeric_summary(pd.Series([4.0, 1.0, np.nan, 3.0, 2.0]))
    assert s["count"] == 4
    assert s["mean"] == 2.5
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))
    assert (s["min"], s["p25"], s["p50"], s["p75"], s["max"]) == (1.0, 1.75, 2.5, 3.25, 4.0)


def test_top_values_counts_missing_and_breaks_ties_by_value():
    out = P.top_values(pd.Series(["b", "a", "b", None, "a", "a", "c"]), k=3)
    assert out["value"].tolist() == ["a", "b", "<missing>"]
    assert out["count"].tolist() == [3, 2, 1]
    assert out["share"].iloc[0] == pytest.approx(3 / 7)


def test_constant_and_almost_constant_columns():
    n = 100
    df = pd.DataFrame(
        {
            "const": np.full(n, 7),
            "almost": np.r_[np.zeros(99), 1.0],
            "half": np.r_[np.zeros(50), np.ones(50)],
            "all_missing": np.full(n, np.nan),
        }
    )
    out = P.constant_columns(df, near_share=0.99).set_index("column")
    assert set(out.index) == {"const", "almost", "all_missing"}
    assert out.loc["const", "status"] == "constant" and out.loc["const", "top_value"] == "7"
    assert out.loc["almost", "status"] == "almost constant"
    assert out.loc["almost", "top_share"] == 0.99
    assert out.loc["all_missing", "top_value"] == "<missing>"
    assert P.constant_columns(df, near_share=1.0)["column"].tolist() == ["all_missing", "const"]


def test_sample_rows_is_seeded_and_keeps_order():
    df = pd.DataFrame({"a": np.arange(1000)})
    s1, sampled = P.sample_rows(df, 100, seed=3)
    s2, _ = P.sample_rows(df, 100, seed=3)
    assert sampled and len(s1) == 100
    assert s1["a"].tolist() == s2["a"].tolist()
    assert s1["a"].is_monotonic_increasing
    same, sampled_small = P.sample_rows(df, 1000, seed=3)
    assert not sampled_small and same is df


def test_balance_counts_and_shares():
    out = P.balance(pd.Series([1, 0, 0, 0]))
    assert out["value"].tolist() == ["0", "1"]
    assert out["count"].tolist() == [3, 1]
    assert out["share"].tolist() == [0.75, 0.25]


def test_arm_size_chi2_by_hand():
    chi2, p = P.arm_size_chi2({"a": 100, "b": 100, "c": 100})
    assert chi2 == 0.0 and p == pytest.approx(1.0)
    # (60 - 50)^2 / 50 + (40 - 50)^2 / 50 = 4; with one degree of freedom p = erfc(sqrt(4 / 2))
    chi2, p = P.arm_size_chi2({"a": 60, "b": 40})
    assert chi2 == pytest.approx(4.0)
    assert p == pytest.approx(math.erfc(math.sqrt(2.0)))
    chi2, p = P.arm_size_chi2({"a": 60, "b": 40}, {"a": 0.6, "b": 0.4})
    assert chi2 == pytest.approx(0.0)


def test_arm_size_chi2_failures():
    with pytest.raises(DataValidationError, match="two arms"):
        P.arm_size_chi2({"a": 10})
    with pytest.raises(ConfigError, match="expected_arm_shares"):
        P.arm_size_chi2({"a": 10, "b": 12}, {"a": 1.0})


def test_rate_by_arm_and_naive_uplift_by_hand():
    y = pd.Series([1, 1, 0, 0, 1, 0, 0, 0])
    t = pd.Series([1, 1, 1, 1, 0, 0, 0, 0], name="treatment")
    rates = P.rate_by_arm(y, t).set_index("arm")
    assert rates.loc["1", "rate"] == 0.5 and rates.loc["0", "rate"] == 0.25
    assert rates.loc["1", "n"] == 4 and rates.loc["0", "responders"] == 1
    u = P.naive_uplift(y, t, alpha=0.05)
    se = math.sqrt(0.5 * 0.5 / 4 + 0.25 * 0.75 / 4)
    assert u.uplift == 0.25
    assert u.ci_low == pytest.approx(0.25 - 1.959964 * se, abs=1e-6)
    assert u.ci_high == pytest.approx(0.25 + 1.959964 * se, abs=1e-6)
    assert u.p_value == pytest.approx(math.erfc(0.25 / se / math.sqrt(2)))
    assert (u.n_treated, u.n_control) == (4, 4)


def test_naive_uplift_with_one_arm_is_an_error():
    with pytest.raises(DataValidationError, match="one arm"):
        P.naive_uplift(pd.Series([1, 0]), pd.Series([1, 1], name="treatment"))


def test_vif_two_columns_by_hand_and_constant_column():
    # a and b have r = 0.8 (cov 4 / var 5), so VIF = 1 / (1 - 0.64) for both
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, 3, 2, 4], "c": [5.0, 5, 5, 5]})
    out = P.vif(df).set_index("column")
    assert out.loc["a", "vif"] == pytest.approx(1 / 0.36)
    assert out.loc["b", "vif"] == pytest.approx(1 / 0.36)
    assert math.isnan(out.loc["c", "vif"]) and out.loc["c", "note"] == "constant"
    assert P.vif(df[["a"]])["vif"].iloc[0] == pytest.approx(1.0)


def test_vif_duplicates_and_perfect_collinearity_are_inf():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    z = rng.normal(size=200)
    df = pd.DataFrame({"x": x, "x_copy": x, "z": z, "w": rng.normal(size=200)})
    out = P.vif(df).set_index("column")
    assert math.isinf(out.loc["x", "vif"]) and math.isinf(out.loc["x_copy", "vif"])
    assert out.loc["x", "note"] == "perfectly collinear with x_copy"
    assert out.loc["z", "vif"] < 2
    combo = pd.DataFrame({"x": x, "z": z, "s": 2 * x - 3 * z + 1})
    assert np.isinf(P.vif(combo)["vif"]).all()
    # s = 2x - 3z + 1: z carries the larger standardised weight, so it is named first
    assert P.vif(combo).set_index("column").loc["s", "note"] == "perfectly collinear with z, x"


def test_factor_auc_by_hand_with_ties_and_against_sklearn():
    assert P.factor_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # positive at 1 ties the negative (1/2), positive at 2 beats it (1): (0.5 + 1) / 2
    assert P.factor_auc([1, 1, 2], [0, 1, 1]) == 0.75
    assert math.isnan(P.factor_auc([1, 2], [1, 1]))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    x = rng.integers(0, 5, 300) + y
    assert P.factor_auc(x, y) == pytest.approx(roc_auc_score(y, x))



def test_factor_auc_skips_missing_and_infinite_factor_values():
    from tasks.analytics.metrics import roc_auc

    x = [0.1, np.nan, 0.4, np.inf, 0.35, 0.8]
    y = [0, 1, 0, 0, 1, 1]
    assert P.factor_auc(x, y) == roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert math.isnan(P.factor_auc([np.nan, 1.0, 2.0], [0, 1, 1]))


def test_arm_test_is_the_sample_ratio_test_with_planned_shares():
    from tasks.analytics.stats import srm_test

    counts = {"A": 310, "B": 290, "C": 330}
    assert P.planned_arm_shares(list(counts)) == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
    assert P.arm_size_chi2(counts) == srm_test(counts, {a: 1 / 3 for a in counts})
    # configured shares of these arms are rescaled to sum to 1; other arms' shares are ignored
    shares = P.planned_arm_shares(["A", "B"], {"A": 3.0, "B": 1.0, "Z": 5.0})
    assert shares == {"A": 0.75, "B": 0.25}
    assert P.arm_size_chi2({"A": 75, "B": 25}, {"A": 3.0, "B": 1.0, "Z": 5.0}) == (0.0, 1.0)

def test_half_split_uplift_by_hand():
    x = np.arange(1, 9)
    t = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y = np.array([0, 1, 1, 0, 1, 1, 0, 0])
    # top half (5..8): 1.0 - 0.0; bottom half (1..4): 0.5 - 0.5
    assert P.half_split_uplift(x, y, t) == 1.0
    # a mostly-one binary factor: top half is x >= median
    xb = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    tb = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    yb = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    # top (x=1): treated 3/3, control 1/3 -> 2/3; bottom (x=0): 0 - 0
    assert P.half_split_uplift(xb, yb, tb) == pytest.approx(2 / 3)
    assert math.isnan(P.half_split_uplift(x, y, np.ones(8)))


def test_planted_leak_is_flagged_and_noise_is_not():
    rng = np.random.default_rng(7)
    n = 400
    y = rng.integers(0, 2, n)
    df = pd.DataFrame(
        {
            "noise": rng.normal(size=n),
            "leak": y + rng.normal(scale=0.01, size=n),
            "anti_leak": -y.astype(float),
            "label": ["a"] * n,
            "y": y,
            "t": rng.integers(0, 2, n),
        }
    )
    out = P.factor_strength(df, ["noise", "leak", "anti_leak", "label"], "y", "t").set_index("factor")
    assert set(out.index) == {"noise", "leak", "anti_leak"}
    assert out.loc["leak", "auc"] == 1.0 and bool(out.loc["leak", "possible_leak"])
    assert out.loc["anti_leak", "auc"] == 0.0 and bool(out.loc["anti_leak", "possible_leak"])
    assert not bool(out.loc["noise", "possible_leak"])
    assert {"uplift_diff", "qini"} <= set(out.columns)
    with pytest.raises(DataValidationError, match="response"):
        P.factor_strength(df, ["noise"], "response")


def test_correlation_pairs_above_limit():
    corr = pd.DataFrame([[1.0, 0.95, -0.2], [0.95, 1.0, -0.97], [-0.2, -0.97, 1.0]], columns=list("abc"), index=list("abc"))
    out = P.correlation_pairs(corr, 0.9)
    assert out[["a", "b"]].values.tolist() == [["b", "c"], ["a", "b"]]
    assert out["r"].tolist() == [-0.97, 0.95]


def test_config_rejects_bad_limits():
    with pytest.raises(ConfigError, match="leak_auc_high"):   # the leak rule is training's (one home)
        from_conf(ProfileConfig, "profile/default", leak_auc_high=0.4)
    with pytest.raises(ConfigError, match="max_rows"):
        from_conf(ProfileConfig, "profile/default", max_rows=0)


def test_statistics_do_not_mutate_inputs():
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, 3, 2, np.nan], "y": [0, 1, 0, 1], "t": [1, 0, 1, 0]})
    before = df.copy()
    P.vif(df[["a", "b"]]), P.factor_strength(df, ["a", "b"], "y", "t"), P.constant_columns(df)
    P.missing_values(df), P.duplicate_counts(df, ["a"]), P.numeric_matrix(df)
    pd.testing.assert_frame_equal(df, before)


def test_factor_qini_matches_metrics_and_finds_the_uplift_driver():
    from tasks.analytics.metrics import qini_auc

    rng = np.random.default_rng(11)
    n = 2000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.3 * t * (x > 0)).astype(int)
    x_nan = np.where(np.arange(n) % 10 == 0, np.nan, x)
    ok = ~np.isnan(x_nan)
    assert P.factor_qini(x_nan, y, t) == pytest.approx(qini_auc(y[ok], x[ok], t[ok]))
    assert P.factor_qini(x, y, t) > 0.2
    assert P.factor_qini(-x, y, t) < -0.2
    assert P.half_split_uplift(x, y, t) == pytest.approx(
        (y[(x > np.median(x)) & (t == 1)].mean() - y[(x > np.median(x)) & (t == 0)].mean())
        - (y[(x <= np.median(x)) & (t == 1)].mean() - y[(x <= np.median(x)) & (t == 0)].mean())
    )
    assert math.isnan(P.factor_qini(x, np.zeros(n), t))


def test_arms_by_group_by_hand():
    # campaign a: 3 treated (2 respond), 1 control (0 respond); campaign b: treated only
    y = pd.Series([1, 1, 0, 0, 1, 0])
    t = pd.Series([1, 1, 1, 0, 1, 1])
    g = pd.Series(["a", "a", "a", "a", "b", "b"])
    out = P.arms_by_group(y, t, g).set_index("group")
    assert (out.loc["a", "treated"], out.loc["a", "control"]) == (3, 1)
    # (3 - 2)^2 / 2 + (1 - 2)^2 / 2 = 1
    assert out.loc["a", "chi2"] == pytest.approx(1.0)
    assert out.loc["a", "uplift"] == pytest.approx(2 / 3)
    assert math.isnan(out.loc["b", "p_value"]) and out.loc["b", "n"] == 2
