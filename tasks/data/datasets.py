"""Wide datasets: one row per client, a 0/1 target, a 0/1 treatment for uplift data.

* ``kind: table`` (conf/data/table.yaml, and the shipped hillstrom.yaml and ifood.yaml): any
  CSV or Parquet table, configured, not coded (:func:`load_table_dataset`): the target and
  the value counted as 1, the treatment column and the values of each arm (other arms
  excluded by name), the id column, categorical columns, the columns known only after the
  decision (never features), columns to drop, and an engineered feature set by name
  (:mod:`tasks.data.engineered`).
* ``kind: one_click``: the one dataset that needs code (four files joined;
  :mod:`tasks.data.one_click` says why).

:func:`feature_frame` turns a :class:`TabularDataset` into a numeric feature frame (the
engineered features, then :func:`factors.passthrough.prepare_wide`: categoricals one-hot
encoded, names made safe for LightGBM). Missing values stay NaN: LightGBM learns on which
side of each split they go; :func:`describe` reports them per column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from factors.passthrough import prepare_wide
from tasks.core.config import from_conf
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.data.coding import code_arms, code_target, value_counts
from tasks.data.engineered import derived_features, feature_set
from tasks.data.one_click import ONE_CLICK_CATEGORICAL, ONE_CLICK_ID, ONE_CLICK_LABEL, load_one_click
from tasks.data.table import read_wide_table, table_content_hash

KINDS = ("table", "one_click")
ROW_ID = "client_id"  # the id column made from the row number when data.id_column is null


@dataclass
class TabularDataConfig:
    """conf/data/table.yaml (which explains each key), and the datasets configured on it
    (conf/data/hillstrom.yaml, ifood.yaml)."""

    kind: str                        # table
    name: str | None                 # None: the file's stem (the folder's name)
    path: str | None                 # CSV or Parquet file, or a folder of Parquet files
    sep: str | None                  # CSV separator; None: detected
    id_column: str | None            # None: the row number (0 = first data row of the file)
    target: str | None               # the outcome column
    positive: Any                    # the target value counted as 1; None: 0/1, boolean, yes/no, true/false
    treatment: str | None            # uplift data: the column of the arms
    treated: Any                     # the value meaning treated (None: 1/true/yes/treated)
    control: Any                     # the value meaning control (None: 0/false/no/control)
    exclude_arms: list[Any]          # arm values whose rows are left out (e.g. a third arm)
    categorical: list[str] | None    # one-hot encoded; None: the non-numeric columns
    max_categories: int              # a categorical column with more distinct values is an error
    known_after: list[str]           # recorded after the decision: never features, reported as excluded
    drop: list[str]                  # other columns never used as features
    features: str | None             # engineered feature set (tasks.data.engineered), None: none
    treatment_shares: dict[Any, float] | None  # design shares of the arms, {treated: .., control: ..}


@dataclass
class OneClickDataConfig:
    """conf/data/one_click.yaml (which explains each key)."""

    kind: str                        # one_click
    name: str
    folder: str                      # folder under paths.shared_data
    target: str                      # activity_declined
    features: str | None
    known_after: list[str]
    drop: list[str]
    min_active_months: int           # keep clients with revenue in every one of these periods
    profit_column: str               # profit per client (segmentation, not a feature)


@dataclass
class TabularDataset:
    """A wide dataset: one row per client; ``target`` and ``treatment`` columns hold 0/1."""

    name: str
    frame: pd.DataFrame
    id_column: str
    target: str
    treatment: str | None
    categorical: list[str]
    raw_tables: dict[str, pd.DataFrame]
    not_features: list[str] = field(default_factory=list)   # outcomes and extras never used as features
    kind: str = ""
    known_after: list[str] = field(default_factory=list)    # recorded after the decision (never features)
    features: str | None = None                            # engineered feature set
    source: dict[str, Any] = field(default_factory=dict)   # path, sha256, rows, arms, coding: for reports


def tabular_config(settings: Mapping[str, Any]) -> TabularDataConfig | OneClickDataConfig:
    """The config of a wide dataset: ``settings`` (the composed ``data`` node, or only the
    keys that differ) over conf/data/table.yaml or one_click.yaml, by ``kind``."""
    kind = settings.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"config 'data', key 'kind': {kind!r} is not a wide dataset; use one of {list(KINDS)} "
                          "(e.g. data=table data.path=<file> data.target=<column>)")
    cls = TabularDataConfig if kind == "table" else OneClickDataConfig
    return from_conf(cls, f"data/{kind}", **settings)


def dataset_name(cfg: TabularDataConfig | OneClickDataConfig) -> str:
    """The dataset's name: ``name``, else the stem of ``path`` (``bank-full.csv`` -> ``bank-full``)."""
    if cfg.name:
        return str(cfg.name)
    if getattr(cfg, "path", None):
        path = Path(str(cfg.path))
        return path.name if path.is_dir() else path.stem
    return str(cfg.kind)


def _require_columns(df: pd.DataFrame, table: str, key: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = list(map(str, df.columns))
        shown = have[:30] + (["..."] if len(have) > 30 else [])
        raise DataValidationError(table, str(missing[0]), f"data.{key} names column(s) {missing} that the table does "
                                  f"not have; its columns are {shown}; fix data.{key}")


def _non_numeric(s: pd.Series) -> bool:
    return not (pdt.is_numeric_dtype(s.dtype) or pdt.is_bool_dtype(s.dtype))


def _ids(frame: pd.DataFrame, cfg: TabularDataConfig, table: str) -> tuple[pd.DataFrame, str]:
    """The frame with its id column: data.id_column checked (no empty, no duplicate id), or the
    row number of the file in ``client_id``."""
    if cfg.id_column:
        ids = frame[cfg.id_column]
        empty = ids.isna().to_numpy()
        if empty.any():
            raise DataValidationError(table, cfg.id_column, f"{int(empty.sum())} empty id(s); every row needs "
                                      "one (or set data.id_column=null to number the rows)",
                                      list(np.flatnonzero(empty)[:5]))
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            shown = sorted(ids[dup].unique().tolist(), key=str)[:5]
            raise DataValidationError(table, cfg.id_column, f"{int(dup.sum())} rows share an id (e.g. {shown}); "
                                      "one row per client is needed: fix the table, or name another column with "
                                      "data.id_column=<column> (null numbers the rows)",
                                      list(np.flatnonzero(dup)[:5]))
        return frame, cfg.id_column
    if ROW_ID in frame.columns:
        raise ConfigError(f"config 'data', key 'id_column': the table has a column {ROW_ID!r}; name it as the id "
                          f"with data.id_column={ROW_ID} (or rename it)")
    out = frame.copy()
    out.insert(0, ROW_ID, frame.index.to_numpy(dtype=np.int64))
    return out, ROW_ID


def load_table_dataset(cfg: TabularDataConfig) -> TabularDataset:
    """One wide table read and checked by its config (see :class:`TabularDataConfig`)."""
    if not cfg.path:
        raise ConfigError("config 'data', key 'path': give the table, e.g. data=table data.path=/data/bank.csv "
                          "data.target=y")
    name = dataset_name(cfg)
    raw = read_wide_table(cfg.path, cfg.sep, table=name)
    engineered = feature_set(cfg.features)
    frame = engineered.prepare(raw, name) if engineered else raw
    if not cfg.target:
        have = list(map(str, frame.columns))
        raise ConfigError(f"config 'data', key 'target': name the outcome column with data.target=<column>; "
                          f"the table {name} has {have[:30] + (['...'] if len(have) > 30 else [])}")
    _require_columns(frame, name, "target", [cfg.target])
    for key in ("id_column", "treatment"):
        if getattr(cfg, key):
            _require_columns(frame, name, key, [getattr(cfg, key)])
    for key in ("known_after", "drop", "categorical"):
        _require_columns(frame, name, key, list(getattr(cfg, key) or []))
    source: dict[str, Any] = {"path": str(cfg.path), "sha256": table_content_hash(cfg.path), "rows": len(raw)}
    if cfg.treatment:
        arm, keep = code_arms(frame[cfg.treatment], cfg.treated, cfg.control, cfg.exclude_arms, name, cfg.treatment)
        values = frame[cfg.treatment]
        source["arms"] = {"column": cfg.treatment,
                          "treated": sorted(map(str, values[keep & (arm == 1)].unique())),
                          "control": sorted(map(str, values[keep & (arm == 0)].unique()))}
        if not keep.all():
            source["excluded_rows"] = {str(k): int(v) for k, v in values[~keep].value_counts().items()}
        frame = frame.assign(**{cfg.treatment: arm})[keep]
    elif cfg.treated is not None or cfg.control is not None or cfg.exclude_arms:
        raise ConfigError("config 'data', key 'treatment': data.treated / data.control / data.exclude_arms need "
                          "the treatment column, e.g. data.treatment=<column>")
    y = code_target(frame[cfg.target], cfg.positive, name, cfg.target)
    if cfg.positive is not None or _non_numeric(frame[cfg.target]):
        source["target_values"] = value_counts(frame[cfg.target])
    frame = frame.assign(**{cfg.target: y})
    frame, id_column = _ids(frame, cfg, name)
    frame = frame.reset_index(drop=True)
    known_after = [c for c in cfg.known_after if c != cfg.target]
    not_features = list(dict.fromkeys([*cfg.drop, *known_after]))
    reserved = {id_column, cfg.target, cfg.treatment, *not_features}
    candidates = [c for c in frame.columns if c not in reserved]
    categorical = (list(cfg.categorical) if cfg.categorical is not None
                   else [c for c in candidates if _non_numeric(frame[c])])
    for col in categorical:
        if col in reserved:
            continue
        n = frame[col].nunique()
        if n > cfg.max_categories:
            raise DataValidationError(name, col, f"{n:,} distinct values: too many to one-hot encode (data."
                                      f"max_categories={cfg.max_categories}); list it in data.drop, or name it as "
                                      "the id with data.id_column, or convert it to numbers")
    return TabularDataset(
        name=name, frame=frame, id_column=id_column, target=cfg.target, treatment=cfg.treatment or None,
        categorical=categorical, raw_tables={name: raw}, not_features=not_features, kind="table",
        known_after=known_after, features=cfg.features, source=source,
    )


def load_one_click_dataset(cfg: OneClickDataConfig, shared_data: Path) -> TabularDataset:
    """The one_click shop from its folder under ``shared_data`` (:mod:`tasks.data.one_click`)."""
    if not Path(shared_data).is_dir():
        raise NotFoundError(f"real datasets folder {shared_data} does not exist (set paths.shared_data)")
    frame, raw = load_one_click(Path(shared_data) / cfg.folder, cfg.profit_column, cfg.min_active_months)
    known_after = [c for c in cfg.known_after if c != ONE_CLICK_LABEL]
    return TabularDataset(
        name=cfg.name, frame=frame, id_column=ONE_CLICK_ID, target=ONE_CLICK_LABEL, treatment=None,
        categorical=list(ONE_CLICK_CATEGORICAL), raw_tables=raw,
        not_features=list(dict.fromkeys([cfg.profit_column, *cfg.drop, *known_after])), kind="one_click",
        known_after=known_after, features=cfg.features,
        source={"path": str(Path(shared_data) / cfg.folder), "rows": len(frame)},
    )


def load_tabular_dataset(cfg: TabularDataConfig | OneClickDataConfig, shared_data: Path | str) -> TabularDataset:
    """Load the wide dataset of ``cfg`` (a table from ``cfg.path``; one_click from ``shared_data``)."""
    if cfg.kind == "table":
        return load_table_dataset(cfg)  # type: ignore[arg-type]
    if cfg.kind == "one_click":
        return load_one_click_dataset(cfg, Path(shared_data))  # type: ignore[arg-type]
    raise ConfigError(f"config 'data', key 'kind': {cfg.kind!r} is not a wide dataset; use one of {list(KINDS)}")


def feature_columns(ds: TabularDataset) -> list[str]:
    """The columns of ``ds.frame`` that feed the features: all but the id, target, treatment,
    known-after and dropped columns."""
    exclude = {ds.id_column, ds.target, *(ds.not_features or []), *(ds.known_after or [])}
    if ds.treatment:
        exclude.add(ds.treatment)
    return [c for c in ds.frame.columns if c not in exclude]


def feature_frame(ds: TabularDataset, engineer: bool = True) -> pd.DataFrame:
    """Numeric feature frame of ``ds`` (same row order): no id, target, treatment or outcomes;
    missing values stay NaN."""
    base = ds.frame[feature_columns(ds)]
    if engineer and ds.features:
        base = pd.concat([base, derived_features(ds.features, ds.frame)], axis=1)
    X = prepare_wide(base, categorical=[c for c in ds.categorical if c in base.columns])
    return X.reset_index(drop=True)


def missing_values(frame: pd.DataFrame, columns: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``{column: {"count": n, "share": n / rows}}`` of the columns with an empty cell."""
    cols = list(frame.columns) if columns is None else columns
    counts = frame[cols].isna().sum()
    rows = max(len(frame), 1)
    return {str(c): {"count": int(n), "share": float(n) / rows} for c, n in counts.items() if n > 0}


def describe(ds: TabularDataset) -> dict[str, Any]:
    """What training and the profile report about the data: its source (path, sha256, rows
    read, rows excluded by arm, the values of the target and of each arm), the columns
    excluded from the features and why, and the missing values per feature column (left to
    LightGBM, which learns where they go)."""
    out: dict[str, Any] = {"dataset": ds.name, "kind": ds.kind, **ds.source, "rows_used": len(ds.frame),
                           "id_column": ds.id_column, "target": ds.target, "treatment": ds.treatment}
    out["excluded_columns"] = {"known_after": list(ds.known_after),
                               "drop": [c for c in ds.not_features if c not in set(ds.known_after)]}
    out["missing_values"] = missing_values(ds.frame, feature_columns(ds))
    return out
