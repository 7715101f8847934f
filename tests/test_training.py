"""Training: feature checks, CV choice, held-out metrics, thresholds, registration and promotion."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.io import read_json
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.checks import (
    ChecksConfig,
    find_constant_columns,
    find_single_predictors,
    find_sum_columns,
    screen_features,
)
from tasks.modelling.config import ModelConfig, validate_model_config
from tasks.modelling.reference import reference_distributions
from tasks.modelling.training import (
    heldout_metric,
    register_version,
    train_on,
    train_response,
    train_uplift,
)
from tasks.modelling.training_set import TrainingSet
from tests.test_models import FAST, uplift_frame

CHECKS = from_conf(ChecksConfig, "model/uplift:checks")


def small_cfg(source: str = "model/uplift", **kw) -> ModelConfig:
    """A fast model config: conf/model/<option>.yaml with small trees, 2 folds, 20 replicates."""
    base = dict(lgbm=FAST, cv_folds=2, n_boot=20, seed=5)
    if source == "model/uplift":
        base["approaches"] = ["solo", "class_transformation"]
    base.update(kw)
    return from_conf(ModelConfig, source, **base)


def test_checks_find_constant_sum_and_leaky_columns():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({
        "a": rng.integers(0, 50, n), "b": rng.integers(0, 30, n), "c": rng.integers(0, 9, n),
        "flag": rng.integers(0, 2, n), "const": 3,
    })
    X["total"] = X["a"] + X["b"] + X["c"]
    X["part_ab"] = X["total"] - X["c"]
    y = rng.integers(0, 2, n)
    X["leak"] = y * 10 + rng.random(n)
    assert find_constant_columns(X) == ["const"]
    sums = find_sum_columns(X.drop(columns=["const", "leak"]))
    assert set(sums) == {"total", "part_ab"}
    assert find_single_predictors(X.drop(columns=["const"]), y, 0.99) == {"leak": pytest.approx(1.0)}
    before = X.copy()
    out, rep = screen_features(X, y, CHECKS)
    pd.testing.assert_frame_equal(X, before)
    assert set(rep.dropped) == {"const", "total", "part_ab", "leak"}
    assert list(out.columns) == ["a", "b", "c", "flag"]
    out2, rep2 = screen_features(X, y, replace(CHECKS, constant="flag", sum_of_others="flag", single_predictor="off"))
    assert rep2.flagged == ["const", "total", "part_ab"] and out2.shape[1] == X.shape[1]


def test_checks_that_drop_everything_fail():
    X = pd.DataFrame({"k": [1] * 10})
    with pytest.raises(DataValidationError, match="every feature was dropped"):
        screen_features(X, np.array([0, 1] * 5), CHECKS)


def test_train_uplift_chooses_by_cv_and_reports_heldout_metrics():
    X, t, y = uplift_frame(3000)
    lines: list[str] = []
    res = train_uplift(X, t, y, small_cfg(grid=[{}, {"num_leaves": 3}], margin=20.0, contact_cost=0.5),
                       progress=lines.append)
    assert len(res.cv) == 4 and {"cv_qini_auc", "cv_uplift_at_k"} <= set(res.cv.columns)
    assert len(lines) == 5 and lines[0].startswith("feature checks on 2,100 training rows: kept 3 of 3 features")
    assert lines[1].startswith("candidate 1/4 solo (grid 0): CV qini_auc ")
    assert f"{res.cv['cv_qini_auc'].iloc[3]:.4f}" in lines[4]
    best = res.cv.sort_values("cv_qini_auc", ascending=False).iloc[0]
    assert res.approach == best["approach"]
    q = res.heldout["qini_auc"]
    assert q["ci_low"] <= q["value"] <= q["ci_high"] and q["value"] > 0
    assert res.n_train + res.n_test == 3000 and res.n_test == 900
    assert len(res.by_decile) == 11
    ts = res.threshold_suggestions
    assert ts["per_client_rule"]["score_cutoff"] == pytest.approx(0.5 / 20.0)
    assert 0 <= ts["profit_optimal"]["fraction"] <= 1
    assert res.signal["signal"] == "present"
    # without a margin and a contact cost in the user's config there is no profit suggestion
    plain = train_uplift(X, t, y, small_cfg())
    assert "profit_optimal" not in plain.threshold_suggestions and "per_client_rule" not in plain.threshold_suggestions


def test_train_uplift_bad_inputs():
    X, t, y = uplift_frame(400)
    with pytest.raises(DataValidationError, match="one arm"):
        train_uplift(X, np.zeros_like(t), y, small_cfg())
    with pytest.raises(DataValidationError, match="no positive"):
        train_uplift(X, t, np.zeros_like(y), small_cfg())
    with pytest.raises(ConfigError, match="approaches"):
        train_uplift(X, t, y, small_cfg(approaches=["nope"]))
    with pytest.raises(ConfigError, match="select_metric"):
        train_uplift(X, t, y, small_cfg(select_metric="roc_auc"))
    ratio = X.assign(x2=X["x2"].where(X.index != 7, np.inf))
    with pytest.raises(DataValidationError, match=r"column 'x2': 1 infinite value\(s\).*\[7\]"):
        train_uplift(ratio, t, y, small_cfg())


def test_train_response_tunes_threshold_and_register_promotes_by_rule(tmp_path):
    rng = np.random.default_rng(1)
    n = 1500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2 + 2 * X["a"])))).astype(int)
    # a is the one strong column next to noise: the leak rule suspects it unless acknowledged
    cfg = small_cfg("model/response", name="resp")
    assert [d["column"] for d in train_response(X, y, cfg).checks.suspected_leaks] == ["a"]
    cfg.checks.allow = ["a", "a_noisy"]
    res = train_response(X, y, cfg)
    assert res.heldout["roc_auc"]["value"] > 0.75
    # the registered model is refitted on all rows: its threshold is the same F1 cutoff on its own
    # calibrated scale; the held-out figures keep the split fit's
    assert 0 < res.model.threshold < 1 and res.threshold_suggestions["f1_threshold"] == res.model.threshold
    assert res.heldout["threshold"] == res.threshold_suggestions["f1_threshold_heldout_fit"]
    assert res.heldout["threshold"] == pytest.approx(res.model.threshold, abs=0.05)
    assert res.validation["refit_rows"] == n and res.signal["signal"] == "present"

    reg = ModelRegistry(tmp_path / "models")
    v1, promoted1, _ = register_version(res, reg, "resp", cfg, "toy")
    assert (v1, promoted1) == ("v0001", True)
    files = {p.name for p in (tmp_path / "models" / "resp" / v1).iterdir()}
    assert {"model.joblib", "metadata.json", "report.md", "shap_importance.png", "cv.csv"} <= files
    meta = read_json(tmp_path / "models" / "resp" / v1 / "metadata.json")
    assert meta["features"] == ["a", "b"] and meta["kind"] == "response"
    assert meta["reference"]["a"]["kind"] == "numeric" and len(meta["reference"]["a"]["sample"]) <= 5000

    X = X.assign(a_noisy=X["a"] + rng.normal(0, 2, n))
    worse = train_response(X[["a_noisy", "b"]], y, cfg)  # weaker
    v2, promoted2, reason = register_version(worse, reg, "resp", cfg, "toy")
    assert (v2, promoted2) == ("v0002", False)
    # the champion needs column a, which the challenger's hold-out lacks: no paired comparison, no promotion
    assert "not measured on the same rows, so not promoted automatically" in reason and "different one" not in reason
    assert reg.champion("resp") == "v0001"
    cfg.promote = "always"
    v3, _, _ = register_version(worse, reg, "resp", cfg, "toy")
    assert v3 == "v0003" and reg.champion("resp") == v3
    loaded = reg.load("resp")
    assert loaded.kind == "response" and loaded.predict(X).shape == (n,)


def test_reference_distributions_kinds():
    X = pd.DataFrame({"num": np.arange(100.0), "flag": [True, False] * 50})
    ref = reference_distributions(X)
    assert ref["flag"]["kind"] == "categorical" and ref["flag"]["shares"] == {"False": 0.5, "True": 0.5}
    assert ref["num"]["kind"] == "numeric" and sum(ref["num"]["shares"]) == pytest.approx(1.0)
    # samples keep 6 significant digits: short in metadata.json, relative error below 5e-6
    sevenths = pd.DataFrame({"x": np.r_[np.arange(1, 301) / 7.0, -1e9 / 7, 1e-9 / 7]})
    sample = np.array(reference_distributions(sevenths)["x"]["sample"])
    assert all(float(f"{v:.6g}") == v for v in sample)
    assert np.abs(np.sort(sample) / np.sort(sevenths["x"].to_numpy()) - 1).max() < 5e-6


def test_ensemble_candidate_takes_the_best_pool_members_by_cv():
    X, t, y = uplift_frame(3000)
    cfg = small_cfg(approaches=["solo", "ensemble"], ensemble=["solo", "two_models", "class_transformation"],
                    ensemble_top=2)
    res = train_uplift(X, t, y, cfg)
    assert list(res.cv["approach"]) == ["solo", "ensemble"]
    members = res.cv.set_index("approach").loc["ensemble", "members"]
    assert len(members) == 2 and set(members) <= {"solo", "two_models", "class_transformation"}
    if res.approach == "ensemble":
        assert [m.approach for m in res.model.members] == members
    with pytest.raises(ConfigError, match="ensemble"):
        train_uplift(X, t, y, small_cfg(approaches=["ensemble"], ensemble=[]))


def test_auto_promotion_scores_the_champion_on_the_challengers_hold_out(tmp_path):
    X, t, y = uplift_frame(3000)
    reg = ModelRegistry(tmp_path / "models")
    first = train_uplift(X, t, y, small_cfg(seed=5))
    assert register_version(first, reg, "u", small_cfg(seed=5), "toy")[1]
    second = train_uplift(X, t, y, small_cfg(seed=6))  # another split: another hold-out
    version, promoted, reason = register_version(second, reg, "u", small_cfg(seed=6), "toy")
    champion_there = heldout_metric(second, "qini_auc", reg.load("u", "v0001"))
    new = second.heldout["qini_auc"]["value"]
    assert f"challenger - champion v0001 = {new - champion_there:+.4f}, 95% CI [" in reason
    assert f"on the same {second.n_test:,} held-out rows" in reason
    # two fits of the same model on the same data: equal quality, the interval covers 0, no promotion
    assert not promoted and "lower bound not above margin 0" in reason
    assert reg.champion("u") == "v0001"


def test_dr_folds_is_a_model_config_key():
    from tasks.core.config import compose_config, to_dataclass

    for name in ("uplift", "hillstrom", "ifood"):
        assert to_dataclass(compose_config([f"model={name}"]).model, ModelConfig, "model").dr_folds == 3
    with pytest.raises(ConfigError, match="dr_folds"):
        validate_model_config(small_cfg(dr_folds=1))


def test_train_on_needs_a_treatment_for_uplift_and_none_for_response():
    X, t, y = uplift_frame(1500)
    with pytest.raises(ConfigError, match="needs a dataset with a treatment column"):
        train_on(TrainingSet(X=X, y=y, treatment=None, dataset="toy"), small_cfg())
    res = train_on(TrainingSet(X=X, y=y, treatment=None, dataset="toy"),
                   small_cfg("model/response"))
    assert res.kind == "response"
