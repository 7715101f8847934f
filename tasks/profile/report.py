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

from tasks.core.errors import ConfigError, DataValidationError


@dataclass
class ProfileConfig:
    """Options of the data profile (``conf/profile/default.yaml``)."""

    max_rows: int = 200_000
    seed: int = 2026
    as_of: str | None = None
    top_values: int = 10
    histogram_bins: int = 30
    max_plot_columns: int = 24
    max_heatmap_columns: int = 40
    vif_limit: float = 10.0
    high_correlation: float = 0.9
    leak_auc_high: float = 0.95
    leak_auc_low: float = 0.05
    near_constant_share: float = 0.99
    arm_columns: list[str] = field(default_factory=lambda: ["segment"])
    table_keys: dict[str, list[str]] = field(default_factory=dict)
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
            row["chi2"], row["p_value"] = arm_size_test({"0": nc, "1": nt}, expected_shares)
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


def factor_qini(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray, treatment: pd.Series | np.ndarray) -> float:
    """Normalised Qini AUC of the factor used alone as an uplift score (rows with NaN skipped).

    Same definition as :func:`tasks.analytics.metrics.qini_auc`: 0 is random targeting, 1 the best
    ranking of these outcomes, negative ranks the wrong way round. NaN when the rows lack
    an outcome or an arm.
    """
    from tasks.core.errors import UpliftError
    from tasks.analytics.metrics import qini_auc

    xs = np.asarray(x, dtype="float64")
    ok = ~np.isnan(xs)
    try:
        return float(qini_auc(np.asarray(y)[ok], xs[ok], np.asarray(treatment)[ok]))
    except UpliftError:
        return math.nan


def factor_strength(
    df: pd.DataFrame,
    factors: Sequence[str],
    target: str,
    treatment: str | None = None,
    leak_high: float = 0.95,
    leak_low: float = 0.05,
) -> pd.DataFrame:
    """Univariate strength of each numeric factor against the target.

    Returns ``factor``, ``auc``, for uplift data ``uplift_diff`` (see
    :func:`half_split_uplift`) and ``qini`` (see :func:`factor_qini`), and ``possible_leak`` (``auc >= leak_high`` or
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
            row["qini"] = factor_qini(x[col], y, df[treatment])
        row["possible_leak"] = bool(np.isfinite(auc) and (auc >= leak_high or auc <= leak_low))
        rows.append(row)
    columns = ["factor", "auc", *(["uplift_diff", "qini"] if treatment else []), "possible_leak"]
    out = pd.DataFrame(rows, columns=columns)
    if len(out):
        order = (out["auc"] - 0.5).abs().fillna(-1.0).sort_values(ascending=False, kind="mergesort").index
        out = out.loc[order].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------- plots


def _png(fig: Any, tight: bool = False) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def histogram_grid_png(df: pd.DataFrame, columns: Sequence[str], bins: int = 30, title: str = "") -> bytes | None:
    """One PNG with a small histogram per numeric column (four per row); None without columns."""
    from matplotlib.figure import Figure

    cols = [c for c in columns if c in df.columns]
    if not cols:
        return None
    ncols = min(4, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows))
    for i, col in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        x = df[col].astype("float64").dropna().to_numpy()
        x = x[np.isfinite(x)]
        if len(x):
            # One filled step artist per axis draws far faster than a bar patch per bin.
            counts, edges = np.histogram(x, bins=bins if x.min() < x.max() else 1)
            ax.stairs(counts, edges, fill=True, color="#4477aa")
        ax.set_title(str(col)[:40], fontsize=8)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=4)
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins: automatic layout costs seconds on grids of dozens of axes.
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.04, top=1 - 0.5 / fig.get_figheight(), hspace=0.55, wspace=0.3)
    return _png(fig)


def heatmap_png(corr: pd.DataFrame, title: str = "") -> bytes | None:
    """A PNG heatmap of a correlation matrix (red positive, blue negative); None when empty."""
    from matplotlib.figure import Figure

    if corr.shape[0] < 2:
        return None
    k = corr.shape[0]
    side = max(4.0, 0.28 * k + 2)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(corr.to_numpy(dtype="float64"), cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [str(c)[:30] for c in corr.columns]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(k), labels, fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig, tight=True)


# --------------------------------------------------------------------------- profiles of tables


@dataclass
class ArmSection:
    """Balance of an experiment's arms inside one table (e.g. Hillstrom's ``segment``)."""

    column: str
    counts: pd.DataFrame
    chi2: float
    p_value: float
    rates: pd.DataFrame | None = None
    outcome: str | None = None


@dataclass
class TableProfile:
    """Profile of one raw table."""

    name: str
    n_rows: int
    n_columns: int
    profiled_rows: int
    sampled: bool
    key: list[str]
    duplicates: dict[str, int | None]
    missing: pd.DataFrame
    kinds: dict[str, str]
    numeric: pd.DataFrame
    categorical: dict[str, pd.DataFrame]
    datetimes: pd.DataFrame
    constants: pd.DataFrame
    arms: list[ArmSection] = field(default_factory=list)
    histograms: bytes | None = None
    n_unique: dict[str, int] = field(default_factory=dict)
    plotted_columns: int = 0


def _arm_section(df: pd.DataFrame, column: str, outcome: str | None, cfg: ProfileConfig) -> ArmSection | None:
    counts = balance(df[column].dropna())
    if len(counts) < 2:
        return None
    chi2, p = arm_size_test(dict(zip(counts["value"], counts["count"])), cfg.expected_arm_shares)
    rates = None
    if outcome and outcome in df.columns and column_kind(df[outcome]) in ("numeric", "bool"):
        rates = rate_by_arm(df[outcome], df[column])
    return ArmSection(column, counts, chi2, p, rates, outcome if rates is not None else None)


def _looks_like_id(name: str) -> bool:
    low = name.lower()
    return low == "id" or low.endswith("_id")


def profile_table(
    df: pd.DataFrame,
    name: str,
    cfg: ProfileConfig,
    key: Sequence[str] | None = None,
    outcome: str | None = None,
) -> TableProfile:
    """Profile one raw table.

    Row counts, missing values, duplicates and arm balance are computed on the whole table;
    the distributions and constant columns on a seeded sample of at most ``cfg.max_rows``
    rows. Columns named in ``cfg.arm_columns`` get an arm-size
    chi-square test and, when ``outcome`` is a column, the outcome rate per arm.
    """
    key = [k for k in (key or [])]
    dups = duplicate_counts(df, key or None)
    missing = missing_values(df)
    sample, sampled = sample_rows(df, cfg.max_rows, cfg.seed)
    kinds = {str(c): column_kind(sample[c]) for c in sample.columns}
    num_cols = [c for c in sample.columns if kinds[str(c)] == "numeric"]
    numeric = pd.DataFrame(
        [{"column": str(c), **numeric_summary(sample[c])} for c in num_cols],
        columns=["column", "count", "mean", "std", "min", "p25", "p50", "p75", "max"],
    )
    categorical = {
        str(c): top_values(sample[c], cfg.top_values)
        for c in sample.columns
        if kinds[str(c)] in ("categorical", "bool")
    }
    dt_cols = [c for c in sample.columns if kinds[str(c)] == "datetime"]
    datetimes = pd.DataFrame(
        [{"column": str(c), "min": str(sample[c].min()), "max": str(sample[c].max()), "n_unique": int(sample[c].nunique())}
         for c in dt_cols],
        columns=["column", "min", "max", "n_unique"],
    )
    arms = [
        s for c in cfg.arm_columns if c in df.columns
        if (s := _arm_section(df, c, outcome, cfg)) is not None
    ]
    # Identifiers have no distribution worth a plot.
    plot_cols = [c for c in num_cols if str(c) not in key and not _looks_like_id(str(c))][: cfg.max_plot_columns]
    return TableProfile(
        name=name,
        n_rows=len(df),
        n_columns=df.shape[1],
        profiled_rows=len(sample),
        sampled=sampled,
        key=key,
        duplicates=dups,
        missing=missing,
        kinds=kinds,
        numeric=numeric,
        categorical=categorical,
        datetimes=datetimes,
        constants=constant_columns(sample, cfg.near_constant_share),
        arms=arms,
        histograms=histogram_grid_png(sample, plot_cols, cfg.histogram_bins, f"{name}: numeric columns"),
        n_unique={str(c): int(sample[c].nunique(dropna=True)) for c in sample.columns if kinds[str(c)] in ("categorical", "bool")},
        plotted_columns=len(plot_cols),
    )


@dataclass
class AnalysisProfile:
    """Profile of the factor table joined with its target (and treatment for uplift data)."""

    description: str
    n_rows: int
    profiled_rows: int
    sampled: bool
    factors: list[str]
    target: str
    treatment: str | None
    missing: pd.DataFrame
    numeric: pd.DataFrame
    constants: pd.DataFrame
    target_balance: pd.DataFrame
    treatment_balance: pd.DataFrame | None
    crosstab: pd.DataFrame | None
    rates: pd.DataFrame | None
    uplift: NaiveUplift | None
    arm_chi2: float | None
    arm_p_value: float | None
    correlation: pd.DataFrame
    correlated_pairs: pd.DataFrame
    vif: pd.DataFrame
    collinear: pd.DataFrame
    strength: pd.DataFrame
    leaks: list[str]
    heatmap_columns: int
    histograms: bytes | None = None
    heatmap: bytes | None = None
    group: str | None = None
    by_group: pd.DataFrame | None = None


def crosstab(target: pd.Series, treatment: pd.Series) -> pd.DataFrame:
    """Counts of target values (rows) by treatment arm (columns), with totals."""
    t = pd.crosstab(target.rename("target"), treatment.rename("treatment"), margins=True, margins_name="total")
    t.index = [str(i) for i in t.index]
    t.columns = [str(c) for c in t.columns]
    return t


def profile_analysis(
    df: pd.DataFrame,
    factors: Sequence[str],
    target: str,
    cfg: ProfileConfig,
    treatment: str | None = None,
    description: str = "",
    population_rows: int | None = None,
    group: str | None = None,
) -> AnalysisProfile:
    """Profile the factor table: target and treatment balance, correlations, VIF, leaks.

    ``df`` holds the factor columns, the 0/1 ``target`` and, for uplift data, the 0/1
    ``treatment``. Everything is computed on a seeded sample of at most ``cfg.max_rows``
    rows. A target or treatment column that is missing, has missing values or is not 0/1 is
    a :class:`DataValidationError`. ``population_rows`` tells that ``df`` is already a
    sample of a table that size (the caller sampled before computing factors). ``group``
    names a column (e.g. ``campaign_id``) whose groups get their own arm test and uplift.
    """
    for col in [target, *([treatment] if treatment else [])]:
        if col not in df.columns:
            raise DataValidationError("factor table", col, f"column not found; columns are {list(df.columns)[:12]}")
        s = df[col]
        bad = s.isna().to_numpy() | ~s.isin([0, 1, True, False]).to_numpy()
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise DataValidationError(
                "factor table", col, f"{int(bad.sum())} value(s) are missing or not 0/1", rows,
                df.iloc[rows][[col]].to_string(),
            )
    missing_factors = [f for f in factors if f not in df.columns]
    if missing_factors:
        raise DataValidationError("factor table", missing_factors[0], f"factor column(s) {missing_factors[:5]} not found")
    sample, sampled = sample_rows(df, cfg.max_rows, cfg.seed)
    n_rows = len(df)
    if population_rows is not None and population_rows > len(df):
        n_rows, sampled = population_rows, True
    fac = [f for f in factors if f not in (target, treatment)]
    y = sample[target].astype("int64")
    x = numeric_matrix(sample, fac)
    num = list(x.columns)

    t_bal = crosstab_tab = rates = by_group = None
    uplift = chi2 = p = None
    if treatment:
        t = sample[treatment].astype("int64")
        t_bal = balance(t)
        if t.nunique() < 2:
            raise DataValidationError("factor table", treatment, "treatment has one arm only")
        crosstab_tab = crosstab(y, t)
        rates = rate_by_arm(y, t)
        uplift = naive_uplift(y, t, cfg.alpha)
        shares = None
        if cfg.expected_arm_shares is not None:
            shares = {k: v for k, v in cfg.expected_arm_shares.items() if k in ("0", "1")} or None
        chi2, p = arm_size_test(dict(zip(t_bal["value"], t_bal["count"])), shares)
        if group is not None:
            if group not in sample.columns:
                raise DataValidationError("factor table", group, "group column not found")
            by_group = arms_by_group(y, t, sample[group], shares)

    varying = [c for c in num if x[c].nunique(dropna=True) > 1]
    corr = x[varying].corr() if varying else pd.DataFrame()
    heat_cols = varying[: cfg.max_heatmap_columns]
    v = vif(x[varying]) if varying else pd.DataFrame(columns=["column", "vif", "r2", "note"])
    collinear = v[v["vif"] >= cfg.vif_limit].sort_values("vif", ascending=False, kind="mergesort").reset_index(drop=True)
    strength = factor_strength(sample, num, target, treatment, cfg.leak_auc_high, cfg.leak_auc_low)
    numeric = pd.DataFrame(
        [{"column": c, **numeric_summary(x[c])} for c in num],
        columns=["column", "count", "mean", "std", "min", "p25", "p50", "p75", "max"],
    )
    return AnalysisProfile(
        description=description,
        n_rows=n_rows,
        profiled_rows=len(sample),
        sampled=sampled,
        factors=fac,
        target=target,
        treatment=treatment,
        missing=missing_values(sample[fac]),
        numeric=numeric,
        constants=constant_columns(sample[fac], cfg.near_constant_share),
        target_balance=balance(y),
        treatment_balance=t_bal,
        crosstab=crosstab_tab,
        rates=rates,
        uplift=uplift,
        arm_chi2=chi2,
        arm_p_value=p,
        correlation=corr,
        correlated_pairs=correlation_pairs(corr, cfg.high_correlation) if len(corr) else pd.DataFrame(columns=["a", "b", "r"]),
        vif=v,
        collinear=collinear,
        strength=strength,
        leaks=strength.loc[strength["possible_leak"], "factor"].tolist() if len(strength) else [],
        heatmap_columns=len(heat_cols),
        histograms=histogram_grid_png(x, num[: cfg.max_plot_columns], cfg.histogram_bins, "factors"),
        heatmap=heatmap_png(corr.loc[heat_cols, heat_cols], "Pearson correlation") if len(heat_cols) > 1 else None,
        group=group if by_group is not None else None,
        by_group=by_group,
    )


# --------------------------------------------------------------------------- the report


@dataclass
class Block:
    """One piece of the report: ``heading`` (with ``level``), ``text``, ``list``, ``table`` or ``image``."""

    kind: str
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    image: str | None = None


@dataclass
class Report:
    """A rendered-independent report: ordered blocks, PNG images by file name, key findings."""

    title: str
    blocks: list[Block]
    images: dict[str, bytes]
    findings: dict[str, Any]


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if float(v).is_integer() and abs(v) < 1e12:
            return str(int(v))
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.3e}"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(v)


def _pct(share: float) -> str:
    return f"{100 * share:.2f}%"


def _table_blocks(t: TableProfile, cfg: ProfileConfig) -> list[Block]:
    b: list[Block] = [Block("heading", f"Table `{t.name}`", level=2)]
    lines = [f"{t.n_rows} rows, {t.n_columns} columns."]
    if t.sampled:
        lines.append(
            f"Distributions below are computed on a seeded random sample of {t.profiled_rows} rows "
            f"(profile.max_rows={cfg.max_rows}, seed {cfg.seed}); counts, missing values and duplicates on all rows."
        )
    dup = t.duplicates
    dup_text = f"Full-row duplicates: {dup['full_row']}."
    if dup["key_rows"] is not None:
        dup_text += f" Rows sharing a key ({', '.join(t.key)}): {dup['key_rows']}."
    lines.append(dup_text)
    b.append(Block("text", " ".join(lines)))
    miss = t.missing[t.missing["missing"] > 0]
    b.append(Block("heading", "Missing values", level=3))
    b.append(Block("table", table=miss) if len(miss) else Block("text", "No missing values."))
    if len(t.numeric):
        b.append(Block("heading", "Numeric columns", level=3))
        b.append(Block("table", table=t.numeric))
        if t.histograms is not None:
            shown = "" if t.plotted_columns == len(t.numeric) else f" ({t.plotted_columns} of {len(t.numeric)}; identifiers and columns beyond profile.max_plot_columns left out)"
            b.append(Block("image", f"Histograms of the numeric columns of {t.name}{shown}", image=f"{t.name}_histograms.png"))
    if t.categorical:
        b.append(Block("heading", f"Categorical columns (top {cfg.top_values} values)", level=3))
        for col, top in t.categorical.items():
            b.append(Block("text", f"**{col}** ({t.n_unique.get(col, len(top))} distinct values)"))
            b.append(Block("table", table=top))
    if len(t.datetimes):
        b.append(Block("heading", "Date columns", level=3))
        b.append(Block("table", table=t.datetimes))
    b.append(Block("heading", f"Constant and almost constant columns (top value share >= {cfg.near_constant_share})", level=3))
    b.append(Block("table", table=t.constants) if len(t.constants) else Block("text", "None."))
    for arm in t.arms:
        b.append(Block("heading", f"Arms of `{arm.column}`", level=3))
        b.append(Block("table", table=arm.counts))
        b.append(Block("text", _arm_verdict(arm.chi2, arm.p_value, cfg)))
        if arm.rates is not None:
            b.append(Block("text", f"Rate of `{arm.outcome}` per arm:"))
            b.append(Block("table", table=arm.rates))
    return b


def _arm_verdict(chi2: float, p: float, cfg: ProfileConfig) -> str:
    expected = "the configured shares" if cfg.expected_arm_shares else "equal shares"
    verdict = (
        "consistent with the intended randomisation"
        if p >= cfg.alpha
        else f"**not** consistent with {expected} (possible sample-ratio mismatch)"
    )
    return f"Arm sizes against {expected}: chi-square {_fmt(chi2)}, p-value {_fmt(p)}: {verdict}."


def _analysis_blocks(a: AnalysisProfile, cfg: ProfileConfig) -> list[Block]:
    b: list[Block] = [Block("heading", "Factor table", level=2)]
    head = f"{a.description} {a.n_rows} rows, {len(a.factors)} factors, target `{a.target}`"
    head += f", treatment `{a.treatment}`." if a.treatment else "."
    if a.sampled:
        head += (
            f" Everything in this section is computed on a seeded random sample of {a.profiled_rows} rows "
            f"(profile.max_rows={cfg.max_rows}, seed {cfg.seed})."
        )
    b.append(Block("text", head.strip()))
    b.append(Block("heading", "Target balance", level=3))
    b.append(Block("table", table=a.target_balance))
    if a.treatment and a.treatment_balance is not None and a.uplift is not None:
        u = a.uplift
        b.append(Block("heading", "Treatment balance and outcome by arm", level=3))
        b.append(Block("table", table=a.treatment_balance))
        b.append(Block("text", _arm_verdict(float(a.arm_chi2), float(a.arm_p_value), cfg)))
        b.append(Block("text", "Target (rows) by treatment (columns):"))
        b.append(Block("table", table=a.crosstab.reset_index(names="target")))
        b.append(Block("table", table=a.rates))
        level = int(round(100 * (1 - cfg.alpha)))
        b.append(Block(
            "text",
            f"Naive uplift (treated rate {_pct(u.rate_treated)} minus control rate {_pct(u.rate_control)}): "
            f"{_fmt(u.uplift)}, {level}% CI [{_fmt(u.ci_low)}, {_fmt(u.ci_high)}], p-value {_fmt(u.p_value)}.",
        ))
        if a.by_group is not None:
            b.append(Block("text", f"Per `{a.group}` (each its own randomisation):"))
            b.append(Block("table", table=a.by_group))
    b.append(Block("heading", "Possible leaks: univariate strength of each factor", level=3))
    expl = (
        f"ROC-AUC of each numeric factor used alone as a score for `{a.target}`; AUC >= {cfg.leak_auc_high} "
        f"or <= {cfg.leak_auc_low} is flagged as a possible leak (a factor that knows the outcome)."
    )
    if a.treatment:
        expl += (
            " `uplift_diff` is the uplift (treated minus control response rate) among rows in the factor's "
            "top half minus the uplift in its bottom half; `qini` is the normalised Qini AUC of the factor "
            "used alone as an uplift score (0 = random, negative = the lower values respond more to the offer)."
        )
    b.append(Block("text", expl))
    if a.leaks:
        b.append(Block("list", items=[f"possible leak: `{f}`" for f in a.leaks]))
    else:
        b.append(Block("text", "No factor crosses the leak limits."))
    if len(a.strength):
        b.append(Block("table", table=a.strength))
    b.append(Block("heading", f"Constant and almost constant factors (top value share >= {cfg.near_constant_share})", level=3))
    b.append(Block("table", table=a.constants) if len(a.constants) else Block("text", "None."))
    b.append(Block("heading", "Correlations", level=3))
    if a.heatmap is not None:
        note = ""
        if a.heatmap_columns < len(a.correlation):
            note = f" (first {a.heatmap_columns} of {len(a.correlation)} varying numeric factors)"
        b.append(Block("image", f"Correlation heatmap{note}", image="factor_correlation.png"))
    if len(a.correlated_pairs):
        b.append(Block("text", f"Pairs with |r| >= {cfg.high_correlation}:"))
        b.append(Block("table", table=a.correlated_pairs))
    else:
        b.append(Block("text", f"No pair of factors has |r| >= {cfg.high_correlation}."))
    b.append(Block("heading", f"Multicollinearity (VIF, limit {_fmt(cfg.vif_limit)})", level=3))
    if len(a.collinear):
        b.append(Block("list", items=[f"`{r.column}`: VIF {_fmt(r.vif)}" + (f" ({r.note})" if r.note else "")
                                      for r in a.collinear.itertuples()]))
    else:
        b.append(Block("text", "No factor reaches the VIF limit."))
    if len(a.vif):
        b.append(Block("table", table=a.vif))
    b.append(Block("heading", "Factor distributions", level=3))
    miss = a.missing[a.missing["missing"] > 0]
    b.append(Block("table", table=miss) if len(miss) else Block("text", "No missing values in the factors."))
    if len(a.numeric):
        b.append(Block("table", table=a.numeric))
    if a.histograms is not None:
        b.append(Block("image", "Histograms of the factors", image="factor_histograms.png"))
    return b


def _json_safe(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, numpy scalars Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _name_list(names: Sequence[str], limit: int = 12) -> str:
    if not names:
        return "none"
    text = ", ".join(f"`{n}`" for n in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def build_report(
    dataset: str,
    as_of: str,
    tables: Sequence[TableProfile],
    analysis: AnalysisProfile | None,
    cfg: ProfileConfig,
    notes: Sequence[str] = (),
) -> Report:
    """Assemble the profiles into one report with a findings summary at the top."""
    images: dict[str, bytes] = {}
    for t in tables:
        if t.histograms is not None:
            images[f"{t.name}_histograms.png"] = t.histograms
    if analysis is not None:
        if analysis.histograms is not None:
            images["factor_histograms.png"] = analysis.histograms
        if analysis.heatmap is not None:
            images["factor_correlation.png"] = analysis.heatmap
    sampled = [t.name for t in tables if t.sampled] + (["factor table"] if analysis is not None and analysis.sampled else [])
    findings: dict[str, Any] = {
        "dataset": dataset,
        "as_of": as_of,
        "row_counts": {t.name: t.n_rows for t in tables},
        "sampled": sampled,
        "max_rows": cfg.max_rows,
        "arm_tests": {f"{t.name}.{a.column}": {"chi2": a.chi2, "p_value": a.p_value} for t in tables for a in t.arms},
    }
    summary: list[str] = []
    for t in tables:
        extra = f" (profiled on a sample of {t.profiled_rows})" if t.sampled else ""
        summary.append(f"`{t.name}`: {t.n_rows} rows, {t.n_columns} columns{extra}; "
                       f"{t.duplicates['full_row']} full-row duplicates"
                       + (f", {t.duplicates['key_rows']} rows with a duplicate key" if t.duplicates["key_rows"] else ""))
        for a in t.arms:
            summary.append(f"`{t.name}.{a.column}` arms: chi-square p-value {_fmt(a.p_value)} "
                           f"({'balanced' if a.p_value >= cfg.alpha else 'imbalanced'})")
    if analysis is not None:
        findings.update(
            possible_leaks=analysis.leaks,
            constant_factors=analysis.constants["column"].tolist(),
            collinear_factors=analysis.collinear["column"].tolist(),
            target_rate=float(analysis.target_balance.set_index("value")["share"].get("1", 0.0)),
        )
        summary.append(f"target `{analysis.target}` rate {_pct(findings['target_rate'])}")
        if analysis.uplift is not None:
            findings["naive_uplift"] = analysis.uplift.uplift
            findings["treatment_arm_test"] = {"chi2": analysis.arm_chi2, "p_value": analysis.arm_p_value}
            if analysis.by_group is not None:
                findings["arm_tests_by_group"] = {
                    r.group: {"chi2": r.chi2, "p_value": r.p_value, "uplift": r.uplift}
                    for r in analysis.by_group.itertuples()
                }
            summary.append(f"naive uplift {_fmt(analysis.uplift.uplift)} "
                           f"(treatment arms chi-square p-value {_fmt(analysis.arm_p_value)})")
            if analysis.by_group is not None:
                summary.append(f"treatment arms chi-square p-value per `{analysis.group}`: " + ", ".join(
                    f"{r.group} {_fmt(r.p_value) or 'n/a'}" for r in analysis.by_group.itertuples()))
        summary.append("possible leaks: " + _name_list(analysis.leaks))
        summary.append("constant or almost constant factors: " + _name_list(findings["constant_factors"]))
        summary.append(f"factors with VIF >= {_fmt(cfg.vif_limit)}: " + _name_list(findings["collinear_factors"]))
    if sampled:
        summary.append(f"sampled (above profile.max_rows={cfg.max_rows}): {', '.join(sampled)}")
    title = f"Data profile: {dataset} ({as_of})"
    blocks: list[Block] = [Block("heading", title, level=1)]
    blocks.extend(Block("text", n) for n in notes)
    blocks.append(Block("heading", "Summary", level=2))
    blocks.append(Block("list", items=summary))
    for t in tables:
        blocks.extend(_table_blocks(t, cfg))
    if analysis is not None:
        blocks.extend(_analysis_blocks(analysis, cfg))
    return Report(title, blocks, images, _json_safe(findings))


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_fmt(v)) for v in row) + " |")
    return "\n".join(lines)


def render_markdown(report: Report, image_dir: str = "plots") -> str:
    """The report as Markdown; images are linked as ``<image_dir>/<name>``."""
    out: list[str] = []
    for b in report.blocks:
        if b.kind == "heading":
            out.append("#" * b.level + " " + b.text)
        elif b.kind == "text":
            out.append(b.text)
        elif b.kind == "list":
            out.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table" and b.table is not None:
            out.append(_md_table(b.table))
        elif b.kind == "image":
            out.append(f"![{b.text}]({image_dir}/{b.image})")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape text and turn the two Markdown marks the report uses (`code`, **bold**) into HTML."""
    parts = html.escape(text).split("`")
    s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = s.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
code{background:#f4f4f4;padding:0 3px}img{max-width:100%}h2{border-bottom:1px solid #ddd;margin-top:2em}
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: PNG images embedded as base64 data URIs."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    sections = [b.text for b in report.blocks if b.kind == "heading" and b.level == 2]
    section = 0
    for b in report.blocks:
        if b.kind == "heading" and b.level == 2:
            section += 1
            out.append(f"<h2 id='s{section}'>{_inline_html(b.text)}</h2>")
        elif b.kind == "heading":
            out.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
            if b.level == 1 and sections:
                links = "".join(f"<li><a href='#s{i}'>{_inline_html(t)}</a></li>" for i, t in enumerate(sections, 1))
                out.append(f"<nav><ul>{links}</ul></nav>")
        elif b.kind == "text":
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table" and b.table is not None:
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.table.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                for row in b.table.itertuples(index=False)
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "image" and b.image in report.images:
            data = base64.b64encode(report.images[b.image]).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
