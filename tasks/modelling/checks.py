"""Feature checks before training: constant columns, sums of other columns, near-perfect predictors.

:func:`screen_features` runs the checks configured in ``model.checks`` and drops (or flags)
what they find; it first requires a trainable frame
(:func:`tasks.modelling.models.validate_feature_frame`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from tasks.analytics import metrics as M
from tasks.core.errors import DataValidationError
from tasks.modelling.models import validate_feature_frame


@dataclass
class ChecksConfig:
    """What the feature checks do (``model.checks``): ``drop`` the column, ``flag`` it in the
    report, or ``off``."""

    constant: str                   # a column with one value
    sum_of_others: str              # a column that is the sum of other columns
    single_predictor: str           # a column that alone separates the target
    single_predictor_auc: float     # ... with a univariate ROC-AUC at or above this
    max_rows: int                   # the checks run on a seeded sample of at most this many rows
    allow: list[str]                # suspected leaks acknowledged (known before the decision)


@dataclass
class CheckReport:
    """What the feature checks found and what was dropped."""

    constant: list[str] = field(default_factory=list)
    sum_of_others: dict[str, list[str]] = field(default_factory=dict)
    single_predictor: dict[str, float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    suspected_leaks: list[dict] = field(default_factory=list)  # tasks.modelling.guards.suspected_leaks
    allow: list[str] = field(default_factory=list)             # model.checks.allow

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
    out: dict[str, float] = {}
    for col in X.columns:
        s = pd.to_numeric(X[col], errors="coerce").astype(float)
        if s.nunique() <= 1:
            continue
        auc = M.response_metrics(y, s.fillna(s.median()).to_numpy())["roc_auc"]
        auc = max(auc, 1 - auc)
        if auc >= threshold:
            out[str(col)] = float(auc)
    return out


def screen_features(X: pd.DataFrame, y: np.ndarray, cfg: ChecksConfig, seed: int = 0) -> tuple[pd.DataFrame, CheckReport]:
    """Run the checks and drop (or flag) what they find; returns the new frame and a report.

    The frame must be trainable first (numeric, finite, LightGBM-safe names): bad columns are
    a DataValidationError naming the column, not a failure inside a check."""
    validate_feature_frame(X)
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

