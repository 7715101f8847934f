"""Statistics of a table and of a factor table, as the data profile reports them.

Everything here is pure: functions take frames, series or arrays and return new frames,
numbers or small dataclasses; no input is modified. Tests of significance and effect sizes
come from :mod:`tasks.analytics.stats` (the sample-ratio test, the CI of a difference of
proportions) and :mod:`tasks.analytics.metrics` (ROC-AUC, Qini AUC); this module adds what
only the profile needs:

* column kinds, seeded row samples, missing values, full-row and key duplicates;
* per-column distributions: numeric summaries, top values of categoricals, constant and
  almost-constant columns (share of the most frequent value, missing counted as a value);
* target and treatment balance, their cross-table, the response rate per arm, the planned
  arm shares (the data config's design shares of the treatment, ``treatment_shares``; the
  profile's ``expected_arm_shares`` for raw arm columns; equal otherwise), the naive uplift
  and the arm tests per group;
* Pearson correlation pairs and the variance inflation factor of every numeric factor
  (``inf`` for exact duplicates and perfect collinearity);
* the univariate strength of each factor: ROC-AUC against the target (a possible leak beyond
  configurable limits) and, for uplift data, the uplift difference between the factor's
  halves and its Qini AUC as an uplift score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from tasks.analytics import metrics, stats
from tasks.core.errors import ConfigError, DataValidationError, UpliftError
from tasks.modelling.guards import suspected_leaks


# --------------------------------------------------------------------------- basic statistics


def column_kind(series: pd.Series) -> str:
    """Kind of a column for profiling: ``numeric``, ``bool``, ``datetime`` or ``categorical``."""
    dt = series.dtype
    if pdt.is_bool_dtype(dt):
        return "bool"
    if pdt.is_numeric_dtype(dt):
        return "numeric"
    if pdt.is_datetime64_any_dtype(dt):
        return "datetime"
    return "categorical"


def sample_rows(df: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    """A seeded random sample of ``max_rows`` rows (original order kept) when ``df`` is larger.

    Returns the frame to profile and whether it is a sample.
    """
    if len(df) <= max_rows:
        return df, False
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(len(df), size=max_rows, replace=False))
    return df.iloc[pos], True


def missing_values(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values per column: ``column``, ``missing`` (count) and ``share`` of rows."""
    n = len(df)
    counts = df.isna().sum()
    return pd.DataFrame(
        {
            "column": [str(c) for c in counts.index],
            "missing": counts.to_numpy(dtype="int64"),
            "share": counts.to_numpy(dtype="float64") / n if n else np.zeros(len(counts)),
        }
    )


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row; equal rows (NaN equal to NaN) get equal hashes."""
    return pd.util.hash_pandas_object(df, index=False).to_numpy()


def _rows_sharing_a_hash(df: pd.DataFrame) -> np.ndarray:
    """Positions (ascending) of the rows whose hash occurs more than once: every repeated row
    is among them, plus, very rarely, rows that merely collide."""
    h = _row_hashes(df)
    order = np.argsort(h, kind="stable")
    ranked = h[order]
    del h
    same = ranked[1:] == ranked[:-1]
    del ranked
    mark = np.zeros(order.size, dtype=bool)
    mark[1:] |= same
    mark[:-1] |= same
    return np.sort(order[mark])


def duplicate_counts(df: pd.DataFrame, key: Sequence[str] | None = None) -> dict[str, int | None]:
    """Rows that repeat an earlier row entirely (``full_row``) and rows that repeat a key.

    ``key_rows`` counts every row whose key occurs more than once (all copies), ``None``
    when no key is given. A missing key column is a :class:`DataValidationError`.
    The rows are hashed first and only those sharing a hash are compared exactly, which
    keeps tens of millions of event rows to a fraction of pandas' ``duplicated`` memory.
    """
    missing = [k for k in (key or []) if k not in df.columns]
    if missing:
        raise DataValidationError("profile", missing[0], f"key column(s) {missing} not in the table")

    def repeats(frame: pd.DataFrame, keep: str | bool) -> int:
        try:
            rows = _rows_sharing_a_hash(frame)
        except TypeError:  # unhashable cells (lists, dicts): compare everything
            return int(frame.duplicated(keep=keep).sum())
        return int(frame.iloc[rows].duplicated(keep=keep).sum()) if rows.size else 0

    full = repeats(df, "first")
    if not key:
        return {"full_row": full, "key_rows": None}
    return {"full_row": full, "key_rows": repeats(df[list(key)], False)}


def numeric_summary(series: pd.Series) -> dict[str, float]:
    """Count, mean, standard deviation, min, quartiles and max of a numeric column (NaN skipped)."""
    x = pd.to_numeric(series, errors="coerce").astype("float64").dropna().to_numpy()
    if len(x) == 0:
        return {k: math.nan for k in ("count", "mean", "std", "min", "p25", "p50", "p75", "max")} | {"count": 0.0}
    q = np.quantile(x, [0.25, 0.5, 0.75])
    return {
        "count": float(len(x)),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
        "min": float(x.min()),
        "p25": float(q[0]),
        "p50": float(q[1]),
        "p75": float(q[2]),
        "max": float(x.max()),
    }


def top_values(series: pd.Series, k: int = 10) -> pd.DataFrame:
    """The ``k`` most frequent values (missing counted as a value): ``value``, ``count``, ``share``.

    Ties are broken by the value's text so that the result does not depend on row order.
    """
    n = len(series)
    counts = series.astype("object").where(series.notna(), "<missing>").map(str).value_counts()
    frame = pd.DataFrame({"value": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
    frame = frame.sort_values(["count", "value"], ascending=[False, True], kind="mergesort")
    frame = frame.head(k).reset_index(drop=True)
    frame["share"] = frame["count"] / n if n else 0.0
    return frame


def constant_columns(df: pd.DataFrame, near_share: float = 0.99) -> pd.DataFrame:
    """Columns whose most frequent value (missing counted as one) covers ``>= near_share`` of rows.

    Returns ``column``, ``top_value``, ``top_share``, ``n_unique`` and ``status``
    (``constant`` when one value only, else ``almost constant``), strongest first.
    """
    rows = []
    n = len(df)
    for col in df.columns:
        s = df[col]
        counts = s.value_counts(dropna=False)
        if n == 0 or len(counts) == 0:
            continue
        share = float(counts.iloc[0]) / n
        if share >= near_share:
            top = counts.index[0]
            rows.append(
                {
                    "column": str(col),
                    "top_value": "<missing>" if pd.isna(top) else str(top),
                    "top_share": share,
                    "n_unique": int(len(counts)),
                    "status": "constant" if len(counts) == 1 else "almost constant",
                }
            )
    out = pd.DataFrame(rows, columns=["column", "top_value", "top_share", "n_unique", "status"])
    return out.sort_values(["top_share", "column"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def numeric_matrix(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The numeric and boolean columns of ``df`` as float64 (booleans as 0/1), a new frame."""
    cols = [c for c in (columns if columns is not None else df.columns) if column_kind(df[c]) in ("numeric", "bool")]
    return pd.DataFrame({c: df[c].astype("float64") for c in cols}, index=df.index)


# --------------------------------------------------------------------------- target and arms


def balance(series: pd.Series) -> pd.DataFrame:
    """Counts and shares of each value of a target or treatment column, sorted by value."""
    counts = series.value_counts(dropna=False).sort_index()
    n = len(series)
    return pd.DataFrame(
        {"value": [str(v) for v in counts.index], "count": counts.to_numpy(dtype="int64"),
         "share": counts.to_numpy(dtype="float64") / n if n else 0.0}
    )


def planned_arm_shares(arms: Sequence[str], expected_shares: Mapping[str, float] | None = None) -> dict[str, float]:
    """The planned share of each arm for the sample-ratio test (:func:`tasks.analytics.stats.srm_test`).

    Equal shares when ``expected_shares`` is None; otherwise the configured shares of these
    arms, rescaled to sum to 1 (shares of other arms are ignored). An arm without a
    configured share is a :class:`ConfigError`; fewer than two arms a
    :class:`DataValidationError`.
    """
    arms = list(arms)
    if len(arms) < 2:
        raise DataValidationError("profile", None, f"an arm-size test needs at least two arms, got {arms}")
    if expected_shares is None:
        return {a: 1.0 / len(arms) for a in arms}
    # keys as the command line gives them: {0: 0.5, 1: 0.5} has int keys, the arms are text
    expected_shares = {str(k): v for k, v in expected_shares.items()}
    missing = [a for a in arms if a not in expected_shares]
    if missing:
        raise ConfigError(
            f"config 'profile', key 'expected_arm_shares': no share for arm(s) {missing}; "
            f"arms are {arms}"
        )
    total = sum(float(expected_shares[a]) for a in arms)
    return {a: float(expected_shares[a]) / total for a in arms}


_TREATED_KEYS = {"treated": "1", "1": "1", "true": "1", "control": "0", "0": "0", "false": "0"}


def treatment_design_shares(shares: Mapping[Any, float] | None) -> dict[str, float] | None:
    """The design shares of a 0/1 treatment as ``{"0": control, "1": treated}``, from a data
    config's ``treatment_shares`` (keys ``treated`` / ``control``, or ``1`` / ``0``); None
    when not given (the arm test then assumes equal shares and says so).

    On the command line: ``data.treatment_shares={treated:0.75,control:0.25}``.
    """
    if shares is None:
        return None
    out: dict[str, float] = {}
    for key, value in shares.items():
        arm = _TREATED_KEYS.get(str(key).strip().lower())
        if arm is None:
            raise ConfigError(
                f"config 'data', key 'treatment_shares': unknown arm {key!r}; use treated and control, e.g. "
                "data.treatment_shares={treated:0.75,control:0.25}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"config 'data', key 'treatment_shares.{key}': must be a positive share, got {value!r}")
        out[arm] = float(value)
    if set(out) != {"0", "1"}:
        raise ConfigError("config 'data', key 'treatment_shares': give both arms, e.g. "
                          "data.treatment_shares={treated:0.75,control:0.25}")
    total = out["0"] + out["1"]
    return {"0": out["0"] / total, "1": out["1"] / total}


def arm_size_chi2(counts: Mapping[str, int], expected_shares: Mapping[str, float] | None = None) -> tuple[float, float]:
    """``(chi2, p_value)`` of the arm sizes against the planned shares (:func:`planned_arm_shares`):
    the sample-ratio test of :func:`tasks.analytics.stats.srm_test`. A high p-value means the
    arm sizes are consistent with the intended randomisation."""
    return stats.srm_test(counts, planned_arm_shares(list(counts), expected_shares))


def crosstab(target: pd.Series, treatment: pd.Series) -> pd.DataFrame:
    """Counts of target values (rows) by treatment arm (columns), with totals."""
    t = pd.crosstab(target.rename("target"), treatment.rename("treatment"), margins=True, margins_name="total")
    t.index = [str(i) for i in t.index]
    t.columns = [str(c) for c in t.columns]
    return t


def rate_by_arm(y: pd.Series, arm: pd.Series) -> pd.DataFrame:
    """Response rate per arm: ``arm``, ``n``, ``responders``, ``rate`` (rows with a missing arm skipped)."""
    frame = pd.DataFrame({"arm": arm.to_numpy(), "y": y.astype("float64").to_numpy()}).dropna(subset=["arm"])
    g = frame.groupby("arm", sort=True)["y"]
    out = pd.DataFrame({"n": g.size(), "responders": g.sum(), "rate": g.mean()}).reset_index()
    out["arm"] = out["arm"].map(str)
    out["n"] = out["n"].astype("int64")
    return out


@dataclass(frozen=True)
class NaiveUplift:
    """Difference in response rate between treated and control with a normal-approximation CI."""

    rate_treated: float
    rate_control: float
    uplift: float
    ci_low: float
    ci_high: float
    p_value: float
    n_treated: int
    n_control: int


def naive_uplift(y: pd.Series, treatment: pd.Series, alpha: float = 0.05) -> NaiveUplift:
    """Treated minus control response rate, its ``1 - alpha`` CI and a two-sided z-test p-value
    (:func:`tasks.analytics.stats.diff_in_proportions`: unpooled standard error, normal interval).

    ``treatment`` holds 0/1; both arms must be present.
    """
    t = treatment.astype("float64").to_numpy()
    yy = y.astype("float64").to_numpy()
    yt, yc = yy[t == 1], yy[t == 0]
    if len(yt) == 0 or len(yc) == 0:
        raise DataValidationError(
            "profile", str(treatment.name), f"treatment has one arm only (treated {len(yt)}, control {len(yc)})"
        )
    e = stats.diff_in_proportions(float(yt.mean()), len(yt), float(yc.mean()), len(yc), alpha)
    return NaiveUplift(e.mean_t, e.mean_c, e.estimate, e.ci_low, e.ci_high, e.p_value, e.n_t, e.n_c)


def arms_by_group(
    y: pd.Series, treatment: pd.Series, group: pd.Series, expected_shares: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Arm sizes, their chi-square test and the naive uplift inside each group (e.g. each past campaign).

    Returns ``group``, ``n``, ``treated``, ``control``, ``chi2``, ``p_value``,
    ``rate_treated``, ``rate_control`` and ``uplift``; a group with one arm only gets NaN
    test and uplift values.
    """
    frame = pd.DataFrame({"g": group.to_numpy(), "t": treatment.astype("int64").to_numpy(),
                          "y": y.astype("float64").to_numpy()})
    rows = []
    for g, part in frame.groupby("g", sort=True, observed=True):
        nt, nc = int((part["t"] == 1).sum()), int((part["t"] == 0).sum())
        row: dict[str, Any] = {"group": str(g), "n": len(part), "treated": nt, "control": nc,
                               "chi2": math.nan, "p_value": math.nan, "rate_treated": math.nan,
                               "rate_control": math.nan, "uplift": math.nan}
        if nt and nc:
            row["chi2"], row["p_value"] = arm_size_chi2({"0": nc, "1": nt}, expected_shares)
            row["rate_treated"] = float(part.loc[part["t"] == 1, "y"].mean())
            row["rate_control"] = float(part.loc[part["t"] == 0, "y"].mean())
            row["uplift"] = row["rate_treated"] - row["rate_control"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["group", "n", "treated", "control", "chi2", "p_value",
                                       "rate_treated", "rate_control", "uplift"])


# --------------------------------------------------------------------------- relations between factors


def correlation_pairs(corr: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Pairs of distinct columns with ``|r| >= limit``: ``a``, ``b``, ``r``, strongest first."""
    cols = list(corr.columns)
    rows = []
    values = corr.to_numpy()
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            r = values[i, j]
            if np.isfinite(r) and abs(r) >= limit:
                rows.append({"a": str(cols[i]), "b": str(cols[j]), "r": float(r)})
    out = pd.DataFrame(rows, columns=["a", "b", "r"])
    return out.reindex(out["r"].abs().sort_values(ascending=False, kind="mergesort").index).reset_index(drop=True)


def vif(df: pd.DataFrame, tol: float = 1e-9) -> pd.DataFrame:
    """Variance inflation factor of every column of a numeric frame.

    Each column is regressed (least squares with an intercept) on all the others over the
    rows without missing values; ``VIF = 1 / (1 - R^2)``. The regressions are solved on the
    correlation matrix of the standardised columns, which gives the same R^2 as regressing
    the raw columns and costs one pass over the rows. Exact duplicates and perfect linear
    combinations (``1 - R^2 <= tol``) give ``inf`` and ``note`` names up to five columns
    of the combination (largest standardised weights); a constant column has no VIF (NaN,
    ``note`` says why). Returns ``column``, ``vif``, ``r2`` and ``note`` in input order.
    """
    x = df.astype("float64").dropna()
    cols = list(x.columns)
    values = x.to_numpy()
    n = len(values)
    std = values.std(axis=0) if n else np.zeros(len(cols))
    varying = [i for i in range(len(cols)) if std[i] > 0]
    corr = np.zeros((0, 0))
    if n >= 2 and varying:
        z = (values[:, varying] - values[:, varying].mean(axis=0)) / std[varying]
        corr = (z.T @ z) / n
    rows = []
    for i, col in enumerate(cols):
        if n < 2 or std[i] == 0:
            rows.append({"column": str(col), "vif": math.nan, "r2": math.nan,
                         "note": "constant" if n >= 2 else "too few complete rows"})
            continue
        k = varying.index(i)
        others = [j for j in range(len(varying)) if j != k]
        if not others:
            r2 = 0.0
        else:
            beta, *_ = np.linalg.lstsq(corr[np.ix_(others, others)], corr[others, k], rcond=1e-12)
            r2 = float(corr[k, others] @ beta)
        if 1.0 - r2 <= tol:
            names = [str(cols[varying[j]]) for j in others]
            weight = np.abs(beta)
            top = [names[j] for j in np.argsort(-weight, kind="mergesort") if weight[j] >= 0.05][:5]
            rows.append({"column": str(col), "vif": math.inf, "r2": 1.0,
                         "note": "perfectly collinear with " + ", ".join(top)})
        else:
            rows.append({"column": str(col), "vif": 1.0 / (1.0 - r2), "r2": r2, "note": ""})
    return pd.DataFrame(rows, columns=["column", "vif", "r2", "note"])


# --------------------------------------------------------------------------- factors against the outcome


def factor_auc(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> float:
    """ROC-AUC of the factor ``x`` as a score for the 0/1 label ``y``
    (:func:`tasks.analytics.metrics.roc_auc`; ties count one half).

    Rows with a missing or infinite factor value or a missing label are skipped; NaN when
    the remaining rows hold a single class.
    """
    xs = np.asarray(x, dtype="float64")
    ys = np.asarray(y, dtype="float64")
    ok = np.isfinite(xs) & ~np.isnan(ys)
    xs, ys = xs[ok], ys[ok]
    if not (ys == 1).any() or not (ys == 0).any():
        return math.nan
    return metrics.roc_auc(ys, xs)


def half_split_uplift(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray, treatment: pd.Series | np.ndarray) -> float:
    """Uplift among clients in the factor's top half minus uplift in its bottom half.

    The top half holds values above the median (at or above it when nothing is above); the
    uplift of a half is the treated response rate minus the control response rate. NaN
    when a half or an arm inside a half is empty. A large magnitude means the factor alone
    separates who reacts to the offer.
    """
    xs = np.asarray(x, dtype="float64")
    ys = np.asarray(y, dtype="float64")
    ts = np.asarray(treatment, dtype="float64")
    ok = ~np.isnan(xs)
    xs, ys, ts = xs[ok], ys[ok], ts[ok]
    if len(xs) == 0:
        return math.nan
    med = np.median(xs)
    top = xs > med
    if not top.any():
        top = xs >= med
    parts = []
    for mask in (top, ~top):
        yt, yc = ys[mask & (ts == 1)], ys[mask & (ts == 0)]
        if len(yt) == 0 or len(yc) == 0:
            return math.nan
        parts.append(yt.mean() - yc.mean())
    return float(parts[0] - parts[1])


def factor_qini(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray, treatment: pd.Series | np.ndarray) -> float:
    """Normalised Qini AUC of the factor used alone as an uplift score (rows with NaN skipped).

    Same definition as :func:`tasks.analytics.metrics.qini_auc`: 0 is random targeting, 1 the best
    ranking of these outcomes, negative ranks the wrong way round. NaN when the rows lack
    an outcome or an arm.
    """
    xs = np.asarray(x, dtype="float64")
    ok = ~np.isnan(xs)
    try:
        return float(metrics.qini_auc(np.asarray(y)[ok], xs[ok], np.asarray(treatment)[ok]))
    except UpliftError:
        return math.nan


def factor_strength(
    df: pd.DataFrame,
    factors: Sequence[str],
    target: str,
    treatment: str | None = None,
) -> pd.DataFrame:
    """Univariate strength of each numeric factor against the target.

    Returns ``factor``, ``auc``, for uplift data ``uplift_diff`` (see
    :func:`half_split_uplift`) and ``qini`` (see :func:`factor_qini`), and ``possible_leak``: the
    leak rule training uses (:func:`tasks.modelling.guards.suspected_leaks`: alone far more
    predictive than every other factor), strongest AUC (furthest from 0.5) first. Non-numeric factors are
    skipped.
    """
    for col in [target, *([treatment] if treatment else [])]:
        if col not in df.columns:
            raise DataValidationError("profile", col, f"column not in the factor table ({list(df.columns)[:10]} ...)")
    x = numeric_matrix(df, [f for f in factors if f in df.columns and f not in (target, treatment)])
    y = df[target].astype("float64")
    rows = []
    for col in x.columns:
        auc = factor_auc(x[col], y)
        row: dict[str, Any] = {"factor": str(col), "auc": auc}
        if treatment:
            row["uplift_diff"] = half_split_uplift(x[col], y, df[treatment])
            row["qini"] = factor_qini(x[col], y, df[treatment])
        rows.append(row)
    leaks = {d["column"] for d in suspected_leaks(x, y.to_numpy(), max_rows=None)}
    for row in rows:
        row["possible_leak"] = row["factor"] in leaks
    columns = ["factor", "auc", *(["uplift_diff", "qini"] if treatment else []), "possible_leak"]
    out = pd.DataFrame(rows, columns=columns)
    if len(out):
        order = (out["auc"] - 0.5).abs().fillna(-1.0).sort_values(ascending=False, kind="mergesort").index
        out = out.loc[order].reset_index(drop=True)
    return out
