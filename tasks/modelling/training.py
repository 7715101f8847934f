"""Training: checked features, cross-validated model choice, held-out metrics, registration.

Plain functions used by ``flows.train`` and by monitoring (retraining without the CLI):

* :func:`train_uplift` / :func:`train_response` - the features screened
  (:mod:`tasks.modelling.checks`), candidates chosen by cross-validation on the training
  split only (:mod:`tasks.modelling.selection`), then measured once on the held-out split;
  :func:`train_on` picks one for a :class:`~tasks.modelling.training_set.TrainingSet`;
* :func:`register` / :func:`register_version` - metadata, report and plots into the registry,
  and the promotion rule (:func:`decide_promotion`).
"""
from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from tasks.analytics import metrics as M
from tasks.core.errors import ConfigError, DataValidationError, UpliftError
from tasks.core.io import frame_fingerprint
from tasks.modelling.calibration import calibrate_uplift, calibration_summary_response
from tasks.modelling.checks import CheckReport, screen_features
from tasks.modelling.guards import check_known_after, promotion_blockers, signal_test, suspected_leaks
from tasks.modelling.config import ModelConfig, validate_model_config
from tasks.modelling.models import (
    ENSEMBLE,
    RESPONSE_APPROACH,
    ResponseModel,
    UpliftModel,
    check_target,
    check_treatment,
    design_propensity,
    shap_importance,
    validate_feature_frame,
)
from tasks.modelling.promotion import other_rows_decision, promotion_evidence
from tasks.modelling.reference import reference_distributions
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.reporting import render_plots, render_report
from tasks.modelling.selection import (
    cross_validate_uplift,
    select_response,
    strata_of,
    subsample_rows,
)
from tasks.modelling.thresholds import suggest_uplift_thresholds
from tasks.modelling.training_set import TrainingSet
from tasks.modelling.validation import grouped_split, latest_date_rows, split_summary


@dataclass
class TrainResult:
    """Everything training produced; :func:`register` turns it into a registry version."""

    kind: str
    model: UpliftModel | ResponseModel
    approach: str
    params: dict
    cv: pd.DataFrame                    # one row per candidate: approach, params, metric means and sds
    heldout: dict                       # held-out metrics with bootstrap CIs
    checks: CheckReport
    features: list[str]
    feature_dtypes: dict[str, str]
    train_fingerprint: str
    n_train: int
    n_test: int
    test_scores: np.ndarray
    test_y: np.ndarray
    test_treatment: np.ndarray | None
    by_decile: pd.DataFrame | None
    shap: pd.DataFrame
    reference: dict
    threshold_suggestions: dict
    X_train_sample: pd.DataFrame
    seed: int
    test_rows: np.ndarray | None = None  # positions of the held-out rows in the input X
    X_test: pd.DataFrame | None = None   # the held-out features (auto promotion scores the champion on them)
    extras: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)  # the training set's description (source, excluded columns, missing values)
    calibration: dict | None = None      # held-out calibration: the fitted map, ECE, decile table
    validation: dict = field(default_factory=dict)  # split by client or row, out-of-time figures, refit rows
    signal: dict = field(default_factory=dict)      # tasks.modelling.guards.signal_test of the held-out figures
    split_model: Any = None              # the fit on the training split that the held-out figures measure
    out_of_time_scores: tuple | None = None  # (positions in the input X, scores) of the out-of-time rows


def fit_chosen_uplift(best: pd.Series, model_cfg: ModelConfig, seed: int, Xtr: pd.DataFrame, ttr: np.ndarray,
                      ytr: np.ndarray, etr: np.ndarray | None, oof: dict) -> UpliftModel:
    """The chosen candidate fitted on the whole training split. An ensemble's members are
    fitted there and standardised on their out-of-fold predictions from the CV (``oof``)."""
    approach, params = str(best["approach"]), dict(best["params"])
    if approach != ENSEMBLE:
        return UpliftModel(approach, params, seed).fit(Xtr, ttr, ytr, dr_folds=model_cfg.dr_folds, propensity=etr)
    members = best.get("members")
    names = list(members if isinstance(members, list) else model_cfg.ensemble)
    fitted = [UpliftModel(a, params, seed).fit(Xtr, ttr, ytr, dr_folds=model_cfg.dr_folds, propensity=etr)
              for a in names]
    return UpliftModel.from_members(fitted, [oof[(a, int(best["grid"]))] for a in names], "out-of-fold (CV)")


def calibrate_on_heldout(model: UpliftModel, yte: np.ndarray, score: np.ndarray, tte: np.ndarray) -> dict:
    """Fit the uplift calibration on the held-out rows, store it on ``model``, return its
    summary (or why there is none: too few held-out rows per decile)."""
    try:
        cal, summary = calibrate_uplift(yte, score, tte)
    except DataValidationError as exc:
        return {"skipped": str(exc)}
    model.calibration = cal
    return summary


def _with_ci(fn: Any, arrays: tuple, n_boot: int, seed: int, stratify: np.ndarray) -> dict[str, float]:
    """Point value and percentile-bootstrap CI; NaN bounds when too few replicates are valid."""
    try:
        point, lo, hi = M.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed, stratify=stratify)
    except DataValidationError:
        point, lo, hi = float(fn(*arrays)), float("nan"), float("nan")
    return {"value": point, "ci_low": lo, "ci_high": hi}


def screen_training_split(X: pd.DataFrame, tr: np.ndarray, y: np.ndarray, model_cfg: ModelConfig,
                          seed: int) -> tuple[pd.DataFrame, CheckReport]:
    """The feature checks and the leak rule on the training split only (the held-out labels
    stay unseen); returns all rows with the kept columns, and the report."""
    validate_feature_frame(X)
    kept, checks = screen_features(X.iloc[tr].reset_index(drop=True), y[tr], model_cfg.checks, seed)
    checks.allow = [str(a) for a in model_cfg.checks.allow]
    checks.suspected_leaks = suspected_leaks(kept, y[tr], checks.allow, model_cfg.checks.max_rows, seed)
    return X[list(kept.columns)], checks


def _uplift_figures(y: np.ndarray, score: np.ndarray, t: np.ndarray, model_cfg: ModelConfig,
                    seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(len(y))}
    for name, fn in (("qini_auc", M.qini_auc), ("uplift_auc", M.uplift_auc),
                     ("uplift_at_k", lambda a, b, c: M.uplift_at_k(a, b, c, k=model_cfg.k, strategy="overall"))):
        out[name] = _with_ci(fn, (y, score, t), model_cfg.n_boot, seed, t)
    out["k"] = model_cfg.k
    return out


def _response_figures(y: np.ndarray, proba: np.ndarray, threshold: float, model_cfg: ModelConfig,
                      seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(len(y)), "threshold": threshold}
    for name in ("roc_auc", "pr_auc", "f1", "precision", "recall"):
        fn = (lambda a, b, _n=name: M.response_metrics(a, b, threshold)[_n])
        out[name] = _with_ci(fn, (y, proba), model_cfg.n_boot, seed, y)
    return out


def refit_uplift_on_all(best: pd.Series, model_cfg: ModelConfig, seed: int, split_model: UpliftModel,
                        X: pd.DataFrame, t: np.ndarray, y: np.ndarray, e: np.ndarray | None, tr: np.ndarray,
                        te: np.ndarray, oof: dict) -> UpliftModel:
    """The chosen configuration refitted on every row (the registered model). An ensemble's
    members are standardised on predictions for rows they did not see: the CV's out-of-fold
    ones on the training split and the split-fitted members' on the held-out rows. The
    held-out calibration map of ``split_model`` is kept."""
    approach, params = str(best["approach"]), dict(best["params"])
    if approach != ENSEMBLE:
        final = UpliftModel(approach, params, seed).fit(X, t, y, dr_folds=model_cfg.dr_folds, propensity=e)
    else:
        members, preds = [], []
        Xte = X.iloc[te]
        for split_member in split_model.members:
            p = np.zeros(len(X))
            p[tr] = oof[(split_member.approach, int(best["grid"]))]
            p[te] = split_member.predict(Xte)
            preds.append(p)
            members.append(UpliftModel(split_member.approach, params, seed).fit(
                X, t, y, dr_folds=model_cfg.dr_folds, propensity=e))
        final = UpliftModel.from_members(members, preds, "out-of-fold (CV) and held-out")
    final.calibration = split_model.calibration
    return final


def out_of_time_uplift(best: pd.Series, model_cfg: ModelConfig, seed: int, X: pd.DataFrame, t: np.ndarray,
                       y: np.ndarray, e: np.ndarray | None, dates: np.ndarray | None,
                       scores_out: dict | None = None) -> dict[str, Any] | None:
    """The chosen configuration fitted on the rows before the latest campaign date and measured
    on that campaign's rows (None with fewer than two dates). An ensemble's members are
    standardised on their predictions for the latest campaign (no outcome used). ``scores_out``
    receives ``mask`` (the latest campaign's rows) and ``scores`` (its out-of-time scores)."""
    late = latest_date_rows(dates)
    if late is None:
        return None
    mask, latest = late
    early = ~mask
    if len(np.unique(t[early])) < 2 or len(np.unique(y[early])) < 2 or len(np.unique(t[mask])) < 2:
        return {"skipped": "the earlier or the latest campaign lacks an arm or a response", "date": str(latest.date())}
    Xe, Xl = X[early].reset_index(drop=True), X[mask].reset_index(drop=True)
    ee = None if e is None else e[early]
    approach, params = str(best["approach"]), dict(best["params"])
    if approach != ENSEMBLE:
        model = UpliftModel(approach, params, seed).fit(Xe, t[early], y[early], dr_folds=model_cfg.dr_folds,
                                                        propensity=ee)
    else:
        names = list(best["members"]) if isinstance(best.get("members"), list) else list(model_cfg.ensemble)
        members = [UpliftModel(a, params, seed).fit(Xe, t[early], y[early], dr_folds=model_cfg.dr_folds,
                                                    propensity=ee) for a in names]
        model = UpliftModel.from_members(members, [m.predict(Xl) for m in members], "the out-of-time rows")
    scores = model.predict(Xl)
    if scores_out is not None:
        scores_out.update(mask=mask, scores=scores)
    figures = _uplift_figures(y[mask], scores, t[mask], model_cfg, seed)
    return {"date": str(latest.date()), "train_rows": int(early.sum()), **figures}


def train_uplift(
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    model_cfg: ModelConfig,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    propensity: np.ndarray | pd.Series | None = None,
    groups: np.ndarray | pd.Series | None = None,
    dates: np.ndarray | pd.Series | None = None,
) -> TrainResult:
    """Choose an uplift model by cross-validation on the training split, measure it on the test split.

    Split stratified by treatment x response (``model_cfg.test_size``), whole clients on one
    side when ``groups`` (each row's client) repeat. The feature checks and the leak rule see
    the training split only. Every candidate (approach x grid entry) is scored by
    ``cv_folds``-fold CV Qini AUC and uplift@k on the training split (folds grouped by
    client); the best by ``select_metric`` is fitted on the whole training split and measured
    once on the test split (bootstrap CIs), where its uplift calibration is fitted
    (:func:`calibrate_on_heldout`). With two or more campaign ``dates`` the latest campaign is
    also an out-of-time hold-out (:func:`out_of_time_uplift`). The registered model is the
    chosen configuration refitted on every row (:func:`refit_uplift_on_all`); the held-out
    figures stay those of the fit that did not see them. ``propensity``: each row's design
    propensity, the treated share of the campaign it came from (None: the pooled share).
    """
    validate_model_config(model_cfg)
    if model_cfg.kind != "uplift":
        raise ConfigError(f"config 'model', key 'kind': train_uplift needs kind uplift, got {model_cfg.kind!r}")
    seed = model_cfg.seed if seed is None else seed
    y_arr = check_target(y)
    t_arr = check_treatment(treatment, y_arr)
    if len(X) != len(y_arr):
        raise DataValidationError("training set", None, f"lengths differ: X {len(X)}, y {len(y_arr)}")
    X = X.reset_index(drop=True)
    e_arr = None if propensity is None else design_propensity(t_arr, np.asarray(propensity, dtype=float))
    keep = subsample_rows(len(X), model_cfg.max_rows, strata_of(t_arr, y_arr), seed)
    X, y_arr, t_arr = X.iloc[keep].reset_index(drop=True), y_arr[keep], t_arr[keep]
    e_arr = None if e_arr is None else e_arr[keep]
    g_arr = None if groups is None else np.asarray(groups)[keep]
    d_arr = None if dates is None else np.asarray(dates)[keep]
    t0 = time.perf_counter()
    tr, te = grouped_split(len(X), strata_of(t_arr, y_arr), g_arr, model_cfg.test_size, seed)
    n_features = X.shape[1]
    X, checks = screen_training_split(X, tr, y_arr, model_cfg, seed)
    if progress is not None:
        progress(f"feature checks on {len(tr):,} training rows: kept {X.shape[1]} of {n_features} features "
                 f"({len(checks.dropped)} dropped, {len(checks.flagged)} flagged, "
                 f"{len(checks.suspected_leaks)} suspected leak(s)); {time.perf_counter() - t0:.1f} s")
    test_rows = keep[te]
    Xtr, ytr, ttr = X.iloc[tr].reset_index(drop=True), y_arr[tr], t_arr[tr]
    Xte, yte, tte = X.iloc[te].reset_index(drop=True), y_arr[te], t_arr[te]

    etr = None if e_arr is None else e_arr[tr]
    oof: dict = {}
    cv = cross_validate_uplift(Xtr, ttr, ytr, model_cfg, seed, progress, propensity=etr, oof=oof,
                               groups=None if g_arr is None else g_arr[tr])
    best = cv.sort_values(f"cv_{model_cfg.select_metric}", ascending=False, kind="stable").iloc[0]
    model = fit_chosen_uplift(best, model_cfg, seed, Xtr, ttr, ytr, etr, oof)
    score = model.predict(Xte)
    calibration = calibrate_on_heldout(model, yte, score, tte)
    heldout = _uplift_figures(yte, score, tte, model_cfg, seed)
    by_decile = M.uplift_by_percentile(yte, score, tte, bins=10)
    validation = split_summary(g_arr, tr, te)
    oot: dict = {}
    validation["out_of_time"] = out_of_time_uplift(best, model_cfg, seed, X, t_arr, y_arr, e_arr, d_arr, oot)
    final = refit_uplift_on_all(best, model_cfg, seed, model, X, t_arr, y_arr, e_arr, tr, te, oof)
    validation["refit_rows"] = int(len(X))
    signal = signal_test("uplift", heldout)
    suggestions = suggest_uplift_thresholds(yte, score, tte, model_cfg)
    if signal["signal"] == "none" and "profit_optimal" in suggestions:
        for key in ("profit_optimal", "per_client_rule"):
            suggestions.pop(key)
        suggestions["profit"] = "no suggestion: the model shows no signal on the held-out rows"
    return TrainResult(
        kind="uplift", model=final, approach=final.approach, params=dict(best["params"]), cv=cv,
        heldout=heldout, checks=checks, features=list(final.features),
        feature_dtypes={c: str(X[c].dtype) for c in final.features},
        train_fingerprint=frame_fingerprint(X.assign(__t=t_arr, __y=y_arr)),
        n_train=len(tr), n_test=len(te), test_scores=score, test_y=yte, test_treatment=tte,
        by_decile=by_decile, shap=shap_importance(final, Xte, seed=seed),
        reference=reference_distributions(Xtr, seed=seed),
        threshold_suggestions=suggestions,
        X_train_sample=Xtr.sample(min(len(Xtr), 2000), random_state=seed), seed=seed, test_rows=test_rows,
        X_test=Xte, calibration=calibration, validation=validation, signal=signal, split_model=model,
        out_of_time_scores=(keep[oot["mask"]], oot["scores"]) if oot else None,
    )


def out_of_time_response(params: dict, raw_threshold: float, model_cfg: ModelConfig, seed: int, X: pd.DataFrame,
                         y: np.ndarray, dates: np.ndarray | None) -> dict[str, Any] | None:
    """The chosen response configuration fitted before the latest date, measured on it."""
    late = latest_date_rows(dates)
    if late is None:
        return None
    mask, latest = late
    if len(np.unique(y[~mask])) < 2 or len(np.unique(y[mask])) < 2:
        return {"skipped": "the earlier or the latest date has one outcome only", "date": str(latest.date())}
    model = ResponseModel(params, seed, model_cfg.class_weight).fit(X[~mask], y[~mask])
    threshold = float(model.to_probability(np.array([raw_threshold]))[0])
    figures = _response_figures(y[mask], model.predict(X[mask]), threshold, model_cfg, seed)
    return {"date": str(latest.date()), "train_rows": int((~mask).sum()), **figures}


def train_response(
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    model_cfg: ModelConfig,
    seed: int | None = None,
    groups: np.ndarray | pd.Series | None = None,
    dates: np.ndarray | pd.Series | None = None,
) -> TrainResult:
    """Choose a response model by CV ROC-AUC (or F1) on the training split; tune its threshold.

    Split, folds, checks and the out-of-time hold-out as in :func:`train_uplift`. The decision
    threshold maximises F1 on the out-of-fold predictions of the chosen candidate (validation
    data never used to fit those predictions), carried onto each fit's calibrated scale; the
    model fitted on the training split is measured once on the test split, and the registered
    model is the same configuration refitted on every row.
    """
    validate_model_config(model_cfg)
    if model_cfg.kind != "response":
        raise ConfigError(f"config 'model', key 'kind': train_response needs kind response, got {model_cfg.kind!r}")
    seed = model_cfg.seed if seed is None else seed
    y_arr = check_target(y)
    if len(X) != len(y_arr):
        raise DataValidationError("training set", None, f"lengths differ: X {len(X)}, y {len(y_arr)}")
    X = X.reset_index(drop=True)
    keep = subsample_rows(len(X), model_cfg.max_rows, y_arr, seed)
    X, y_arr = X.iloc[keep].reset_index(drop=True), y_arr[keep]
    g_arr = None if groups is None else np.asarray(groups)[keep]
    d_arr = None if dates is None else np.asarray(dates)[keep]
    tr, te = grouped_split(len(X), y_arr, g_arr, model_cfg.test_size, seed)
    X, checks = screen_training_split(X, tr, y_arr, model_cfg, seed)
    Xtr, ytr = X.iloc[tr].reset_index(drop=True), y_arr[tr]
    Xte, yte = X.iloc[te].reset_index(drop=True), y_arr[te]
    cv, params, raw_threshold = select_response(Xtr, ytr, model_cfg, seed,
                                                groups=None if g_arr is None else g_arr[tr])
    model = ResponseModel(params, seed, model_cfg.class_weight).fit(Xtr, ytr)
    # the F1 threshold was tuned on uncalibrated out-of-fold scores: carry it onto the probabilities
    threshold = float(model.to_probability(np.array([raw_threshold]))[0])
    model.threshold = threshold
    proba = model.predict(Xte)
    heldout = _response_figures(yte, proba, threshold, model_cfg, seed)
    validation = split_summary(g_arr, tr, te)
    validation["out_of_time"] = out_of_time_response(params, raw_threshold, model_cfg, seed, X, y_arr, d_arr)
    final = ResponseModel(params, seed, model_cfg.class_weight).fit(X, y_arr)
    final.threshold = float(final.to_probability(np.array([raw_threshold]))[0])
    validation["refit_rows"] = int(len(X))
    return TrainResult(
        kind="response", model=final, approach=RESPONSE_APPROACH, params=params, cv=cv,
        heldout=heldout, checks=checks, features=list(final.features),
        feature_dtypes={c: str(X[c].dtype) for c in final.features},
        train_fingerprint=frame_fingerprint(X.assign(__y=y_arr)),
        n_train=len(tr), n_test=len(te), test_scores=proba, test_y=yte, test_treatment=None,
        by_decile=None, shap=shap_importance(final, Xte, seed=seed),
        reference=reference_distributions(Xtr, seed=seed),
        threshold_suggestions={"f1_threshold": final.threshold, "f1_threshold_heldout_fit": threshold,
                               "f1_threshold_uncalibrated": raw_threshold},
        X_train_sample=Xtr.sample(min(len(Xtr), 2000), random_state=seed), seed=seed, test_rows=keep[te],
        X_test=Xte, calibration=calibration_summary_response(yte, proba, model.calibration is not None),
        validation=validation, signal=signal_test("response", heldout), split_model=model,
    )


def train_on(training_set: TrainingSet, model_cfg: ModelConfig,
             progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train the configured kind of model on ``training_set`` (uplift needs a treatment column);
    the result carries the training set's description for the report and metadata. Columns
    known only after the decision (``data.known_after``) must not be features."""
    check_known_after(training_set.X.columns,
                      (training_set.description.get("excluded_columns") or {}).get("known_after") or [])
    if model_cfg.kind == "uplift":
        if training_set.treatment is None:
            raise ConfigError(f"config 'model': kind uplift needs a dataset with a treatment column; "
                              f"dataset {training_set.dataset!r} has none: name it with data.treatment=<column> "
                              "(a table dataset), or train a response model with model=response")
        result = train_uplift(training_set.X, training_set.treatment, training_set.y, model_cfg, progress=progress,
                              propensity=training_set.propensity, groups=training_set.groups,
                              dates=training_set.dates)
    else:
        result = train_response(training_set.X, training_set.y, model_cfg, groups=training_set.groups,
                                dates=training_set.dates)
    result.data = dict(training_set.description)
    return result


# ---------------------------------------------------------------------------- registration
def headline_metric(kind: str, select_metric: str) -> str:
    """The held-out metric that decides promotion."""
    return select_metric if select_metric in (("qini_auc", "uplift_at_k") if kind == "uplift" else ("roc_auc", "f1")) \
        else ("qini_auc" if kind == "uplift" else "roc_auc")


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("lightgbm", "scikit-learn", "scikit-uplift", "pandas", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def build_metadata(result: TrainResult, name: str, model_cfg: ModelConfig, dataset: str,
                   factor_set: str | None) -> dict:
    """metadata.json content (the registry adds version, sha256 and file name)."""
    cv = result.cv.copy()
    cv["params"] = cv["params"].map(lambda p: {k: v for k, v in p.items()})
    return {
        "name": name,
        "kind": result.kind,
        "approach": result.approach,
        "params": result.params,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "dataset": dataset,
        "factor_set": factor_set,
        "features": result.features,
        "feature_dtypes": result.feature_dtypes,
        "metrics": {"heldout": result.heldout, "cv": cv.to_dict(orient="records"),
                    "select_metric": headline_metric(result.kind, model_cfg.select_metric)},
        "checks": result.checks.as_dict(),
        "signal": result.signal.get("signal"),
        "signal_test": result.signal,
        "validation": result.validation,
        "calibration": result.calibration,
        "threshold_suggestions": result.threshold_suggestions,
        "training_fingerprint": result.train_fingerprint,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "seed": result.seed,
        "reference": result.reference,
        "library_versions": _library_versions(),
        "data": result.data,
        "extras": result.extras,
    }


def heldout_metric_fn(result: TrainResult, key: str) -> Callable[..., float]:
    """``key`` (qini_auc, uplift_at_k, uplift_auc, roc_auc, pr_auc, f1, precision, recall) as a
    function of ``(y, score[, treatment])``; F1 and friends take 0/1 decisions (see :func:`heldout_scores`)."""
    if result.kind == "uplift":
        k = result.heldout.get("k", 0.3)
        return {"qini_auc": M.qini_auc, "uplift_auc": M.uplift_auc,
                "uplift_at_k": lambda y, u, t: M.uplift_at_k(y, u, t, k=k, strategy="overall")}[key]
    return lambda y, p: float(M.response_metrics(y, p, 0.5)[key])


def heldout_scores(result: TrainResult, key: str, model: Any) -> np.ndarray:
    """``model``'s scores of ``result``'s held-out rows, as :func:`heldout_metric_fn` takes them:
    a response model's 0/1 decisions at its own threshold for the threshold metrics."""
    score = np.asarray(model.predict(result.X_test), dtype=float)
    if result.kind == "response" and key in ("f1", "precision", "recall"):
        threshold = getattr(getattr(model, "model", model), "threshold", 0.5)  # a registry LoadedModel wraps it
        score = (score >= threshold).astype(float)
    return score


def heldout_metric(result: TrainResult, key: str, model: Any) -> float:
    """``key`` of ``model`` on ``result``'s held-out rows."""
    args = (result.test_y, heldout_scores(result, key, model))
    if result.kind == "uplift":
        args = args + (result.test_treatment,)
    return float(heldout_metric_fn(result, key)(*args))


def decide_promotion(registry: ModelRegistry, name: str, metadata: dict, mode: str,
                     result: TrainResult | None = None, margin: float = 0.0,
                     n_boot: int = 200) -> tuple[bool, str]:
    """Whether a new version becomes champion: always / never / auto (first, or better on evidence;
    never a version with a promotion blocker, :func:`tasks.modelling.guards.promotion_blockers`).

    ``auto`` scores the champion on the new version's held-out rows (when ``result`` carries
    them, the champion loads, is of the same kind and has every feature it needs there) and
    promotes only when the paired bootstrap interval of new - champion lies above ``margin``
    (:func:`tasks.modelling.promotion.promotion_evidence`). If the champion was trained on some
    of those rows the comparison favours it, which errs on the side of keeping it. Without a
    paired comparison nothing is promoted automatically, and the reason says why.
    """
    blockers = promotion_blockers(metadata)
    if mode == "always":
        return True, "promote=always" + (f" (despite: {'; '.join(blockers)})" if blockers else "")
    if mode == "never":
        return False, "promote=never"
    if blockers:
        return False, f"not promoted automatically: {'; '.join(blockers)}"
    champ = registry.champion(name)
    if champ is None:
        return True, "first version of this model"
    key = metadata["metrics"]["select_metric"]
    new = metadata["metrics"]["heldout"][key]["value"]
    if result is not None and result.X_test is not None:
        try:
            loaded = registry.load(name, champ)
        except UpliftError:  # unreadable or tampered champion: no paired comparison
            loaded = None
        # the new version as the held-out rows measured it: the fit on the training split (the
        # registered refit has seen the held-out rows)
        new_fit = result.split_model if result.split_model is not None else result.model
        if loaded is not None and loaded.metadata.get("kind") == result.kind \
                and set(loaded.features) <= set(result.X_test.columns):
            ev = promotion_evidence(
                key, heldout_metric_fn(result, key), result.test_y, heldout_scores(result, key, loaded),
                heldout_scores(result, key, new_fit), result.test_treatment, margin=margin,
                n_boot=max(n_boot, 2), seed=result.seed, champion=f"champion {champ}")
            return ev["promote"], ev["reason"]
    old = registry.metadata(name, champ).get("metrics", {}).get("heldout", {}).get(key, {}).get("value")
    return False, other_rows_decision(key, new, old, f"champion {champ}")["reason"]


def register_version(
    result: TrainResult,
    registry: ModelRegistry,
    name: str,
    model_cfg: ModelConfig,
    dataset: str,
    factor_set: str | None = None,
    extra_files: dict[str, bytes | str] | None = None,
) -> tuple[str, bool, str]:
    """Save ``result`` as a new version with report and plots; promote per ``model_cfg.promote``.

    ``auto`` promotes the first version, or one whose held-out ``select_metric`` beats the
    champion's on the same held-out rows by more than ``model.promote_margin`` with the
    paired interval's lower bound (:func:`decide_promotion`). Returns ``(version, promoted, reason)``.
    """
    meta = build_metadata(result, name, model_cfg, dataset, factor_set)
    promote, reason = decide_promotion(registry, name, meta, model_cfg.promote, result,
                                       margin=model_cfg.promote_margin, n_boot=model_cfg.n_boot)
    files: dict[str, bytes | str] = dict(render_plots(result))
    files.update(extra_files or {})
    files["report.md"] = render_report(result, meta, name, reason, sorted(k for k in files if k.endswith(".png")))
    files["cv.csv"] = result.cv.to_csv(index=False)
    files["shap_importance.csv"] = result.shap.to_csv(index=False)
    version = registry.save(name, result.model, meta, files)
    if promote:
        registry.promote(name, version)
    return version, promote, reason

