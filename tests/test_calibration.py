"""Uplift on the right scale: design propensities, class transformation at unequal arms,
ensembles standardised out of fold, held-out uplift calibration, calibrated probabilities."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklift.models import ClassTransformation

from tasks.analytics.stats import rate_difference
from tasks.campaign.policy import PolicyConfig, assign_offers, offer_mask
from tasks.core.errors import DataValidationError
from tasks.core.io import read_json
from tasks.modelling.calibration import (
    UpliftCalibration,
    calibrate_uplift,
    fit_uplift_calibration,
    uplift_calibration_table,
)
from tasks.modelling.models import ResponseModel, UpliftModel, make_lgbm
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.selection import cross_validate_uplift, strata_of, stratified_split
from tasks.modelling.training import register_version, train_on, train_response, train_uplift
from tasks.modelling.training_set import TrainingSet, campaign_propensity
from tests.test_models import FAST, uplift_frame
from tests.test_training import small_cfg


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def unbalanced_world(n: int = 20000, share: float = 0.2, seed: int = 0):
    """One campaign with ``share`` treated; the effect grows with x1; returns the true uplifts."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    p0 = _sigmoid(-1.5 + 0.5 * X["x2"].to_numpy())
    p1 = np.clip(p0 + 0.06 + 0.04 * X["x1"].to_numpy(), 0, 1)
    t = (rng.random(n) < share).astype(int)
    y = (rng.random(n) < np.where(t == 1, p1, p0)).astype(int)
    return X, t, y, p1 - p0


def test_class_transformation_is_an_uplift_at_a_20_percent_treated_share():
    X, t, y, tau = unbalanced_world()
    eff = rate_difference(int(y[t == 1].sum()), int(t.sum()), int(y[t == 0].sum()), int((t == 0).sum()))
    half = (eff.ci_high - eff.ci_low) / 2
    assert eff.ci_low < tau.mean() < eff.ci_high
    ours = UpliftModel("class_transformation", FAST, seed=1).fit(X, t, y).predict(X)
    plain = ClassTransformation(make_lgbm(FAST, 1)).fit(X, y, t).predict(X)
    # the weighted transformed outcome recovers the average uplift within the experiment's CI ...
    assert abs(ours.mean() - tau.mean()) < half
    # ... scikit-uplift's 2P(z)-1 at a 20% share is e p1 + (1-e)(1-p0) stretched, nowhere near it
    assert abs(plain.mean() - tau.mean()) > 10 * half
    # and it still ranks by the effect
    assert np.corrcoef(ours, X["x1"])[0, 1] > 0.5


def two_campaigns(n: int = 12000, seed: int = 1):
    """Campaign A: 50% treated, base 0.30, uplift 0.10; campaign B: 20% treated, base 0.05,
    uplift 0.05. Nothing in the features tells the campaigns apart: the average uplift is 0.075."""
    rng = np.random.default_rng(seed)
    camp = np.repeat(["A", "B"], n)
    share = np.where(camp == "A", 0.5, 0.2)
    t = (rng.random(2 * n) < share).astype(int)
    p = np.where(camp == "A", 0.30 + 0.10 * t, 0.05 + 0.05 * t)
    y = (rng.random(2 * n) < p).astype(int)
    history = pd.DataFrame({"client_id": np.arange(2 * n), "campaign_id": camp,
                            "campaign_date": np.where(camp == "A", "2024-01-01", "2024-03-01"),
                            "treatment": t, "response": y})
    X = pd.DataFrame({"x1": rng.normal(size=2 * n), "x2": rng.normal(size=2 * n)})
    return X, t, y, history


def test_each_campaign_uses_its_own_design_propensity():
    X, t, y, history = two_campaigns()
    e = campaign_propensity(history)
    a = history["campaign_id"].to_numpy() == "A"
    assert np.ptp(e[a]) == 0 and np.ptp(e[~a]) == 0
    assert e[a][0] == pytest.approx(0.5, abs=0.02) and e[~a][0] == pytest.approx(0.2, abs=0.02)
    assert e[a][0] == t[a].mean() and e[~a][0] == t[~a].mean()
    # no campaign id: the campaign date tells the campaigns apart
    np.testing.assert_array_equal(campaign_propensity(history.drop(columns="campaign_id")), e)

    truth = 0.075
    ct = UpliftModel("class_transformation", FAST, seed=1)
    own = ct.fit(X, t, y, propensity=e).predict(X).mean()
    pooled = UpliftModel("class_transformation", FAST, seed=1).fit(X, t, y).predict(X).mean()
    assert own == pytest.approx(truth, abs=0.02)
    assert pooled > truth + 0.06            # one pooled share weights the campaigns' arms wrongly
    # the DR-learner's correction terms fix outcome models that miss the campaigns, but only with
    # each campaign's propensity (outcome models of one tree see no campaign difference here)
    weak = {**FAST, "n_estimators": 1}
    dr_own = UpliftModel("dr_learner", weak, seed=1).fit(X, t, y, propensity=e).predict(X).mean()
    dr_pooled = UpliftModel("dr_learner", weak, seed=1).fit(X, t, y).predict(X).mean()
    assert dr_own == pytest.approx(truth, abs=0.02)
    assert dr_pooled > truth + 0.06
    x = UpliftModel("x_learner", FAST, seed=1).fit(X, t, y, propensity=e)
    assert x.estimator["g"] == pytest.approx(e.mean())
    # training passes a training set's propensities down to the model
    res = train_on(TrainingSet(X=X, y=y, treatment=t, dataset="two", propensity=e),
                   small_cfg(approaches=["class_transformation"]))
    assert res.model.predict(X).mean() == pytest.approx(truth, abs=0.02)
    with pytest.raises(DataValidationError, match="propensit"):
        UpliftModel("dr_learner", FAST).fit(X, t, y, propensity=np.ones(len(t)))


def test_ensemble_is_standardised_on_out_of_fold_predictions():
    X, t, y = uplift_frame(3000)
    t, y = np.asarray(t), np.asarray(y)
    overfit = {**FAST, "n_estimators": 200, "num_leaves": 63, "min_child_samples": 2}
    cfg = small_cfg(approaches=["ensemble"], ensemble=["two_models", "class_transformation"], ensemble_top=None,
                    lgbm=overfit)
    res = train_uplift(X, t, y, cfg)
    assert res.approach == "ensemble"
    # the same split and folds as training: the CV's out-of-fold predictions of each member
    tr, _ = stratified_split(len(X), strata_of(t, y), cfg.test_size, cfg.seed)
    Xtr = X.iloc[tr].reset_index(drop=True)
    oof: dict = {}
    cross_validate_uplift(Xtr, t[tr], y[tr], cfg, cfg.seed, oof=oof)
    split = res.split_model                     # the fit the held-out figures measure
    st = split.standardised_on
    assert st["source"].startswith("out-of-fold") and st["rows"] == len(tr)
    np.testing.assert_allclose(st["sd"], [np.std(oof[(a, 0)]) for a in ["two_models", "class_transformation"]])
    np.testing.assert_allclose(st["mean"], [np.mean(oof[(a, 0)]) for a in ["two_models", "class_transformation"]])
    # the registered model, refitted on every row: standardised on the out-of-fold predictions of
    # the training rows and the split members' predictions of the held-out rows (none seen by its fit)
    te = np.setdiff1d(np.arange(len(X)), tr)
    full = []
    for i, a in enumerate(["two_models", "class_transformation"]):
        p = np.zeros(len(X))
        p[tr], p[te] = oof[(a, 0)], split.members[i].predict(X.iloc[te])
        full.append(p)
    final = res.model.standardised_on
    assert final["rows"] == len(X) and final["source"] == "out-of-fold (CV) and held-out"
    np.testing.assert_allclose(final["sd"], [np.std(p) for p in full])
    assert res.model.calibration is split.calibration
    # in-sample, the overfitting members spread wider than on rows they did not see (so in-sample
    # standardisation would record other figures and weights)
    in_sample = [np.std(m.predict(Xtr)) for m in split.members]
    assert all(i > 1.03 * o for i, o in zip(in_sample, st["sd"]))


def test_calibration_table_map_and_report(tmp_path):
    X, t, y, tau = unbalanced_world(12000, share=0.5, seed=3)
    cfg = small_cfg(approaches=["two_models"])
    res = train_uplift(X, t, y, cfg)
    cal = res.model.calibration
    assert isinstance(cal, UpliftCalibration) and cal.slope > 0
    table = pd.DataFrame(res.calibration["table"])
    assert len(table) == 10 and list(table["percentile"])[:2] == ["0-10", "10-20"]
    assert (table["ci_low"] < table["observed"]).all() and (table["observed"] < table["ci_high"]).all()
    assert (table["n_treatment"] > 0).all() and (table["n_control"] > 0).all()
    raw = np.sort(res.test_scores)
    assert (np.diff(res.model.calibrated(raw)) > 0)[np.diff(raw) > 0].all()   # monotone: ranking kept
    np.testing.assert_allclose(res.model.predict_uplift_calibrated(X.head(50)),
                               cal.intercept + cal.slope * res.model.predict(X.head(50)))
    reg = ModelRegistry(tmp_path / "models")
    version, _, _ = register_version(res, reg, "u", cfg, "toy")
    meta = read_json(reg.version_dir("u", version) / "metadata.json")
    assert meta["calibration"]["ece"] >= 0 and meta["calibration"]["ece_calibrated"] >= 0
    assert len(meta["calibration"]["table"]) == 10
    report = (reg.version_dir("u", version) / "report.md").read_text()
    assert "## Calibration (held-out)" in report and "calibration.png" in report
    assert (reg.version_dir("u", version) / "calibration.png").stat().st_size > 1000
    loaded = reg.load("u", version)
    np.testing.assert_allclose(loaded.predict_uplift_calibrated(X.head(20)),
                               res.model.predict_uplift_calibrated(X.head(20)))


def test_calibration_shrinks_an_overconfident_score():
    rng = np.random.default_rng(5)
    n = 40000
    tau = rng.uniform(0.0, 0.1, n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + t * tau).astype(int)
    score = 3 * tau - 0.05                     # ranks right, three times too spread, shifted
    cal, summary = calibrate_uplift(y, score, t)
    assert cal.slope_ci_low < 1 / 3 < cal.slope_ci_high and cal.slope_ci_high < 1
    assert summary["ece_calibrated"] < summary["ece"] / 3
    # a score without signal gets a nearly flat line at the average uplift, still increasing
    flat = fit_uplift_calibration(uplift_calibration_table(y, rng.normal(size=n), t))
    assert 0 < flat.slope < 1e-3 or flat.slope_ci_low < 0 < flat.slope_ci_high
    with pytest.raises(DataValidationError, match="no treated"):
        uplift_calibration_table(y[:100], score[:100], np.zeros(100))


def test_profit_policy_multiplies_the_calibrated_uplift():
    score = np.linspace(0.2, -0.1, 31)
    split = pd.DataFrame({"client_id": np.arange(31), "score": score, "rank": np.arange(1, 32),
                          "percentile": np.linspace(0, 1, 31), "group": "targeted"})
    policy = PolicyConfig("profit", None, None, None, margin=20.0, contact_cost=0.5)
    cal = UpliftCalibration(intercept=0.01, slope=0.25, slope_ci_low=0.1, slope_ci_high=0.4, n=1000)
    raw, _ = assign_offers(split, policy)
    calibrated, threshold = assign_offers(split, policy, cal)
    assert raw["offer"].sum() > calibrated["offer"].sum() > 0
    np.testing.assert_array_equal(calibrated["offer"], (0.01 + 0.25 * score) * 20 > 0.5)
    # the recorded cutoff is on the raw score: later decisions from the manifest agree
    assert threshold["uplift_cutoff"] == 0.025 and threshold["score_cutoff"] == pytest.approx(0.06)
    np.testing.assert_array_equal(offer_mask(score, threshold["score_cutoff"], strict=True), calibrated["offer"])


def test_class_weighted_response_model_returns_probabilities():
    rng = np.random.default_rng(3)
    n = 6000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (rng.random(n) < _sigmoid(-3 + 1.5 * X["a"])).astype(int)
    Xn = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    yn = (rng.random(n) < _sigmoid(-3 + 1.5 * Xn["a"])).astype(int)
    cal = ResponseModel(FAST, seed=0).fit(X, y)
    plain = ResponseModel(FAST, seed=0, calibrate=False).fit(X, y)
    assert cal.calibration is not None and plain.calibration is None
    assert cal.predict(Xn).mean() == pytest.approx(yn.mean(), abs=0.015)
    assert plain.predict(Xn).mean() > 3 * yn.mean()
    # same ranking, so the same ROC-AUC
    assert np.array_equal(np.argsort(cal.predict(Xn), kind="stable"), np.argsort(plain.predict(Xn), kind="stable"))
    # training: the F1 threshold follows onto the probability scale, the report says how calibrated
    res = train_response(X, y, small_cfg("model/response"))
    assert 0 < res.split_model.threshold < 1 and res.heldout["threshold"] == res.split_model.threshold
    # the registered model (refitted on every row) carries the same F1 cutoff onto its own scale
    raw = res.threshold_suggestions["f1_threshold_uncalibrated"]
    assert res.heldout["threshold"] == pytest.approx(float(res.split_model.to_probability(np.array([raw]))[0]))
    assert res.model.threshold == pytest.approx(float(res.model.to_probability(np.array([raw]))[0]))
    assert res.model.threshold == res.threshold_suggestions["f1_threshold"] and 0 < res.model.threshold < 1
    assert res.calibration["mean_predicted"] == pytest.approx(res.calibration["base_rate"], abs=0.02)
    assert len(res.calibration["table"]) == 10
    unweighted = train_response(X, y, replace(small_cfg("model/response"), class_weight=None))
    assert unweighted.model.calibration is None and unweighted.calibration["method"].startswith("none")


def test_api_scores_calibrated_probabilities_fast_and_decides_profit_on_calibrated_uplift():
    from api.policy import CampaignPolicy
    from api.scoring import Scorer
    from tasks.modelling.registry import LoadedModel

    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    y = (rng.random(3000) < _sigmoid(-3 + 1.5 * X["a"])).astype(int)
    model = ResponseModel(FAST, seed=0).fit(X, y)
    meta = {"kind": "response", "features": ["a", "b"], "feature_dtypes": {"a": "float64", "b": "float64"}}
    scorer = Scorer(LoadedModel("r", "v0001", model, meta))
    assert scorer.path == "lightgbm"            # the fast path applies the Platt scaling too
    np.testing.assert_allclose(scorer.score(X.head(50).to_numpy()), model.predict(X.head(50)))
    # a profit cutoff from the config is in uplift units: compared with the calibrated uplift
    cal = UpliftCalibration(intercept=0.0, slope=0.5, slope_ci_low=0.2, slope_ci_high=0.8, n=100)
    uplift = UpliftModel("solo", calibration=cal)
    loaded = LoadedModel("u", "v0001", uplift, {"kind": "uplift", "features": []})
    policy = CampaignPolicy("c", "c", "profit", 0.025, strict=True, source="config")
    scores = np.array([0.04, 0.06])
    np.testing.assert_array_equal(policy.decide(scores, loaded.calibrated), [False, True])
    np.testing.assert_array_equal(policy.decide(scores), [True, True])


def test_models_pickled_before_calibration_still_predict():
    X, t, y = uplift_frame(800)
    m = UpliftModel("solo", FAST).fit(X, t, y)
    r = ResponseModel(FAST).fit(X, np.asarray(y))
    for obj in (m, r):
        del obj.__dict__["calibration"]          # what an older model file unpickles to
    np.testing.assert_allclose(m.predict_uplift_calibrated(X.head(5)), m.predict(X.head(5)))
    np.testing.assert_allclose(r.predict(X.head(5)), r.predict_raw(X.head(5)))
