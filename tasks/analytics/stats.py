"""Estimators and tests for campaign evaluation.

Differences of means with confidence intervals (difference of proportions for 0/1 outcomes,
Welch for anything else), relative lift, the two-proportion z-test, the sample-ratio
mismatch test, standardised mean differences for balance checks, and multiple-testing
corrections. Inputs are array-likes; bad input raises :class:`~tasks.core.errors.DataValidationError`
or :class:`~tasks.core.errors.ConfigError` (a bad parameter such as ``alpha``).

Each statistic has its one implementation here: the campaign's balance check, the
evaluation and the data profile call these rather than computing their own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats as sps

from tasks.core.errors import ConfigError, DataValidationError
from tasks.analytics.metrics import as_float_array, finite_float_array

ArrayLike = Any


@dataclass(frozen=True)
class Effect:
    """An estimated effect (treated minus control, or a relative lift) with its uncertainty.

    ``ci_low``/``ci_high`` form the two-sided ``1 - alpha`` interval; ``p_value`` tests
    "no effect". ``method`` names the estimator used.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n_t: int
    n_c: int
    mean_t: float
    mean_c: float
    alpha: float = 0.05
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, (np.floating, np.integer)):
                out[key] = value.item()
        return out

    def covers(self, value: float) -> bool:
        """True when ``value`` lies inside the confidence interval."""
        return self.ci_low <= value <= self.ci_high


# --------------------------------------------------------------------------- validation


def _sample(values: ArrayLike, column: str, where: str, min_size: int = 2, drop_nan: bool = False) -> np.ndarray:
    """A new 1-d float64 array of finite values with at least ``min_size`` entries."""
    arr = as_float_array(values, column, where)
    if drop_nan:
        arr = arr[~np.isnan(arr)]
    arr = finite_float_array(arr, column, where)
    if arr.size < min_size:
        raise DataValidationError(where, column, f"needs at least {min_size} value(s), got {arr.size}")
    return arr


def _check_alpha(alpha: float, where: str) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ConfigError(f"{where}: alpha must be a number in (0, 1), got {alpha!r}")


def _is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0) | (arr == 1)))


def _normal_effect(
    estimate: float, se: float, alpha: float, null: float = 0.0
) -> tuple[float, float, float]:
    """Normal-approximation interval and two-sided p-value; a zero SE gives a point interval."""
    if se == 0:
        return estimate, estimate, 1.0 if estimate == null else 0.0
    z = sps.norm.ppf(1 - alpha / 2)
    p = 2 * sps.norm.sf(abs(estimate - null) / se)
    return estimate - z * se, estimate + z * se, float(p)


# --------------------------------------------------------------------------- effects


def normal_effect(
    estimate: float, se: float, alpha: float, n_t: int, n_c: int, mean_t: float, mean_c: float, method: str
) -> Effect:
    """An :class:`Effect` from a point estimate and its standard error: the normal
    ``1 - alpha`` interval ``estimate -/+ z * se`` and the two-sided p-value of "no effect".

    A zero standard error gives a point interval and a p-value of 1 (estimate 0) or 0.
    """
    _check_alpha(alpha, "normal_effect")
    lo, hi, p = _normal_effect(estimate, se, alpha)
    return Effect(float(estimate), float(se), float(lo), float(hi), float(p), int(n_t), int(n_c),
                  float(mean_t), float(mean_c), float(alpha), method)


def diff_in_proportions(p_t: float, n_t: int, p_c: float, n_c: int, alpha: float = 0.05) -> Effect:
    """Difference of two proportions, treated minus control, from the rates and group sizes.

    Unpooled standard error sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c), normal ``1 - alpha``
    interval and two-sided p-value (the Wald interval); a zero standard error (both rates 0
    or 1) gives a point interval. Rates lie in [0, 1]; each group holds at least one client.
    This is the one confidence interval of a difference of response rates: the evaluation
    (effects and uplift by score bin) and the data profile (naive uplift) use it.
    """
    where = "diff_in_proportions input"
    _check_alpha(alpha, "diff_in_proportions")
    for name, n in (("n_t", n_t), ("n_c", n_c)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataValidationError(where, name, f"group size must be a positive integer, got {n!r}")
    for name, rate in (("p_t", p_t), ("p_c", p_c)):
        if not 0.0 <= rate <= 1.0:  # also rejects NaN
            raise DataValidationError(where, name, f"a proportion must lie in [0, 1], got {rate!r}")
    mean_t, mean_c = float(p_t), float(p_c)
    estimate = mean_t - mean_c
    se = math.sqrt(mean_t * (1 - mean_t) / n_t + mean_c * (1 - mean_c) / n_c)
    return normal_effect(estimate, se, alpha, n_t, n_c, mean_t, mean_c, "difference of proportions (unpooled normal)")


def diff_in_means(y_t: ArrayLike, y_c: ArrayLike, alpha: float = 0.05) -> Effect:
    """Difference of means, treated minus control, with a ``1 - alpha`` interval and p-value.

    For 0/1 outcomes in both groups: difference of proportions with the unpooled standard
    error sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c) and a normal interval. Otherwise Welch's
    t interval (sample variances, Welch-Satterthwaite degrees of freedom), as
    ``scipy.stats.ttest_ind(equal_var=False)``. Each group needs at least two values.
    """
    where = "diff_in_means input"
    _check_alpha(alpha, "diff_in_means")
    t = _sample(y_t, "y_t", where)
    c = _sample(y_c, "y_c", where)
    mean_t, mean_c = float(t.mean()), float(c.mean())
    if _is_binary(t) and _is_binary(c):
        return diff_in_proportions(mean_t, t.size, mean_c, c.size, alpha)
    estimate = mean_t - mean_c
    var_t = float(t.var(ddof=1)) / t.size
    var_c = float(c.var(ddof=1)) / c.size
    se = math.sqrt(var_t + var_c)
    if se == 0:
        lo, hi, p = _normal_effect(estimate, se, alpha)
    else:
        df = (var_t + var_c) ** 2 / (var_t**2 / (t.size - 1) + var_c**2 / (c.size - 1))
        q = sps.t.ppf(1 - alpha / 2, df)
        lo, hi = estimate - q * se, estimate + q * se
        p = float(2 * sps.t.sf(abs(estimate) / se, df))
    return Effect(estimate, se, float(lo), float(hi), float(p), int(t.size), int(c.size),
                  mean_t, mean_c, float(alpha), "Welch t")


def relative_lift(y_t: ArrayLike, y_c: ArrayLike, alpha: float = 0.05) -> Effect:
    """Relative lift mean_t / mean_c - 1 with a delta-method standard error and normal interval.

    Uses the same variances of the two means as :func:`diff_in_means`. The control mean must
    not be zero.
    """
    where = "relative_lift input"
    _check_alpha(alpha, "relative_lift")
    t = _sample(y_t, "y_t", where)
    c = _sample(y_c, "y_c", where)
    mean_t, mean_c = float(t.mean()), float(c.mean())
    if mean_c == 0:
        raise DataValidationError(where, "y_c", "the control mean is 0, so a relative lift is undefined")
    if _is_binary(t) and _is_binary(c):
        var_t, var_c = mean_t * (1 - mean_t) / t.size, mean_c * (1 - mean_c) / c.size
    else:
        var_t, var_c = float(t.var(ddof=1)) / t.size, float(c.var(ddof=1)) / c.size
    estimate = mean_t / mean_c - 1
    se = math.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4)
    lo, hi, p = _normal_effect(estimate, se, alpha)
    return Effect(estimate, se, float(lo), float(hi), float(p), int(t.size), int(c.size),
                  mean_t, mean_c, float(alpha), "relative lift (delta method)")


def two_proportion_ztest(successes_t: int, n_t: int, successes_c: int, n_c: int) -> tuple[float, float]:
    """Two-sided z-test of equal proportions with the pooled standard error: ``(z, p_value)``."""
    counts = {"successes_t": successes_t, "n_t": n_t, "successes_c": successes_c, "n_c": n_c}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataValidationError("two_proportion_ztest input", name, f"must be a non-negative integer, got {value!r}")
    if n_t == 0 or n_c == 0:
        raise DataValidationError("two_proportion_ztest input", "n_t" if n_t == 0 else "n_c", "group size is 0")
    if successes_t > n_t or successes_c > n_c:
        raise DataValidationError("two_proportion_ztest input", None, f"more successes than trials: {counts}")
    p_t, p_c = successes_t / n_t, successes_c / n_c
    pooled = (successes_t + successes_c) / (n_t + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se == 0:
        return 0.0, 1.0
    z = (p_t - p_c) / se
    return float(z), float(2 * sps.norm.sf(abs(z)))


# --------------------------------------------------------------------------- design checks


def srm_test(observed: Mapping[str, int], expected_share: Mapping[str, float]) -> tuple[float, float]:
    """Sample-ratio mismatch: chi-square goodness of fit of group counts to planned shares.

    ``observed`` and ``expected_share`` must name the same groups (at least two); shares are
    positive and sum to 1. Returns ``(chi2, p_value)`` with ``groups - 1`` degrees of freedom;
    a small p-value means the split did not happen as planned.
    """
    where = "srm_test input"
    if set(observed) != set(expected_share):
        raise DataValidationError(
            where, None,
            f"observed groups {sorted(observed)} differ from expected groups {sorted(expected_share)}",
        )
    if len(observed) < 2:
        raise DataValidationError(where, None, f"needs at least two groups, got {sorted(observed)}")
    names = sorted(observed)
    counts = []
    for name in names:
        value = observed[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataValidationError(where, name, f"observed count must be a non-negative integer, got {value!r}")
        counts.append(int(value))
    shares = []
    for name in names:
        share = expected_share[name]
        if isinstance(share, bool) or not isinstance(share, (int, float, np.floating, np.integer)) or not share > 0:
            raise ConfigError(f"srm_test: expected share of group {name!r} must be a positive number, got {share!r}")
        shares.append(float(share))
    if not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise ConfigError(f"srm_test: expected shares must sum to 1, got {sum(shares):.6g} ({dict(zip(names, shares))})")
    total = sum(counts)
    if total == 0:
        raise DataValidationError(where, None, "all observed counts are 0")
    obs = np.asarray(counts, dtype="float64")
    exp = total * np.asarray(shares) / sum(shares)
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return chi2, float(sps.chi2.sf(chi2, len(names) - 1))


def standardized_mean_difference(a: ArrayLike, b: ArrayLike) -> float:
    """(mean_a - mean_b) / sqrt((var_a + var_b) / 2) with sample variances (ddof=1).

    Missing values (NaN) are dropped from each group before anything is computed; each
    group needs at least two remaining values, and an infinite value is an error (both
    :class:`DataValidationError`, naming ``a`` or ``b``). When the pooled standard deviation
    is 0 (both groups constant) the result is 0 for equal means and a signed infinity
    (the sign of ``mean_a - mean_b``) otherwise. Balance checks usually call |SMD| < 0.1
    balanced. This is the one SMD of the project (campaign balance check included).
    """
    where = "standardized_mean_difference input"
    x = _sample(a, "a", where, drop_nan=True)
    y = _sample(b, "b", where, drop_nan=True)
    diff = float(x.mean() - y.mean())
    pooled = math.sqrt((float(x.var(ddof=1)) + float(y.var(ddof=1))) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


# --------------------------------------------------------------------------- multiple testing


def _pvalues(pvalues: ArrayLike, where: str) -> np.ndarray:
    p = _sample(pvalues, "pvalues", where, min_size=0)
    bad = (p < 0) | (p > 1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        raise DataValidationError(where, "pvalues", f"{int(bad.sum())} value(s) outside [0, 1]", rows.tolist())
    return p


def bh_adjusted(pvalues: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = _pvalues(pvalues, "bh_adjusted input")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def benjamini_hochberg(pvalues: ArrayLike, alpha: float = 0.05) -> np.ndarray:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at false discovery
    rate ``alpha``: a boolean mask in the input order."""
    _check_alpha(alpha, "benjamini_hochberg")
    return bh_adjusted(pvalues) <= alpha


def holm(pvalues: ArrayLike, alpha: float = 0.05) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise error ``alpha``:
    a boolean mask in the input order."""
    _check_alpha(alpha, "holm")
    p = _pvalues(pvalues, "holm input")
    m = p.size
    order = np.argsort(p, kind="stable")
    passes = p[order] <= alpha / (m - np.arange(m))
    # step-down: stop at the first hypothesis that is not rejected
    n_rejected = m if passes.all() else int(np.argmin(passes))
    out = np.zeros(m, dtype=bool)
    out[order[:n_rejected]] = True
    return out
