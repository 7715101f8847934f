"""Uplift and response-model metrics.

Our own vectorised implementations of the uplift metrics. The definitions and values match
scikit-uplift 0.5.1 (``qini_auc_score``, ``uplift_auc_score``, ``uplift_at_k``,
``uplift_by_percentile``); the tests compare against it. Inputs are 1-d array-likes of one
length: ``y`` (0/1 outcome), ``uplift`` (a score, higher = target first) and ``treatment``
(0/1 arm). Bad input raises :class:`~tasks.core.errors.DataValidationError` (data) or
:class:`~tasks.core.errors.ConfigError` (a parameter such as ``k`` or ``bins``).

Ordering: clients are ranked by descending score. Among equal scores the client that comes
later in the input ranks first (the reverse of a stable ascending sort), exactly as
scikit-uplift does; the curves group equal scores into one point, so they do not depend on
the order of ties at all.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from tasks.core.errors import ConfigError, DataValidationError, UpliftError

ArrayLike = Any  # numpy array, pandas Series, list, ...

_STRATEGIES = ("overall", "by_group")


# --------------------------------------------------------------------------- validation


def as_float_array(values: ArrayLike, column: str, where: str) -> np.ndarray:
    """A new 1-d float64 array from ``values``; non-numeric or multi-dimensional input is an error."""
    try:
        if isinstance(values, (pd.Series, pd.Index)):
            arr = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            arr = np.array(values, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise DataValidationError(where, column, f"values must be numeric ({exc})") from None
    if arr.ndim != 1:
        raise DataValidationError(where, column, f"expected a 1-d array, got shape {arr.shape}")
    return arr


def _check_binary(arr: np.ndarray, column: str, where: str) -> None:
    _check_finite(arr, column, where)
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        raise DataValidationError(
            where, column,
            f"{int(bad.sum())} value(s) are not 0/1 (e.g. {arr[rows].tolist()})", rows.tolist(),
        )


def _check_finite(arr: np.ndarray, column: str, where: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        raise DataValidationError(
            where, column, f"{int(bad.sum())} missing or infinite value(s)", rows.tolist()
        )


def finite_float_array(values: ArrayLike, column: str, where: str) -> np.ndarray:
    """:func:`as_float_array` that also rejects NaN and infinite values, naming the rows."""
    arr = as_float_array(values, column, where)
    _check_finite(arr, column, where)
    return arr


def _validate(
    y: ArrayLike,
    uplift: ArrayLike | None,
    treatment: ArrayLike,
    where: str,
    need_both_outcomes: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Convert and check the three metric inputs; returns new float64 arrays."""
    yy = as_float_array(y, "y", where)
    tt = as_float_array(treatment, "treatment", where)
    uu = as_float_array(uplift, "uplift", where) if uplift is not None else None
    lengths = {"y": len(yy), "treatment": len(tt)}
    if uu is not None:
        lengths["uplift"] = len(uu)
    if len(set(lengths.values())) != 1:
        raise DataValidationError(where, None, f"inputs have different lengths {lengths}")
    if len(yy) == 0:
        raise DataValidationError(where, None, "inputs are empty")
    _check_binary(yy, "y", where)
    _check_binary(tt, "treatment", where)
    if uu is not None:
        _check_finite(uu, "uplift", where)
    n_t = int(tt.sum())
    if n_t == 0 or n_t == len(tt):
        only = 1 if n_t else 0
        raise DataValidationError(
            where, "treatment", f"both arms (0 and 1) must be present; all {len(tt)} rows are {only}"
        )
    if need_both_outcomes:
        n_pos = int(yy.sum())
        if n_pos == 0 or n_pos == len(yy):
            raise DataValidationError(
                where, "y", f"both outcomes (0 and 1) must be present; all {len(yy)} rows are "
                f"{1 if n_pos else 0}"
            )
    return yy, uu, tt


def _descending_order(uplift: np.ndarray) -> np.ndarray:
    """Positions sorted by descending score; ties: later position first (as scikit-uplift)."""
    return np.argsort(uplift, kind="stable")[::-1]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.trapezoid(y, x))


# --------------------------------------------------------------------------- curves


def _cumulative_counts(
    y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score (descending): clients so far, treated so far, responders per arm."""
    order = _descending_order(uplift)
    ys, ts, us = y[order], treatment[order], uplift[order]
    cut = np.r_[np.flatnonzero(np.diff(us)), us.size - 1]
    n_all = (cut + 1).astype("float64")
    n_t = np.cumsum(ts)[cut]
    resp_t = np.cumsum(ys * ts)[cut]
    resp_c = np.cumsum(ys * (1.0 - ts))[cut]
    return n_all, n_t, resp_t, resp_c


def _level_counts(
    y: np.ndarray, levels: np.ndarray, treatment: np.ndarray, n_levels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Same as :func:`_cumulative_counts` for a score of small non-negative integers, without
    sorting (the perfect curves rank by such a score)."""
    ids = levels.astype("int64")
    counts = np.bincount(ids, minlength=n_levels)[::-1]
    n_t = np.bincount(ids, weights=treatment, minlength=n_levels)[::-1]
    resp_t = np.bincount(ids, weights=y * treatment, minlength=n_levels)[::-1]
    resp_c = np.bincount(ids, weights=y * (1.0 - treatment), minlength=n_levels)[::-1]
    keep = counts > 0
    return (np.cumsum(counts[keep]).astype("float64"), np.cumsum(n_t[keep]),
            np.cumsum(resp_t[keep]), np.cumsum(resp_c[keep]))


def _qini_from_counts(
    n_all: np.ndarray, n_t: np.ndarray, resp_t: np.ndarray, resp_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n_c = n_all - n_t
    scale = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    values = resp_t - resp_c * scale
    return np.r_[0.0, n_all], np.r_[0.0, values]


def _qini_points(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _qini_from_counts(*_cumulative_counts(y, uplift, treatment))


def _uplift_from_counts(
    n_all: np.ndarray, n_t: np.ndarray, resp_t: np.ndarray, resp_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n_c = n_all - n_t
    rate_t = np.divide(resp_t, n_t, out=np.zeros_like(resp_t), where=n_t != 0)
    rate_c = np.divide(resp_c, n_c, out=np.zeros_like(resp_c), where=n_c != 0)
    return np.r_[0.0, n_all], np.r_[0.0, (rate_t - rate_c) * n_all]


def _uplift_points(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _uplift_from_counts(*_cumulative_counts(y, uplift, treatment))


def qini_curve(y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve: ``(x, q)`` with x = clients targeted so far (one point per distinct score,
    starting at 0) and q = treated responders minus control responders scaled to the treated
    count, ``R_t - R_c * N_t / N_c`` (0 scaling while no control client is included)."""
    yy, uu, tt = _validate(y, uplift, treatment, "qini_curve input")
    return _qini_points(yy, uu, tt)


def perfect_qini_curve(
    y: ArrayLike, treatment: ArrayLike, negative_effect: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The best Qini curve achievable on these outcomes.

    With ``negative_effect`` the ideal ranking puts treated responders first and control
    responders last; without it the curve rises straight to the total gain and stays there.
    """
    if not isinstance(negative_effect, bool):
        raise ConfigError(f"negative_effect must be a bool, got {negative_effect!r}")
    yy, _, tt = _validate(y, None, treatment, "perfect_qini_curve input")
    return _perfect_qini_points(yy, tt, negative_effect)


def _perfect_qini_points(y: np.ndarray, treatment: np.ndarray, negative_effect: bool) -> tuple[np.ndarray, np.ndarray]:
    if negative_effect:
        # ideal order: treated responders, then non-responders, then control responders
        levels = y * treatment - y * (1.0 - treatment) + 1.0
        return _qini_from_counts(*_level_counts(y, levels, treatment, 3))
    n_t = treatment.sum()
    n_c = treatment.size - n_t
    gain = (y * treatment).sum() - n_t * (y * (1.0 - treatment)).sum() / n_c
    if gain < 0:
        raise DataValidationError(
            "perfect_qini_curve input", "y",
            f"the total incremental gain is negative ({gain:.4g}), so the perfect curve without "
            "negative effects is undefined; use negative_effect=True",
        )
    return np.array([0.0, gain, float(y.size)]), np.array([0.0, gain, gain])


def uplift_curve(y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve: ``(x, u)`` with u = (response rate treated - response rate control) among
    the first x clients, times x (a rate is 0 while its arm is empty)."""
    yy, uu, tt = _validate(y, uplift, treatment, "uplift_curve input")
    return _uplift_points(yy, uu, tt)


def perfect_uplift_curve(y: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The best uplift curve on these outcomes (treated responders and control non-responders
    first, as defined by scikit-uplift)."""
    yy, _, tt = _validate(y, None, treatment, "perfect_uplift_curve input")
    return _perfect_uplift_points(yy, tt)


def _perfect_uplift_points(y: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    control_responders = np.sum((y == 1) & (treatment == 0))
    treated_non_responders = np.sum((y == 0) & (treatment == 1))
    summand = y if control_responders > treated_non_responders else treatment
    levels = 2.0 * (y == treatment) + summand
    return _uplift_from_counts(*_level_counts(y, levels, treatment, 4))


def _normalised_area(actual: tuple[np.ndarray, np.ndarray], perfect: tuple[np.ndarray, np.ndarray], what: str) -> float:
    """(area under actual - baseline) / (area under perfect - baseline); baseline = the chord of
    the perfect curve from (0, 0) to its end point."""
    x_end, y_end = perfect[0][-1], perfect[1][-1]
    baseline = 0.5 * x_end * y_end
    denom = _area(*perfect) - baseline
    if denom == 0:
        raise DataValidationError(
            f"{what} input", "y",
            "the perfect curve has no area above the random baseline, so the normalised area is undefined",
        )
    return float((_area(*actual) - baseline) / denom)


def qini_auc(y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, negative_effect: bool = True) -> float:
    """Normalised area under the Qini curve (scikit-uplift's ``qini_auc_score``).

    1 = the perfect ranking of these outcomes, 0 = random targeting. ``y`` must contain both
    outcomes.
    """
    if not isinstance(negative_effect, bool):
        raise ConfigError(f"negative_effect must be a bool, got {negative_effect!r}")
    yy, uu, tt = _validate(y, uplift, treatment, "qini_auc input", need_both_outcomes=True)
    return _normalised_area(
        _qini_points(yy, uu, tt), _perfect_qini_points(yy, tt, negative_effect), "qini_auc"
    )


def expected_qini_gain(p_outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Area between the Qini curve and the random-targeting chord, expected over the outcome draw.

    ``p_outcome[i]`` is client i's probability of responding in the arm they are in (known
    only for simulated data). The Qini curve and the chord are linear in the outcomes for a
    fixed ranking and assignment, so putting the probabilities in place of the 0/1 outcomes
    gives the expectation exactly. It is the unnormalised numerator of :func:`qini_auc`;
    the ratio of two rankings' gains on the same clients compares them without the noise of
    one realisation of the outcomes.
    """
    where = "expected_qini_gain input"
    pp = as_float_array(p_outcome, "p_outcome", where)
    _check_finite(pp, "p_outcome", where)
    outside = (pp < 0) | (pp > 1)
    if outside.any():
        rows = np.flatnonzero(outside)[:5]
        raise DataValidationError(where, "p_outcome", f"{int(outside.sum())} value(s) outside [0, 1]", rows.tolist())
    # validate lengths, arms and scores with a placeholder 0/1 outcome of the same length
    _, uu, tt = _validate(np.zeros(pp.size), uplift, treatment, where)
    x, q = _qini_points(pp, uu, tt)
    return _area(x, q) - 0.5 * x[-1] * q[-1]


def uplift_auc(y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the uplift curve (scikit-uplift's ``uplift_auc_score``)."""
    yy, uu, tt = _validate(y, uplift, treatment, "uplift_auc input", need_both_outcomes=True)
    return _normalised_area(_uplift_points(yy, uu, tt), _perfect_uplift_points(yy, tt), "uplift_auc")


# --------------------------------------------------------------------------- uplift@k and tables


def _top_count(k: float | int, n: int, what: str) -> int:
    """Number of clients in the top ``k``: a fraction in (0, 1) or a count in [1, n)."""
    if isinstance(k, (bool, np.bool_)):
        raise ConfigError(f"{what}: k must be a fraction in (0, 1) or a positive count, got {k!r}")
    if isinstance(k, (int, np.integer)):
        if not 0 < k < n:
            raise ConfigError(f"{what}: k={k} must be a count between 1 and {n - 1} (the number of rows - 1)")
        return int(k)
    if isinstance(k, (float, np.floating)):
        if not 0 < k < 1:
            raise ConfigError(f"{what}: k={k} must be a fraction strictly between 0 and 1")
        return int(n * k)
    raise ConfigError(f"{what}: k must be a fraction in (0, 1) or a positive count, got {k!r}")


def uplift_at_k(
    y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, k: float | int = 0.3, strategy: str = "overall"
) -> float:
    """Response rate of treated minus control clients among the top ``k`` by score
    (scikit-uplift's ``uplift_at_k``).

    ``k``: a fraction in (0, 1) or a count. ``strategy="overall"`` takes the top ``k`` of all
    clients and compares the arms inside it; ``"by_group"`` takes the top ``k`` of each arm
    separately. Raises DataValidationError when an arm has no client in the top ``k``.
    """
    where = "uplift_at_k input"
    if strategy not in _STRATEGIES:
        raise ConfigError(f"uplift_at_k: strategy must be one of {list(_STRATEGIES)}, got {strategy!r}")
    yy, uu, tt = _validate(y, uplift, treatment, where)
    n = yy.size
    order = _descending_order(uu)
    ys, ts = yy[order], tt[order]
    if strategy == "overall":
        top = _top_count(k, n, "uplift_at_k")
        ys, ts = ys[:top], ts[:top]
        n_t = ts.sum()
        n_c = top - n_t
        if n_t == 0 or n_c == 0:
            arm = "treated" if n_t == 0 else "control"
            raise DataValidationError(
                where, "treatment", f"the top {top} clients (k={k}) hold no {arm} client, so uplift@k is undefined"
            )
        return float((ys * ts).sum() / n_t - (ys * (1.0 - ts)).sum() / n_c)
    y_t, y_c = ys[ts == 1], ys[ts == 0]
    if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
        _top_count(k, n, "uplift_at_k")
        if k > y_t.size or k > y_c.size:
            raise ConfigError(
                f"uplift_at_k: k={k} is larger than an arm (treated {y_t.size}, control {y_c.size})"
            )
        top_t = top_c = int(k)
    else:
        _top_count(k, n, "uplift_at_k")
        top_t, top_c = int(y_t.size * k), int(y_c.size * k)
    if top_t == 0 or top_c == 0:
        raise DataValidationError(
            where, "treatment", f"k={k} selects no client of an arm (treated {top_t}, control {top_c})"
        )
    return float(y_t[:top_t].mean() - y_c[:top_c].mean())


def _bin_labels(bins: int) -> list[str]:
    edges = [round(p * 100 / bins) for p in range(0, bins + 1)]
    return [f"{edges[i]}-{edges[i + 1]}" for i in range(bins)]


def _bin_ids(n: int, bins: int) -> np.ndarray:
    """Bin of each sorted position; like ``np.array_split``, the first ``n % bins`` bins hold one more."""
    size, extra = divmod(n, bins)
    sizes = np.full(bins, size)
    sizes[:extra] += 1
    return np.repeat(np.arange(bins), sizes)


def uplift_by_percentile(
    y: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    bins: int = 10,
    strategy: str = "overall",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Response rates and uplift per score bin, best bin first, plus a ``total`` row.

    Rows are indexed by ``percentile`` ("0-10", "10-20", ... and "total"). Columns:
    n_treatment, n_control, response_rate_treatment, response_rate_control, uplift,
    std_treatment, std_control, std_uplift (the standard errors sqrt(p(1-p)/n) of the rates
    and of their difference), ci_low, ci_high (normal ``1 - alpha`` interval of the uplift).
    The bin rows match scikit-uplift's ``uplift_by_percentile(std=True)``; the total row uses
    all clients (a rate is NaN when its arm is empty in a bin).
    """
    where = "uplift_by_percentile input"
    if strategy not in _STRATEGIES:
        raise ConfigError(f"uplift_by_percentile: strategy must be one of {list(_STRATEGIES)}, got {strategy!r}")
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)) or bins <= 0:
        raise ConfigError(f"uplift_by_percentile: bins must be a positive integer, got {bins!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"uplift_by_percentile: alpha must be in (0, 1), got {alpha!r}")
    yy, uu, tt = _validate(y, uplift, treatment, where)
    n = yy.size
    if bins >= n:
        raise ConfigError(f"uplift_by_percentile: bins={bins} must be smaller than the number of rows {n}")
    order = _descending_order(uu)
    ys, ts = yy[order], tt[order]
    if strategy == "overall":
        ids = _bin_ids(n, bins)
        n_t = np.bincount(ids, weights=ts, minlength=bins)
        n_c = np.bincount(ids, weights=1.0 - ts, minlength=bins)
        r_t = np.bincount(ids, weights=ys * ts, minlength=bins)
        r_c = np.bincount(ids, weights=ys * (1.0 - ts), minlength=bins)
    else:
        y_t, y_c = ys[ts == 1], ys[ts == 0]
        ids_t, ids_c = _bin_ids(y_t.size, bins), _bin_ids(y_c.size, bins)
        n_t = np.bincount(ids_t, minlength=bins).astype("float64")
        n_c = np.bincount(ids_c, minlength=bins).astype("float64")
        r_t = np.bincount(ids_t, weights=y_t, minlength=bins)
        r_c = np.bincount(ids_c, weights=y_c, minlength=bins)
    n_t = np.r_[n_t, tt.sum()]
    n_c = np.r_[n_c, n - tt.sum()]
    r_t = np.r_[r_t, (yy * tt).sum()]
    r_c = np.r_[r_c, (yy * (1.0 - tt)).sum()]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t = np.where(n_t > 0, r_t / n_t, np.nan)
        rate_c = np.where(n_c > 0, r_c / n_c, np.nan)
        se_t = np.sqrt(rate_t * (1.0 - rate_t) / n_t)
        se_c = np.sqrt(rate_c * (1.0 - rate_c) / n_c)
    lift = rate_t - rate_c
    se = np.sqrt(se_t**2 + se_c**2)
    z = sps.norm.ppf(1.0 - alpha / 2.0)
    return pd.DataFrame(
        {
            "n_treatment": n_t.astype("int64"),
            "n_control": n_c.astype("int64"),
            "response_rate_treatment": rate_t,
            "response_rate_control": rate_c,
            "uplift": lift,
            "std_treatment": se_t,
            "std_control": se_c,
            "std_uplift": se,
            "ci_low": lift - z * se,
            "ci_high": lift + z * se,
        },
        index=pd.Index(_bin_labels(bins) + ["total"], name="percentile"),
    )


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    stratify: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of ``fn(*arrays)``: ``(point, lo, hi)``.

    Rows are resampled with replacement (the same rows for every array); with ``stratify``
    (e.g. the treatment column) rows are resampled within each stratum so each keeps its size.
    ``point`` is ``fn`` on the original rows. A replicate where ``fn`` raises an
    :class:`UpliftError` or returns NaN is skipped; fewer than half valid replicates is an error.
    Deterministic in ``seed``.
    """
    if not arrays:
        raise ConfigError("bootstrap_ci: give at least one array")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ConfigError(f"bootstrap_ci: n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"bootstrap_ci: alpha must be in (0, 1), got {alpha!r}")
    data = [a.to_numpy() if isinstance(a, (pd.Series, pd.Index)) else np.asarray(a) for a in arrays]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise DataValidationError("bootstrap_ci input", None, f"arrays have different lengths {[len(a) for a in data]}")
    if n == 0:
        raise DataValidationError("bootstrap_ci input", None, "arrays are empty")
    strata: list[np.ndarray] | None = None
    if stratify is not None:
        s = stratify.to_numpy() if isinstance(stratify, (pd.Series, pd.Index)) else np.asarray(stratify)
        if len(s) != n:
            raise DataValidationError("bootstrap_ci input", "stratify", f"has length {len(s)}, the arrays {n}")
        _, inverse = np.unique(s, return_inverse=True)
        members = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse)
        strata = np.split(members, np.cumsum(counts)[:-1])
    point = float(fn(*data))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        if strata is None:
            idx = rng.integers(0, n, n)
        else:
            idx = np.concatenate([m[rng.integers(0, m.size, m.size)] for m in strata])
        try:
            v = float(fn(*(a[idx] for a in data)))
        except UpliftError:
            continue
        if np.isfinite(v):
            values.append(v)
    if len(values) < max(2, n_boot // 2):
        raise DataValidationError(
            "bootstrap_ci input", None,
            f"only {len(values)} of {n_boot} bootstrap replicates gave a finite value; the data are too small or degenerate",
        )
    lo, hi = np.quantile(np.asarray(values), [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)


# --------------------------------------------------------------------------- response models


def _validate_response(y: ArrayLike, proba: ArrayLike, where: str, name: str = "proba") -> tuple[np.ndarray, np.ndarray]:
    yy = as_float_array(y, "y", where)
    pp = as_float_array(proba, name, where)
    if yy.size != pp.size:
        raise DataValidationError(where, None, f"inputs have different lengths (y {yy.size}, {name} {pp.size})")
    if yy.size == 0:
        raise DataValidationError(where, None, "inputs are empty")
    _check_binary(yy, "y", where)
    _check_finite(pp, name, where)
    n_pos = int(yy.sum())
    if n_pos == 0 or n_pos == yy.size:
        raise DataValidationError(where, "y", f"both classes (0 and 1) must be present; all rows are {1 if n_pos else 0}")
    return yy.astype("int64"), pp


def _ranked_counts(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when predicting 1 at or above each distinct score (descending)."""
    order = np.argsort(proba, kind="stable")[::-1]
    ys, ps = y[order], proba[order]
    cut = np.r_[np.flatnonzero(np.diff(ps)), ps.size - 1]
    tp = np.cumsum(ys)[cut]
    return tp, (cut + 1) - tp


def _roc_area(tp: np.ndarray, fp: np.ndarray, n_pos: float, n_neg: float) -> float:
    """Area under the ROC curve through (0, 0) and the ranked counts of :func:`_ranked_counts`."""
    return _area(np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos])


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """ROC-AUC of ``score`` for the 0/1 label ``y`` (scikit-learn's ``roc_auc_score``): tied
    scores count one half; both classes must be present and every score finite."""
    yy, ss = _validate_response(y, score, "roc_auc input", "score")
    n_pos = float(yy.sum())
    return _roc_area(*_ranked_counts(yy.astype("float64"), ss), n_pos, yy.size - n_pos)


def response_metrics(y: ArrayLike, proba: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), and precision / recall / F1 of ``proba >= threshold``.

    Same definitions and values as scikit-learn's ``roc_auc_score``, ``average_precision_score``,
    ``precision_score``, ``recall_score`` and ``f1_score`` (0 where a ratio has no denominator),
    computed from one sort.
    """
    yy, pp = _validate_response(y, proba, "response_metrics input")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not np.isfinite(threshold):
        raise ConfigError(f"response_metrics: threshold must be a finite number, got {threshold!r}")
    n_pos = float(yy.sum())
    n_neg = yy.size - n_pos
    tp, fp = _ranked_counts(yy.astype("float64"), pp)
    recall_steps = np.diff(np.r_[0.0, tp / n_pos])
    pred = pp >= threshold
    hit = float((yy[pred] == 1).sum())
    n_pred = float(pred.sum())
    precision = hit / n_pred if n_pred else 0.0
    recall = hit / n_pos
    f1 = 2 * hit / (n_pred + n_pos) if (n_pred + n_pos) else 0.0
    return {
        "roc_auc": _roc_area(tp, fp, n_pos, n_neg),
        "pr_auc": float(np.sum(recall_steps * tp / (tp + fp))),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": float(threshold),
    }


def tune_threshold_f1(y: ArrayLike, proba: ArrayLike) -> float:
    """The score threshold (predict 1 when ``proba >= threshold``) with the highest F1.

    Candidates are the distinct scores; on equal F1 the lowest such threshold wins.
    """
    yy, pp = _validate_response(y, proba, "tune_threshold_f1 input")
    tp, fp = _ranked_counts(yy.astype("float64"), pp)
    f1 = 2 * tp / (tp + fp + yy.sum())
    thresholds = np.unique(pp)[::-1]
    best = np.flatnonzero(f1 == f1.max())[-1]  # the last of the descending candidates = the lowest
    return float(thresholds[best])


__all__: Sequence[str] = (
    "qini_curve", "perfect_qini_curve", "qini_auc", "uplift_curve", "perfect_uplift_curve",
    "uplift_auc", "uplift_at_k", "uplift_by_percentile", "bootstrap_ci", "response_metrics",
    "roc_auc", "tune_threshold_f1",
)
