"""Model guards through the training flow: a planted post-outcome column is a suspected leak
and blocks promotion (listed in data.known_after it is never a feature); a table without
uplift signal gives ``signal: none``, no champion and no profit suggestion; a clean table with
signal becomes champion; validation keeps a client's rows on one side and reports the latest
campaign as an out-of-time hold-out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tasks.core.config import compose_config, from_conf
from tasks.core.errors import DataValidationError
from tasks.core.io import read_json
from tasks.modelling.config import ModelConfig
from tasks.modelling.guards import check_known_after, promotion_blockers, signal_test, suspected_leaks
from tasks.modelling.training import train_on, train_uplift
from tasks.modelling.training_set import TrainingSet
from tasks.modelling.validation import grouped_folds, grouped_split, latest_date_rows
from tests.test_models import FAST

SMALL = ["model.lgbm.n_estimators=60", "model.lgbm.min_child_samples=40", "model.lgbm.learning_rate=0.05",
         "model.cv_folds=2", "model.n_boot=100", "model.approaches=[two_models,solo_interaction]"]


def shop_table(folder: Path, n: int, effect: float, leak: bool, seed: int, name: str) -> Path:
    """A ``;``-separated campaign table: yes/no target ``bought``, string arms offer/none,
    the offer lifting clients with x1 > 0 by ``effect`` (log-odds); with ``leak`` a column
    ``call_minutes`` recorded after the outcome (the outcome plus noise)."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    t = rng.random(n) < 0.5
    logit = -1.0 + 0.6 * x2 + t * effect * np.where(x1 > 0, 1.0, -0.3)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3), "x3": x3.round(3),
                       "region": rng.choice(["north", "south", "east"], n),
                       "arm": np.where(t, "offer", "none"), "bought": np.where(y, "yes", "no")})
    if leak:
        df["call_minutes"] = (3.0 * y + rng.normal(0, 1.6, n)).round(2)
    path = folder / name
    df.to_csv(path, sep=";", index=False)
    return path


def nodes(*overrides: str) -> tuple[dict, dict, dict]:
    cfg = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    return cfg["data"], cfg["model"], cfg["factors"]


def table_overrides(path: Path, *extra: str) -> list[str]:
    return ["data=table", f"data.path={path}", "data.target=bought", "data.treatment=arm", "data.treated=offer",
            "data.control=none", "model=uplift", *SMALL, *extra]


def test_planted_post_outcome_column_is_a_suspected_leak_and_blocks_promotion(prefect_env, artifacts, tmp_path):
    from flows.train import train_model

    path = shop_table(tmp_path, 5000, effect=1.6, leak=True, seed=3, name="shop.csv")
    data, model, factors = nodes(*table_overrides(path))
    info = train_model(data, model, factors, str(artifacts), str(tmp_path))
    meta = read_json(Path(info["dir"]) / "metadata.json")
    leaks = meta["checks"]["suspected_leaks"]
    assert [d["column"] for d in leaks] == ["call_minutes"], leaks
    assert leaks[0]["auc"] >= 0.75 and leaks[0]["ratio"] >= 1.4 and leaks[0]["next_best_column"] != "call_minutes"
    assert not info["promoted"] and info["champion"] is None
    assert "suspected leak 'call_minutes'" in info["reason"]
    assert any("SUSPECTED LEAK" in w and "call_minutes" in w for w in info["warnings"])
    assert "SUSPECTED LEAK" in (Path(info["dir"]) / "report.md").read_text()

    # recorded after the decision: listed in data.known_after, it is never a feature
    data, model, factors = nodes(*table_overrides(path, "data.known_after=[call_minutes]"))
    info = train_model(data, model, factors, str(artifacts), str(tmp_path))
    meta = read_json(Path(info["dir"]) / "metadata.json")
    assert "call_minutes" not in meta["features"] and meta["checks"]["suspected_leaks"] == []
    # the clean table has a real effect: signal present, champion
    assert meta["signal"] == "present", meta["signal_test"]
    assert meta["signal_test"]["ci"][0] > 0
    assert info["promoted"] and info["champion"] == info["version"] == "v0002"
    assert "profit_optimal" not in meta["threshold_suggestions"]   # no margin in the user's config
    assert meta["validation"]["refit_rows"] == 5000 and meta["n_train"] + meta["n_test"] == 5000


def test_acknowledged_leak_does_not_block():
    meta = {"checks": {"suspected_leaks": [{"column": "duration", "auc": 0.81}], "allow": []}, "signal": "present"}
    assert promotion_blockers(meta) == ["suspected leak 'duration' (ROC-AUC 0.810 alone) not acknowledged in "
                                        "model.checks.allow"]
    assert promotion_blockers(meta, allow=["duration"]) == []
    meta["signal"], meta["signal_test"] = "none", {"metric": "qini_auc", "no_signal_value": 0.0}
    assert promotion_blockers(meta, allow=["duration"]) == ["no signal: held-out qini_auc CI covers 0.0"]


def test_table_without_uplift_signal_is_not_champion_and_has_no_profit_suggestion(prefect_env, artifacts,
                                                                                    tmp_path):
    from flows.train import train_model

    path = shop_table(tmp_path, 4000, effect=0.0, leak=False, seed=11, name="flat.csv")
    data, model, factors = nodes(*table_overrides(path, "model.margin=20", "model.contact_cost=0.5"))
    info = train_model(data, model, factors, str(artifacts), str(tmp_path))
    meta = read_json(Path(info["dir"]) / "metadata.json")
    assert meta["signal"] == "none", meta["signal_test"]
    lo, hi = meta["signal_test"]["ci"]
    assert lo <= 0 <= hi or meta["signal_test"]["estimate"] <= 0
    assert not info["promoted"] and info["champion"] is None and "no signal" in info["reason"]
    assert "profit_optimal" not in meta["threshold_suggestions"]
    assert any(w.startswith("NO SIGNAL") for w in info["warnings"])
    assert "NO SIGNAL" in (Path(info["dir"]) / "report.md").read_text()

    # promote=always still makes it champion, and says what it overrides
    data, model, factors = nodes(*table_overrides(path, "model.promote=always"))
    info = train_model(data, model, factors, str(artifacts), str(tmp_path))
    assert info["promoted"] and "despite: no signal" in info["reason"]


def test_leak_rule_on_planted_columns():
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.3).astype(int)
    X = pd.DataFrame({"weak": y * 0.3 + rng.normal(size=n), "noise": rng.normal(size=n)})
    assert suspected_leaks(X, y) == []
    X["after"] = y * 3.0 + rng.normal(0, 1.5, n)
    X["after_copy"] = X["after"] * 2 + rng.normal(0, 0.01, n)   # a copy is not a rival
    found = {d["column"]: d for d in suspected_leaks(X, y, allow=["after_copy"])}
    assert set(found) == {"after", "after_copy"}
    assert found["after"]["next_best_column"] == "weak" and not found["after"]["acknowledged"]
    assert found["after_copy"]["acknowledged"]
    # two equally strong honest columns: neither stands out, no leak under 0.99
    X2 = pd.DataFrame({"a": y * 1.8 + rng.normal(size=n), "b": y * 1.8 + rng.normal(size=n)})
    assert suspected_leaks(X2, y) == []
    X2["perfect"] = y + rng.normal(0, 0.01, n)
    assert [d["column"] for d in suspected_leaks(X2, y)] == ["perfect"]


def test_known_after_columns_are_never_features():
    check_known_after(["x1", "x2"], ["duration"])
    with pytest.raises(DataValidationError, match="known_after"):
        check_known_after(["x1", "duration"], ["duration"])


def test_signal_test_reads_the_ci():
    assert signal_test("uplift", {"qini_auc": {"value": 0.05, "ci_low": 0.01, "ci_high": 0.09}})["signal"] == "present"
    assert signal_test("uplift", {"qini_auc": {"value": 0.01, "ci_low": -0.02, "ci_high": 0.04}})["signal"] == "none"
    assert signal_test("response", {"roc_auc": {"value": 0.55, "ci_low": 0.49, "ci_high": 0.6}})["signal"] == "none"
    assert signal_test("response", {"roc_auc": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85}})["signal"] == "present"


def test_grouped_split_and_folds_keep_each_client_on_one_side():
    rng = np.random.default_rng(2)
    clients = rng.integers(0, 700, 2000)          # many clients appear in several campaigns
    strata = rng.integers(0, 4, 2000)
    tr, te = grouped_split(2000, strata, clients, 0.3, seed=1)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 2000
    assert set(clients[tr]).isdisjoint(clients[te]) and 0.25 < len(te) / 2000 < 0.35
    for f_tr, f_va in grouped_folds(strata, clients, 3, seed=1):
        assert set(clients[f_tr]).isdisjoint(clients[f_va])
    # the same rows split by row would put clients on both sides (the check can fail)
    from sklearn.model_selection import train_test_split
    a, b = train_test_split(np.arange(2000), test_size=0.3, random_state=1)
    assert not set(clients[a]).isdisjoint(clients[b])


def test_out_of_time_hold_out_is_the_latest_campaign():
    rng = np.random.default_rng(4)
    n = 3000
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    t = (rng.random(n) < 0.5).astype(int)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1 + 1.5 * t * (X["x1"] > 0))))).astype(int)
    dates = np.where(np.arange(n) < 2000, np.datetime64("2026-01-05"), np.datetime64("2026-02-02"))
    clients = rng.integers(0, 2200, n)
    cfg = from_conf(ModelConfig, "model/uplift", lgbm={**FAST, "min_child_samples": 40}, cv_folds=2, n_boot=50,
                    approaches=["two_models"])
    ts = TrainingSet(X=X, y=y, treatment=t, dataset="toy", groups=clients, dates=dates,
                     description={"excluded_columns": {"known_after": []}})
    res = train_on(ts, cfg)
    oot = res.validation["out_of_time"]
    assert oot["date"] == "2026-02-02" and oot["n"] == 1000 and oot["train_rows"] == 2000
    assert oot["qini_auc"]["ci_low"] <= oot["qini_auc"]["value"] <= oot["qini_auc"]["ci_high"]
    assert oot["qini_auc"]["value"] > 0
    assert res.validation["clients_in_both"] == 0 and res.validation["refit_rows"] == n
    assert latest_date_rows(np.array(["2026-01-05"] * 3)) is None
    # one date: no out-of-time figures
    one = train_uplift(X, t, y, cfg, groups=clients, dates=np.full(n, np.datetime64("2026-01-05")))
    assert one.validation["out_of_time"] is None
