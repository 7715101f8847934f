"""Estimators of the campaign evaluation against hand-computed values, and every bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tasks.analytics import metrics
from tasks.analytics import stats as st
from tasks.core.config import from_conf
from tasks.evaluation import readout as ev
from tasks.evaluation.checks import srm_check
from tasks.evaluation.report import make_plots, render_report, render_report_html
from tasks.evaluation.responses import join_responses, read_responses
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, StateError
from tasks.core.io import atomic_write_json, atomic_write_parquet, sha256_file

# Twelve clients, cutoff 0.5: targeted 1-4 (offers to 1, 2), control 5-8, random_target 9-12.
IDS = list(range(1, 13))
GROUP = ["targeted"] * 4 + ["control"] * 4 + ["random_target"] * 4
SCORE = [0.9, 0.8, 0.3, 0.2, 0.85, 0.6, 0.4, 0.1, 0.7, 0.55, 0.3, 0.1]
OFFER = [True, True, False, False] + [False] * 4 + [True] * 4
RESPONSE = [1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 0]
REVENUE = [10.0, 20.0, 0.0, 0.0, 6.0, 0.0, 0.0, 4.0, 8.0, 12.0, 4.0, 0.0]


def campaign_frame() -> pd.DataFrame:
    n = len(IDS)
    return pd.DataFrame({
        "client_id": np.array(IDS, dtype="int64"), "group": GROUP, "offer": OFFER,
        "score": np.array(SCORE, dtype="float64"), "rank": np.argsort(np.argsort(-np.array(SCORE))) + 1,
        "percentile": np.linspace(0, 1, n), "model_version": ["v0001"] * n, "campaign_id": ["c1"] * n,
    })


def responses_frame() -> pd.DataFrame:
    return pd.DataFrame({"client_id": np.array(IDS, dtype="int64"), "response": RESPONSE, "revenue": REVENUE})


def manifest() -> dict:
    return {
        "campaign_id": "c1", "campaign_date": "2026-01-01", "data": {"name": "synthetic"},
        "model": {"name": "synthetic_uplift", "version": "v0001"},
        "groups": {"targeted": 0.5, "random_target": 0.25, "control": 0.25},
        "policy": {"kind": "score_cutoff", "params": {"margin": 10.0, "contact_cost": 1.0}},
        "threshold": {"score_cutoff": 0.5},
    }


def write_campaign(artifacts: Path, campaign_id: str = "c1", with_responses: bool = True) -> Path:
    """A frozen campaign folder built by hand (campaign.parquet, manifest.json, responses)."""
    folder = artifacts / "campaigns" / campaign_id
    df = campaign_frame().assign(campaign_id=campaign_id)
    atomic_write_parquet(df, folder / "campaign.parquet")
    atomic_write_json(dict(manifest(), campaign_id=campaign_id, campaign_sha256=sha256_file(folder / "campaign.parquet")),
                      folder / "manifest.json")
    if with_responses:
        atomic_write_parquet(responses_frame(), folder / "responses.parquet")
    return folder


@pytest.fixture
def joined() -> pd.DataFrame:
    return join_responses(campaign_frame(), responses_frame())


CFG = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, revenue_variance="welch")  # Welch intervals for revenue, as scipy has them


# --------------------------------------------------------------------------- statistics


def test_diff_in_means_hand_computed():
    # 0/1 outcomes, difference of proportions with the unpooled SE:
    # treated [1, 1, 1, 0]: p 0.75, p(1-p)/n = 0.1875 / 4; control [1, 0, 0, 1]: p 0.5, 0.25 / 4
    eff = ev.diff_in_means(np.array([1, 1, 1, 0]), np.array([1, 0, 0, 1]))
    se = math.sqrt(0.1875 / 4 + 0.25 / 4)
    assert eff.estimate == pytest.approx(0.25)
    assert eff.se == pytest.approx(se)
    assert eff.ci_low == pytest.approx(0.25 - 1.959964 * se, rel=1e-6)
    assert eff.ci_high == pytest.approx(0.25 + 1.959964 * se, rel=1e-6)
    assert eff.p_value == pytest.approx(2 * sps.norm.sf(0.25 / se))
    assert (eff.n_t, eff.n_c, eff.mean_t, eff.mean_c) == (4, 4, 0.75, 0.5)


def test_diff_in_means_needs_two_clients_per_arm():
    with pytest.raises(DataValidationError, match="control sample has 1 client"):
        ev.diff_in_means(np.array([1.0, 0.0]), np.array([1.0]))


def test_unit_variance():
    assert ev.unit_variance(np.array([1, 0, 0, 0])) == pytest.approx(0.25 * 0.75)
    # revenue [10, 20]: mean 15, ((-5)^2 + 5^2) / 1 = 50
    assert ev.unit_variance(np.array([10.0, 20.0])) == pytest.approx(50.0)


def test_srm_check_hand_computed():
    # expected 12 * (0.5, 0.25, 0.25) = (6, 3, 3); chi2 = 4/6 + 1/3 + 1/3 = 4/3; 2 df: p = exp(-chi2 / 2)
    out = srm_check({"targeted": 4, "random_target": 4, "control": 4},
                       {"targeted": 0.5, "random_target": 0.25, "control": 0.25}, alpha=0.001)
    assert out["chi2"] == pytest.approx(4 / 3)
    assert out["p_value"] == pytest.approx(math.exp(-2 / 3))
    assert out["mismatch"] is False


def test_srm_check_catches_clients_in_unplanned_group():
    out = srm_check({"targeted": 50, "random_target": 50, "control": 3},
                       {"targeted": 0.5, "random_target": 0.5, "control": 0.0}, alpha=0.001)
    assert out["mismatch"] is True and "control" in out["note"]


def test_srm_check_without_plan():
    assert srm_check({"targeted": 4}, {}, alpha=0.001)["mismatch"] is None


# --------------------------------------------------------------------------- estimands


def test_targeted_vs_control_above_cutoff(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    a = res["targeted_vs_control"]["response"]
    # targeted >= 0.5: clients 1, 2 -> [1, 1] (p(1-p) = 0); control >= 0.5: clients 5, 6 -> [1, 0] (0.25)
    se = math.sqrt(0 / 2 + 0.25 / 2)
    assert (a["n_t"], a["n_c"]) == (2, 2)
    assert a["estimate"] == pytest.approx(1.0 - 0.5)
    assert a["se"] == pytest.approx(se)
    # two responders per arm: small cells, so Newcombe's interval and the pooled z-test
    assert "Newcombe" in a["method"]
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(st.newcombe_interval(2, 2, 1, 2))
    pooled = 0.75  # 3 responders of 4: z = 0.5 / sqrt(0.75 * 0.25 * (1/2 + 1/2))
    assert a["p_value"] == pytest.approx(2 * sps.norm.sf(0.5 / math.sqrt(pooled * (1 - pooled))))
    assert res["primary"]["comparison"] == "targeted_vs_control" and res["primary"]["outcome"] == "response"
    assert a["role"] == "primary" and a["significant"] is False  # the interval includes 0
    rev = res["targeted_vs_control"]["revenue"]
    # revenue [10, 20] mean 15 var 50; [6, 0] mean 3 var 18 -> 12, Welch se sqrt(50/2 + 18/2) = sqrt(34)
    assert rev["estimate"] == pytest.approx(12.0)
    assert rev["se"] == pytest.approx(math.sqrt(34))
    # Welch-Satterthwaite df = 34^2 / (25^2 + 9^2) = 1156 / 706
    q = sps.t.ppf(0.975, 1156 / 706)
    assert rev["ci_high"] - rev["ci_low"] == pytest.approx(2 * q * math.sqrt(34))
    # two offers: incremental responses 2 * 0.5 = 1, revenue 2 * 12 = 24
    assert res["targeted_vs_control"]["incremental_responses_total"]["estimate"] == pytest.approx(1.0)
    assert res["targeted_vs_control"]["incremental_revenue_total"]["estimate"] == pytest.approx(24.0)


def test_revenue_intervals_pool_the_amounts_of_both_arms(joined):
    res = ev.evaluate_campaign(joined, manifest(), from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0))
    rev = res["targeted_vs_control"]["revenue"]
    # targeted above [10, 20], control above [6, 0]; buyers' amounts pooled: 10, 20, 6 -> E[A] 12, E[A^2] 536/3
    m1, m2 = 12.0, 536 / 3
    var_t = (1.0 * m2 - (1.0 * m1) ** 2) * 2 / 1  # both targeted clients bought
    var_c = (0.5 * m2 - (0.5 * m1) ** 2) * 2 / 1  # one of two control clients bought
    se = math.sqrt(var_t / 2 + var_c / 2)
    assert rev["estimate"] == pytest.approx(12.0) and rev["se"] == pytest.approx(se)
    assert (rev["ci_low"], rev["ci_high"]) == pytest.approx((12 - 1.959964 * se, 12 + 1.959964 * se), rel=1e-6)
    assert rev["p_value"] == pytest.approx(2 * sps.norm.sf(12 / se))
    assert "amounts of both arms' buyers" in rev["method"]
    mv = res["model_value_per_offer"]["revenue"]
    b = res["random_target_vs_control"]["revenue"]
    # shared control: Var(a) + Var(b) - 2 v(control above) / n(control), v from a's pooled amounts
    assert mv["se"] == pytest.approx(math.sqrt(se**2 + b["se"] ** 2 - 2 * var_c / 4))


def test_secondary_comparisons_are_holm_adjusted_as_one_family(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    sec = res["secondary"]
    assert len(sec) == 7 and ("targeted_vs_control", "response") not in {(r["comparison"], r["outcome"]) for r in sec}
    raw = [r["p_value"] for r in sec]
    assert [r["p_holm"] for r in sec] == pytest.approx(st.holm_adjusted(raw).tolist())
    for r in sec:
        e = res[r["comparison"]][r["outcome"]]
        assert e["p_holm"] == r["p_holm"] and e["role"] == "secondary" and e["significant"] == (r["p_holm"] <= 0.05)


def test_random_target_vs_control_and_model_value(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    b = res["random_target_vs_control"]["response"]
    # random_target [1, 1, 1, 0]: 0.75 (p(1-p) 0.1875); control [1, 0, 0, 1]: 0.5 (0.25)
    var_b = 0.1875 / 4 + 0.25 / 4
    assert b["estimate"] == pytest.approx(0.25)
    assert b["se"] == pytest.approx(math.sqrt(var_b))
    c = res["model_value_per_offer"]["response"]
    # (0.5) - (0.25); Var = Var(a) + Var(b) - 2 * v(control above = [1, 0]) / n_control
    #                    = 0.125 + var_b - 2 * 0.25 / 4
    assert c["estimate"] == pytest.approx(0.25)
    assert c["se"] == pytest.approx(math.sqrt(0.125 + var_b - 2 * 0.25 / 4))
    whole = res["targeted_group_vs_control"]["response"]
    # whole targeted [1, 1, 0, 0] = 0.5 vs control 0.5
    assert whole["estimate"] == pytest.approx(0.0)


def test_profit_after_contact_costs(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    p = res["profit"]["targeted"]
    assert res["profit"]["measure"] == "profit"
    # 2 offers, margin 10, cost 1: 2 * 10 * 0.5 - 2 * 1 = 8
    assert p["profit"]["estimate"] == pytest.approx(8.0)
    assert p["profit_per_offer"]["estimate"] == pytest.approx(10 * 0.5 - 1)
    lo, hi = p["profit"]["ci_low"], p["profit"]["ci_high"]
    n_lo, n_hi = st.newcombe_interval(2, 2, 1, 2)  # of the response effect, times 2 offers x margin 10
    assert (lo, hi) == pytest.approx((20 * n_lo - 2, 20 * n_hi - 2))
    # revenue is reported as revenue, never as profit: 2 * 12 = 24 incremental, 22 net of contact costs
    assert p["incremental_revenue"]["estimate"] == pytest.approx(24.0)
    assert p["revenue_net_of_contact_cost"]["estimate"] == pytest.approx(22.0)
    r = res["profit"]["random_target"]
    # 4 offers: 4 * 10 * 0.25 - 4 = 6
    assert r["profit"]["estimate"] == pytest.approx(6.0)


def test_without_a_margin_there_is_no_profit_only_revenue(joined):
    top = dict(manifest(), policy={"kind": "top_fraction", "params": {"top_fraction": 0.3}})
    res = ev.evaluate_campaign(joined, top, CFG)
    assert res["profit"]["measure"] == "revenue" and "profit" not in res["profit"]["targeted"]
    md = render_report(res, ev.decile_table(joined, bins=2), [])
    assert "Revenue (no margin configured: no profit)" in md and "in profit" not in md


def test_config_overrides_policy_economics(joined):
    res = ev.evaluate_campaign(joined, manifest(), from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, revenue_variance="welch", margin=2.0,
                                                                      contact_cost=0.0))
    assert res["profit"]["targeted"]["profit"]["estimate"] == pytest.approx(2 * 2.0 * 0.5)


def test_checks_in_result(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    srm = res["checks"]["items"]["sample_ratio"]
    assert srm["p_value"] == pytest.approx(math.exp(-2 / 3))
    assert srm["status"] == "pass" and res["checks"]["failed"] == []
    res2 = ev.evaluate_campaign(joined, manifest(), from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, revenue_variance="welch", srm_alpha=0.6))
    assert res2["checks"]["failed"] == ["sample_ratio"]


def test_group_rates_have_wilson_intervals(joined):
    rates = {r["arm"]: r for r in ev.evaluate_campaign(joined, manifest(), CFG)["group_rates"]}
    above = rates["targeted above the cutoff (offered)"]
    assert (above["clients"], above["responders"]) == (2, 2)
    assert (above["ci_low"], above["ci_high"]) == pytest.approx(st.wilson_interval(2, 2))


def test_model_quality_on_random_target_and_control(joined):
    res = ev.evaluate_campaign(joined, manifest(), from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=20, k=0.5))
    sub = joined[joined["group"] != "targeted"]
    y, u = sub["response"].to_numpy(), sub["score"].to_numpy()
    t = (sub["group"] == "random_target").to_numpy().astype(int)
    mq = res["model_quality"]
    assert mq["n"] == 8 and mq["n_treatment"] == 4
    assert mq["qini_auc"]["estimate"] == pytest.approx(metrics.qini_auc(y, u, t))
    # top 4 by score among 8: 0.85 (c, 1), 0.7 (rt, 1), 0.6 (c, 0), 0.55 (rt, 1) -> 1.0 - 0.5
    assert mq["uplift_at_k"]["estimate"] == pytest.approx(0.5)
    assert mq["uplift_at_k"]["ci_low"] <= mq["uplift_at_k"]["ci_high"]


def test_decile_table_hand_computed(joined):
    table = ev.decile_table(joined, bins=2)
    # top half by score: 0.9 0.85 0.8 0.7 0.6 0.55 -> control 5 (1), 6 (0); random_target 9 (1), 10 (1)
    top = table.iloc[0]
    assert (top["n_random_target"], top["n_control"]) == (2, 2)
    assert top["uplift"] == pytest.approx(1.0 - 0.5)
    assert top["offered_share_targeted"] == pytest.approx(1.0)
    bottom = table.iloc[1]
    # bottom: random_target 11 (1), 12 (0); control 7 (0), 8 (1)
    assert bottom["uplift"] == pytest.approx(0.0)
    assert bottom["offered_share_targeted"] == pytest.approx(0.0)



def test_decile_intervals_are_the_rate_difference(joined):
    top = ev.decile_table(joined, bins=2, alpha=0.1).iloc[0]
    e = st.rate_difference(2, 2, 1, 2, alpha=0.1)
    assert (top["se"], top["ci_low"], top["ci_high"]) == (e.se, e.ci_low, e.ci_high)
    # fewer than two clients of an arm in a bin: a rate and an uplift, but no interval
    one = ev.decile_table(joined, bins=6).iloc[0]
    assert (one["n_random_target"], one["n_control"]) == (0, 1)
    assert math.isnan(one["se"]) and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])

def test_report_and_plots(joined):
    res = ev.evaluate_campaign(joined, manifest(), CFG)
    deciles = ev.decile_table(joined, bins=2)
    plots = make_plots(joined, res, deciles)
    assert set(plots) == {"uplift_by_decile.png", "qini_curve.png", "group_comparison.png"}
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in plots.values())
    md = render_report(res, deciles, plots)
    assert "**Primary endpoint** (fixed before the data; intention to treat)" in md
    assert "Offering to the 2 targeted clients above the score cutoff" in md and "+50.00 pp" in md
    assert "Secondary comparisons (Holm-adjusted)" in md and "- PASS: sample ratio" in md
    assert "(qini_curve.png)" in md and "## Glossary" in md
    page = render_report_html(res, deciles, plots)
    assert page.count("data:image/png;base64,") == 3 and "http" not in page.replace("http-equiv", "")
    assert "class='check pass'" in page


# --------------------------------------------------------------------------- bad input
# (the responses file's own checks: tests/test_evaluation_responses.py)


def test_campaign_not_frozen(tmp_path):
    folder = write_campaign(tmp_path)
    (folder / "campaign.parquet").unlink()
    with pytest.raises(StateError, match="campaign 'c1' is not frozen: campaign.parquet missing"):
        ev.load_frozen_campaign(folder)


def test_unknown_campaign(tmp_path):
    with pytest.raises(NotFoundError, match="campaign 'nope'"):
        ev.load_frozen_campaign(tmp_path / "campaigns" / "nope")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="missing_responses"):
        from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", missing_responses="ignore")
    with pytest.raises(ConfigError, match="alpha"):
        from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", alpha=1.5)
    with pytest.raises(ConfigError, match="revenue_variance"):
        from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", revenue_variance="bootstrap")


def test_load_frozen_campaign_roundtrip(tmp_path):
    folder = write_campaign(tmp_path)
    df, man = ev.load_frozen_campaign(folder)
    assert len(df) == 12 and man["threshold"]["score_cutoff"] == 0.5
    assert len(read_responses(folder / "responses.parquet")) == 12


def test_model_quality_reports_why_it_is_unavailable():
    resp = responses_frame().assign(response=[1, 1, 0, 0] + [0] * 8, revenue=0.0)
    joined = join_responses(campaign_frame(), resp)
    mq = ev.model_quality(joined, k=0.5, n_boot=10, seed=0, alpha=0.05)
    # nobody in random_target + control responded: the Qini AUC is undefined, uplift@k is 0 - 0
    assert mq["qini_auc"]["estimate"] is None and "both outcomes" in mq["qini_auc"]["error"]
    assert mq["uplift_at_k"]["estimate"] == 0.0


def test_economics_sources():
    cfg = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0)
    assert ev.economics(manifest(), cfg) == (10.0, 1.0)
    top = dict(manifest(), policy={"kind": "top_fraction", "params": {"top_fraction": 0.3}})
    assert ev.economics(top, cfg) == (None, 0.0)
    assert ev.economics(dict(top, economics={"margin": 5.0, "contact_cost": 0.2}), cfg) == (5.0, 0.2)
    assert ev.economics(top, from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0, margin=3.0)) == (3.0, 0.0)
