"""Who a campaign may reach: the client base at a date through the campaign's base filters.

One definition for the campaign's ``client_base`` and ``filters`` stages and for the drift
reference stored with a model (:func:`eligible_factors`): the population a model is monitored
against is the one its campaigns score, as of the latest date it was trained on.

The clients table is read narrowly: the base is the ids of the clients registered before the
date (:func:`read_registered_base` reads ``client_id`` and ``registration_date``), and the
filters read only the clients columns they compare, for the base's ids
(:func:`filter_registered`); no frame of every clients column is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from tasks.campaign.config import FilterSpec
from tasks.campaign.transforms import align_ids, apply_filters
from tasks.core.errors import ConfigError, DataValidationError

FactorFn = Callable[[Path, pd.Timestamp, list, np.ndarray], pd.DataFrame]


def default_factor_fn(data_dir: Path, as_of: pd.Timestamp, names: list, client_ids: np.ndarray) -> pd.DataFrame:
    """The factor library's point-in-time factors of ``client_ids`` as of ``as_of``."""
    import factors

    return factors.compute_factors(data_dir, as_of, list(names), client_ids=client_ids)


def read_registered_base(data_dir: str | Path, date: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """The ids (``client_id``, ascending) of the clients registered before ``date``, and the
    number of clients in the table; reads only ``client_id`` and ``registration_date``."""
    from tasks.data.tables import read_table

    clients = read_table(Path(data_dir), "clients", columns=["client_id", "registration_date"])
    total = int(len(clients))
    # the rule of :func:`tasks.campaign.transforms.select_client_base` on the ids alone (they are
    # unique, so sorting them orders the rows as it does): no copy of the two-column frame
    ids = clients["client_id"].to_numpy()[(clients["registration_date"] < pd.Timestamp(date)).to_numpy()]
    del clients
    if len(ids) == 0:
        raise DataValidationError("clients", "registration_date",
                                  f"no client registered before the campaign date {pd.Timestamp(date).date()}")
    return pd.DataFrame({"client_id": np.sort(ids)}), total


def with_clients_columns(ids: np.ndarray, data_dir: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """``client_id`` (``ids``, in their order) and the clients ``columns`` of those clients,
    reading only those columns of the clients table."""
    from tasks.data.tables import read_table

    frame = pd.DataFrame({"client_id": np.asarray(ids, dtype="int64")})
    cols = [c for c in dict.fromkeys(columns) if c != "client_id"]
    if not cols:
        return frame
    clients = read_table(Path(data_dir), "clients", columns=["client_id", *cols])
    keys = clients["client_id"].to_numpy()
    ascending = bool(len(keys) < 2 or (keys[1:] > keys[:-1]).all())  # as the generator writes it
    pos = align_ids(keys, frame["client_id"].to_numpy(), sorted_=ascending)
    values = clients[cols].iloc[pos].reset_index(drop=True)
    return pd.concat([frame, values], axis=1)


def filter_registered(ids: np.ndarray, filters: Sequence[FilterSpec], data_dir: str | Path, date: pd.Timestamp,
                      factor_fn: FactorFn, known: set[str] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """The registered base ``ids`` of a dataset through ``filters`` (:func:`filter_base`),
    reading only the clients columns the filters compare."""
    from tasks.data.tables import table_columns

    have = table_columns(Path(data_dir), "clients")
    base = with_clients_columns(ids, data_dir, [f.column for f in filters if f.column in have])
    return filter_base(base, filters, Path(data_dir), date, factor_fn, known, clients_columns=have)


def filter_base(base: pd.DataFrame, filters: Sequence[FilterSpec], data_dir: Path | None, date: pd.Timestamp,
                factor_fn: FactorFn, known: set[str] | None = None,
                clients_columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """``base`` through ``filters`` in order; a filter column that is not a column of ``base``
    is a point-in-time factor as of ``date``. Returns the kept rows (``client_id`` and the
    filter columns) and the removals per filter. ``clients_columns``: the clients columns an
    error names (default: ``base``'s)."""
    needed = list(dict.fromkeys(f.column for f in filters if f.column not in base.columns))
    frame = base
    if needed:
        unknown = [c for c in needed if known is not None and c not in known]
        if unknown:
            have = list(base.columns) if clients_columns is None else list(clients_columns)
            raise ConfigError(f"campaign.filters: column(s) {unknown} are neither clients columns "
                              f"{have} nor known factors")
        extra = factor_fn(Path(data_dir), pd.Timestamp(date), needed, base["client_id"].to_numpy())
        frame = base.merge(extra[["client_id", *needed]], on="client_id", how="left", validate="1:1")
    kept, report = apply_filters(frame, filters)
    cols = ["client_id", *dict.fromkeys(f.column for f in filters)]
    return kept[cols], report


def eligible_clients(data_dir: str | Path, date: str | pd.Timestamp, filters: Sequence[FilterSpec],
                     factor_fn: FactorFn | None = None) -> np.ndarray:
    """Sorted ids of the clients a campaign at ``date`` with ``filters`` may reach."""
    base, _ = read_registered_base(data_dir, pd.Timestamp(date))
    kept, _ = filter_registered(base["client_id"].to_numpy(), filters, data_dir, pd.Timestamp(date),
                                factor_fn or default_factor_fn)
    return np.sort(kept["client_id"].to_numpy(dtype="int64"))


def eligible_factors(data_dir: str | Path, date: str | pd.Timestamp, filters: Sequence[FilterSpec],
                     names: Sequence[str], factor_fn: FactorFn | None = None) -> pd.DataFrame:
    """The factors ``names`` of the eligible base at ``date``, as a campaign at that date
    computes them (one row per client, ``client_id`` first)."""
    fn = factor_fn or default_factor_fn
    ids = eligible_clients(data_dir, date, filters, fn)
    return fn(Path(data_dir), pd.Timestamp(date), list(names), ids)


def latest_campaign_date(data_dir: str | Path) -> pd.Timestamp:
    """The latest campaign date of a dataset's campaign history (the last date a model trained
    on that history has seen)."""
    from tasks.data.tables import read_table

    history = read_table(Path(data_dir), "campaign_history")
    if len(history) == 0:
        raise DataValidationError("campaign_history", "campaign_date", "is empty: nothing to train on")
    return pd.Timestamp(history["campaign_date"].max())


def eligible_reference(data_dir: str | Path, filters: Sequence[FilterSpec], features: Sequence[str],
                       date: str | pd.Timestamp | None = None, factor_fn: FactorFn | None = None,
                       seed: int = 0) -> tuple[dict, dict]:
    """The drift reference of a model whose campaigns reach the base through ``filters``: the
    reference distributions of ``features`` over the eligible base at ``date`` (None: the latest
    campaign date of the dataset's history, the last date the model trained on), and a
    description of that population for the metadata."""
    from tasks.modelling.reference import reference_distributions

    date = latest_campaign_date(data_dir) if date is None else pd.Timestamp(date)

    frame = eligible_factors(data_dir, date, filters, features, factor_fn)
    ref = reference_distributions(frame[list(features)], seed=seed)
    return ref, {"population": "eligible base", "date": str(pd.Timestamp(date).date()),
                 "filters": [f"{f.name}: {f.column} {f.op} {f.value!r}" for f in filters], "rows": int(len(frame))}
