"""A campaign over a client table: one row per client with the model's feature columns.

``campaign.client_table.path`` names a CSV (any separator) or Parquet file, or a folder of
Parquet files (e.g. this month's client mart). Such a campaign takes its client base and its
features from the table in place of the dataset folder and the factor library:

* the ``client_base`` stage is the table itself, ids in ``client_table.id_column`` (whole
  numbers, unique) renamed ``client_id``, keyed on the table's content hash, so a changed
  table recomputes and an unchanged one resumes;
* base filters work on the table's columns;
* the ``factors`` stage is the model's features made from the table's columns the way
  training made them (:func:`factors.passthrough.prepare_wide`: numbers kept, booleans 0/1,
  text and ``categorical`` columns one-hot encoded); a category value the table does not
  hold this time is a column of zeros, any other missing feature is one error naming them.

The frozen manifest records the table's path and sha256 (:func:`table_manifest`); rerunning a
frozen campaign whose table changed since says so (:func:`frozen_table_note`).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from factors.passthrough import is_one_hot, prepare_wide, sanitize_name
from tasks.campaign.config import ClientTableConfig
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, UpliftError
from tasks.data.table import read_wide_table, table_content_hash

TABLE = "client_table"
KEY = "campaign.client_table"
_SHOW = 20


def uses_client_table(cfg: Any) -> bool:
    """Whether campaign ``cfg`` takes its clients from a client table."""
    table = getattr(cfg, "client_table", None)
    return table is not None and bool(table.path)


def _our_keys(message: str) -> str:
    """A table reader's message with its hints naming ``campaign.client_table.*``, not ``data.*``."""
    return message.replace("data.sep", f"{KEY}.sep").replace("data.path", f"{KEY}.path")


def table_source(table: ClientTableConfig, date: str | None) -> dict:
    """Where the client table is and what it holds: name, absolute path, content hash, date.

    The date is ``campaign.date`` or, when unset, the UTC day the table was last written.
    Raises :class:`NotFoundError` for a path that does not exist.
    """
    path = Path(str(table.path)).expanduser().resolve()
    if not path.exists():
        raise NotFoundError(
            f"{KEY}.path: {path} does not exist; give the client table as a CSV or Parquet file or a folder "
            f"of Parquet files, e.g. {KEY}.path=/data/clients_this_month.csv")
    if date is None:
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        stamp = max((f.stat().st_mtime for f in files), default=path.stat().st_mtime)
        date = _dt.datetime.fromtimestamp(stamp, _dt.timezone.utc).date().isoformat()
    try:
        content = table_content_hash(path)
    except NotFoundError as exc:  # e.g. a folder without Parquet files
        raise NotFoundError(_our_keys(str(exc))) from None
    return {"kind": "table", "name": path.stem if path.is_file() else path.name, "path": path,
            "hash": content, "date": pd.Timestamp(date), "id_column": table.id_column,
            "sep": table.sep, "categorical": list(table.categorical or [])}


def read_client_table(table: ClientTableConfig, path: str | Path) -> pd.DataFrame:
    """The client table with its ids as ``client_id`` (int64), ordered by them.

    The id column must exist, hold whole numbers (the campaign, the offer list and the
    responses key on them) and name each client once; :class:`DataValidationError` naming the
    rows otherwise.
    """
    try:
        df = read_wide_table(path, sep=table.sep, table=TABLE)
    except DataValidationError as exc:  # the reader's hints name the dataset's keys: name the campaign's
        raise DataValidationError(exc.table, exc.column, _our_keys(exc.problem), exc.rows) from None
    col = table.id_column
    if col not in df.columns:
        one = df.shape[1] == 1 and any(ch in str(df.columns[0]) for ch in ";\t|,")
        raise DataValidationError(
            TABLE, col, f"no id column {col!r} in {path}; the table has {list(df.columns)[:_SHOW]}; "
            + (f"it reads as one column: give the separator with {KEY}.sep=<sep> (or null to detect it)" if one else
               f"name the column of client ids with {KEY}.id_column=<column>"))
    if col != "client_id" and "client_id" in df.columns:
        raise DataValidationError(
            TABLE, "client_id", f"the table has a 'client_id' column besides the id column {col!r}; "
            f"drop one or set {KEY}.id_column=client_id")
    ids = pd.to_numeric(df[col], errors="coerce")
    values = ids.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values) | (np.mod(np.nan_to_num(values), 1) != 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            TABLE, col, f"{len(rows)} row(s) without a whole-number client id (e.g. "
            f"{df[col].iloc[rows[:5]].tolist()}); the campaign, the offer list and the responses key on "
            "whole-number ids: map the ids to numbers in the table", rows[:5].tolist())
    ids = ids.astype("int64")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataValidationError(
            TABLE, col, f"{len(rows)} row(s) repeat a client id (e.g. {sorted(set(ids.iloc[rows[:10]]))[:5]}); "
            "the table needs one row per client", rows[:5].tolist())
    out = df.drop(columns=[col])
    out.insert(0, "client_id", ids.to_numpy())
    return out.sort_values("client_id", kind="stable").reset_index(drop=True)


def check_filter_columns(filters: Sequence[Any], columns: Sequence[str]) -> None:
    """:class:`ConfigError` naming the base filters whose column the table lacks."""
    missing = [f"{f.name} ({f.column})" for f in filters if f.column not in columns]
    if missing:
        raise ConfigError(
            f"campaign.filters: {', '.join(missing)} filter on column(s) the client table lacks; the table "
            f"has {[c for c in columns if c != 'client_id'][:_SHOW]}; filter on those columns "
            "(campaign.filters=[] for none)")


def _safe(name: object) -> str | None:
    try:
        return sanitize_name(name)
    except UpliftError:
        return None


def _plan(frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> tuple[list, list, dict]:
    """Which table columns make which features: ``(source columns, encoded columns, missing hints)``.

    A feature is a kept column's sanitised name or, for an encoded column, its name plus
    ``_<value>``. ``missing`` maps each feature no column makes to a hint (or '').
    """
    wanted = set(features)
    sources, encoded, prefixes, numeric_prefixes = [], [], {}, {}
    for col in frame.columns:
        if col == "client_id":
            continue
        safe = _safe(col)
        if safe is None:
            continue
        if is_one_hot(frame[col], col, categorical):
            prefix = safe + "_"
            if any(f.startswith(prefix) for f in wanted):
                sources.append(col)
                encoded.append(col)
            prefixes[prefix] = col
        else:
            if safe in wanted:
                sources.append(col)
            numeric_prefixes[safe + "_"] = col
    missing: dict[str, str] = {}
    for f in features:
        if any(f.startswith(p) for p in prefixes) or any(_safe(c) == f for c in sources if c not in encoded):
            continue
        hint = next((f"column {c!r} is numeric here: if the model was trained with it as categorical, "
                     f"list it in {KEY}.categorical" for p, c in numeric_prefixes.items() if f.startswith(p)), "")
        missing[f] = hint
    return sources, encoded, missing


def missing_features(frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> dict[str, str]:
    """The model features the table cannot make, each with a hint ('' when none)."""
    return _plan(frame, features, categorical)[2]


def missing_features_error(model: Any, missing: dict[str, str], frame: pd.DataFrame, path: Any) -> DataValidationError:
    """The one error for model features the client table lacks (names them and the table's columns)."""
    hints = sorted({h for h in missing.values() if h})
    columns = [c for c in frame.columns if c != "client_id"]
    return DataValidationError(
        TABLE, None,
        f"model {model.name} {model.version} needs feature(s) {list(missing)[:_SHOW]} that the client table "
        f"{path} does not have; the table has {columns[:_SHOW]}{' ...' if len(columns) > _SHOW else ''}; "
        + ("; ".join(hints) + "; " if hints else "")
        + "give the table the columns the model was trained on (same names), or train the model on the "
          "columns the table has")


def table_features(frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """``client_id`` and ``features`` made from the table as training made them (rows kept in order).

    Only the columns that make a feature are encoded (a text column of e-mail addresses would
    otherwise become a column per client). A one-hot column of a value the table does not
    hold is zeros. Raises :class:`DataValidationError` when a feature cannot be made.
    """
    sources, encoded, missing = _plan(frame, features, categorical)
    if missing:
        raise DataValidationError(TABLE, None, f"cannot make feature(s) {list(missing)[:_SHOW]} from the table")
    wide = prepare_wide(frame[sources], categorical=encoded) if sources else pd.DataFrame(index=frame.index)
    out = pd.DataFrame({"client_id": frame["client_id"].to_numpy(dtype="int64")}, index=frame.index)
    cols = {f: (wide[f] if f in wide.columns else pd.Series(np.zeros(len(frame), dtype="int8"), index=frame.index))
            for f in features}
    return pd.concat([out, pd.DataFrame(cols, index=frame.index)], axis=1).reset_index(drop=True)


def table_partition(features: Sequence[str], categorical: Sequence[str], rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`table_features` of one partition of the table's rows (the factor stage's mapped function)."""
    return table_features(rows, features, categorical)


def table_manifest(d: dict) -> dict:
    """What the frozen manifest records of the client table: where it was and what it held."""
    return {"kind": "table", "name": d["name"], "path": str(d["path"]), "sha256": d["hash"],
            "id_column": d["id_column"], "sep": d["sep"], "categorical": d["categorical"]}


def frozen_table_note(manifest: dict) -> str | None:
    """A line saying the client table of a frozen campaign changed (or went) since the freeze.

    None when the campaign is not over a client table or the table is as it was. The frozen
    campaign stays valid (campaign.parquet and the stage checkpoints hold the clients and
    scores as they were); a campaign on the new table needs a new id.
    """
    data = manifest.get("data") or {}
    if not isinstance(data, dict) or data.get("kind") != "table":
        return None
    path, recorded = Path(str(data.get("path"))), str(data.get("sha256"))
    cid = manifest.get("campaign_id", "")
    new_id = f"campaign.id={cid}_v2"
    if not path.exists():
        return (f"note: the client table {path} it was calculated on no longer exists; the frozen campaign "
                f"keeps the clients and scores of that table; for a campaign on another table use a new id "
                f"({new_id})")
    now = table_content_hash(path)
    if now == recorded:
        return None
    return (f"note: the client table {path} changed since the freeze (sha256 {recorded[:12]}... then, "
            f"{now[:12]}... now); the frozen campaign keeps the clients and scores of the table as it was; "
            f"to calculate on the new table use a new id ({new_id})")
