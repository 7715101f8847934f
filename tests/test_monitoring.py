"""Monitoring logic: decay against training figures, promotion decisions, retraining data."""
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


def evaluation(cid: str, value: float, n: int) -> dict:
    return {"campaign_id": cid, "model_quality": {"n": n, "qini_auc": {"estimate": value}}}


def test_decay_hand_computed():
    evs = [evaluation("a", 0.1, 100), evaluation("b", 0.2, 300)]
    out = mon.decay_check(META, evs, _decay(metric="qini_auc", max_relative_drop=0.3))
    # observed = (0.1 * 100 + 0.2 * 300) / 400 = 0.175; drop = (0.3 - 0.175) / 0.3 = 0.41667 > 0.3
    assert out["observed_value"] == pytest.approx(0.175)
    assert out["relative_drop"] == pytest.approx(0.125 / 0.3)
    assert out["decayed"] is True


def test_no_decay_within_limit():
    out = mon.decay_check(META, [evaluation("a", 0.25, 500)], _decay(max_relative_drop=0.3))
    # (0.3 - 0.25) / 0.3 = 0.1667 <= 0.3
    assert out["relative_drop"] == pytest.approx(0.05 / 0.3) and out["decayed"] is False


def test_decay_needs_evaluations_and_a_training_figure():
    out = mon.decay_check(META, [], _decay())
    assert out["decayed"] is False and "0 evaluated campaign" in out["note"]
    out = mon.decay_check({"metrics": {}}, [evaluation("a", 0.1, 10)], _decay())
    assert out["decayed"] is False and "no held-out qini_auc" in out["note"]


# 8 held-out clients; uplift@0.5 looks at the top 4 by score
Y = np.array([1, 1, 0, 0, 1, 0, 0, 1])
T = np.array([1, 0, 1, 0, 0, 1, 1, 0])
GOOD = np.array([8, 1, 2, 7, 3, 6, 5, 4], dtype=float)   # top 4: clients 0 (t, 1), 3 (c, 0), 5 (t, 0), 6 (t, 0)
BAD = -GOOD                                               # top 4: clients 1 (c, 1), 2 (t, 0), 4 (c, 1), 7 (c, 1)


def test_better_challenger_is_promoted():
    out = retrain.compare_on_holdout(BAD, GOOD, Y, T, metric="uplift_at_k", k=0.5, n_boot=0)
    # good top 4: treated rate 1/3, control rate 0/1 -> 1/3; bad top 4: treated 0/1, control 3/3 -> -1
    assert out["challenger"] == pytest.approx(1 / 3)
    assert out["champion"] == pytest.approx(-1.0)
    assert out["difference"] == pytest.approx(4 / 3)
    assert out["promote"] is True


def test_worse_challenger_is_not_promoted():
    out = retrain.compare_on_holdout(GOOD, BAD, Y, T, metric="uplift_at_k", k=0.5, n_boot=0)
    assert out["difference"] == pytest.approx(-4 / 3) and out["promote"] is False
    assert "keep the champion" in out["reason"]


def test_improvement_must_exceed_the_margin():
    out = retrain.compare_on_holdout(BAD, GOOD, Y, T, metric="uplift_at_k", k=0.5, min_improvement=1.5, n_boot=0)
    assert out["promote"] is False
    same = retrain.compare_on_holdout(GOOD, GOOD, Y, T, metric="uplift_at_k", k=0.5, n_boot=0)
    assert same["difference"] == 0.0 and same["promote"] is False


def test_paired_bootstrap_interval_on_qini():
    rng = np.random.default_rng(0)
    n = 2000
    t = rng.integers(0, 2, n)
    tau = rng.uniform(0, 0.3, n)
    y = (rng.random(n) < 0.1 + t * tau).astype(int)
    out = retrain.compare_on_holdout(rng.random(n), tau, y, t, metric="qini_auc", n_boot=50, seed=1)
    assert out["difference_ci_low"] < out["difference"] < out["difference_ci_high"]
    assert out["promote"] is True


def test_needs_retraining_reasons():
    drift = {"alarm": True, "n_drifted": 3, "n_factors": 10, "drifted_share": 0.3, "limit": 0.2}
    decay = {"decayed": True, "metric": "qini_auc", "observed_value": 0.1, "training_value": 0.3,
             "relative_drop": 2 / 3, "limit": 0.3}
    needed, reasons = mon.needs_retraining(drift, decay)
    assert needed and len(reasons) == 2 and "3 of 10 factors" in reasons[0] and "66.7%" in reasons[1]
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
