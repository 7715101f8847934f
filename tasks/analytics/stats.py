"""Estimators and tests for campaign evaluation.

Differences of means with confidence intervals (difference of proportions for 0/1 outcomes,
Welch for anything else), score intervals for small cells (Wilson for a rate, Newcombe for a
difference of rates), a difference of mean amounts for skewed, mostly-zero outcomes such as revenue,
relative lift, the two-proportion z-test, the sample-ratio mismatch test and the test of
equal shares across groups (e.g. of missing outcome records), standardised mean differences
for balance checks, the minimum detectable effect of a design, and multiple-testing
corrections, and the paired bootstrap interval of the difference of a ranking metric
between two scores of the same rows (model promotion, decay). Inputs are array-likes; bad input raises :class:`~tasks.core.errors.DataValidationError`
or :class:`~tasks.core.errors.ConfigError` (a bad parameter such as ``alpha``).

Each statistic has its one implementation here: the campaign's balance check, the
evaluation and the data profile call these rather than computing their own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np
from scipy import stats as sps

from tasks.core.errors import ConfigError, DataValidationError
from tasks.analytics.metrics import as_float_array, bootstrap_ci, finite_float_array

ArrayLike = Any

#: Significance level of every design check that raises an alarm (sample-ratio mismatch, missing
#: outcomes, undelivered offers, the profile's arm-size test): one value for the whole product.
#: Checks run on every campaign, so the level is strict to keep false alarms rare.
SRM_ALPHA = 0.001

#: Below this many events (responders or non-responders) in a cell, a rate's interval is the
#: Wilson score interval and a difference of rates gets Newcombe's interval instead of Wald's.
SMALL_CELL_EVENTS = 30


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


def _count(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DataValidationError(where, name, f"must be a non-negative integer, got {value!r}")
    return int(value)


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of a rate ``successes / n`` at level ``1 - alpha``.

    ``(k + z^2/2) / (n + z^2) -/+ z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)``: it stays
    inside [0, 1] and keeps its coverage when the count is small or zero, where the Wald
    interval collapses (Newcombe 1998, method 3).
    """
    where = "wilson_interval input"
    _check_alpha(alpha, "wilson_interval")
    k, n = _count(successes, "successes", where), _count(n, "n", where)
    if n == 0 or k > n:
        raise DataValidationError(where, "n", f"needs 0 <= successes <= n and n >= 1, got {k} of {n}")
    z = float(sps.norm.ppf(1 - alpha / 2))
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(k_t: int, n_t: int, k_c: int, n_c: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``k_t / n_t - k_c / n_c`` (Newcombe 1998, method 10).

    Built from the two Wilson intervals ``(l_t, u_t)``, ``(l_c, u_c)``: ``d - sqrt((p_t - l_t)^2 +
    (u_c - p_c)^2)`` to ``d + sqrt((u_t - p_t)^2 + (p_c - l_c)^2)``. Holds its level in small
    cells and at rates near 0 or 1.
    """
    lt, ut = wilson_interval(k_t, n_t, alpha)
    lc, uc = wilson_interval(k_c, n_c, alpha)
    pt, pc = k_t / n_t, k_c / n_c
    d = pt - pc
    return d - math.sqrt((pt - lt) ** 2 + (uc - pc) ** 2), d + math.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)


def rate_difference(k_t: int, n_t: int, k_c: int, n_c: int, alpha: float = 0.05,
                    small_cell: int = SMALL_CELL_EVENTS) -> Effect:
    """Difference of two response rates from counts, with the interval the cell sizes call for.

    When every arm holds at least ``small_cell`` responders and ``small_cell`` non-responders:
    :func:`diff_in_proportions` (Wald interval, unpooled standard error). Otherwise Newcombe's
    score interval (:func:`newcombe_interval`) with the p-value of the pooled two-proportion
    z-test (a score test, like the interval); ``se`` stays the unpooled standard error.
    ``method`` says which was used.
    """
    where = "rate_difference input"
    k_t, n_t = _count(k_t, "k_t", where), _count(n_t, "n_t", where)
    k_c, n_c = _count(k_c, "k_c", where), _count(n_c, "n_c", where)
    if n_t == 0 or n_c == 0 or k_t > n_t or k_c > n_c:
        raise DataValidationError(where, None, f"needs 0 <= k <= n and n >= 1 per arm, got {k_t}/{n_t}, {k_c}/{n_c}")
    wald = diff_in_proportions(k_t / n_t, n_t, k_c / n_c, n_c, alpha)
    if min(k_t, n_t - k_t, k_c, n_c - k_c) >= small_cell:
        return wald
    lo, hi = newcombe_interval(k_t, n_t, k_c, n_c, alpha)
    _, p = two_proportion_ztest(k_t, n_t, k_c, n_c)
    return Effect(wald.estimate, wald.se, float(lo), float(hi), float(p), n_t, n_c, wald.mean_t, wald.mean_c,
                  float(alpha), f"difference of proportions (Newcombe score interval: an arm has under "
                  f"{small_cell} responders or non-responders; pooled z-test)")


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


def equal_shares_test(hits: Mapping[str, int], totals: Mapping[str, int]) -> tuple[float, float]:
    """Do the groups share one rate of ``hits / totals`` (e.g. missing outcome records)?

    Pearson's chi-square test of independence of group and hit on the ``groups x 2`` table,
    ``groups - 1`` degrees of freedom: ``(chi2, p_value)``. Groups with no clients are left
    out; with fewer than two groups left, or no hit or no miss at all, there is nothing to
    compare and the result is ``(0.0, 1.0)``. A small p-value means the rate differs between
    groups. For 2 x 2 tables with an expected count under 5, Fisher's exact p-value is used.
    """
    where = "equal_shares_test input"
    if set(hits) != set(totals):
        raise DataValidationError(where, None, f"groups differ: {sorted(hits)} vs {sorted(totals)}")
    rows = []
    for g in sorted(hits):
        h, n = _count(hits[g], g, where), _count(totals[g], g, where)
        if h > n:
            raise DataValidationError(where, g, f"{h} hits among {n} clients")
        if n:
            rows.append((h, n - h))
    table = np.asarray(rows, dtype="float64").reshape(-1, 2)
    if len(table) < 2 or table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 0.0, 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    if table.shape == (2, 2) and expected.min() < 5:
        return chi2, float(sps.fisher_exact(table.astype("int64"))[1])
    return chi2, float(sps.chi2.sf(chi2, len(table) - 1))


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


def holm_adjusted(pvalues: ArrayLike) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order: the ``i``-th smallest p-value
    times ``m - i + 1``, made non-decreasing and capped at 1. A hypothesis is rejected at
    family-wise error ``alpha`` exactly when its adjusted p-value is at most ``alpha``."""
    p = _pvalues(pvalues, "holm_adjusted input")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    out = np.empty(m)
    out[order] = stepped
    return out


def holm(pvalues: ArrayLike, alpha: float = 0.05) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise error ``alpha``:
    a boolean mask in the input order (:func:`holm_adjusted` at most ``alpha``)."""
    _check_alpha(alpha, "holm")
    return holm_adjusted(pvalues) <= alpha


# --------------------------------------------------------------------------- design


def mde_from_se(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of an estimate with standard error ``se``: the true effect a
    two-sided test at level ``alpha`` detects with probability ``power``,
    ``(z_{1 - alpha/2} + z_{power}) * se``."""
    _check_alpha(alpha, "mde_from_se")
    if not 0 < power < 1:
        raise ConfigError(f"mde_from_se: power must be in (0, 1), got {power!r}")
    if not se >= 0:
        raise DataValidationError("mde_from_se input", "se", f"must be >= 0, got {se!r}")
    return float((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * se)


def mde_rate_difference(base_rate: float, n_t: int, n_c: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference of response rates between arms of ``n_t`` and ``n_c`` clients that a
    two-sided test at ``alpha`` detects with probability ``power``, both arms' variance taken at
    ``base_rate``: ``(z_{1-alpha/2} + z_power) * sqrt(p (1 - p) (1/n_t + 1/n_c))``."""
    if not 0 < base_rate < 1:
        raise DataValidationError("mde_rate_difference input", "base_rate", f"must be in (0, 1), got {base_rate!r}")
    for name, n in (("n_t", n_t), ("n_c", n_c)):
        if _count(n, name, "mde_rate_difference input") < 1:
            raise DataValidationError("mde_rate_difference input", name, "an arm needs at least one client")
    return mde_from_se(math.sqrt(base_rate * (1 - base_rate) * (1 / n_t + 1 / n_c)), alpha, power)


# --------------------------------------------------------------------------- amounts (revenue)


def amount_moments(*samples: ArrayLike) -> tuple[float, float]:
    """``(E[A], E[A^2])`` of the non-zero amounts ``A`` of all ``samples`` pooled (0, 0 when none)."""
    nz = np.concatenate([np.asarray(x, dtype="float64")[np.asarray(x, dtype="float64") != 0] for x in samples])
    return (float(nz.mean()), float((nz * nz).mean())) if nz.size else (0.0, 0.0)


def amount_variance(y: ArrayLike, m1: float, m2: float) -> float:
    """Per-client variance of an amount that is zero for most clients (revenue), from the
    sample's share ``q`` of non-zero values and pooled moments ``m1 = E[A]``, ``m2 = E[A^2]`` of
    the non-zero amounts: ``(q m2 - (q m1)^2) * n / (n - 1)``."""
    arr = np.asarray(y, dtype="float64")
    q = float(np.mean(arr != 0))
    return (q * m2 - (q * m1) ** 2) * arr.size / max(arr.size - 1, 1)


def diff_in_amounts(y_t: ArrayLike, y_c: ArrayLike, alpha: float = 0.05) -> Effect:
    """Difference of mean amounts (revenue per client), treated minus control, for skewed,
    heavy-tailed amounts that are zero for most clients.

    Revenue per client is (bought or not) x (amount when bought). A small arm with a few dozen
    buyers rarely holds the rare large baskets, and then its sample variance is too low just when
    its mean is too low, so Welch's interval misses on one side. Here each arm's variance is
    :func:`amount_variance`: its own share of buyers with the moments of the amounts pooled over
    both arms (:func:`amount_moments`), i.e. the offer is taken to change who buys more than how
    much a buyer spends. Normal interval and two-sided p-value. Each arm needs two clients.
    """
    where = "diff_in_amounts input"
    _check_alpha(alpha, "diff_in_amounts")
    t = _sample(y_t, "y_t", where)
    c = _sample(y_c, "y_c", where)
    m1, m2 = amount_moments(t, c)
    se = math.sqrt(amount_variance(t, m1, m2) / t.size + amount_variance(c, m1, m2) / c.size)
    mean_t, mean_c = float(t.mean()), float(c.mean())
    return normal_effect(mean_t - mean_c, se, alpha, t.size, c.size, mean_t, mean_c,
                         "difference of means (variance from each arm's share of buyers and the amounts "
                         "of both arms' buyers; normal)")


# --------------------------------------------------------------------------- paired difference of a metric


def paired_metric_difference(
    metric: Callable[..., float],
    y: ArrayLike,
    score_a: ArrayLike,
    score_b: ArrayLike,
    treatment: ArrayLike | None = None,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """``metric(b) - metric(a)`` on the same rows with its paired percentile-bootstrap interval.

    ``metric(y, score, treatment)`` (or ``metric(y, score)`` without ``treatment``) is e.g. the
    Qini AUC. Each replicate resamples rows once and scores both ``a`` and ``b`` on them, so the
    noise the two share (which rows happen to respond) cancels; resampling is within the
    treatment arms (or the outcome classes without a treatment). Returns ``value_a``,
    ``value_b``, ``difference``, ``ci_low``, ``ci_high``, ``n``, ``alpha``.
    """
    _check_alpha(alpha, "paired_metric_difference")
    yy = as_float_array(y, "y", "paired_metric_difference input")
    a = finite_float_array(as_float_array(score_a, "score_a", "paired_metric_difference input"),
                           "score_a", "paired_metric_difference input")
    b = finite_float_array(as_float_array(score_b, "score_b", "paired_metric_difference input"),
                           "score_b", "paired_metric_difference input")
    if not len(yy) == len(a) == len(b):
        raise DataValidationError("paired_metric_difference input", None,
                                  f"lengths differ: y {len(yy)}, score_a {len(a)}, score_b {len(b)}")
    scores = np.column_stack([a, b])
    if treatment is None:
        def diff(yv: np.ndarray, s: np.ndarray) -> float:
            return float(metric(yv, s[:, 1]) - metric(yv, s[:, 0]))
        arrays: tuple = (yy, scores)
        strata = yy
    else:
        t = as_float_array(treatment, "treatment", "paired_metric_difference input")

        def diff(yv: np.ndarray, s: np.ndarray, tv: np.ndarray) -> float:  # type: ignore[misc]
            return float(metric(yv, s[:, 1], tv) - metric(yv, s[:, 0], tv))
        arrays = (yy, scores, t)
        strata = t
    value_a = float(metric(*([yy, a] if treatment is None else [yy, a, arrays[2]])))
    value_b = float(metric(*([yy, b] if treatment is None else [yy, b, arrays[2]])))
    point, lo, hi = bootstrap_ci(diff, *arrays, n_boot=n_boot, seed=seed, alpha=alpha, stratify=strata)
    return {"value_a": value_a, "value_b": value_b, "difference": point, "ci_low": lo, "ci_high": hi,
            "n": int(len(yy)), "alpha": float(alpha)}
