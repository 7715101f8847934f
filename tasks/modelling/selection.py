"""Splits and cross-validated model choice on training rows only.

* :func:`subsample_rows` - row positions (and :func:`stratified_split`, from validation), stratified by
  :func:`strata_of` (treatment x response, or the response alone);
* :func:`cross_validate_uplift` - CV Qini AUC and uplift@k of every uplift candidate
  (approach x grid entry, plus an ensemble of the best pool members);
* :func:`select_response` - CV of the response candidates and the F1 threshold of the best;
* :func:`out_of_fold_proba` - each row's response probability from a model that never saw it.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from tasks.analytics import metrics as M
from tasks.modelling.config import ModelConfig
from tasks.modelling.models import ENSEMBLE, RESPONSE_APPROACH, ResponseModel, UpliftModel, check_target
from tasks.modelling.validation import grouped_folds, stratified_split  # noqa: F401 (re-exported)


def strata_of(t: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    """Stratum of each row: ``2 * treatment + response`` (uplift), or the response alone."""
    return y.astype(int) if t is None else (2 * t.astype(int) + y.astype(int))


def subsample_rows(n: int, max_rows: int | None, strata: np.ndarray, seed: int) -> np.ndarray:
    """Sorted positions of a stratified subsample of ``max_rows`` rows (all rows when fewer)."""
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    keep, _ = train_test_split(np.arange(n), train_size=max_rows, random_state=seed, stratify=strata)
    return np.sort(keep)


def _uplift_metrics(y: np.ndarray, score: np.ndarray, t: np.ndarray, k: float) -> dict[str, float]:
    return {"qini_auc": M.qini_auc(y, score, t), "uplift_auc": M.uplift_auc(y, score, t),
            "uplift_at_k": M.uplift_at_k(y, score, t, k=k, strategy="overall")}


def _candidates(cfg: ModelConfig, approaches: Sequence[str]) -> list[tuple[str, dict]]:
    return [(a, {**cfg.lgbm, **(g or {})}) for a in approaches for g in cfg.grid]


def cross_validate_uplift(Xtr: pd.DataFrame, ttr: np.ndarray, ytr: np.ndarray, model_cfg: ModelConfig,
                          seed: int, progress: Callable[[str], None] | None = None,
                          propensity: np.ndarray | None = None,
                          oof: dict[tuple[str, int], np.ndarray] | None = None,
                          groups: np.ndarray | None = None) -> pd.DataFrame:
    """CV Qini AUC and uplift@k of every candidate (approach x grid entry) on training rows only.

    An ``ensemble`` candidate is built in each fold from that fold's members with the same
    grid entry (fitted once, shared with the members' own candidates), standardised on their
    predictions for the fold's validation rows (rows they did not see; no outcome is used).
    With ``ensemble_top`` the members are the best N of the ``ensemble`` pool by this CV
    (column ``members``); the fold's own ensemble takes the best N by the other folds only, so
    its members are not chosen on the rows it is scored on. ``propensity``: each row's design
    propensity (:meth:`UpliftModel.fit`). ``oof``, when given, receives every non-ensemble
    candidate's out-of-fold predictions keyed by ``(approach, grid entry)``. ``groups``: each
    row's client; a client's rows stay in one fold (:func:`grouped_folds`).
    """
    folds = grouped_folds(strata_of(ttr, ytr), groups, model_cfg.cv_folds, seed)
    fitted: dict[tuple[str, int, int], UpliftModel] = {}
    fold_preds: dict[tuple[str, int, int], np.ndarray] = {}
    fold_scores: dict[tuple[str, int], list[float]] = {}

    chosen: dict[tuple[int, int], list[str]] = {}

    def fold_model(approach: str, gi: int, params: dict, fi: int) -> UpliftModel:
        key = (approach, gi, fi)
        if key not in fitted:
            f_tr, f_va = folds[fi]
            if approach == ENSEMBLE:
                members = [fold_model(a, gi, params, fi) for a in chosen[(gi, fi)]]
                preds = [fold_preds[(a, gi, fi)] for a in chosen[(gi, fi)]]
                fitted[key] = UpliftModel.from_members(members, preds, "validation rows of the fold")
            else:
                fitted[key] = UpliftModel(approach, params, seed).fit(
                    Xtr.iloc[f_tr], ttr[f_tr], ytr[f_tr], dr_folds=model_cfg.dr_folds,
                    propensity=None if propensity is None else propensity[f_tr])
        return fitted[key]

    def score_of(approach: str, gi: int) -> float:
        for r in rows + extra:
            if r["approach"] == approach and r["grid"] == gi:
                return r[f"cv_{model_cfg.select_metric}"]
        return score_candidate(approach, gi)[f"cv_{model_cfg.select_metric}"]

    def score_candidate(approach: str, gi: int) -> dict:
        params = {**model_cfg.lgbm, **(model_cfg.grid[gi] or {})}
        row: dict[str, Any] = {"approach": approach, "grid": gi, "params": params}
        if approach == ENSEMBLE:
            pool = list(model_cfg.ensemble)
            for a in pool:
                score_of(a, gi)  # fits and scores the pool members first (their fold predictions)
            for fi in range(len(folds)):
                chosen[(gi, fi)] = pool
            if model_cfg.ensemble_top:
                for fi in range(len(folds)):
                    others = {a: np.mean([v for j, v in enumerate(fold_scores[(a, gi)]) if j != fi]) for a in pool}
                    chosen[(gi, fi)] = sorted(pool, key=lambda a: -others[a])[: model_cfg.ensemble_top]
                pool = sorted(pool, key=lambda a: -score_of(a, gi))[: model_cfg.ensemble_top]
            row["members"] = list(pool)
        scores = []
        for fi, (_, f_va) in enumerate(folds):
            m = fold_model(approach, gi, params, fi)
            pred = m.predict(Xtr.iloc[f_va])
            fold_preds[(approach, gi, fi)] = pred
            scores.append(_uplift_metrics(ytr[f_va], pred, ttr[f_va], model_cfg.k))
            if oof is not None and approach != ENSEMBLE:
                oof.setdefault((approach, gi), np.zeros(len(ytr)))[f_va] = pred
        s = pd.DataFrame(scores)
        fold_scores[(approach, gi)] = s[model_cfg.select_metric].tolist()
        row.update({f"cv_{c}": float(s[c].mean()) for c in s.columns})
        row.update({f"cv_{c}_sd": float(s[c].std(ddof=1)) for c in s.columns})
        if approach not in model_cfg.approaches:   # a pool member scored only to rank the pool
            extra.append(row)
        return row

    # the ensemble last, so its members are fitted (and scored) as candidates first
    order = sorted(model_cfg.approaches, key=lambda a: a == ENSEMBLE)
    rows: list[dict] = []
    extra: list[dict] = []
    started = time.perf_counter()
    for approach in order:
        for gi in range(len(model_cfg.grid)):
            rows.append({"candidate": len(rows), **score_candidate(approach, gi)})
            if progress is not None:
                key = f"cv_{model_cfg.select_metric}"
                progress(f"candidate {len(rows)}/{len(order) * len(model_cfg.grid)} {approach} (grid {gi}): "
                         f"CV {model_cfg.select_metric} {rows[-1][key]:.4f} +/- {rows[-1][key + '_sd']:.4f} "
                         f"({time.perf_counter() - started:.0f}s so far)")
    return pd.DataFrame(rows)


def select_response(Xtr: pd.DataFrame, ytr: np.ndarray, model_cfg: ModelConfig, seed: int,
                    groups: np.ndarray | None = None) -> tuple[pd.DataFrame, dict, float]:
    """CV over the grid on training rows only: ``(cv table, best params, F1 threshold)``.

    The threshold maximises F1 on the out-of-fold predictions of the best candidate; a
    client's rows (``groups``) stay in one fold.
    """
    folds = grouped_folds(ytr.astype(int), groups, model_cfg.cv_folds, seed)
    rows, oof_by = [], {}
    for i, (_, params) in enumerate(_candidates(model_cfg, [RESPONSE_APPROACH])):
        oof = np.zeros(len(ytr))
        scores = []
        for f_tr, f_va in folds:
            m = ResponseModel(params, seed, model_cfg.class_weight, calibrate=False).fit(Xtr.iloc[f_tr], ytr[f_tr])
            oof[f_va] = m.predict(Xtr.iloc[f_va])
            thr = M.tune_threshold_f1(ytr[f_tr], m.predict(Xtr.iloc[f_tr]))
            scores.append(M.response_metrics(ytr[f_va], oof[f_va], thr))
        s = pd.DataFrame(scores)[["roc_auc", "pr_auc", "f1"]]
        oof_by[i] = oof
        rows.append({"candidate": i, "approach": RESPONSE_APPROACH, "params": params,
                     **{f"cv_{c}": float(s[c].mean()) for c in s.columns},
                     **{f"cv_{c}_sd": float(s[c].std(ddof=1)) for c in s.columns}})
    cv = pd.DataFrame(rows)
    best = cv.sort_values(f"cv_{model_cfg.select_metric}", ascending=False, kind="stable").iloc[0]
    threshold = M.tune_threshold_f1(ytr, oof_by[int(best["candidate"])])
    return cv, dict(best["params"]), threshold


def out_of_fold_proba(X: pd.DataFrame, y: np.ndarray, params: dict, cfg: ModelConfig, seed: int | None = None) -> np.ndarray:
    """Response probability of every row from a model that never saw that row (K-fold)."""
    seed = cfg.seed if seed is None else seed
    y_arr = check_target(y)
    X = X.reset_index(drop=True)
    out = np.zeros(len(y_arr))
    for f_tr, f_va in StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=seed).split(X, y_arr):
        m = ResponseModel(params, seed, cfg.class_weight).fit(X.iloc[f_tr], y_arr[f_tr])
        out[f_va] = m.predict(X.iloc[f_va])
    return out
