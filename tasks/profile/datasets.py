"""What the data profile reads from each kind of dataset, and the profiles it makes of them.

For a synthetic world the raw tables are clients, purchases, messages and campaign_history
(the truth table is never read), limited to what was known before the profile's as-of date;
the factor table is the campaign history (treatment, response) joined with the factor set
computed as of each campaign's date (:func:`tasks.data.point_in_time.factors_as_of_rows`).
For a wide dataset (a table: any CSV or Parquet, Hillstrom, iFood; one_click) the raw tables
are the source files as read and the factor table is the loader's wide table, including the
columns the data config drops from training, so the report shows why they are dropped (but
not the columns known only after the decision).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from tasks.core.contracts import CONTRACTS
from tasks.core.errors import ConfigError, DataValidationError
from tasks.data.datasets import OneClickDataConfig, TabularDataConfig, feature_frame, load_tabular_dataset
from tasks.data.point_in_time import factors_as_of_rows
from tasks.data.tables import read_table
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import AnalysisProfile, TableProfile, profile_analysis, profile_table
from tasks.profile.stats import column_kind, sample_rows

WORLD_TABLES = ("clients", "purchases", "messages", "campaign_history")
_EVENT_FILTERS = {"purchases": "timestamp", "messages": "timestamp", "campaign_history": "campaign_date"}
_HISTORY_COLUMNS = ["client_id", "campaign_id", "campaign_date", "treatment", "response"]


def read_world_table(data_dir: Path, table: str, as_of: pd.Timestamp, world_as_of: pd.Timestamp) -> pd.DataFrame:
    """One table of a synthetic world, limited to what was known before ``as_of``.

    At the world's own as-of date the contract check covers it; for an earlier date the
    events from ``as_of`` on (and clients registered after it) are left out.
    """
    if as_of >= world_as_of:
        return read_table(data_dir, table, as_of=as_of)
    df = read_table(data_dir, table)
    if table == "clients":
        return df[df["registration_date"] <= as_of].reset_index(drop=True)
    col = _EVENT_FILTERS.get(table)
    return df[df[col] < as_of].reset_index(drop=True) if col else df


def point_in_time_factor_table(
    data_dir: Path, history: pd.DataFrame, factor_names: list[str]
) -> pd.DataFrame:
    """Campaign history rows joined with the factors computed as of each row's campaign date.

    With no factor names the clients' own numeric and boolean columns stand in for factors.
    """
    if not factor_names:
        clients = read_table(data_dir, "clients")
        cols = [c for c in clients.columns if c != "client_id" and column_kind(clients[c]) in ("numeric", "bool")]
        return history[_HISTORY_COLUMNS].merge(clients[["client_id", *cols]], on="client_id", how="left")
    rows = history[_HISTORY_COLUMNS].reset_index(drop=True)
    return pd.concat([rows, factors_as_of_rows(data_dir, rows, factor_names)], axis=1)


def profile_world_tables(data_dir: Path, as_of: pd.Timestamp, world_as_of: pd.Timestamp,
                         cfg: ProfileConfig) -> list[TableProfile]:
    """Profile the raw tables of a synthetic world (never its truth table)."""
    out = []
    for table in WORLD_TABLES:
        df = read_world_table(data_dir, table, as_of, world_as_of)
        key = list(cfg.table_keys.get(table) or CONTRACTS[table].unique)
        out.append(profile_table(df, table, cfg, key=key, outcome="response"))
    return out


def profile_world_factors(data_dir: Path, as_of: pd.Timestamp, world_as_of: pd.Timestamp,
                          factor_names: list[str], factor_set: str, cfg: ProfileConfig,
                          treated_share: float | None = None) -> AnalysisProfile:
    """Profile the campaign history as uplift data with point-in-time factors; ``treated_share``:
    the world's design share of treated clients in each past campaign (None: equal arms assumed)."""
    history = read_world_table(data_dir, "campaign_history", as_of, world_as_of)
    if history.empty:
        raise DataValidationError("campaign_history", "campaign_date", f"no campaign before the as-of date {as_of.date()}")
    # Sampling before the factor computation keeps large worlds fast.
    sample, _ = sample_rows(history, cfg.max_rows, cfg.seed)
    table = point_in_time_factor_table(data_dir, sample, factor_names)
    names = factor_names or [c for c in table.columns if c not in _HISTORY_COLUMNS]
    source = f"factor set `{factor_set}`" if factor_names else "the clients' numeric columns (no factor set chosen)"
    description = (
        f"Campaign history (treatment, response) joined with {source}, computed as of each campaign's date."
    )
    shares = None if treated_share is None else {"treated": treated_share, "control": 1.0 - treated_share}
    return profile_analysis(table, names, "response", cfg, treatment="treatment",
                            description=description, population_rows=len(history), group="campaign_id",
                            treatment_shares=shares)


def raw_table_key(table: str, raw: pd.DataFrame, id_column: str, cfg: ProfileConfig) -> list[str] | None:
    """The key of a raw table: ``profile.table_keys`` when it names the table, else the id column."""
    if table in cfg.table_keys:
        key = list(cfg.table_keys[table])
        missing = [k for k in key if k not in raw.columns]
        if missing:
            raise ConfigError(f"config 'profile', key 'table_keys.{table}': column(s) {missing} not in table '{table}'")
        return key
    return [id_column] if id_column in raw.columns else None


def profile_tabular(dcfg: TabularDataConfig | OneClickDataConfig, shared_data: Path,
                    cfg: ProfileConfig) -> tuple[list[TableProfile], AnalysisProfile]:
    """Profile a wide dataset: its source files as read and its wide factor table (the
    columns known only after the decision left out, the dropped ones shown)."""
    ds = load_tabular_dataset(dcfg, shared_data)
    tables = [profile_table(raw, name, cfg, key=raw_table_key(name, raw, ds.id_column, cfg), outcome=ds.target)
              for name, raw in ds.raw_tables.items()]
    shown = replace(ds, not_features=[c for c in ds.not_features if c not in set(dcfg.drop)])
    X = feature_frame(shown)
    frame = X.assign(**{ds.target: ds.frame[ds.target].to_numpy()})
    if ds.treatment:
        frame[ds.treatment] = ds.frame[ds.treatment].to_numpy()
    description = f"The {ds.name} wide table, categoricals one-hot encoded"
    arms = ds.source.get("arms")
    if ds.treatment and arms:
        description += f"; treatment 1 = {', '.join(arms['treated'])}, 0 = {', '.join(arms['control'])}"
    for value, n in (ds.source.get("excluded_rows") or {}).items():
        description += f"; {n:,} rows with {ds.treatment} = {value} left out"
    if dcfg.drop:
        description += f"; it includes the columns training drops ({', '.join(dcfg.drop)})"
    if ds.known_after:
        description += f"; known only after the decision, never features and not shown: {', '.join(ds.known_after)}"
    return tables, profile_analysis(frame, list(X.columns), ds.target, cfg, treatment=ds.treatment,
                                    description=description + ".",
                                    treatment_shares=getattr(dcfg, "treatment_shares", None))
