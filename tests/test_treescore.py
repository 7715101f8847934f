"""Scoring through compiled trees: the same scores as LightGBM (bitwise), on any thread
count, for every uplift approach; thread sizing from the free cores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor

import tasks.modelling.treescore as treescore
from tasks.modelling.models import UPLIFT_APPROACHES, UpliftModel
from tasks.modelling.threads import free_cores, lgbm_estimators, lgbm_threads
from tasks.modelling.treescore import compile_booster, compiled_scoring

PARAMS = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 6, "min_child_samples": 20,
          "n_jobs": 1, "verbose": -1}


def _data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"f{j}": rng.standard_normal(n) * (j + 1) for j in range(6)})
    X["f0"] = X["f0"].where(rng.random(n) > 0.1)          # NaN cells
    X["f1"] = X["f1"].where(rng.random(n) > 0.3, 0.0)     # many zeros
    X["f2"] = X["f2"].where(rng.random(n) > 0.05, 1e-40)  # values LightGBM counts as 0
    X["count"] = rng.integers(0, 5, n)                    # an integer column
    X["flag"] = rng.random(n) < 0.4                       # a boolean column
    t = (rng.random(n) < 0.5).astype(int)
    logit = -1 + 0.3 * X["f0"].fillna(0) + 0.2 * X["f1"] + t * (0.5 * np.tanh(X["f3"])) + 0.3 * X["flag"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, t, y


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.mark.parametrize("extra", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_classifier_probabilities_are_bitwise_lightgbms(data, extra):
    X, _, y = data
    est = LGBMClassifier(**PARAMS, **extra).fit(X, y)
    trees = compile_booster(est.booster_)
    assert trees is not None and trees.sigmoid == 1.0
    ref = est.predict_proba(X)[:, 1]
    for threads in (1, 2, 3):
        assert np.array_equal(trees.predict(X.to_numpy(dtype=np.float64), threads), ref)
    raw = est.booster_.predict(X, raw_score=True)
    assert np.array_equal(trees.raw(X.to_numpy(dtype=np.float64)), raw)


def test_regressor_and_block_sizes(data, monkeypatch):
    X, _, y = data
    est = LGBMRegressor(**PARAMS).fit(X, y + X["f3"].to_numpy())
    trees = compile_booster(est.booster_)
    assert trees is not None and trees.sigmoid is None
    ref = est.predict(X)
    for block in (1, 7, 1000, 1 << 15):
        monkeypatch.setattr(treescore, "BLOCK_ROWS", block)
        assert np.array_equal(trees.predict(X.to_numpy(dtype=np.float64), 2), ref)


def test_a_changed_tree_is_noticed(data):
    """The comparisons can fail: a nudged leaf value changes the scores."""
    X, _, y = data
    est = LGBMClassifier(**PARAMS).fit(X, y)
    trees = compile_booster(est.booster_)
    nudged = list(trees.trees)
    nudged[0] = _replace_leftmost(trees.trees[0])
    other = treescore.CompiledBooster(tuple(nudged), trees.n_features, trees.sigmoid)
    assert not np.array_equal(other.predict(X.to_numpy(dtype=np.float64)), est.predict_proba(X)[:, 1])


def _replace_leftmost(node):
    if not isinstance(node, tuple):
        return node + 1e-9
    return (*node[:4], _replace_leftmost(node[4]), node[5])


def test_unsupported_boosters_are_left_to_lightgbm(data):
    X, _, y = data
    Xc = X.assign(shop=pd.Categorical(np.array(["a", "b", "c"])[np.arange(len(X)) % 3]))
    est = LGBMClassifier(**PARAMS).fit(Xc, y)
    assert compile_booster(est.booster_) is None  # categorical splits (or a pandas categorical)
    ref = est.predict_proba(Xc)[:, 1]
    with compiled_scoring(est, 2) as compiled:
        assert compiled in (0, 1)
        assert np.array_equal(est.predict_proba(Xc)[:, 1], ref)
    multi = LGBMClassifier(**PARAMS).fit(X, np.arange(len(X)) % 3)
    assert compile_booster(multi.booster_) is None


@pytest.mark.parametrize("approach", UPLIFT_APPROACHES)
def test_every_uplift_approach_scores_identically(data, approach):
    X, t, y = data
    model = UpliftModel(approach, PARAMS, seed=1).fit(X, t, y)
    ref = model.predict(X)
    estimators = lgbm_estimators(model)
    assert estimators
    boosters = [est._Booster for est in estimators]
    for threads in (1, 2):
        with compiled_scoring(model, threads) as compiled:
            assert compiled == len(estimators)
            got = model.predict(X)
        assert np.array_equal(got, ref), approach
    assert [est._Booster for est in estimators] == boosters
    assert all(est.n_jobs == 1 for est in estimators)


def test_lgbm_threads_sets_and_restores(data):
    X, t, y = data
    model = UpliftModel("two_models", PARAMS, seed=1).fit(X, t, y)
    ref = model.predict(X)
    with lgbm_threads(model, 2) as n:
        assert n == 2 and all(e.n_jobs == 2 for e in lgbm_estimators(model))
        assert np.array_equal(model.predict(X), ref)
    assert all(e.n_jobs == 1 for e in lgbm_estimators(model))


@pytest.mark.parametrize("cores,load,expected", [
    (2, 0.0, 2), (2, 1.0, 2), (2, 1.4, 2), (2, 1.6, 1), (2, 2.0, 1), (2, 9.0, 1),
    (8, 1.0, 8), (8, 3.2, 6), (8, 30.0, 1), (1, 0.0, 1),
])
def test_free_cores(cores, load, expected):
    assert free_cores(cores=cores, load=load) == expected


def test_free_cores_reads_the_machine():
    import os

    n = free_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_arms_share_one_matrix_and_the_walk_is_remembered(data, monkeypatch):
    X, t, y = data
    model = UpliftModel("two_models", PARAMS, seed=1).fit(X, t, y)
    ref = model.predict(X)
    import tasks.modelling.threads as threads

    walks, conversions = [], []
    walk, matrix = threads._walk_estimators, treescore.lightgbm_matrix
    monkeypatch.setattr(threads, "_walk_estimators", lambda m: walks.append(1) or walk(m))
    monkeypatch.setattr(treescore, "lightgbm_matrix", lambda d: conversions.append(1) or matrix(d))
    first = lgbm_estimators(model)
    assert len(first) == 2 and lgbm_estimators(model) == first and len(walks) == 1
    with compiled_scoring(model, 1) as compiled:
        assert compiled == 2
        got = model.predict(X)
        assert len(conversions) == 1  # both arms predicted the same frame: converted once
        assert np.array_equal(model.predict(X.copy()), ref) and len(conversions) == 2
    assert np.array_equal(got, ref)
