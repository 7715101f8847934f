"""Uplift and response models: real LightGBM fits on tiny frames, and their input checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import ConfigError, DataValidationError
from tasks.modelling.models import ResponseModel, UpliftModel, shap_importance

FAST = {"n_estimators": 30, "learning_rate": 0.1, "min_child_samples": 20, "num_leaves": 7}


def uplift_frame(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Clients whose offer effect grows with x1; x2 only moves the base rate."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "noise": rng.normal(size=n)})
    t = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(-1.0 + 0.5 * X["x2"] + t * 1.5 * X["x1"])))
    y = (rng.random(n) < p).astype(int)
    return X, t, y


@pytest.mark.parametrize("approach", ["solo", "solo_interaction", "two_models", "class_transformation",
                                      "x_learner", "dr_learner"])
def test_uplift_approaches_rank_the_persuadable_higher(approach):
    X, t, y = uplift_frame()
    m = UpliftModel(approach, FAST, seed=1).fit(X, t, y)
    u = m.predict(X)
    assert u.shape == (len(X),) and np.isfinite(u).all()
    assert np.corrcoef(u, X["x1"])[0, 1] > 0.5
    contrib = m.contributions(X.head(50))
    assert list(contrib.columns) == ["x1", "x2", "noise"] and contrib.shape == (50, 3)
    imp = shap_importance(m, X, max_rows=500)
    assert imp["feature"].iloc[0] == "x1"


def test_uplift_predict_does_not_mutate_and_ignores_column_order():
    X, t, y = uplift_frame(1000)
    before = X.copy()
    m = UpliftModel("solo", FAST).fit(X, t, y)
    pd.testing.assert_frame_equal(X, before)
    np.testing.assert_allclose(m.predict(X[["noise", "x2", "x1"]]), m.predict(X))


def test_uplift_bad_inputs():
    X, t, y = uplift_frame(500)
    with pytest.raises(DataValidationError, match="one arm"):
        UpliftModel("solo", FAST).fit(X, np.ones_like(t), y)
    with pytest.raises(DataValidationError, match="no positive"):
        UpliftModel("solo", FAST).fit(X, t, np.zeros_like(y))
    y_nan = y.astype(float)
    y_nan[[3, 7]] = np.nan
    with pytest.raises(DataValidationError, match="NaN"):
        UpliftModel("solo", FAST).fit(X, t, y_nan)
    with pytest.raises(DataValidationError, match="non-numeric"):
        UpliftModel("solo", FAST).fit(X.assign(city="a"), t, y)
    with pytest.raises(ConfigError, match="approach"):
        UpliftModel("magic")
    m = UpliftModel("two_models", FAST).fit(X, t, y)
    with pytest.raises(DataValidationError, match="'x2'"):
        m.predict(X.drop(columns=["x2"]))


def test_response_model_with_class_weighting():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    y = (rng.random(2000) < 1 / (1 + np.exp(-(-3 + 2 * X["a"])))).astype(int)
    m = ResponseModel(FAST, seed=0, threshold=0.4).fit(X, y)
    p = m.predict(X)
    assert ((p >= 0) & (p <= 1)).all()
    # balanced weighting lifts the raw scores well above the 10%-ish base rate; the calibrated
    # probabilities come back to it (see tests/test_calibration.py)
    assert m.predict_raw(X).mean() > 2 * y.mean()
    assert p.mean() == pytest.approx(y.mean(), abs=0.03)
    assert set(np.unique(m.predict_label(X))) <= {0, 1}
    assert m.contributions(X.head(5)).shape == (5, 2)
    with pytest.raises(DataValidationError, match="all 2000 rows are positive"):
        ResponseModel(FAST).fit(X, np.ones(2000))
    with pytest.raises(DataValidationError, match="'b'"):
        m.predict(X[["a"]])


def test_ensemble_averages_standardised_members_in_uplift_units():
    X, t, y = uplift_frame()
    m = UpliftModel("ensemble", FAST, seed=1, member_approaches=["solo", "two_models"]).fit(X, t, y)
    assert [x.approach for x in m.members] == ["solo", "two_models"]
    u = m.predict(X)
    parts = [x.predict(X) for x in m.members]
    np.testing.assert_allclose(u, m.offset + sum(w * p for w, p in zip(m.weights, parts)))
    # standardised on out-of-fold predictions: each member contributes the same spread there,
    # and the mean stays on the members' average scale
    st = m.standardised_on
    assert st["source"] == "out-of-fold" and st["rows"] == len(X)
    spreads = [w * sd for w, sd in zip(m.weights, st["sd"])]
    assert spreads[0] == pytest.approx(spreads[1])
    assert m.offset + sum(w * mu for w, mu in zip(m.weights, st["mean"])) == pytest.approx(np.mean(st["mean"]))
    assert u.mean() == pytest.approx(np.mean([p.mean() for p in parts]), abs=0.02)
    assert np.corrcoef(u, X["x1"])[0, 1] > 0.5
    assert m.contributions(X.head(20)).shape == (20, 3)
    with pytest.raises(ConfigError, match="ensemble"):
        UpliftModel("ensemble", member_approaches=["ensemble"])


@pytest.mark.parametrize("approach", ["x_learner", "dr_learner"])
def test_meta_learners_explain_their_score_exactly_and_handle_unequal_arms(approach):
    X, t, y = uplift_frame(4000, seed=2)
    t = (np.random.default_rng(9).random(len(t)) < 0.3).astype(int)  # 30% treated
    p = 1 / (1 + np.exp(-(-1.0 + 0.5 * X["x2"] + t * 1.5 * X["x1"])))
    y = (np.random.default_rng(10).random(len(t)) < p).astype(int)
    m = UpliftModel(approach, FAST, seed=3).fit(X, t, y)
    u = m.predict(X)
    assert np.corrcoef(u, X["x1"])[0, 1] > 0.5
    # probability units: the true effects lie within (-1, 1) and average near the truth
    true = 1 / (1 + np.exp(-(-1.0 + 0.5 * X["x2"] + 1.5 * X["x1"]))) - 1 / (1 + np.exp(-(-1.0 + 0.5 * X["x2"])))
    assert abs(u.mean() - true.mean()) < 0.05
    # TreeSHAP of the effect regressions: the row sums differ from the score by one constant
    gap = u[:200] - m.contributions(X.head(200)).sum(axis=1).to_numpy()
    assert np.ptp(gap) < 1e-6
    if approach == "x_learner":
        assert m.estimator["g"] == pytest.approx(t.mean())


def test_ensemble_importance_puts_members_on_one_scale():
    X, t, y = uplift_frame()
    m = UpliftModel("ensemble", FAST, seed=1, member_approaches=["two_models", "x_learner"]).fit(X, t, y)
    head = X.head(300)
    parts = [(mem.contributions(head).abs().mean().sum(), np.std(mem.predict(head))) for mem in m.members]
    # raw contributions differ by units (log-odds vs probability) ...
    assert parts[0][0] > 3 * parts[1][0]
    # ... the ensemble's are rescaled into score units: their row sums spread like its scores
    spread = m.contributions(head).sum(axis=1).std()
    assert spread == pytest.approx(np.std(m.predict(head)), rel=0.25)
    assert shap_importance(m, X, max_rows=500)["feature"].iloc[0] == "x1"


def test_dr_learner_cross_fitting_folds_are_a_setting_of_the_fit():
    X, t, y = uplift_frame(1500)
    default = UpliftModel("dr_learner", FAST, seed=1).fit(X, t, y)
    three = UpliftModel("dr_learner", FAST, seed=1).fit(X, t, y, dr_folds=3)
    five = UpliftModel("dr_learner", FAST, seed=1).fit(X, t, y, dr_folds=5)
    np.testing.assert_array_equal(default.predict(X), three.predict(X))
    assert not np.allclose(three.predict(X), five.predict(X))
    assert "dr_folds" not in vars(five)  # the stored model is the same kind of object either way
