"""The balance check of a campaign's random split: standardised mean differences and SRM.

The statistics are :func:`tasks.analytics.stats.standardized_mean_difference` and
:func:`tasks.analytics.stats.srm_test`; the limits come from ``campaign.balance``
(:class:`~tasks.campaign.config.BalanceConfig`).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from tasks.analytics.stats import srm_test, standardized_mean_difference
from tasks.campaign.config import GROUPS, BalanceConfig
from tasks.core.errors import DataValidationError


def _smd(a: np.ndarray, b: np.ndarray) -> float:
    """SMD of ``a`` against ``b``; NaN when a group has fewer than two finite values or an
    infinite one (the difference is then not defined)."""
    try:
        return standardized_mean_difference(a, b)
    except DataValidationError:
        return float("nan")


def _sample_ratio(observed: dict[str, int], groups: dict[str, float]) -> tuple[float, float]:
    """SRM chi-square and p-value over the groups with a positive share; (0, 1) when fewer
    than two groups have one or nobody is in them."""
    keys = [g for g in GROUPS if float(groups.get(g, 0.0)) > 0]
    if len(keys) < 2 or sum(observed.get(g, 0) for g in keys) == 0:
        return 0.0, 1.0
    return srm_test({g: int(observed.get(g, 0)) for g in keys}, {g: float(groups[g]) for g in keys})


def balance_check(frame: pd.DataFrame, columns: Sequence[str], groups: dict[str, float],
                  limits: BalanceConfig) -> dict:
    """Balance of the random split: SMD of ``columns`` of each group against control, and SRM.

    ``frame`` holds ``group`` and the columns. Returns a JSON-ready dict with the SMD table,
    the largest absolute SMD, the sample-ratio chi-square and p-value, and a verdict.
    """
    group = frame["group"]
    masks = {g: (group == g).to_numpy(dtype=bool) for g in GROUPS}
    return balance_check_columns({g: int(m.sum()) for g, m in masks.items()},
                                 lambda c, g: frame[c].to_numpy()[masks[g]], columns, groups, limits)


def balance_check_columns(sizes: dict[str, int], values: Callable[[str, str], np.ndarray], columns: Sequence[str],
                          groups: dict[str, float], limits: BalanceConfig) -> dict:
    """:func:`balance_check` from the group sizes and ``values(column, group)``: the column's
    values of the group's rows, in row order. Asked for column after column (each column's
    groups together), so a wide table need never be in memory whole."""
    present = [g for g in GROUPS if sizes.get(g, 0) > 0]
    pairs = [(g, "control") for g in ("targeted", "random_target") if g in present and "control" in present]
    if "control" not in present and "targeted" in present and "random_target" in present:
        pairs = [("targeted", "random_target")]
    smd = []
    for col in columns:
        row = {"factor": col}
        for a, b in pairs:
            row[f"{a}_vs_{b}"] = round(_smd(values(col, a), values(col, b)), 6)
        smd.append(row)
    # A fixed limit alone flags chance imbalance in small groups, so a factor is flagged only
    # when its |SMD| is above smd_limit and above smd_z standard errors of a random split.
    bounds = {f"{a}_vs_{b}": max(limits.smd_limit, limits.smd_z * math.sqrt(1 / sizes[a] + 1 / sizes[b]))
              for a, b in pairs}
    flagged = [{"factor": r["factor"], "pair": k, "smd": v} for r in smd for k, v in r.items()
               if k != "factor" and np.isfinite(v) and abs(v) > bounds[k]]
    found = [abs(v) for r in smd for k, v in r.items() if k != "factor" and np.isfinite(v)]
    max_smd = max(found, default=0.0)
    observed = {g: int(sizes.get(g, 0)) for g in GROUPS}
    chi2, p = _sample_ratio(observed, groups)
    ok = not flagged and p >= limits.srm_alpha
    return {"smd": smd, "max_abs_smd": round(max_smd, 6), "smd_limit": limits.smd_limit,
            "smd_limits": {k: round(v, 6) for k, v in bounds.items()}, "flagged": flagged,
            "srm_chi2": round(chi2, 6), "srm_p_value": round(p, 6), "srm_alpha": limits.srm_alpha,
            "observed": observed, "balanced": bool(ok)}
