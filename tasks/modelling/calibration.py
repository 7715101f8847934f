"""Scores on the scale the money decisions assume: calibrated uplift and response probabilities.

The profit policy offers when ``uplift * margin > contact_cost``, and the API reports a response
model's score as a probability. Both read the score as a quantity, not a rank, so training checks
that quantity on rows the model did not see and corrects it with a monotone map stored with the
model:

* :func:`uplift_calibration_table` - per score decile of held-out rows (best first): the mean
  predicted uplift beside the observed one (treated minus control response rate, with the
  difference-of-proportions interval of :func:`tasks.analytics.stats.rate_difference`);
* :func:`fit_uplift_calibration` - :class:`UpliftCalibration`, a linear shrinkage
  ``uplift = intercept + slope * score`` fitted to that table by weighted least squares
  (weights 1 / se^2 of the observed decile uplift), with a CI on the slope. Why linear and not
  isotonic: ten decile points each carry an interval about as wide as the spread between them,
  so a step function would fit their noise, tie clients the model ranks apart, and could not be
  inverted; two parameters (calibration in the large and the calibration slope, as in clinical
  prediction models) are what ten noisy points can support. The slope is floored at
  :data:`MIN_SLOPE` (a model without signal gets a nearly flat line at the average uplift) so
  the map stays strictly increasing: the ranking is unchanged and the profit rule is one cutoff
  on the raw score (:meth:`UpliftCalibration.score_cutoff`), which a frozen campaign records;
* :func:`expected_calibration_error` - the decile-size-weighted mean of |observed - predicted|;
* :class:`PlattCalibration` / :func:`fit_platt` - response models trained with class weighting
  (``scale_pos_weight``) score far above the base rate; Platt scaling (a logistic regression of
  the outcome on the logit of out-of-fold scores, scikit-learn) maps them back to probabilities;
  strictly increasing, so ROC-AUC and the ranking stay as they were;
* :func:`probability_calibration_table` - observed response rate (Wilson interval) vs mean
  predicted probability per decile.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats as sps

from tasks.analytics import stats
# the score bins of uplift_by_percentile: the same rows per decile as the report's decile table
from tasks.analytics.metrics import _bin_ids as _decile_ids
from tasks.analytics.metrics import _bin_labels as _labels
from tasks.core.errors import DataValidationError

MIN_SLOPE = 1e-6
"""Floor of the uplift calibration slope: keeps the map strictly increasing (invertible)."""

_EPS = 1e-6


# --------------------------------------------------------------------------- uplift
def uplift_calibration_table(y: np.ndarray, score: np.ndarray, t: np.ndarray, bins: int = 10,
                             alpha: float = 0.05) -> pd.DataFrame:
    """Observed vs predicted uplift per score bin of held-out rows, best bin first.

    Columns: percentile, n, n_treatment, n_control, predicted (mean score), observed (treated
    minus control response rate), se, ci_low, ci_high (``1 - alpha``). A bin needs both arms.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    t = np.asarray(t, dtype=float)
    if not len(y) == len(s) == len(t) or len(y) < 2 * bins:
        raise DataValidationError("held-out rows", None, f"calibration by {bins} bins needs at least {2 * bins} rows "
                                  f"with equal lengths; got y {len(y)}, score {len(s)}, treatment {len(t)}")
    order = np.argsort(-s, kind="stable")
    ids = _decile_ids(len(y), bins)
    rows = []
    for b, label in enumerate(_labels(bins)):
        pos = order[ids == b]
        yb, tb = y[pos], t[pos]
        n_t, n_c = int(tb.sum()), int(len(tb) - tb.sum())
        if n_t == 0 or n_c == 0:
            raise DataValidationError("held-out rows", "treatment", f"score bin {label} has no "
                                      f"{'treated' if n_t == 0 else 'control'} rows; too few rows to calibrate")
        eff = stats.rate_difference(int(yb[tb == 1].sum()), n_t, int(yb[tb == 0].sum()), n_c, alpha)
        rows.append({"percentile": label, "n": int(len(pos)), "n_treatment": n_t, "n_control": n_c,
                     "predicted": float(s[pos].mean()), "observed": eff.estimate, "se": eff.se,
                     "ci_low": eff.ci_low, "ci_high": eff.ci_high})
    return pd.DataFrame(rows)


def expected_calibration_error(table: pd.DataFrame, predicted: str = "predicted") -> float:
    """Size-weighted mean absolute gap between observed and ``predicted`` over the bins."""
    w = table["n"].to_numpy(dtype=float)
    gap = np.abs(table["observed"].to_numpy(dtype=float) - table[predicted].to_numpy(dtype=float))
    return float((w * gap).sum() / w.sum())


@dataclass
class UpliftCalibration:
    """``calibrated uplift = intercept + slope * raw score`` (slope >= :data:`MIN_SLOPE`)."""

    intercept: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    n: int
    method: str = "linear shrinkage (WLS of observed decile uplift on predicted)"

    def apply(self, score: np.ndarray) -> np.ndarray:
        """Calibrated uplift of raw scores."""
        return self.intercept + self.slope * np.asarray(score, dtype=float)

    def score_cutoff(self, uplift_cutoff: float) -> float:
        """The raw score above which the calibrated uplift exceeds ``uplift_cutoff``."""
        return float((uplift_cutoff - self.intercept) / self.slope)

    def as_dict(self) -> dict:
        return asdict(self)


def fit_uplift_calibration(table: pd.DataFrame, alpha: float = 0.05) -> UpliftCalibration:
    """Weighted least squares of the observed decile uplift on the predicted one (see the module).

    A bin whose standard error is 0 (no responders in either arm) takes the median standard
    error of the others. The slope interval is the normal one of the WLS slope with known
    variances; the slope is floored at :data:`MIN_SLOPE` (then the intercept is the weighted mean
    observed uplift minus slope x the weighted mean prediction).
    """
    x = table["predicted"].to_numpy(dtype=float)
    obs = table["observed"].to_numpy(dtype=float)
    se = table["se"].to_numpy(dtype=float)
    positive = se[se > 0]
    se = np.where(se > 0, se, np.median(positive) if len(positive) else 1.0)
    w = 1.0 / se**2
    xm, ym = float((w * x).sum() / w.sum()), float((w * obs).sum() / w.sum())
    sxx = float((w * (x - xm) ** 2).sum())
    slope = float((w * (x - xm) * (obs - ym)).sum() / sxx) if sxx > 0 else 0.0
    half = float(sps.norm.ppf(1 - alpha / 2)) / math.sqrt(sxx) if sxx > 0 else float("inf")
    lo, hi = slope - half, slope + half
    slope = max(slope, MIN_SLOPE)
    return UpliftCalibration(intercept=ym - slope * xm, slope=slope, slope_ci_low=lo, slope_ci_high=hi,
                             n=int(table["n"].sum()))


def calibrate_uplift(y: np.ndarray, score: np.ndarray, t: np.ndarray, bins: int = 10) -> tuple[UpliftCalibration, dict]:
    """The calibration of ``score`` on held-out rows and its report: ``(calibration, summary)``.

    ``summary`` (metadata.json's ``calibration``): the fitted map, the expected calibration
    error of the raw and of the calibrated score on these rows (the calibrated one is fitted
    here, two parameters: read it as the best these rows allow), and the decile table with the
    calibrated prediction beside the raw one.
    """
    table = uplift_calibration_table(y, score, t, bins)
    cal = fit_uplift_calibration(table)
    table["calibrated"] = cal.apply(table["predicted"].to_numpy())
    summary = {**cal.as_dict(), "ece": expected_calibration_error(table),
               "ece_calibrated": expected_calibration_error(table, "calibrated"),
               "table": table.to_dict(orient="records")}
    return cal, summary


# --------------------------------------------------------------------------- response probabilities
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass
class PlattCalibration:
    """``p = 1 / (1 + exp(-(a + b * logit(raw))))`` (b > 0)."""

    a: float
    b: float

    def apply(self, p: np.ndarray) -> np.ndarray:
        z = self.a + self.b * _logit(p)
        return 1.0 / (1.0 + np.exp(-z))


def fit_platt(y: np.ndarray, p: np.ndarray) -> PlattCalibration:
    """Platt scaling of out-of-fold probabilities ``p`` (scikit-learn, practically unpenalised).

    A non-positive slope (scores without signal) falls back to the constant base rate with a
    tiny slope, so the map stays increasing.
    """
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), np.asarray(y, dtype=int))
    a, b = float(lr.intercept_[0]), float(lr.coef_[0, 0])
    if b <= 0:
        base = float(np.clip(np.mean(y), _EPS, 1 - _EPS))
        return PlattCalibration(a=math.log(base / (1 - base)), b=MIN_SLOPE)
    return PlattCalibration(a=a, b=b)


def probability_calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10,
                                  alpha: float = 0.05) -> pd.DataFrame:
    """Observed response rate (Wilson interval) vs mean predicted probability per bin, best first."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    ids = _decile_ids(len(y), bins)
    rows = []
    for b, label in enumerate(_labels(bins)):
        pos = order[ids == b]
        k = int(y[pos].sum())
        lo, hi = stats.wilson_interval(k, len(pos), alpha)
        rows.append({"percentile": label, "n": int(len(pos)), "predicted": float(p[pos].mean()),
                     "observed": k / len(pos), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def calibration_summary_response(y: np.ndarray, p: np.ndarray, platt: bool, bins: int = 10) -> dict:
    """metadata.json's ``calibration`` of a response model on held-out rows (``platt``: whether
    the model's probabilities were Platt-scaled)."""
    table = probability_calibration_table(y, p, bins)
    return {"method": "Platt scaling on out-of-fold scores" if platt else "none (unweighted classifier)",
            "ece": expected_calibration_error(table),
            "mean_predicted": float(np.mean(p)), "base_rate": float(np.mean(y)),
            "table": table.to_dict(orient="records")}
