"""Data drift of factor tables against a model's reference distributions.

The reference is what training stores per feature in the registry metadata
(``tasks.modelling.reference.reference_distributions``): ``kind`` numeric or categorical, for numeric
features quantile bin ``edges`` and the training ``shares`` per bin, for categorical
features value ``shares``, and a ``sample`` of up to 5,000 training values.

Per factor:
* numeric: two-sample Kolmogorov-Smirnov test of the current values against the stored
  sample, and the population stability index (PSI) over the stored bins (current values
  outside the training range fall into the outer bins);
* categorical: chi-square test of the current value counts against the stored sample's
  counts (a 2 x K contingency table, so both samples' noise is counted; without a stored
  sample, goodness of fit to the stored shares), and PSI over the categories.

The p-values of all factors are corrected together with Benjamini-Hochberg. A factor has
drifted when its corrected test rejects (and, with ``min_psi`` > 0, the shift is at least that
large: on big tables a test also rejects shifts too small to matter) or its PSI exceeds the
PSI limit; the table has drifted when the share of drifted factors exceeds the configured limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from tasks.analytics import stats
from tasks.core.errors import ConfigError, DataValidationError

PSI_FLOOR = 1e-4  # share used for an empty bin so the log stays finite


@dataclass
class DriftConfig:
    """Limits of the drift check (``monitor.drift`` in conf/monitor/default.yaml)."""

    fdr: float                        # Benjamini-Hochberg false discovery rate across factors
    psi_limit: float                  # a factor with PSI above this has drifted
    max_drifted_share: float          # the table has drifted when more than this share of factors did
    min_psi: float                    # a significant test counts only when the factor's PSI is at least this
    min_rows: int                     # fewer current rows than this is an error
    exclude: list[str]                # factors reported but left out of the alarm share

    def __post_init__(self) -> None:
        if not 0 < self.fdr < 1:
            raise ConfigError(f"config 'monitor.drift', key 'fdr': must be in (0, 1), got {self.fdr}")
        if self.psi_limit <= 0:
            raise ConfigError(f"config 'monitor.drift', key 'psi_limit': must be positive, got {self.psi_limit}")
        if not 0 <= self.max_drifted_share < 1:
            raise ConfigError(
                f"config 'monitor.drift', key 'max_drifted_share': must be in [0, 1), got {self.max_drifted_share}"
            )


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of two share vectors.

    Shares are floored at ``floor`` (empty bins) and renormalised.
    """
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    if e.shape != a.shape:
        raise DataValidationError("drift", None, f"PSI needs share vectors of one length, got {e.shape} and {a.shape}")
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def bin_shares(values: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin of ``edges`` (bins ``[e_i, e_i+1)``, the last one closed).

    Values below the first edge count in the first bin, above the last edge in the last bin,
    so a shift outside the training range shows up in the outer bins.
    """
    edges = np.asarray(edges, dtype=float)
    v = np.asarray(values, dtype=float)
    k = max(len(edges) - 1, 1)
    idx = np.searchsorted(edges[1:-1], v, side="right") if len(edges) > 2 else np.zeros(len(v), dtype=int)
    counts = np.bincount(idx, minlength=k).astype(float)
    return counts / max(counts.sum(), 1.0)


def _label(v: Any) -> str:
    """Category label as text; whole numbers lose their '.0' so 1, 1.0 and '1' agree."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if np.isfinite(f) and f == int(f) else str(v)


def categorical_test(reference: Mapping[str, Any], current: pd.Series) -> dict[str, Any]:
    """Chi-square test and PSI of a categorical factor against its reference."""
    cur = current.dropna().map(_label).value_counts()
    sample = reference.get("sample") or []
    ref_shares = {_label(k): float(v) for k, v in (reference.get("shares") or {}).items()}
    cats = sorted(set(cur.index) | set(ref_shares))
    cur_counts = np.array([cur.get(c, 0) for c in cats], dtype=float)
    exp_shares = np.array([ref_shares.get(c, 0.0) for c in cats], dtype=float)
    if sample:
        ref_counts_s = pd.Series([_label(v) for v in sample]).value_counts()
        ref_counts = np.array([ref_counts_s.get(c, 0) for c in cats], dtype=float)
        keep = (ref_counts + cur_counts) > 0
        table = np.vstack([ref_counts[keep], cur_counts[keep]])
        if table.shape[1] < 2:
            stat, p = 0.0, 1.0
        else:
            stat, p = sps.chi2_contingency(table, correction=False)[:2]
        n_ref = int(ref_counts.sum())
    else:
        keep = exp_shares > 0
        extra = cur_counts[~keep].sum()
        if extra > 0:
            stat, p = float("inf"), 0.0
        elif keep.sum() < 2:
            stat, p = 0.0, 1.0
        else:
            exp = exp_shares[keep] / exp_shares[keep].sum() * cur_counts[keep].sum()
            stat, p = sps.chisquare(cur_counts[keep], exp)
        n_ref = 0
    value = psi(exp_shares, cur_counts / max(cur_counts.sum(), 1.0))
    return {"kind": "categorical", "test": "chi2", "statistic": float(stat), "p_value": float(p),
            "psi": value, "n_ref": n_ref, "n_cur": int(cur_counts.sum())}


def numeric_test(reference: Mapping[str, Any], current: pd.Series) -> dict[str, Any]:
    """Kolmogorov-Smirnov test (against the stored sample) and PSI (stored bins) of a numeric factor."""
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    sample = np.asarray(reference.get("sample") or [], dtype=float)
    if len(sample) and len(cur):
        # the exact distribution is slow and numerically fragile at these sizes
        method = "asymp" if min(len(sample), len(cur)) > 100 else "auto"
        stat, p = sps.ks_2samp(sample, cur, method=method)
    else:
        stat, p = 0.0, 1.0
    edges = reference.get("edges") or []
    shares = np.asarray(reference.get("shares") or [], dtype=float)
    if len(edges) >= 2 and len(shares) == len(edges) - 1:
        value = psi(shares, bin_shares(cur, edges))
    else:
        value = 0.0
    return {"kind": "numeric", "test": "ks", "statistic": float(stat), "p_value": float(p),
            "psi": value, "n_ref": int(len(sample)), "n_cur": int(len(cur))}


def drift_table(reference: Mapping[str, Mapping[str, Any]], current: pd.DataFrame, cfg: DriftConfig,
                where: str = "factors") -> pd.DataFrame:
    """One row per reference feature: test, statistic, p-value, BH q-value, PSI and verdicts.

    Columns: feature, kind, test, statistic, p_value, q_value, psi, n_ref, n_cur,
    test_rejected, psi_exceeded, drifted. ``current`` must hold every reference feature.
    """
    if not reference:
        raise DataValidationError(where, None, "the model has no reference distributions to compare with")
    missing = [f for f in reference if f not in current.columns]
    if missing:
        raise DataValidationError(
            where, missing[0], f"{len(missing)} factor(s) of the model's reference are missing from the table: {missing[:10]}"
        )
    if len(current) < cfg.min_rows:
        raise DataValidationError(where, None, f"{len(current)} row(s); the drift check needs at least {cfg.min_rows}")
    rows = []
    for feature, ref in reference.items():
        kind = ref.get("kind")
        if kind == "numeric":
            res = numeric_test(ref, current[feature])
        elif kind == "categorical":
            res = categorical_test(ref, current[feature])
        else:
            raise DataValidationError("reference", feature, f"unknown reference kind {kind!r}; use numeric or categorical")
        rows.append({"feature": feature, **res})
    table = pd.DataFrame(rows)
    table["q_value"] = stats.bh_adjusted(table["p_value"].to_numpy())
    table["test_rejected"] = stats.benjamini_hochberg(table["p_value"].to_numpy(), cfg.fdr) & (table["psi"] >= cfg.min_psi)
    table["psi_exceeded"] = table["psi"] > cfg.psi_limit
    table["drifted"] = table["test_rejected"] | table["psi_exceeded"]
    cols = ["feature", "kind", "test", "statistic", "p_value", "q_value", "psi", "n_ref", "n_cur",
            "test_rejected", "psi_exceeded", "drifted"]
    return table[cols]


def drift_summary(table: pd.DataFrame, cfg: DriftConfig) -> dict[str, Any]:
    """The table-level decision: share of drifted factors against ``max_drifted_share``.

    Factors named in ``cfg.exclude`` stay in the table but do not count towards the share.
    """
    counted = table[~table["feature"].isin(cfg.exclude)]
    n = int(len(counted))
    n_drifted = int(counted["drifted"].sum())
    share = n_drifted / n if n else 0.0
    top = table.sort_values(["drifted", "psi"], ascending=False).head(10)
    return {
        "n_factors": n, "n_drifted": n_drifted, "drifted_share": share,
        "n_test_rejected": int(counted["test_rejected"].sum()), "n_psi_exceeded": int(counted["psi_exceeded"].sum()),
        "max_psi": float(counted["psi"].max()) if n else 0.0,
        "limit": cfg.max_drifted_share, "fdr": cfg.fdr, "psi_limit": cfg.psi_limit,
        "alarm": bool(share > cfg.max_drifted_share),
        "drifted_factors": counted.loc[counted["drifted"], "feature"].tolist(),
        "excluded": [f for f in cfg.exclude if f in set(table["feature"])],
        "excluded_drifted": table.loc[table["feature"].isin(cfg.exclude) & table["drifted"], "feature"].tolist(),
        "top": top[["feature", "kind", "p_value", "q_value", "psi", "drifted"]].to_dict(orient="records"),
    }


def score_drift(baseline: np.ndarray, current: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """KS test and PSI (baseline quantile bins) of two score samples."""
    base = np.asarray(baseline, dtype=float)
    cur = np.asarray(current, dtype=float)
    if len(base) < 2 or len(cur) < 2:
        raise DataValidationError("predictions", "score", f"score drift needs two samples of at least 2 scores "
                                  f"(got {len(base)} and {len(cur)})")
    edges = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)))
    stat, p = sps.ks_2samp(base, cur, method="asymp" if min(len(base), len(cur)) > 100 else "auto")
    return {"ks_statistic": float(stat), "p_value": float(p),
            "psi": psi(bin_shares(base, edges), bin_shares(cur, edges)),
            "n_baseline": int(len(base)), "n_current": int(len(cur)),
            "mean_baseline": float(base.mean()), "mean_current": float(cur.mean())}
