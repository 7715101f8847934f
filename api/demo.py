"""A small trained model and factor snapshot for trying the API without the full pipeline.

Used by the API tests and ``benchmarks/api_load.py``: trains a real LightGBM uplift model
(scikit-uplift approach via :mod:`tasks.modelling.models`) or a LightGBM response model on a seeded
random client table, registers it and makes it champion, and writes a matching factor
snapshot. Nothing here runs at import.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.io import atomic_write_parquet
from tasks.modelling.registry import ModelRegistry

SMALL_LGBM = {"n_estimators": 40, "num_leaves": 15, "min_child_samples": 20, "n_jobs": 1}


def demo_factors(n_clients: int, n_features: int = 8, seed: int = 0, first_id: int = 1) -> pd.DataFrame:
    """A client table: ``client_id`` then float factors ``f0..`` and an integer ``visits_90d``."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {"client_id": np.arange(first_id, first_id + n_clients, dtype=np.int64)}
    for j in range(n_features - 1):
        data[f"f{j}"] = rng.normal(0.0, 1.0, n_clients)
    data["visits_90d"] = rng.poisson(3.0, n_clients).astype(np.int64)
    return pd.DataFrame(data)


def _outcomes(X: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    t = rng.integers(0, 2, len(X))
    base = 1 / (1 + np.exp(-(-1.5 + 0.6 * X["f0"].to_numpy())))
    lift = 0.15 * (X["f1"].to_numpy() > 0) - 0.05 * (X["f2"].to_numpy() > 1)
    p = np.clip(base + t * lift, 0.01, 0.99)
    return t, (rng.random(len(X)) < p).astype(int)


def train_demo_model(registry: ModelRegistry, name: str = "demo_uplift", n_clients: int = 3000,
                     n_features: int = 8, seed: int = 0, approach: str = "solo",
                     promote: bool = True) -> str:
    """Train, register (and by default promote) a small model; returns its version.

    ``approach`` is an uplift approach of :mod:`tasks.modelling.models` (``solo``, ``two_models``,
    ``class_transformation``) or ``response``.
    """
    from tasks.modelling.models import ResponseModel, UpliftModel

    frame = demo_factors(n_clients, n_features, seed)
    X = frame.drop(columns="client_id")
    t, y = _outcomes(X, seed)
    if approach == "response":
        model = ResponseModel(lgbm_params=SMALL_LGBM, seed=seed).fit(X, y)
        kind = "response"
    else:
        model = UpliftModel(approach=approach, lgbm_params=SMALL_LGBM, seed=seed).fit(X, t, y)
        kind = "uplift"
    features = list(X.columns)
    metadata = {
        "kind": kind, "approach": approach, "dataset": "demo", "factor_set": None,
        "features": features, "feature_dtypes": {c: str(X[c].dtype) for c in features},
        "metrics": {"note": "demo model trained on random data"},
        "reference": {c: {"kind": "numeric", "sample": X[c].head(500).tolist()} for c in features},
    }
    version = registry.save(name, model, metadata)
    if promote:
        registry.promote(name, version)
    return version


def write_demo_snapshot(path: str | Path, n_clients: int, n_features: int = 8, seed: int = 1) -> Path:
    """Write a factor snapshot Parquet (client ids 1..n_clients) matching the demo model."""
    return atomic_write_parquet(demo_factors(n_clients, n_features, seed), Path(path))
