"""What a model version stores about its training features for later drift checks.

The format (per feature: ``kind`` numeric or categorical, quantile ``edges`` and ``shares`` or
value ``shares``, ``missing_share`` and a ``sample``) is read by :mod:`tasks.monitoring.drift`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def reference_distributions(X: pd.DataFrame, bins: int = 10, sample: int = 5000, seed: int = 0) -> dict:
    """Per-feature reference for drift checks: quantile edges + shares or value shares, and a sample."""
    ref: dict[str, dict] = {}
    rng = np.random.default_rng(seed)
    for col in X.columns:
        s = X[col]
        vals = s.dropna()
        smp = vals.to_numpy()[rng.choice(len(vals), size=min(sample, len(vals)), replace=False)] if len(vals) else np.array([])
        if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype) or s.nunique() <= 2:
            shares = vals.astype(str).value_counts(normalize=True).sort_index()
            ref[str(col)] = {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()},
                             "missing_share": float(s.isna().mean()),
                             "sample": [str(v) for v in smp.tolist()]}
        else:
            v = vals.to_numpy(dtype=float)
            edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1))) if len(v) else np.array([])
            counts = np.histogram(v, bins=edges)[0] if len(edges) > 1 else np.array([len(v)])
            ref[str(col)] = {"kind": "numeric", "edges": edges.tolist(),
                             "shares": (counts / max(1, counts.sum())).tolist(),
                             "missing_share": float(s.isna().mean()),
                             "sample": _significant(smp.astype(float), 6).tolist()}
    return ref


def _significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits: drift tests lose nothing that
    matters and metadata.json shrinks (a float64 prints with up to 17 digits)."""
    out = values.copy()
    nz = np.isfinite(out) & (out != 0)
    v = out[nz]
    exp = digits - 1 - np.floor(np.log10(np.abs(v)))
    # divide by an exact power of ten either way, so the result prints short
    small = exp >= 0
    v[small] = np.round(v[small] * 10.0 ** exp[small]) / 10.0 ** exp[small]
    v[~small] = np.round(v[~small] / 10.0 ** -exp[~small]) * 10.0 ** -exp[~small]
    out[nz] = v
    return out

