"""The rows a model is trained on: features, outcome, treatment, and where they came from.

* The synthetic world: its campaign history joined with point-in-time factors as of each
  campaign's date (:func:`tasks.data.point_in_time.factors_as_of_rows`), never the truth table.
* A wide table (any table dataset, Hillstrom, iFood, one_click): its feature frame, target and
  treatment columns, and what the training report says about the data (:func:`tasks.data.datasets.describe`:
  source, columns excluded as known only after the decision, missing values per column).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from factors import factor_set
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.layout import Layout
from tasks.data.datasets import describe, feature_frame, load_tabular_dataset, missing_values, tabular_config
from tasks.data.point_in_time import factors_as_of_rows
from tasks.data.tables import read_manifest, read_table
from tasks.profile.stats import treatment_design_shares


@dataclass
class TrainingSet:
    """Features ``X`` (one row per training row), 0/1 outcome ``y``, 0/1 ``treatment`` (None
    without one), each row's design ``propensity`` (the treated share of its campaign; None:
    the pooled share), for one_click the ``profit`` per row that segmentation needs, and
    ``description``: what the training report and metadata say about the data; ``groups``:
    each row's client (validation keeps a client's rows on one side), ``dates``: each row's
    campaign date (two or more: the latest is an out-of-time hold-out; None for a wide table)."""

    X: pd.DataFrame
    y: np.ndarray
    treatment: np.ndarray | None
    dataset: str | None
    factor_set: str | None = None
    profit: np.ndarray | None = None
    description: dict[str, Any] = field(default_factory=dict)
    propensity: np.ndarray | None = None
    groups: np.ndarray | None = None
    dates: np.ndarray | None = None


def campaign_propensity(rows: pd.DataFrame) -> np.ndarray:
    """Each row's design propensity: the treated share of the campaign it came from (rows of
    one ``campaign_id``, or of one ``campaign_date`` when there is no id). Campaigns of the
    history and fresh experiments are randomised with their own shares; pooling them would
    weight every campaign's arms with one wrong share."""
    key = "campaign_id" if "campaign_id" in rows.columns else "campaign_date"
    if key not in rows.columns or "treatment" not in rows.columns:
        raise DataValidationError("campaign_history", key, "needs campaign_id or campaign_date, and treatment, "
                                  "to know each campaign's treated share")
    t = pd.to_numeric(rows["treatment"], errors="coerce").astype(float)
    return t.groupby(rows[key].to_numpy()).transform("mean").to_numpy(dtype=float)


def design_share(shares: Mapping[Any, float] | None, n: int) -> np.ndarray | None:
    """A wide table's one design share per row from ``data.treatment_shares`` (None when unset)."""
    design = treatment_design_shares(shares)
    return None if design is None else np.full(n, design["1"])


def build_training_set(
    data_dir: str | Path,
    history: pd.DataFrame,
    factor_names: Sequence[str],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features as of each row's campaign_date joined to the campaign history.

    ``history`` needs client_id, campaign_date, treatment, response. Returns ``(X, treatment,
    y)`` in the order of ``history``; X holds the factors only. Never reads the truth table.
    """
    need = ["client_id", "campaign_date", "treatment", "response"]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise DataValidationError("campaign_history", missing[0], f"missing column(s) {missing}")
    if len(history) == 0:
        raise DataValidationError("campaign_history", None, "the table is empty; nothing to train on")
    if not factor_names:
        raise ConfigError("config 'factors': the factor set is empty; name the factors to train on")
    X = factors_as_of_rows(data_dir, history, factor_names)
    t = history["treatment"].to_numpy()
    y = history["response"].to_numpy()
    return X, t, y


def load_training_set(data: Mapping[str, Any], factors: Mapping[str, Any], layout: Layout,
                      shared_data: str | Path) -> TrainingSet:
    """The training set of the configured dataset (``data``: conf/data, ``factors``: conf/factors).

    ``kind: synthetic`` reads the world ``data.name`` under ``layout``; the factors are the
    ``factors.factors`` list, or else the set ``factors.name``. Other kinds load the wide
    table from ``shared_data`` (``data`` over conf/data/<kind>.yaml).
    """
    if data.get("kind") == "synthetic":
        if not data.get("name"):
            raise ConfigError("config 'data', key 'name': missing (the synthetic world's folder under <artifacts>/data/)")
        data_dir = layout.dataset(str(data["name"]))
        read_manifest(data_dir)
        history = read_table(data_dir, "campaign_history")
        set_name = factors.get("name")
        names = list(factors.get("factors") or [])
        if not names and not set_name:
            raise ConfigError("config 'factors': give the factor list factors.factors or a set name factors.name")
        names = names or factor_set(set_name)
        X, t, y = build_training_set(data_dir, history, names)
        description = {"dataset": data.get("name"), "kind": data.get("kind"), "rows_used": len(X),
                       "missing_values": missing_values(X)}
        return TrainingSet(X=X, y=y, treatment=t, dataset=data.get("name"), factor_set=set_name,
                           description=description, propensity=campaign_propensity(history),
                           groups=history["client_id"].to_numpy(), dates=history["campaign_date"].to_numpy())
    cfg = tabular_config(data)
    ds = load_tabular_dataset(cfg, Path(shared_data))
    X = feature_frame(ds)
    t = ds.frame[ds.treatment].to_numpy() if ds.treatment else None
    profit_column = getattr(cfg, "profit_column", None)
    profit = ds.frame[profit_column].to_numpy(dtype=float) if profit_column else None
    shares = getattr(cfg, "treatment_shares", None)
    return TrainingSet(X=X, y=ds.frame[ds.target].to_numpy(), treatment=t, dataset=ds.name, profit=profit,
                       description=describe(ds),
                       propensity=design_share(shares, len(X)) if t is not None else None,
                       groups=ds.frame[ds.id_column].to_numpy())
