"""Profiles of a raw table and of the factor table: the statistics of :mod:`tasks.profile.stats`
and the plots of :mod:`tasks.profile.plots` gathered into one dataclass each.

:func:`profile_table` profiles one raw table; :func:`profile_analysis` the factor table with
its target (and treatment for uplift data). Both are pure: they read no files and modify no
input frame. :mod:`tasks.profile.report` turns the profiles into the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from tasks.core.errors import DataValidationError
from tasks.profile.config import ProfileConfig
from tasks.profile.plots import heatmap_png, histogram_grid_png
from tasks.profile.stats import (
    NaiveUplift,
    arm_size_chi2,
    arms_by_group,
    balance,
    column_kind,
    constant_columns,
    correlation_pairs,
    crosstab,
    duplicate_counts,
    factor_strength,
    missing_values,
    naive_uplift,
    numeric_matrix,
    numeric_summary,
    rate_by_arm,
    sample_rows,
    top_values,
    treatment_design_shares,
    vif,
)


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
    chi2, p = arm_size_chi2(dict(zip(counts["value"], counts["count"])), cfg.expected_arm_shares)
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
    arm_shares: dict[str, float] | None = None


def profile_analysis(
    df: pd.DataFrame,
    factors: Sequence[str],
    target: str,
    cfg: ProfileConfig,
    treatment: str | None = None,
    description: str = "",
    population_rows: int | None = None,
    group: str | None = None,
    treatment_shares: Mapping[Any, float] | None = None,
) -> AnalysisProfile:
    """Profile the factor table: target and treatment balance, correlations, VIF, leaks.

    ``df`` holds the factor columns, the 0/1 ``target`` and, for uplift data, the 0/1
    ``treatment``. Everything is computed on a seeded sample of at most ``cfg.max_rows``
    rows. A target or treatment column that is missing, has missing values or is not 0/1 is
    a :class:`DataValidationError`. ``population_rows`` tells that ``df`` is already a
    sample of a table that size (the caller sampled before computing factors). ``group``
    names a column (e.g. ``campaign_id``) whose groups get their own arm test and uplift.
    ``treatment_shares``: the design shares of the arms (the data config's, see
    :func:`tasks.profile.stats.treatment_design_shares`); None: equal shares are assumed.
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
    uplift = chi2 = p = shares = None
    if treatment:
        t = sample[treatment].astype("int64")
        t_bal = balance(t)
        if t.nunique() < 2:
            raise DataValidationError("factor table", treatment, "treatment has one arm only")
        crosstab_tab = crosstab(y, t)
        rates = rate_by_arm(y, t)
        uplift = naive_uplift(y, t, cfg.alpha)
        shares = treatment_design_shares(treatment_shares)
        chi2, p = arm_size_chi2(dict(zip(t_bal["value"], t_bal["count"])), shares)
        if group is not None:
            if group not in sample.columns:
                raise DataValidationError("factor table", group, "group column not found")
            by_group = arms_by_group(y, t, sample[group], shares)

    varying = [c for c in num if x[c].nunique(dropna=True) > 1]
    corr = x[varying].corr() if varying else pd.DataFrame()
    heat_cols = varying[: cfg.max_heatmap_columns]
    v = vif(x[varying]) if varying else pd.DataFrame(columns=["column", "vif", "r2", "note"])
    collinear = v[v["vif"] >= cfg.vif_limit].sort_values("vif", ascending=False, kind="mergesort").reset_index(drop=True)
    strength = factor_strength(sample, num, target, treatment)
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
        arm_shares=shares if treatment else None,
    )
