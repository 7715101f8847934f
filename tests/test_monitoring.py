"""Monitoring logic: decay with an interval, promotion decisions on evidence, retraining data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import atomic_write_json, atomic_write_parquet
from tasks.monitoring import decay as mon
from tasks.monitoring import retrain

META = {"metrics": {"heldout": {"qini_auc": {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
                                "uplift_at_k": {"value": 0.05}}}}


def _decay(**kw) -> mon.DecayConfig:
    """conf/monitor/default.yaml's decay limits with ``kw`` changed."""
    return from_conf(mon.DecayConfig, "monitor/default:decay", **kw)


def evaluation(cid: str, value: float, n: int, half_width: float | None = 0.05) -> dict:
    ci = {} if half_width is None else {"ci_low": value - half_width, "ci_high": value + half_width}
    return {"campaign_id": cid, "alpha": 0.05, "model_quality": {"n": n, "qini_auc": {"estimate": value, **ci}}}


def test_decay_hand_computed_against_the_first_evaluation():
    z = 1.959963984540054
    evs = [evaluation("a", 0.30, 1000, 0.05), evaluation("b", 0.10, 1000, 0.04)]
    out = mon.decay_check(META, evs, _decay(min_fraction=0.7))
    # 0.10 - 0.7 x 0.30 = -0.11; se = sqrt((0.04/z)^2 + (0.7 x 0.05/z)^2)
    se = np.hypot(0.04 / z, 0.7 * 0.05 / z)
    assert out["difference"] == pytest.approx(-0.11)
    assert out["difference_ci_high"] == pytest.approx(-0.11 + z * se)
    assert out["decayed"] is True and "below, decayed" in out["text"]


def test_decay_quiet_when_the_interval_reaches_the_limit():
    # 0.18 vs 0.7 x 0.30 = 0.21: lower, but the intervals are wide
    out = mon.decay_check(META, [evaluation("a", 0.30, 300, 0.10), evaluation("b", 0.18, 300, 0.10)], _decay())
    assert out["difference"] < 0 and out["difference_ci_high"] > 0 and out["decayed"] is False
    assert "not shown to be below" in out["text"]


def test_single_evaluation_is_tested_against_a_random_ranking():
    assert mon.decay_check(META, [evaluation("a", 0.02, 500, 0.05)], _decay())["decayed"] is False
    out = mon.decay_check(META, [evaluation("a", -0.08, 500, 0.05)], _decay())
    assert out["decayed"] is True and "random ranking" in out["text"]


def test_decay_needs_evaluations_and_an_interval():
    out = mon.decay_check(META, [], _decay())
    assert out["decayed"] is False and "0 evaluated campaign" in out["note"]
    out = mon.decay_check(META, [evaluation("a", -0.5, 10, None)], _decay())
    assert out["decayed"] is False and "no interval" in out["note"]


def test_old_keys_are_refused_with_a_hint():
    with pytest.raises(ConfigError, match="retrain.min_improvement.*monitor.retrain.margin"):
        from_conf(mon.MonitorConfig, "monitor/default", retrain={"min_improvement": 0.01})
    with pytest.raises(ConfigError, match="decay.max_relative_drop.*min_fraction"):
        from_conf(mon.MonitorConfig, "monitor/default", decay={"max_relative_drop": 0.3})


def _holdout(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    tau = rng.uniform(0, 0.3, n)
    y = (rng.random(n) < 0.1 + t * tau).astype(int)
    return rng, tau, y, t


def test_better_challenger_is_promoted_worse_is_not():
    rng, tau, y, t = _holdout()
    noise = rng.random(len(y))
    out = retrain.compare_on_holdout(noise, tau, y, t, metric="qini_auc", n_boot=100, seed=1, champion="champion v0001")
    assert out["difference_ci_low"] < out["difference"] < out["difference_ci_high"]
    assert out["difference_ci_low"] > 0 and out["promote"] is True and out["same_rows"] is True
    assert f"on the same {len(y):,} held-out rows: lower bound above margin 0" in out["reason"]
    worse = retrain.compare_on_holdout(tau, noise, y, t, metric="qini_auc", n_boot=100, seed=1)
    assert worse["promote"] is False and "lower bound not above margin 0" in worse["reason"]


def test_improvement_must_exceed_the_margin_with_its_lower_bound():
    rng, tau, y, t = _holdout()
    noise = rng.random(len(y))
    base = retrain.compare_on_holdout(noise, tau, y, t, n_boot=100, seed=1)
    above = retrain.compare_on_holdout(noise, tau, y, t, margin=base["difference_ci_low"] + 1e-9, n_boot=100, seed=1)
    assert base["promote"] is True and above["promote"] is False
    # an equal challenger (the same signal, other noise): the point difference may be positive, the CI covers 0
    equal = retrain.compare_on_holdout(tau + rng.normal(0, 0.02, len(y)), tau + rng.normal(0, 0.02, len(y)), y, t,
                                       n_boot=100, seed=1)
    assert equal["difference_ci_low"] < 0 < equal["difference_ci_high"] and equal["promote"] is False


def test_needs_retraining_reasons():
    drift = {"alarm": True, "n_drifted": 3, "n_factors": 10, "drifted_share": 0.3, "limit": 0.2}
    decay = {"decayed": True, "text": "qini_auc of campaign b 0.1000 vs ...: below, decayed"}
    needed, reasons = mon.needs_retraining(drift, decay)
    assert needed and len(reasons) == 2 and "3 of 10 factors" in reasons[0] and "below, decayed" in reasons[1]
    assert mon.needs_retraining(dict(drift, alarm=False), dict(decay, decayed=False)) == (False, [])


def test_experiment_rows_and_holdout_split():
    campaign = pd.DataFrame({"client_id": np.arange(1, 41), "group": ["targeted", "random_target", "control", "control"] * 10})
    responses = pd.DataFrame({"client_id": np.arange(1, 41), "response": np.arange(40) % 2, "revenue": 1.0})
    rows = retrain.experiment_rows(campaign, responses, "c9", "2026-01-01")
    assert len(rows) == 30 and rows["treatment"].sum() == 10
    assert set(rows.columns) == {"client_id", "campaign_id", "campaign_date", "treatment", "response", "revenue"}
    train, hold = retrain.holdout_split(rows, 0.3, seed=0)
    assert len(train) + len(hold) == 30 and not set(train["client_id"]) & set(hold["client_id"])
    assert 0 < hold["treatment"].sum() < len(hold)
    with pytest.raises(DataValidationError, match="have no response row"):
        retrain.experiment_rows(campaign, responses.iloc[:20], "c9", "2026-01-01")


def test_pick_campaign(tmp_path):
    for cid, when in (("old", "2026-01-01T00:00:00"), ("new", "2026-02-01T00:00:00")):
        folder = tmp_path / "campaigns" / cid
        atomic_write_parquet(pd.DataFrame({"client_id": [1]}), folder / "campaign.parquet")
        atomic_write_json({"campaign_id": cid, "frozen_at": when}, folder / "manifest.json")
    (tmp_path / "campaigns" / "unfrozen").mkdir()
    assert mon.pick_campaign(tmp_path, None)["campaign_id"] == "new"
    assert mon.pick_campaign(tmp_path, "old")["campaign_id"] == "old"
    with pytest.raises(NotFoundError, match="'unfrozen' is not frozen"):
        mon.pick_campaign(tmp_path, "unfrozen")
    with pytest.raises(NotFoundError, match="no frozen campaign"):
        mon.pick_campaign(tmp_path / "empty", None)
    with pytest.raises(NotFoundError, match="factor checkpoint"):
        mon.load_factor_checkpoint(tmp_path, "new")


def test_bad_monitor_config():
    with pytest.raises(ConfigError, match="decay.metric"):
        from_conf(mon.MonitorConfig, "monitor/default", decay={"metric": "auc"})
    with pytest.raises(ConfigError, match="holdout_fraction"):
        from_conf(mon.MonitorConfig, "monitor/default", retrain={"holdout_fraction": 1.0})


def test_a_blocked_challenger_is_held_back_and_a_clean_one_is_not():
    from tasks.monitoring.retrain import hold_back_blocked

    better = {"promote": True, "reason": "qini_auc: challenger - champion v0001 = +0.0200; promote"}
    blocked = hold_back_blocked(better, {"signal": "none", "signal_test": {"metric": "qini_auc",
                                                                         "no_signal_value": 0.0}})
    assert blocked["promote"] is False and "no signal" in blocked["reason"] and blocked["blockers"]
    leak = {"checks": {"suspected_leaks": [{"column": "duration", "auc": 0.81}], "allow": []}, "signal": "present"}
    assert hold_back_blocked(better, leak)["promote"] is False
    acknowledged = {"checks": {"suspected_leaks": [{"column": "duration", "auc": 0.81}], "allow": ["duration"]},
                    "signal": "present"}
    clean = hold_back_blocked(better, acknowledged)
    assert clean["promote"] is True and clean["blockers"] == [] and clean["reason"] == better["reason"]
    worse = {"promote": False, "reason": "lower bound not above margin 0"}
    assert hold_back_blocked(worse, {"signal": "none"})["reason"] == worse["reason"]
