"""Data profile: the statistics an analyst checks before trusting a model on a dataset.

Everything here is pure: functions take frames and plain values and return new frames or
small dataclasses; nothing reads or writes files and no input frame is modified. The flow
(``flows/profile.py``) loads the tables, calls :func:`profile_table` for every raw table and
:func:`profile_analysis` for the factor table with its target (and treatment for uplift
data), then renders the result with :func:`render_markdown` and :func:`render_html`.

Statistics:

* row counts, missing values, full-row and key duplicates (on the full table);
* per-column distributions: numeric summaries and histograms, top values of categoricals;
* constant and almost-constant columns (share of the most frequent value, missing values
  counted as a value);
* target balance, treatment balance, their cross-table, response rate per arm, the naive
  uplift with a normal-approximation confidence interval and a chi-square test of the arm
  sizes against the expected shares (equal unless configured);
* Pearson correlations, the variance inflation factor of every numeric factor (``inf`` for
  exact duplicates and perfect collinearity);
* univariate ROC-AUC of every numeric factor against the target, flagged as a possible leak
  beyond configurable limits, and for uplift data the difference in uplift between the
  factor's top and bottom halves.
"""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from scipy import stats as sps

from tasks.errors import ConfigError, DataValidationError


@dataclass
class ProfileConfig:
    """Options of the data profile (``conf/profile/default.yaml``)."""

    max_rows: int = 200_000
    seed: int = 2026
    as_of: str | None = None
    top_values: int = 10
    histogram_bins: int = 30
    max_plot_columns: int = 36
    max_heatmap_columns: int = 40
    vif_limit: float = 10.0
    high_correlation: float = 0.9
    leak_auc_high: float = 0.95
    leak_auc_low: float = 0.05
    near_constant_share: float = 0.99
    arm_columns: list[str] = field(default_factory=lambda: ["segment"])
    expected_arm_shares: dict[str, float] | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ConfigError(f"config 'profile', key 'max_rows': must be >= 1, got {self.max_rows}")
        if not 0.5 < self.leak_auc_high <= 1.0 or not 0.0 <= self.leak_auc_low < 0.5:
            raise ConfigError(
                "config 'profile', keys 'leak_auc_high'/'leak_auc_low': need 0.5 < high <= 1 and "
                f"0 <= low < 0.5, got {self.leak_auc_high}/{self.leak_auc_low}"
            )
        if not 0.0 < self.near_constant_share <= 1.0:
            raise ConfigError(
                f"config 'profile', key 'near_constant_share': must be in (0, 1], got {self.near_constant_share}"
            )
        if self.vif_limit <= 1.0:
            raise ConfigError(f"config 'profile', key 'vif_limit': must be > 1, got {self.vif_limit}")


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


def duplicate_counts(df: pd.DataFrame, key: Sequence[str] | None = None) -> dict[str, int | None]:
    """Rows that repeat an earlier row entirely (``full_row``) and rows that repeat a key.

    ``key_rows`` counts every row whose key occurs more than once (all copies), ``None``
    when no key is given. A missing key column is a :class:`DataValidationError`.
    """
    full = int(df.duplicated().sum())
    if not key:
        return {"full_row": full, "key_rows": None}
    missing = [k for k in key if k not in df.columns]
    if missing:
        raise DataValidationError("profile", missing[0], f"key column(s) {missing} not in the table")
    return {"full_row": full, "key_rows": int(df.duplicated(subset=list(key), keep=False).sum())}


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


def arm_size_test(
    counts: Mapping[str, int], expected_shares: Mapping[str, float] | None = None
) -> tuple[float, float]:
    """Chi-square goodness-of-fit test of arm sizes against expected shares (equal when None).

    Returns ``(chi2, p_value)``; a high p-value means the arm sizes are consistent with the
    intended randomisation. Unknown or missing arms in ``expected_shares`` are a
    :class:`ConfigError`.
    """
    arms = list(counts)
    if len(arms) < 2:
        raise DataValidationError("profile", None, f"an arm-size test needs at least two arms, got {arms}")
    observed = np.array([counts[a] for a in arms], dtype="float64")
    if expected_shares is None:
        shares = np.full(len(arms), 1.0 / len(arms))
    else:
        missing = [a for a in arms if a not in expected_shares]
        if missing:
            raise ConfigError(
                f"config 'profile', key 'expected_arm_shares': no share for arm(s) {missing}; "
                f"arms are {arms}"
            )
        shares = np.array([float(expected_shares[a]) for a in arms])
        shares = shares / shares.sum()
    expected = shares * observed.sum()
    chi2, p = sps.chisquare(observed, expected)
    return float(chi2), float(p)


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
    """Treated minus control response rate, its ``1 - alpha`` CI and a two-sided z-test p-value.

    ``treatment`` holds 0/1; both arms must be present.
    """
    t = treatment.astype("float64").to_numpy()
    yy = y.astype("float64").to_numpy()
    yt, yc = yy[t == 1], yy[t == 0]
    if len(yt) == 0 or len(yc) == 0:
        raise DataValidationError(
            "profile", str(treatment.name), f"treatment has one arm only (treated {len(yt)}, control {len(yc)})"
        )
    pt, pc = float(yt.mean()), float(yc.mean())
    diff = pt - pc
    se = math.sqrt(pt * (1 - pt) / len(yt) + pc * (1 - pc) / len(yc))
    z = float(sps.norm.ppf(1 - alpha / 2))
    p = float(2 * sps.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return NaiveUplift(pt, pc, diff, diff - z * se, diff + z * se, p, int(len(yt)), int(len(yc)))


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


def vif(df: pd.DataFrame, tol: float = 1e-10) -> pd.DataFrame:
    """Variance inflation factor of every column of a numeric frame.

    Each column is regressed (least squares with an intercept) on all the others over the
    rows without missing values; ``VIF = 1 / (1 - R^2)``. Exact duplicates and perfect
    linear combinations give ``inf``; a constant column has no VIF (NaN, ``note`` says
    why). Returns ``column``, ``vif``, ``r2`` and ``note`` in the input column order.
    """
    x = df.astype("float64").dropna()
    cols = list(x.columns)
    values = x.to_numpy()
    n = len(values)
    std = values.std(axis=0) if n else np.zeros(len(cols))
    varying = [i for i in range(len(cols)) if std[i] > 0]
    rows = []
    if n:
        z = (values[:, varying] - values[:, varying].mean(axis=0)) / std[varying]
    for i, col in enumerate(cols):
        if n < 2 or std[i] == 0:
            rows.append({"column": str(col), "vif": math.nan, "r2": math.nan,
                         "note": "constant" if n >= 2 else "too few complete rows"})
            continue
        k = varying.index(i)
        target = z[:, k]
        others = np.delete(z, k, axis=1)
        if others.shape[1] == 0:
            r2 = 0.0
        else:
            design = np.column_stack([np.ones(n), others])
            coef, *_ = np.linalg.lstsq(design, target, rcond=None)
            resid = target - design @ coef
            r2 = 1.0 - float(resid @ resid) / float(target @ target)
        if 1.0 - r2 <= tol:
            rows.append({"column": str(col), "vif": math.inf, "r2": 1.0, "note": "perfectly collinear"})
        else:
            rows.append({"column": str(col), "vif": 1.0 / (1.0 - r2), "r2": r2, "note": ""})
    return pd.DataFrame(rows, columns=["column", "vif", "r2", "note"])


# --------------------------------------------------------------------------- factors against the outcome


def roc_auc(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray) -> float:
    """ROC-AUC of ``x`` as a score for the 0/1 label ``y`` (ties count one half; NaN x skipped).

    NaN when ``y`` has a single class among the rows used.
    """
    xs = np.asarray(x, dtype="float64")
    ys = np.asarray(y, dtype="float64")
    ok = ~np.isnan(xs) & ~np.isnan(ys)
    xs, ys = xs[ok], ys[ok]
    n1 = int((ys == 1).sum())
    n0 = int((ys == 0).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = sps.rankdata(xs)
    return float((ranks[ys == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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


def factor_strength(
    df: pd.DataFrame,
    factors: Sequence[str],
    target: str,
    treatment: str | None = None,
    leak_high: float = 0.95,
    leak_low: float = 0.05,
) -> pd.DataFrame:
    """Univariate strength of each numeric factor against the target.

    Returns ``factor``, ``auc``, ``uplift_diff`` (uplift data only, see
    :func:`half_split_uplift`) and ``possible_leak`` (``auc >= leak_high`` or
    ``auc <= leak_low``), strongest AUC (furthest from 0.5) first. Non-numeric factors are
    skipped.
    """
    for col in [target, *([treatment] if treatment else [])]:
        if col not in df.columns:
            raise DataValidationError("profile", col, f"column not in the factor table ({list(df.columns)[:10]} ...)")
    x = numeric_matrix(df, [f for f in factors if f in df.columns and f not in (target, treatment)])
    y = df[target].astype("float64")
    rows = []
    for col in x.columns:
        auc = roc_auc(x[col], y)
        row: dict[str, Any] = {"factor": str(col), "auc": auc}
        if treatment:
            row["uplift_diff"] = half_split_uplift(x[col], y, df[treatment])
        row["possible_leak"] = bool(np.isfinite(auc) and (auc >= leak_high or auc <= leak_low))
        rows.append(row)
    columns = ["factor", "auc", *(["uplift_diff"] if treatment else []), "possible_leak"]
    out = pd.DataFrame(rows, columns=columns)
    if len(out):
        order = (out["auc"] - 0.5).abs().fillna(-1.0).sort_values(ascending=False, kind="mergesort").index
        out = out.loc[order].reset_index(drop=True)
    return out
