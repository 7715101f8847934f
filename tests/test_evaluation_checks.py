"""The readout's checks fire on a broken experiment and stay quiet on a sound one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.analytics import stats as st
from tasks.core.config import from_conf
from tasks.evaluation import readout as ev
from tasks.evaluation.checks import failure_line
from tasks.evaluation.responses import join_responses

SHARES = {"targeted": 0.8, "random_target": 0.1, "control": 0.1}
CFG = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", n_boot=0)


def campaign(n: int = 20_000, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A frozen-campaign table with exact group sizes, its full responses and its manifest."""
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.repeat(list(SHARES), [int(n * s) for s in SHARES.values()]))
    score = rng.random(n)
    offer = (group == "random_target") | ((group == "targeted") & (score >= 0.7))
    table = pd.DataFrame({"client_id": np.arange(1, n + 1), "group": group, "offer": offer, "score": score})
    p = np.where(offer, 0.08, 0.05)
    response = (rng.random(n) < p).astype(int)
    revenue = np.where(response == 1, rng.lognormal(3, 1, n), 0.0)
    responses = pd.DataFrame({"client_id": table["client_id"], "response": response, "revenue": revenue})
    manifest = {"campaign_id": "c", "groups": SHARES, "threshold": {"score_cutoff": 0.7},
                "policy": {"kind": "score_cutoff", "params": {"score_cutoff": 0.7}}}
    return table, responses, manifest


def lose(table: pd.DataFrame, responses: pd.DataFrame, group: str | None, share: float, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(table["group"].to_numpy() == group) if group else np.arange(len(table))
    drop = rng.choice(pool, size=int(share * len(pool)), replace=False)
    return responses.drop(index=drop)


def test_complete_responses_pass_every_check():
    table, resp, manifest = campaign()
    res = ev.evaluate_campaign(join_responses(table, resp), manifest, CFG)
    items = res["checks"]["items"]
    assert res["checks"]["failed"] == []
    assert items["sample_ratio"]["status"] == "pass" and items["missing_outcomes"]["status"] == "pass"
    assert items["undelivered"]["status"] == "not_applicable"


@pytest.mark.parametrize("group", ["targeted", "control"])
def test_losing_five_percent_of_one_groups_records_fires(group):
    table, resp, manifest = campaign()
    res = ev.evaluate_campaign(join_responses(table, lose(table, resp, group, 0.05)), manifest, CFG)
    miss = res["checks"]["items"]["missing_outcomes"]
    assert miss["status"] == "fail" and miss["p_value"] < 1e-6
    assert miss["missing"][group] == int(0.05 * (table["group"] == group).sum())
    assert "missing_outcomes" in res["checks"]["failed"]
    line = failure_line(res["checks"])
    assert line.startswith("evaluation check(s) failed: missing_outcomes (clients without an outcome record:")
    assert "\n" not in line


def test_records_lost_at_random_in_every_group_stay_quiet():
    table, resp, manifest = campaign()
    res = ev.evaluate_campaign(join_responses(table, lose(table, resp, None, 0.03)), manifest, CFG)
    assert res["checks"]["failed"] == []
    miss = res["checks"]["items"]["missing_outcomes"]
    assert sum(miss["missing"].values()) == 600 and miss["p_value"] > 0.001


def test_sample_ratio_counts_the_clients_analysed_against_the_design_shares():
    table, resp, manifest = campaign()
    # a tenth of control lost: 200 of 2,000; analysed 16,000 / 2,000 / 1,800 of 19,800 against 0.8 / 0.1 / 0.1
    res = ev.evaluate_campaign(join_responses(table, lose(table, resp, "control", 0.10)), manifest, CFG)
    srm = res["checks"]["items"]["sample_ratio"]
    assert srm["observed"] == {"targeted": 16_000, "random_target": 2_000, "control": 1_800}
    chi2, p = st.srm_test(srm["observed"], SHARES)
    assert (srm["chi2"], srm["p_value"]) == pytest.approx((chi2, p)) and srm["status"] == "fail"
    # the design shares come from the manifest: a 0.7 / 0.15 / 0.15 design makes the same counts a mismatch
    other = dict(manifest, groups={"targeted": 0.7, "random_target": 0.15, "control": 0.15})
    res = ev.evaluate_campaign(join_responses(table, resp), other, CFG)
    assert res["checks"]["items"]["sample_ratio"]["status"] == "fail"


def test_uneven_undelivered_offers_and_contacted_control_fire():
    table, resp, manifest = campaign()
    rng = np.random.default_rng(5)
    group = table["group"].to_numpy()
    offered = table["offer"].to_numpy()
    bounce = np.where(group == "targeted", 0.10, 0.02)  # the sending system drops more targeted offers
    delivered = np.where(offered, (rng.random(len(table)) >= bounce).astype(float), np.nan)
    res = ev.evaluate_campaign(join_responses(table, resp.assign(delivered=delivered)), manifest, CFG)
    und = res["checks"]["items"]["undelivered"]
    assert und["status"] == "fail" and und["known"]["random_target"] == 2_000
    assert res["per_protocol"]["targeted_vs_control"]["delivered"] == und["known"]["targeted"] - und["undelivered"]["targeted"]
    even = np.where(offered, (rng.random(len(table)) >= 0.05).astype(float), np.nan)
    res = ev.evaluate_campaign(join_responses(table, resp.assign(delivered=even)), manifest, CFG)
    assert res["checks"]["items"]["undelivered"]["status"] == "pass"
    assert res["checks"]["items"]["control_contacted"]["status"] == "pass"
    touched = even.copy()
    touched[np.flatnonzero(group == "control")[:3]] = 1.0
    res = ev.evaluate_campaign(join_responses(table, resp.assign(delivered=touched)), manifest, CFG)
    assert res["checks"]["failed"] == ["control_contacted"]
    assert res["checks"]["items"]["control_contacted"]["count"] == 3
