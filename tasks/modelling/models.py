"""Uplift and response models built on LightGBM.

Uplift approaches come from scikit-uplift: ``solo`` (SoloModel: one classifier with the
treatment flag as a feature), ``solo_interaction`` (SoloModel with treatment x feature
interaction columns as well), ``two_models`` (TwoModels: one classifier per arm),
``class_transformation`` (one classifier on the transformed target ``z = [y == t]``, written
here: rows weighted by the inverse of their design propensity so that ``2 P(z=1) - 1`` is the
uplift whatever the treated share; scikit-uplift's version is right only at a 1:1 design) and
two meta-learners written here on LightGBM: ``x_learner`` (outcome model per arm, then a
regression of each arm's imputed individual effects, mixed by the mean design propensity) and
``dr_learner`` (a regression of the doubly robust pseudo-outcome built from cross-fitted
outcome models and each row's design propensity), and ``ensemble`` (the mean of several of
those, each standardised on predictions for rows it did not see).

The design propensity of a row is the treated share of the campaign (randomised experiment) it
came from, given per row to ``fit(..., propensity=...)``: retraining mixes campaigns with
different shares. Without it, the pooled treated share of the rows is used.

An uplift model may carry a calibration (:mod:`tasks.modelling.calibration`, fitted on held-out
rows by training): ``predict`` stays the raw score (the ranking), ``predict_uplift_calibrated``
is the uplift in probability units that money decisions multiply.
The response model is a LightGBM classifier with class weighting and a decision threshold; with
class weighting its probabilities are Platt-calibrated on out-of-fold scores.

The fitted objects here are what the registry stores: each has ``features`` and
``predict(X) -> ndarray`` (uplift, or response probability), and ``contributions(X)``
(TreeSHAP contributions per feature, from LightGBM's ``pred_contrib``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.model_selection import StratifiedKFold

from tasks.core.errors import ConfigError, DataValidationError
from tasks.modelling.calibration import PlattCalibration, UpliftCalibration, fit_platt

ENSEMBLE = "ensemble"
SKLIFT_APPROACHES = ("solo", "solo_interaction", "two_models", "class_transformation")
META_APPROACHES = ("x_learner", "dr_learner")
BASE_APPROACHES = (*SKLIFT_APPROACHES, *META_APPROACHES)
UPLIFT_APPROACHES = (*BASE_APPROACHES, ENSEMBLE)
ENSEMBLE_MEMBERS = ("solo_interaction", "two_models", "class_transformation")
RESPONSE_APPROACH = "response"

DEFAULT_LGBM: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 100,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
    "n_jobs": 1,  # threads spin badly on a shared CPU; 1 was ~20x faster under load
    "verbose": -1,
}

_TREATMENT_COL = "treatment"


def make_lgbm(params: Mapping[str, Any] | None = None, seed: int = 0, **extra: Any) -> LGBMClassifier:
    """A LightGBM classifier: project defaults, overridden by ``params`` and ``extra``."""
    merged = {**DEFAULT_LGBM, **dict(params or {}), **extra, "random_state": seed}
    try:
        return LGBMClassifier(**merged)
    except TypeError as exc:
        raise ConfigError(f"config 'model', key 'lgbm': {exc}") from None


def make_lgbm_regressor(params: Mapping[str, Any] | None = None, seed: int = 0) -> LGBMRegressor:
    """A LightGBM regressor with the same parameters (for the meta-learners' effect stage)."""
    merged = {**DEFAULT_LGBM, **dict(params or {}), "random_state": seed}
    try:
        return LGBMRegressor(**merged)
    except TypeError as exc:
        raise ConfigError(f"config 'model', key 'lgbm': {exc}") from None


def _proba(est: LGBMClassifier, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(est.predict_proba(X)[:, 1], dtype=float)


DEFAULT_DR_FOLDS = 3
"""Cross-fitting folds of the DR-learner's outcome models unless configured (``model.dr_folds``);
also the folds of an ensemble's and a class-weighted response model's out-of-fold scores."""


def design_propensity(t: np.ndarray, propensity: np.ndarray | None, table: str = "training set") -> np.ndarray:
    """Each row's probability of treatment by design: ``propensity`` when given (validated:
    one value per row, strictly between 0 and 1), else the pooled treated share."""
    if propensity is None:
        return np.full(len(t), float(np.mean(t)))
    e = np.asarray(propensity, dtype=float)
    if e.shape != (len(t),):
        raise DataValidationError(table, "propensity", f"{e.size} propensities for {len(t)} rows")
    bad = ~((e > 0) & (e < 1))
    if bad.any():
        raise DataValidationError(table, "propensity", f"{int(bad.sum())} design propensities outside (0, 1) "
                                  "(a campaign whose rows are all treated or all control cannot be used for uplift)",
                                  list(np.flatnonzero(bad)[:5]))
    return e


class TransformedOutcome:
    """Class transformation with propensity weights: a classifier of ``z = 1[y == t]`` fitted with
    weights ``t / (2 e) + (1 - t) / (2 (1 - e))``. The weights give each arm half the weight at
    every x, so the weighted ``P(z=1 | x) = (1 + p1(x) - p0(x)) / 2`` and ``2 P - 1`` is the
    uplift; unweighted, it is ``e p1 + (1 - e)(1 - p0)``, the uplift only when e = 0.5."""

    def __init__(self, estimator: LGBMClassifier) -> None:
        self.estimator = estimator

    def fit(self, X: pd.DataFrame, y: np.ndarray, t: np.ndarray, e: np.ndarray) -> "TransformedOutcome":
        z = (y == t).astype(np.int8)
        self.estimator.fit(X, z, sample_weight=t / (2.0 * e) + (1 - t) / (2.0 * (1.0 - e)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return 2.0 * _proba(self.estimator, X) - 1.0


# ---------------------------------------------------------------------------- validation
def validate_feature_frame(X: pd.DataFrame, table: str = "training set") -> None:
    """Raise DataValidationError unless LightGBM can train on ``X``: numeric or boolean
    columns, no infinite values, unique names without JSON special characters."""
    if X.shape[1] == 0:
        raise DataValidationError(table, None, "no feature columns left to train on")
    for col in X.columns:
        s = X[col]
        if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
            raise DataValidationError(
                table, str(col), f"feature has non-numeric dtype {s.dtype}; encode it first "
                "(factors.passthrough.prepare_wide one-hot encodes categoricals)",
            )
        if pd.api.types.is_float_dtype(s.dtype):
            inf = np.isinf(s.to_numpy(dtype=float, na_value=np.nan))
            if inf.any():
                raise DataValidationError(table, str(col), f"{int(inf.sum())} infinite value(s); replace them "
                                          "(e.g. a ratio with a zero denominator) before training",
                                          list(np.flatnonzero(inf)[:5]))
        if any(ch in str(col) for ch in '[]{}":,'):
            raise DataValidationError(table, str(col), "feature name has JSON special characters LightGBM rejects")
    if X.columns.duplicated().any():
        dup = list(X.columns[X.columns.duplicated()])
        raise DataValidationError(table, str(dup[0]), f"duplicate feature column(s) {dup}")


def check_target(y: pd.Series | np.ndarray, table: str = "training set", column: str = "response") -> np.ndarray:
    """A 0/1 target with no NaN and both classes present; returns it as an int array."""
    arr = pd.Series(np.asarray(y, dtype=float) if not isinstance(y, pd.Series) else y)
    nan = arr.isna().to_numpy()
    if nan.any():
        rows = list(np.flatnonzero(nan)[:5])
        raise DataValidationError(table, column, f"{int(nan.sum())} missing (NaN) target value(s)", rows)
    vals = arr.to_numpy(dtype=float)
    bad = ~np.isin(vals, (0.0, 1.0))
    if bad.any():
        rows = list(np.flatnonzero(bad)[:5])
        raise DataValidationError(table, column, f"{int(bad.sum())} target value(s) other than 0/1: "
                                  f"{sorted(set(vals[bad][:5].tolist()))}", rows)
    if vals.sum() == 0:
        raise DataValidationError(table, column, f"no positive responses among {len(vals)} rows; nothing to learn")
    if vals.sum() == len(vals):
        raise DataValidationError(table, column, f"all {len(vals)} rows are positive; nothing to learn")
    return vals.astype(np.int8)


def check_treatment(treatment: pd.Series | np.ndarray, y: np.ndarray, table: str = "training set",
                    column: str = "treatment") -> np.ndarray:
    """A 0/1 treatment flag with both arms present, each with some positives."""
    arr = check_binary(treatment, table, column)
    arms = set(np.unique(arr).tolist())
    if arms != {0, 1}:
        only = "treated" if arms == {1} else "control"
        raise DataValidationError(
            table, column, f"treatment has one arm only (every one of {len(arr)} rows is {only}); "
            "uplift needs a randomised treated and control group",
        )
    for arm, label in ((1, "treated"), (0, "control")):
        if y[arr == arm].sum() == 0:
            raise DataValidationError(table, "response", f"no positive responses in the {label} arm")
    return arr


def check_binary(values: pd.Series | np.ndarray, table: str, column: str) -> np.ndarray:
    """0/1 values without NaN, as int8."""
    vals = pd.Series(values).to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(vals) | ~np.isin(vals, (0.0, 1.0))
    if bad.any():
        rows = list(np.flatnonzero(bad)[:5])
        raise DataValidationError(table, column, f"{int(bad.sum())} value(s) that are not 0/1", rows)
    return vals.astype(np.int8)


def _frame(X: pd.DataFrame, features: list[str], name: str) -> pd.DataFrame:
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise DataValidationError("features", missing[0],
                                  f"{len(missing)} feature(s) the {name} model needs are missing: {missing[:10]}")
    return X[features]


# ---------------------------------------------------------------------------- uplift model
@dataclass
class UpliftModel:
    """An uplift model: one of :data:`UPLIFT_APPROACHES` with LightGBM inside.

    ``ensemble`` fits one model per approach in ``member_approaches`` (same LightGBM
    parameters) and predicts ``offset + sum(weights * member uplift)``: each member is
    standardised by the mean and sd of its out-of-fold predictions (rows the fitted member did
    not see: in-sample, an overfitting member's spread is inflated by the noise it learnt), so
    no member dominates by scale alone, and the mean is put back on the members' average uplift
    scale, keeping the score in uplift units.
    """

    approach: str
    lgbm_params: dict = field(default_factory=dict)
    seed: int = 0
    features: list[str] = field(default_factory=list)
    estimator: Any = None
    kind: str = "uplift"
    member_approaches: list[str] = field(default_factory=lambda: list(ENSEMBLE_MEMBERS))
    members: list["UpliftModel"] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    offset: float = 0.0
    standardised_on: dict = field(default_factory=dict)  # ensemble: the members' mean and sd, and on what
    calibration: UpliftCalibration | None = None        # set by training on held-out rows

    def __post_init__(self) -> None:
        if self.approach not in UPLIFT_APPROACHES:
            raise ConfigError(f"config 'model', key 'approach': unknown uplift approach "
                              f"{self.approach!r}; use one of {list(UPLIFT_APPROACHES)}")
        if self.approach == ENSEMBLE:
            bad = [a for a in self.member_approaches if a not in BASE_APPROACHES]
            if bad or not self.member_approaches:
                raise ConfigError(f"config 'model', key 'ensemble': {bad or 'empty'}; "
                                  f"use some of {list(BASE_APPROACHES)}")

    @classmethod
    def from_members(cls, members: list["UpliftModel"], preds: list[np.ndarray],
                     source: str = "out-of-fold") -> "UpliftModel":
        """An ensemble of already fitted members, standardised on ``preds`` (one array per
        member: its predictions for rows it did not see, e.g. the CV's out-of-fold ones)."""
        m0 = members[0]
        ens = cls(ENSEMBLE, dict(m0.lgbm_params), m0.seed, list(m0.features),
                  member_approaches=[m.approach for m in members], members=list(members))
        ens._standardise(preds, source)
        return ens

    def _standardise(self, preds: list[np.ndarray], source: str) -> None:
        mu = np.array([float(np.mean(p)) for p in preds])
        sd = np.array([max(float(np.std(p)), 1e-12) for p in preds])
        scale = float(sd.mean())
        w = scale / (len(preds) * sd)
        self.weights = w.tolist()
        self.offset = float(mu.mean() - (w * mu).sum())
        self.standardised_on = {"source": source, "rows": int(len(preds[0])), "mean": mu.tolist(), "sd": sd.tolist()}

    def _out_of_fold(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray, e: np.ndarray,
                     folds: int) -> list[np.ndarray]:
        """Each member's predictions for every row from a copy fitted without that row's fold."""
        out = [np.zeros(len(y)) for _ in self.member_approaches]
        split = StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(X, 2 * t + y)
        for a, b in split:
            for i, approach in enumerate(self.member_approaches):
                m = UpliftModel(approach, self.lgbm_params, self.seed).fit(
                    X.iloc[a], t[a], y[a], folds, propensity=e[a])
                out[i][b] = m.predict(X.iloc[b])
        return out

    def _build(self) -> Any:
        from sklift.models import SoloModel, TwoModels

        if self.approach == "solo":
            return SoloModel(make_lgbm(self.lgbm_params, self.seed))
        if self.approach == "solo_interaction":
            return SoloModel(make_lgbm(self.lgbm_params, self.seed), method="treatment_interaction")
        if self.approach == "two_models":
            return TwoModels(make_lgbm(self.lgbm_params, self.seed),
                             make_lgbm(self.lgbm_params, self.seed + 1), method="vanilla")
        return TransformedOutcome(make_lgbm(self.lgbm_params, self.seed))

    def fit(self, X: pd.DataFrame, treatment: np.ndarray | pd.Series, y: np.ndarray | pd.Series,
            dr_folds: int = DEFAULT_DR_FOLDS, propensity: np.ndarray | None = None) -> "UpliftModel":
        """Fit on features ``X``, 0/1 ``treatment`` and 0/1 outcome ``y`` (validated).

        ``dr_folds`` (``model.dr_folds``) is a setting of the fit, not of the fitted model: the
        DR-learner's cross-fitting folds (an ensemble passes it to its members, and cross-fits
        its members' out-of-fold predictions with as many folds). ``propensity``: each row's
        design propensity (see the module); None = the pooled treated share."""
        validate_feature_frame(X)
        if _TREATMENT_COL in X.columns:
            raise DataValidationError("training set", _TREATMENT_COL,
                                      "the treatment flag must not be a feature column")
        y_arr = check_target(y)
        t_arr = check_treatment(treatment, y_arr)
        if len(X) != len(y_arr) or len(X) != len(t_arr):
            raise DataValidationError("training set", None,
                                      f"lengths differ: X {len(X)}, treatment {len(t_arr)}, y {len(y_arr)}")
        e = design_propensity(t_arr, propensity)
        self.features = [str(c) for c in X.columns]
        Xf = X.reset_index(drop=True)
        if self.approach == ENSEMBLE:
            self.members = [UpliftModel(a, self.lgbm_params, self.seed).fit(Xf, t_arr, y_arr, dr_folds, e)
                            for a in self.member_approaches]
            self._standardise(self._out_of_fold(Xf, t_arr, y_arr, e, dr_folds), "out-of-fold")
            return self
        if self.approach == "x_learner":
            self.estimator = self._fit_x(Xf, t_arr, y_arr, e)
            return self
        if self.approach == "dr_learner":
            self.estimator = self._fit_dr(Xf, t_arr, y_arr, dr_folds, e)
            return self
        est = self._build()
        if isinstance(est, TransformedOutcome):
            est.fit(Xf, y_arr, t_arr, e)
        else:
            est.fit(Xf, pd.Series(y_arr), pd.Series(t_arr))
        self.estimator = est
        return self

    def _fit_x(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray, e: np.ndarray) -> dict[str, Any]:
        """X-learner: outcome models per arm; each arm's imputed effects (treated: y - m0(x),
        control: m1(x) - y) regressed on x; mixed as ``g * tau0 + (1 - g) * tau1`` with ``g``
        the mean design propensity of the rows: when few clients were treated, m1 is the noisier
        outcome model, and tau0, built on it, gets the small weight. (The imputed effects do not
        depend on the propensity; any g in [0, 1] keeps the estimate consistent.)"""
        c, tr = t == 0, t == 1
        m0 = make_lgbm(self.lgbm_params, self.seed).fit(X[c], y[c])
        m1 = make_lgbm(self.lgbm_params, self.seed + 1).fit(X[tr], y[tr])
        d1 = y[tr] - _proba(m0, X[tr])
        d0 = _proba(m1, X[c]) - y[c]
        tau1 = make_lgbm_regressor(self.lgbm_params, self.seed + 2).fit(X[tr], d1)
        tau0 = make_lgbm_regressor(self.lgbm_params, self.seed + 3).fit(X[c], d0)
        return {"tau0": tau0, "tau1": tau1, "g": float(e.mean())}

    def _fit_dr(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray, dr_folds: int, e: np.ndarray) -> dict[str, Any]:
        """DR-learner: outcome models per arm fitted out of fold (``dr_folds``), the doubly
        robust pseudo-outcome ``m1 - m0 + t (y - m1) / e - (1 - t) (y - m0) / (1 - e)`` with
        ``e`` each row's design propensity, regressed on x. (With a pooled share in place of
        each campaign's, the correction terms stop averaging out when the outcome models miss a
        difference between campaigns.)"""
        m0, m1 = np.zeros(len(y)), np.zeros(len(y))
        folds = StratifiedKFold(dr_folds, shuffle=True, random_state=self.seed).split(X, 2 * t + y)
        for fi, (a, b) in enumerate(folds):
            for arm, out in ((0, m0), (1, m1)):
                rows = a[t[a] == arm]
                est = make_lgbm(self.lgbm_params, self.seed + 10 * fi + arm).fit(X.iloc[rows], y[rows])
                out[b] = _proba(est, X.iloc[b])
        phi = m1 - m0 + t * (y - m1) / e - (1 - t) * (y - m0) / (1 - e)
        return {"tau": make_lgbm_regressor(self.lgbm_params, self.seed + 2).fit(X, phi), "e": float(e.mean())}

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted uplift (treated minus control response probability; CT: 2P(z=1)-1)."""
        Xf = _frame(X, self.features, "uplift").reset_index(drop=True)
        if self.approach == ENSEMBLE:
            return self.offset + sum(w * m.predict(Xf) for w, m in zip(self.weights, self.members))
        if self.approach == "x_learner":
            est = self.estimator
            return est["g"] * est["tau0"].predict(Xf) + (1.0 - est["g"]) * est["tau1"].predict(Xf)
        if self.approach == "dr_learner":
            return np.asarray(self.estimator["tau"].predict(Xf), dtype=float)
        return np.asarray(self.estimator.predict(Xf), dtype=float)

    def calibrated(self, score: np.ndarray) -> np.ndarray:
        """Raw scores on the uplift scale (identity while the model has no calibration)."""
        cal = getattr(self, "calibration", None)  # versions registered before calibration have none
        return np.asarray(score, dtype=float) if cal is None else cal.apply(score)

    def predict_uplift_calibrated(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated uplift (probability units): what a profit rule multiplies by money."""
        return self.calibrated(self.predict(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """TreeSHAP contributions to the uplift score, per feature, in log-odds units.

        solo: contributions with the offer minus without (solo_interaction adds each
        feature's interaction column to the feature); two_models: treated model minus control
        model; class_transformation: the single model's contributions; x_learner and
        dr_learner: the effect regressions' contributions, in uplift (probability) units;
        ensemble: the members' contributions with the ensemble's weights.
        """
        Xf = _frame(X, self.features, "uplift").reset_index(drop=True)
        if self.approach == ENSEMBLE:
            return sum(w * _in_score_units(m, Xf) for w, m in zip(self.weights, self.members))
        est = self.estimator
        n_f = len(self.features)
        if self.approach in ("solo", "solo_interaction"):
            inner = est.estimator

            def with_flag(flag: float) -> pd.DataFrame:
                if self.approach == "solo":
                    return Xf.assign(treatment=flag)
                inter = (Xf.astype(float) * flag).rename(columns=lambda c: f"{c}_treatment_interaction")
                return pd.concat([Xf, inter], axis=1).assign(treatment=flag)

            diff = inner.predict(with_flag(1.0), pred_contrib=True) - inner.predict(with_flag(0.0), pred_contrib=True)
            if self.approach == "solo_interaction":
                diff = diff[:, :n_f] + diff[:, n_f: 2 * n_f]
            else:
                diff = diff[:, :n_f]
        elif self.approach == "x_learner":
            c0 = est["tau0"].predict(Xf, pred_contrib=True)
            c1 = est["tau1"].predict(Xf, pred_contrib=True)
            diff = (est["g"] * c0 + (1.0 - est["g"]) * c1)[:, :n_f]
        elif self.approach == "dr_learner":
            diff = est["tau"].predict(Xf, pred_contrib=True)[:, :n_f]
        elif self.approach == "two_models":
            c1 = est.estimator_trmnt.predict(Xf, pred_contrib=True)
            c0 = est.estimator_ctrl.predict(Xf, pred_contrib=True)
            diff = (c1 - c0)[:, : len(self.features)]
        else:
            diff = est.estimator.predict(Xf, pred_contrib=True)[:, : len(self.features)]
        return pd.DataFrame(diff, columns=self.features)


def _in_score_units(model: UpliftModel, X: pd.DataFrame) -> pd.DataFrame:
    """A member's contributions rescaled so their row sums spread like its predictions.

    Members explain their scores in different units (log-odds for the classifier-based
    approaches, probability for the meta-learners); without this, log-odds members would
    dominate an ensemble's importance."""
    contrib = model.contributions(X)
    spread = float(contrib.sum(axis=1).std())
    return contrib * (float(np.std(model.predict(X))) / spread) if spread > 0 else contrib


# ---------------------------------------------------------------------------- response model
@dataclass
class ResponseModel:
    """A LightGBM response classifier with class weighting and a tuned decision threshold.

    Class weighting (``scale_pos_weight`` = negatives / positives) multiplies the odds the
    classifier learns, so its raw scores sit far above the base rate. Such a model is Platt-
    calibrated on its out-of-fold scores (``calibration_folds`` folds, the same parameters), so
    ``predict`` returns probabilities; ``predict_raw`` keeps the weighted scores.
    ``calibrate=False`` skips that (cross-validation, which needs only the ranking)."""

    lgbm_params: dict = field(default_factory=dict)
    seed: int = 0
    class_weight: str | None = "balanced"
    threshold: float = 0.5
    features: list[str] = field(default_factory=list)
    estimator: Any = None
    approach: str = RESPONSE_APPROACH
    kind: str = "response"
    calibrate: bool = True
    calibration_folds: int = DEFAULT_DR_FOLDS
    calibration: PlattCalibration | None = None

    def _fit_raw(self, X: pd.DataFrame, y_arr: np.ndarray) -> LGBMClassifier:
        extra: dict[str, Any] = {}
        if self.class_weight == "balanced":
            pos = float(y_arr.sum())
            extra["scale_pos_weight"] = (len(y_arr) - pos) / pos
        return make_lgbm(self.lgbm_params, self.seed, **extra).fit(X, y_arr)

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> "ResponseModel":
        """Fit on features ``X`` and 0/1 target ``y`` (validated); calibrate (see the class)."""
        validate_feature_frame(X)
        y_arr = check_target(y)
        if len(X) != len(y_arr):
            raise DataValidationError("training set", None, f"lengths differ: X {len(X)}, y {len(y_arr)}")
        self.features = [str(c) for c in X.columns]
        Xf = X.reset_index(drop=True)
        self.estimator = self._fit_raw(Xf, y_arr)
        self.calibration = None
        if self.calibrate and self.class_weight == "balanced":
            oof = np.zeros(len(y_arr))
            for a, b in StratifiedKFold(self.calibration_folds, shuffle=True, random_state=self.seed).split(Xf, y_arr):
                oof[b] = _proba(self._fit_raw(Xf.iloc[a], y_arr[a]), Xf.iloc[b])
            self.calibration = fit_platt(y_arr, oof)
        return self

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The classifier's own score (class-weighted: not a probability)."""
        Xf = _frame(X, self.features, "response").reset_index(drop=True)
        return np.asarray(self.estimator.predict_proba(Xf)[:, 1], dtype=float)

    def to_probability(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores as probabilities (identity without a calibration)."""
        cal = getattr(self, "calibration", None)  # versions registered before calibration have none
        return np.asarray(raw, dtype=float) if cal is None else cal.apply(raw)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted response probability (calibrated when class-weighted)."""
        return self.to_probability(self.predict_raw(X))

    def predict_label(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 decision at the tuned threshold."""
        return (self.predict(X) >= self.threshold).astype(np.int8)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """TreeSHAP contributions per feature (log-odds units)."""
        Xf = _frame(X, self.features, "response").reset_index(drop=True)
        contrib = self.estimator.predict(Xf, pred_contrib=True)[:, : len(self.features)]
        return pd.DataFrame(contrib, columns=self.features)


def shap_importance(model: UpliftModel | ResponseModel, X: pd.DataFrame, max_rows: int = 5000,
                    seed: int = 0) -> pd.DataFrame:
    """Mean absolute TreeSHAP contribution per feature on up to ``max_rows`` rows, descending."""
    sample = X if len(X) <= max_rows else X.sample(max_rows, random_state=seed)
    contrib = model.contributions(sample)
    imp = contrib.abs().mean().sort_values(ascending=False)
    return pd.DataFrame({"feature": imp.index, "mean_abs_shap": imp.to_numpy()})
