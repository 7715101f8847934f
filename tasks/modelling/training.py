"""Training: data checks, cross-validated model choice, held-out metrics, registration.

Plain functions used by ``flows.train`` and by monitoring (retraining without the CLI):

* :func:`build_training_set` - campaign history joined with point-in-time factors;
* :func:`check_features` - constant columns, sum-of-others columns, near-perfect predictors;
* :func:`train_uplift` / :func:`train_response` - candidates chosen by cross-validation on
  the training split only, then measured once on the held-out split;
* :func:`register` - metadata, report and plots into the registry, promotion rule.
"""
from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from tasks.analytics import metrics as M
from tasks.core.errors import ConfigError, DataValidationError, UpliftError
from tasks.core.io import frame_fingerprint
from tasks.modelling.models import (
    BASE_APPROACHES,
    ENSEMBLE,
    ENSEMBLE_MEMBERS,
    RESPONSE_APPROACH,
    UPLIFT_APPROACHES,
    ResponseModel,
    UpliftModel,
    check_target,
    check_treatment,
    shap_importance,
)
from tasks.modelling.models import check_features as check_feature_frame
from tasks.modelling.registry import ModelRegistry
from tasks.data.point_in_time import factors_as_of_rows

PROMOTE_MODES = ("auto", "always", "never")


@dataclass
class ChecksConfig:
    """What the feature checks do: ``drop`` the column, ``flag`` it in the report, or ``off``."""

    constant: str = "drop"
    sum_of_others: str = "drop"
    single_predictor: str = "drop"
    single_predictor_auc: float = 0.99
    max_rows: int = 20_000


@dataclass
class ModelConfig:
    """conf/model/<name>.yaml."""

    name: str = "synthetic_uplift"
    kind: str = "uplift"                        # uplift | response
    approaches: list[str] = field(default_factory=lambda: list(UPLIFT_APPROACHES))
    lgbm: dict = field(default_factory=dict)     # base LightGBM parameters
    grid: list[dict] = field(default_factory=lambda: [{}])  # variants merged over lgbm, chosen by CV
    ensemble: list[str] = field(default_factory=lambda: list(ENSEMBLE_MEMBERS))  # ensemble member pool
    ensemble_top: int | None = None             # members = the best N of the pool by CV (None: all)
    cv_folds: int = 3
    test_size: float = 0.3
    k: float = 0.3                              # uplift@k fraction
    select_metric: str = "qini_auc"             # qini_auc | uplift_at_k | roc_auc | f1
    class_weight: str | None = "balanced"       # response models
    seed: int = 42
    n_boot: int = 200
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    promote: str = "auto"                       # auto | always | never
    margin: float = 20.0                        # value of one incremental response
    contact_cost: float = 0.5                   # cost of one offer
    max_rows: int | None = None                 # cap on training rows (random subsample)
    segment_quantile: float = 0.5               # one_click segmentation: probability split
    version: str | None = None                  # +action=promote: the version to promote


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ConfigError on an inconsistent model config."""
    if cfg.kind not in ("uplift", "response"):
        raise ConfigError(f"config 'model', key 'kind': {cfg.kind!r}; use uplift or response")
    if cfg.kind == "uplift":
        bad = [a for a in cfg.approaches if a not in UPLIFT_APPROACHES]
        if bad or not cfg.approaches:
            raise ConfigError(f"config 'model', key 'approaches': {bad or 'empty'}; use some of {list(UPLIFT_APPROACHES)}")
        if ENSEMBLE in cfg.approaches:
            bad = [a for a in cfg.ensemble if a not in BASE_APPROACHES]
            if bad or not cfg.ensemble:
                raise ConfigError(f"config 'model', key 'ensemble': {bad or 'empty'}; use some of {list(BASE_APPROACHES)}")
        if cfg.select_metric not in ("qini_auc", "uplift_at_k"):
            raise ConfigError(f"config 'model', key 'select_metric': {cfg.select_metric!r}; use qini_auc or uplift_at_k")
    elif cfg.select_metric not in ("roc_auc", "f1"):
        raise ConfigError(f"config 'model', key 'select_metric': {cfg.select_metric!r}; use roc_auc or f1")
    if cfg.cv_folds < 2:
        raise ConfigError(f"config 'model', key 'cv_folds': {cfg.cv_folds}; use at least 2")
    if not 0 < cfg.test_size < 1:
        raise ConfigError(f"config 'model', key 'test_size': {cfg.test_size}; use a fraction in (0, 1)")
    if cfg.promote not in PROMOTE_MODES:
        raise ConfigError(f"config 'model', key 'promote': {cfg.promote!r}; use one of {list(PROMOTE_MODES)}")
    if not cfg.grid:
        raise ConfigError("config 'model', key 'grid': give at least one entry ({} = the base parameters)")
    for key in ("constant", "sum_of_others", "single_predictor"):
        if getattr(cfg.checks, key) not in ("drop", "flag", "off"):
            raise ConfigError(f"config 'model', key 'checks.{key}': use drop, flag or off")


# ---------------------------------------------------------------------------- training set
def build_training_set(
    data_dir: str | Path,
    history: pd.DataFrame,
    factor_names: Sequence[str],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features as of each row's campaign_date joined to the campaign history.

    ``history`` needs client_id, campaign_date, treatment, response. Returns ``(X, treatment,
    y)`` in the order of ``history``; X holds the factors only. Never reads the truth table.
    """
    need = ["client_id", "campaign_date", "treatment", "response"]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise DataValidationError("campaign_history", missing[0], f"missing column(s) {missing}")
    if len(history) == 0:
        raise DataValidationError("campaign_history", None, "the table is empty; nothing to train on")
    if not factor_names:
        raise ConfigError("config 'factors': the factor set is empty; name the factors to train on")
    X = factors_as_of_rows(data_dir, history, factor_names)
    t = history["treatment"].to_numpy()
    y = history["response"].to_numpy()
    return X, t, y


# ---------------------------------------------------------------------------- feature checks
@dataclass
class CheckReport:
    """What the feature checks found and what was dropped."""

    constant: list[str] = field(default_factory=list)
    sum_of_others: dict[str, list[str]] = field(default_factory=dict)
    single_predictor: dict[str, float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def find_constant_columns(X: pd.DataFrame) -> list[str]:
    """Columns with a single value (NaN counts as a value)."""
    return [str(c) for c in X.columns if X[c].nunique(dropna=False) <= 1]


def find_sum_columns(X: pd.DataFrame, tol: float = 1e-6) -> dict[str, list[str]]:
    """Columns that are an exact linear combination of other, smaller columns.

    Columns are taken from the largest mean absolute value down; a column is derived when
    least squares on the still-kept columns of smaller magnitude reproduces it exactly (a
    total and its parts, e.g. MntTotal = MntWines + ... ). Binary columns are skipped: a
    one-hot column is a combination of its siblings and the other groups, not an aggregate.
    Returns ``{derived column: [columns it is built from]}``.
    """
    num = X.select_dtypes(include=["number", "bool"]).astype(float)
    num = num.loc[:, num.notna().all() & (num.nunique() > 1)]
    scale = num.abs().mean().sort_values(ascending=False)
    kept = list(scale.index)
    found: dict[str, list[str]] = {}
    for col in scale.index:
        c = num[col].to_numpy()
        if np.unique(c).size <= 2:
            continue
        cands = [k for k in kept if k != col and scale[k] < scale[col]]
        if len(cands) < 2:
            continue
        A = num[cands].to_numpy()
        coef, *_ = np.linalg.lstsq(A, c, rcond=None)
        resid = np.abs(A @ coef - c).max()
        if resid <= tol * max(1.0, np.abs(c).max()):
            parts = [k for k, w in zip(cands, coef) if abs(w) > 1e-6]
            found[str(col)] = [str(p) for p in parts]
            kept.remove(col)
    return found


def find_single_predictors(X: pd.DataFrame, y: np.ndarray, threshold: float = 0.99) -> dict[str, float]:
    """Columns whose values alone separate the target almost perfectly (ROC-AUC >= threshold)."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float] = {}
    for col in X.columns:
        s = pd.to_numeric(X[col], errors="coerce").astype(float)
        if s.nunique() <= 1:
            continue
        auc = roc_auc_score(y, s.fillna(s.median()).to_numpy())
        auc = max(auc, 1 - auc)
        if auc >= threshold:
            out[str(col)] = float(auc)
    return out


def check_features(X: pd.DataFrame, y: np.ndarray, cfg: ChecksConfig, seed: int = 0) -> tuple[pd.DataFrame, CheckReport]:
    """Run the checks and drop (or flag) what they find; returns the new frame and a report.

    The frame must be trainable first (numeric, finite, LightGBM-safe names): bad columns are
    a DataValidationError naming the column, not a failure inside a check."""
    check_feature_frame(X)
    sample = X if len(X) <= cfg.max_rows else X.sample(cfg.max_rows, random_state=seed)
    ys = np.asarray(y)[X.index.get_indexer(sample.index)] if len(X) > cfg.max_rows else np.asarray(y)
    rep = CheckReport()
    if cfg.constant != "off":
        rep.constant = find_constant_columns(X)
    rest = sample.drop(columns=rep.constant)
    if cfg.sum_of_others != "off":
        cand = find_sum_columns(rest)
        # a combination found on a sample must hold on every row
        for col, parts in cand.items():
            A = X[parts].to_numpy(dtype=float)
            coef, *_ = np.linalg.lstsq(A, X[col].to_numpy(dtype=float), rcond=None)
            if np.abs(A @ coef - X[col].to_numpy(dtype=float)).max() <= 1e-6 * max(1.0, X[col].abs().max()):
                rep.sum_of_others[col] = parts
    if cfg.single_predictor != "off" and len(np.unique(ys)) == 2:
        rep.single_predictor = find_single_predictors(rest, ys, cfg.single_predictor_auc)
    for names, action in ((rep.constant, cfg.constant), (list(rep.sum_of_others), cfg.sum_of_others),
                          (list(rep.single_predictor), cfg.single_predictor)):
        for n in names:
            target = rep.dropped if action == "drop" else rep.flagged
            if n not in rep.dropped and n not in target:
                target.append(n)
    out = X.drop(columns=rep.dropped)
    if out.shape[1] == 0:
        raise DataValidationError("training set", None, f"every feature was dropped by the checks: {rep.as_dict()}")
    return out, rep


# ---------------------------------------------------------------------------- splitting
def stratified_split(n: int, strata: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of a stratified train/test split."""
    idx = np.arange(n)
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    return np.sort(tr), np.sort(te)


def _strata(t: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    return y.astype(int) if t is None else (2 * t.astype(int) + y.astype(int))


def _subsample(n: int, max_rows: int | None, strata: np.ndarray, seed: int) -> np.ndarray:
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    keep, _ = train_test_split(np.arange(n), train_size=max_rows, random_state=seed, stratify=strata)
    return np.sort(keep)


# ---------------------------------------------------------------------------- results
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


def _with_ci(fn: Any, arrays: tuple, n_boot: int, seed: int, stratify: np.ndarray) -> dict[str, float]:
    """Point value and percentile-bootstrap CI; NaN bounds when too few replicates are valid."""
    try:
        point, lo, hi = M.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed, stratify=stratify)
    except DataValidationError:
        point, lo, hi = float(fn(*arrays)), float("nan"), float("nan")
    return {"value": point, "ci_low": lo, "ci_high": hi}


def _uplift_metrics(y: np.ndarray, score: np.ndarray, t: np.ndarray, k: float) -> dict[str, float]:
    return {"qini_auc": M.qini_auc(y, score, t), "uplift_auc": M.uplift_auc(y, score, t),
            "uplift_at_k": M.uplift_at_k(y, score, t, k=k, strategy="overall")}


def _candidates(cfg: ModelConfig, approaches: Sequence[str]) -> list[tuple[str, dict]]:
    return [(a, {**cfg.lgbm, **(g or {})}) for a in approaches for g in cfg.grid]


def cross_validate_uplift(Xtr: pd.DataFrame, ttr: np.ndarray, ytr: np.ndarray, model_cfg: ModelConfig,
                          seed: int, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """CV Qini AUC and uplift@k of every candidate (approach x grid entry) on training rows only.

    An ``ensemble`` candidate is built in each fold from that fold's members with the same
    grid entry (fitted once, shared with the members' own candidates). With ``ensemble_top``
    the members are the best N of the ``ensemble`` pool by this CV (column ``members``).
    """
    folds = list(StratifiedKFold(model_cfg.cv_folds, shuffle=True, random_state=seed).split(Xtr, _strata(ttr, ytr)))
    fitted: dict[tuple[str, int, int], UpliftModel] = {}

    chosen: dict[int, list[str]] = {}

    def fold_model(approach: str, gi: int, params: dict, fi: int) -> UpliftModel:
        key = (approach, gi, fi)
        if key not in fitted:
            f_tr = folds[fi][0]
            if approach == ENSEMBLE:
                members = [fold_model(a, gi, params, fi) for a in chosen[gi]]
                fitted[key] = UpliftModel.from_members(members, Xtr.iloc[f_tr].reset_index(drop=True))
            else:
                fitted[key] = UpliftModel(approach, params, seed).fit(Xtr.iloc[f_tr], ttr[f_tr], ytr[f_tr])
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
            if model_cfg.ensemble_top:
                pool = sorted(pool, key=lambda a: -score_of(a, gi))[: model_cfg.ensemble_top]
            chosen[gi] = pool
            row["members"] = list(pool)
        scores = []
        for fi, (_, f_va) in enumerate(folds):
            m = fold_model(approach, gi, params, fi)
            scores.append(_uplift_metrics(ytr[f_va], m.predict(Xtr.iloc[f_va]), ttr[f_va], model_cfg.k))
        s = pd.DataFrame(scores)
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



def train_uplift(
    X: pd.DataFrame,
    treatment: np.ndarray | pd.Series,
    y: np.ndarray | pd.Series,
    model_cfg: ModelConfig,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Choose an uplift model by cross-validation on the training split, measure it on the test split.

    Split stratified by treatment x response (``model_cfg.test_size``). Every candidate
    (approach x grid entry) is scored by ``cv_folds``-fold CV Qini AUC and uplift@k on the
    training split only; the best by ``select_metric`` is refitted on the whole training split
    and measured once on the test split (bootstrap CIs).
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
    keep = _subsample(len(X), model_cfg.max_rows, _strata(t_arr, y_arr), seed)
    X, y_arr, t_arr = X.iloc[keep].reset_index(drop=True), y_arr[keep], t_arr[keep]
    X, checks = check_features(X, y_arr, model_cfg.checks, seed)
    tr, te = stratified_split(len(X), _strata(t_arr, y_arr), model_cfg.test_size, seed)
    test_rows = keep[te]
    Xtr, ytr, ttr = X.iloc[tr].reset_index(drop=True), y_arr[tr], t_arr[tr]
    Xte, yte, tte = X.iloc[te].reset_index(drop=True), y_arr[te], t_arr[te]

    cv = cross_validate_uplift(Xtr, ttr, ytr, model_cfg, seed, progress)
    best = cv.sort_values(f"cv_{model_cfg.select_metric}", ascending=False, kind="stable").iloc[0]
    members = best.get("members") if best["approach"] == ENSEMBLE else None
    model = UpliftModel(str(best["approach"]), dict(best["params"]), seed,
                        member_approaches=list(members if isinstance(members, list) else model_cfg.ensemble)
                        ).fit(Xtr, ttr, ytr)
    score = model.predict(Xte)

    heldout: dict[str, Any] = {"n": int(len(yte))}
    for name, fn in (("qini_auc", M.qini_auc), ("uplift_auc", M.uplift_auc),
                     ("uplift_at_k", lambda a, b, c: M.uplift_at_k(a, b, c, k=model_cfg.k, strategy="overall"))):
        heldout[name] = _with_ci(fn, (yte, score, tte), model_cfg.n_boot, seed, tte)
    heldout["k"] = model_cfg.k
    by_decile = M.uplift_by_percentile(yte, score, tte, bins=10)
    return TrainResult(
        kind="uplift", model=model, approach=model.approach, params=dict(best["params"]), cv=cv,
        heldout=heldout, checks=checks, features=list(model.features),
        feature_dtypes={c: str(X[c].dtype) for c in model.features},
        train_fingerprint=frame_fingerprint(Xtr.assign(__t=ttr, __y=ytr)),
        n_train=len(tr), n_test=len(te), test_scores=score, test_y=yte, test_treatment=tte,
        by_decile=by_decile, shap=shap_importance(model, Xte, seed=seed),
        reference=reference_distributions(Xtr, seed=seed),
        threshold_suggestions=suggest_uplift_thresholds(yte, score, tte, model_cfg),
        X_train_sample=Xtr.sample(min(len(Xtr), 2000), random_state=seed), seed=seed, test_rows=test_rows,
        X_test=Xte,
    )


def select_response(Xtr: pd.DataFrame, ytr: np.ndarray, model_cfg: ModelConfig, seed: int) -> tuple[pd.DataFrame, dict, float]:
    """CV over the grid on training rows only: ``(cv table, best params, F1 threshold)``.

    The threshold maximises F1 on the out-of-fold predictions of the best candidate.
    """
    folds = list(StratifiedKFold(model_cfg.cv_folds, shuffle=True, random_state=seed).split(Xtr, ytr))
    rows, oof_by = [], {}
    for i, (_, params) in enumerate(_candidates(model_cfg, [RESPONSE_APPROACH])):
        oof = np.zeros(len(ytr))
        scores = []
        for f_tr, f_va in folds:
            m = ResponseModel(params, seed, model_cfg.class_weight).fit(Xtr.iloc[f_tr], ytr[f_tr])
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


def train_response(
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    model_cfg: ModelConfig,
    seed: int | None = None,
) -> TrainResult:
    """Choose a response model by CV ROC-AUC (or F1) on the training split; tune its threshold.

    The decision threshold maximises F1 on the out-of-fold predictions of the chosen
    candidate (validation data never used to fit those predictions); the model refitted on
    the whole training split is then measured once on the test split.
    """
    validate_model_config(model_cfg)
    if model_cfg.kind != "response":
        raise ConfigError(f"config 'model', key 'kind': train_response needs kind response, got {model_cfg.kind!r}")
    seed = model_cfg.seed if seed is None else seed
    y_arr = check_target(y)
    if len(X) != len(y_arr):
        raise DataValidationError("training set", None, f"lengths differ: X {len(X)}, y {len(y_arr)}")
    X = X.reset_index(drop=True)
    keep = _subsample(len(X), model_cfg.max_rows, y_arr, seed)
    X, y_arr = X.iloc[keep].reset_index(drop=True), y_arr[keep]
    X, checks = check_features(X, y_arr, model_cfg.checks, seed)
    tr, te = stratified_split(len(X), y_arr, model_cfg.test_size, seed)
    Xtr, ytr = X.iloc[tr].reset_index(drop=True), y_arr[tr]
    Xte, yte = X.iloc[te].reset_index(drop=True), y_arr[te]
    cv, params, threshold = select_response(Xtr, ytr, model_cfg, seed)
    model = ResponseModel(params, seed, model_cfg.class_weight, threshold=threshold).fit(Xtr, ytr)
    proba = model.predict(Xte)
    point = M.response_metrics(yte, proba, threshold)
    heldout: dict[str, Any] = {"n": int(len(yte)), "threshold": threshold}
    for name in ("roc_auc", "pr_auc", "f1", "precision", "recall"):
        fn = (lambda a, b, _n=name: M.response_metrics(a, b, threshold)[_n])
        heldout[name] = _with_ci(fn, (yte, proba), model_cfg.n_boot, seed, yte)
    return TrainResult(
        kind="response", model=model, approach=RESPONSE_APPROACH, params=params, cv=cv,
        heldout=heldout, checks=checks, features=list(model.features),
        feature_dtypes={c: str(X[c].dtype) for c in model.features},
        train_fingerprint=frame_fingerprint(Xtr.assign(__y=ytr)),
        n_train=len(tr), n_test=len(te), test_scores=proba, test_y=yte, test_treatment=None,
        by_decile=None, shap=shap_importance(model, Xte, seed=seed),
        reference=reference_distributions(Xtr, seed=seed),
        threshold_suggestions={"f1_threshold": threshold},
        X_train_sample=Xtr.sample(min(len(Xtr), 2000), random_state=seed), seed=seed, test_rows=keep[te],
        X_test=Xte,
    )


# ---------------------------------------------------------------------------- thresholds, reference
def suggest_uplift_thresholds(y: np.ndarray, score: np.ndarray, t: np.ndarray, cfg: ModelConfig) -> dict:
    """Score cutoffs: for the top ``k`` fraction, and profit-optimal given margin and contact cost.

    Profit of offering the top fraction q (measured on held-out clients):
    ``N*q * uplift_in_top_q * margin - N*q * contact_cost``; the best q on a 1%-grid is
    reported with its score cutoff. The per-client rule ``uplift * margin > contact_cost``
    gives ``cutoff = contact_cost / margin``.
    """
    order = np.argsort(-score, kind="stable")
    ys, ts, ss = y[order], t[order], score[order]
    n = len(y)
    best = {"fraction": 0.0, "profit": 0.0, "score_cutoff": float(ss[0]) + 1e-12}
    ct = np.cumsum(ts)
    cc = np.cumsum(1 - ts)
    yt = np.cumsum(ys * ts)
    yc = np.cumsum(ys * (1 - ts))
    for q in np.arange(0.01, 1.0001, 0.01):
        m = max(1, int(round(q * n)))
        if ct[m - 1] == 0 or cc[m - 1] == 0:
            continue
        lift = yt[m - 1] / ct[m - 1] - yc[m - 1] / cc[m - 1]
        profit = m * (lift * cfg.margin - cfg.contact_cost)
        if profit > best["profit"]:
            best = {"fraction": float(round(q, 2)), "profit": float(profit), "score_cutoff": float(ss[m - 1])}
    top = max(1, int(round(cfg.k * n)))
    return {
        "top_fraction": {"fraction": cfg.k, "score_cutoff": float(ss[top - 1])},
        "profit_optimal": {**best, "margin": cfg.margin, "contact_cost": cfg.contact_cost,
                           "per_held_out_clients": int(n)},
        "per_client_rule": {"score_cutoff": cfg.contact_cost / cfg.margin,
                            "rule": "offer when predicted uplift x margin > contact cost"},
    }


def reference_distributions(X: pd.DataFrame, bins: int = 10, sample: int = 5000, seed: int = 0) -> dict:
    """Per-feature reference for drift checks: quantile edges + shares or value shares, and a sample."""
    ref: dict[str, dict] = {}
    rng = np.random.default_rng(seed)
    for col in X.columns:
        s = X[col]
        vals = s.dropna()
        smp = vals.to_numpy()[rng.choice(len(vals), size=min(sample, len(vals)), replace=False)] if len(vals) else np.array([])
        if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype) or s.nunique() <= 2:
            shares = vals.astype(str).value_counts(normalize=True).sort_index()
            ref[str(col)] = {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()},
                             "missing_share": float(s.isna().mean()),
                             "sample": [str(v) for v in smp.tolist()]}
        else:
            v = vals.to_numpy(dtype=float)
            edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1))) if len(v) else np.array([])
            counts = np.histogram(v, bins=edges)[0] if len(edges) > 1 else np.array([len(v)])
            ref[str(col)] = {"kind": "numeric", "edges": edges.tolist(),
                             "shares": (counts / max(1, counts.sum())).tolist(),
                             "missing_share": float(s.isna().mean()),
                             "sample": _significant(smp.astype(float), 6).tolist()}
    return ref


def _significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits: drift tests lose nothing that
    matters and metadata.json shrinks (a float64 prints with up to 17 digits)."""
    out = values.copy()
    nz = np.isfinite(out) & (out != 0)
    v = out[nz]
    exp = digits - 1 - np.floor(np.log10(np.abs(v)))
    # divide by an exact power of ten either way, so the result prints short
    small = exp >= 0
    v[small] = np.round(v[small] * 10.0 ** exp[small]) / 10.0 ** exp[small]
    v[~small] = np.round(v[~small] / 10.0 ** -exp[~small]) * 10.0 ** -exp[~small]
    out[nz] = v
    return out


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
        "threshold_suggestions": result.threshold_suggestions,
        "training_fingerprint": result.train_fingerprint,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "seed": result.seed,
        "reference": result.reference,
        "library_versions": _library_versions(),
        "extras": result.extras,
    }


def heldout_metric(result: TrainResult, key: str, model: Any) -> float:
    """``key`` (qini_auc, uplift_at_k, uplift_auc, roc_auc, pr_auc, f1, precision, recall) of
    ``model`` on ``result``'s held-out rows; F1 and friends use the model's own threshold."""
    score = model.predict(result.X_test)
    if result.kind == "uplift":
        k = result.heldout.get("k", 0.3)
        fns = {"qini_auc": lambda: M.qini_auc(result.test_y, score, result.test_treatment),
               "uplift_auc": lambda: M.uplift_auc(result.test_y, score, result.test_treatment),
               "uplift_at_k": lambda: M.uplift_at_k(result.test_y, score, result.test_treatment, k=k,
                                                    strategy="overall")}
        return float(fns[key]())
    threshold = getattr(getattr(model, "model", model), "threshold", 0.5)  # a registry LoadedModel wraps it
    return float(M.response_metrics(result.test_y, score, threshold)[key])


def decide_promotion(registry: ModelRegistry, name: str, metadata: dict, mode: str,
                     result: TrainResult | None = None) -> tuple[bool, str]:
    """Whether a new version becomes champion: always / never / auto (first, or better held-out).

    ``auto`` compares like with like: when ``result`` carries its held-out features and the
    champion loads and has every feature it needs there, the champion is scored on the same
    held-out rows. (If the champion was trained on some of those rows the comparison favours
    it, which errs on the side of keeping it.) Otherwise the two stored held-out metrics are
    compared, and the reason says they come from different hold-outs.
    """
    if mode == "always":
        return True, "promote=always"
    if mode == "never":
        return False, "promote=never"
    champ = registry.champion(name)
    if champ is None:
        return True, "first version of this model"
    key = metadata["metrics"]["select_metric"]
    new = metadata["metrics"]["heldout"][key]["value"]
    old, where = None, "its own hold-out (a different one)"
    if result is not None and result.X_test is not None:
        try:
            loaded = registry.load(name, champ)
            if loaded.metadata.get("kind") == result.kind and set(loaded.features) <= set(result.X_test.columns):
                old, where = heldout_metric(result, key, loaded), "the same held-out rows"
        except UpliftError:  # unreadable or tampered champion: fall back to its stored metric
            old = None
    if old is None:
        old = registry.metadata(name, champ).get("metrics", {}).get("heldout", {}).get(key, {}).get("value")
    if old is None or new > old:
        shown = "no stored metric" if old is None else f"{old:.4f} on {where}"
        return True, f"held-out {key} {new:.4f} beats champion {champ} ({shown})"
    return False, f"held-out {key} {new:.4f} does not beat champion {champ} ({old:.4f} on {where})"


def register(
    result: TrainResult,
    registry: ModelRegistry,
    name: str,
    model_cfg: ModelConfig,
    dataset: str,
    factor_set: str | None = None,
    extra_files: dict[str, bytes | str] | None = None,
) -> str:
    """Save ``result`` as a new version (promoted per ``model_cfg.promote``); return the version."""
    return register_version(result, registry, name, model_cfg, dataset, factor_set, extra_files)[0]


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
    champion's on the same held-out rows (:func:`decide_promotion`). Returns ``(version, promoted, reason)``.
    """
    from tasks.modelling.reporting import render_plots, render_report

    meta = build_metadata(result, name, model_cfg, dataset, factor_set)
    promote, reason = decide_promotion(registry, name, meta, model_cfg.promote, result)
    files: dict[str, bytes | str] = dict(render_plots(result))
    files.update(extra_files or {})
    files["report.md"] = render_report(result, meta, name, reason, sorted(k for k in files if k.endswith(".png")))
    files["cv.csv"] = result.cv.to_csv(index=False)
    files["shap_importance.csv"] = result.shap.to_csv(index=False)
    version = registry.save(name, result.model, meta, files)
    if promote:
        registry.promote(name, version)
    return version, promote, reason


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
