"""A campaign over a client table: one row per client with the model's feature columns.

``campaign.client_table.path`` names a CSV (any separator) or Parquet file, or a folder of
Parquet files (e.g. this month's client mart). Such a campaign takes its client base and its
features from the table in place of the dataset folder and the factor library:

* the ``client_base`` stage is the table's ids (``client_table.id_column``: whole numbers,
  unique) as ``client_id``, with the columns the base filters compare, keyed on the table's
  content hash, so a changed table recomputes and an unchanged one resumes;
* base filters work on the table's columns;
* the ``factors`` stage is the model's features made from the table's columns the way
  training made them (:func:`factors.passthrough.prepare_wide`: numbers kept, booleans 0/1,
  text and ``categorical`` columns one-hot encoded); a category value the table does not
  hold this time is a column of zeros, any other missing feature is one error naming them.
  The table's rows reach the partitions through one pass over it in batches
  (:func:`write_partition_files`: only the columns that make features), so no process holds
  the whole table.

:class:`ClientTable` reads a Parquet table by column and in batches (its schema gives the
columns' types without reading a row); a CSV in chunks of rows, each with the types of the
whole file as training reads it (:func:`tasks.data.table.scan_csv` finds them in one pass
first): a CSV is parsed once for its types, once for the ids and once for the features.

The frozen manifest records the table's path and sha256 (:func:`table_manifest`); rerunning a
frozen campaign whose table changed since says so (:func:`frozen_table_note`).
"""
from __future__ import annotations

import datetime as _dt
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factors.passthrough import is_one_hot, prepare_wide, sanitize_name
from tasks.campaign.config import ClientTableConfig
from tasks.campaign.transforms import sorted_positions
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, UpliftError
from tasks.data.table import (
    CSV_CHUNK_ROWS, CsvLayout, is_parquet, iter_csv, parquet_error, parquet_parts, scan_csv, table_content_hash,
)

TABLE = "client_table"
KEY = "campaign.client_table"
_SHOW = 20
BATCH_ROWS = 262_144  # rows of the table in memory at a time while it is routed to the partitions


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


def _whole_ids(values: pd.Series, col: str) -> np.ndarray:
    """The id column as int64; :class:`DataValidationError` naming rows that are no whole number
    or repeat an id."""
    ids = pd.to_numeric(values, errors="coerce")
    floats = ids.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(floats) | (np.mod(np.nan_to_num(floats), 1) != 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataValidationError(
            TABLE, col, f"{len(rows)} row(s) without a whole-number client id (e.g. "
            f"{values.iloc[rows[:5]].tolist()}); the campaign, the offer list and the responses key on "
            "whole-number ids: map the ids to numbers in the table", rows[:5].tolist())
    out = ids.to_numpy().astype("int64")
    order = np.argsort(out, kind="stable")
    repeated = np.flatnonzero(out[order][1:] == out[order][:-1])
    if len(repeated):
        dup = np.isin(out, out[order][repeated])
        rows = np.flatnonzero(dup)
        raise DataValidationError(
            TABLE, col, f"{len(rows)} row(s) repeat a client id (e.g. {sorted(set(out[rows[:10]].tolist()))[:5]}); "
            "the table needs one row per client", rows[:5].tolist())
    return out


@contextmanager
def _campaign_keys() -> Iterator[None]:
    """The table reader's errors with their hints naming ``campaign.client_table.*``."""
    try:
        yield
    except DataValidationError as exc:
        raise DataValidationError(exc.table, exc.column, _our_keys(exc.problem), exc.rows) from None


def _arrow_type(dtype: Any) -> pa.DataType:
    """The Arrow type of a CSV column's type (objects are true/false flags with gaps)."""
    if dtype == np.dtype("object"):
        return pa.bool_()
    if pd.api.types.is_string_dtype(dtype):
        return pa.large_string()
    return pa.from_numpy_dtype(dtype)


class ClientTable:
    """One campaign's client table as its stages read it.

    A Parquet table (file, or folder of part files in name order) is read by column and in
    batches; its columns' types come from its schema without reading a row. A CSV is read in
    chunks with the types of the whole file (:func:`tasks.data.table.scan_csv`), as training
    reads it. Every reading error names the campaign's keys (``campaign.client_table.*``).
    """

    def __init__(self, table: ClientTableConfig, path: str | Path):
        self.table = table
        self.path = Path(path)
        self.parquet = is_parquet(self.path)
        self._layout: CsvLayout | None = None  # a CSV's columns and their types over all its rows
        self._dtypes: dict[Any, Any] | None = None
        self._rows: tuple[tuple, pd.DataFrame] | None = None  # the last rows() read
        self._arrow: pa.Schema | None = None  # a Parquet table's schema, unified over its files

    def _files(self) -> list[Path]:
        return parquet_parts(self.path) if self.path.is_dir() else [self.path]

    def _csv(self) -> CsvLayout:
        if self._layout is None:
            with _campaign_keys():
                self._layout = scan_csv(self.path, sep=self.table.sep, table=TABLE)
        return self._layout

    def _csv_chunks(self, columns: Sequence[Any], rows: int = CSV_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        with _campaign_keys():
            yield from iter_csv(self.path, self._csv(), TABLE, columns=columns, rows=rows)

    def _schema(self) -> pa.Schema:
        """The Parquet table's schema: its files' schemas unified (an integer column that is
        fractional in another file becomes a float one); files that disagree otherwise on a
        column's type are one :class:`DataValidationError`."""
        if self._arrow is None:
            schemas = []
            for f in self._files():
                try:
                    schemas.append(pq.read_schema(f))
                except (OSError, ValueError, pa.ArrowException) as exc:
                    raise parquet_error(f, exc, TABLE) from None
            try:
                unified = pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else schemas[0]
            except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
                raise DataValidationError(
                    TABLE, None, f"the Parquet files of {self.path} disagree on a column's type "
                    f"({str(exc).splitlines()[0]}); write every file with the same column types") from None
            self._arrow = unified.remove_metadata()
        return self._arrow

    def _read_parquet(self, columns: Sequence[Any]) -> pa.Table:
        """``columns`` of every file, with the table's types."""
        schema = self._schema()
        target = pa.schema([schema.field(c) for c in columns])
        tables = []
        for f in self._files():
            try:
                tables.append(pq.read_table(f, columns=list(columns)).cast(target))
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise parquet_error(f, exc, TABLE) from None
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def dtypes(self) -> dict[Any, Any]:
        """Column -> pandas dtype, the id column (checked: present, and no other ``client_id``)
        named ``client_id``."""
        if self._dtypes is None:
            if self.parquet:
                dtypes = dict(self._schema().empty_table().to_pandas().dtypes)
            else:
                dtypes = dict(self._csv().dtypes)
            col = self.table.id_column
            names = list(dtypes)
            if col not in dtypes:
                one = len(names) == 1 and any(ch in str(names[0]) for ch in ";\t|,")
                raise DataValidationError(
                    TABLE, col, f"no id column {col!r} in {self.path}; the table has {names[:_SHOW]}; "
                    + (f"it reads as one column: give the separator with {KEY}.sep=<sep> (or null to detect it)" if one
                       else f"name the column of client ids with {KEY}.id_column=<column>"))
            if col != "client_id" and "client_id" in dtypes:
                raise DataValidationError(
                    TABLE, "client_id", f"the table has a 'client_id' column besides the id column {col!r}; "
                    f"drop one or set {KEY}.id_column=client_id")
            self._dtypes = {("client_id" if c == col else c): d for c, d in dtypes.items()}
        return self._dtypes

    def columns(self) -> list[Any]:
        """The table's columns, ``client_id`` in place of the id column."""
        return list(self.dtypes())

    def rows(self, columns: Sequence[Any] = ()) -> pd.DataFrame:
        """``client_id`` (int64, every id checked: whole numbers, each once) and ``columns``,
        ordered by client. :class:`DataValidationError` naming the rows otherwise."""
        self.dtypes()
        col = self.table.id_column
        wanted = [c for c in dict.fromkeys(columns) if c != "client_id"]
        key = tuple(wanted)
        if self._rows is not None and self._rows[0] == key:
            return self._rows[1].copy()
        if self.parquet:
            df = self._read_parquet([col, *wanted]).to_pandas()
        else:
            df = pd.concat(list(self._csv_chunks([col, *wanted])), ignore_index=True)
        ids = _whole_ids(df[col], col)
        out = df.drop(columns=[col])
        out.insert(0, "client_id", ids)
        out = out.sort_values("client_id", kind="stable").reset_index(drop=True)
        self._rows = (key, out)
        return out.copy()

    def batches(self, columns: Sequence[Any], rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """The table in batches of about ``rows`` rows, in its own order: ``client_id`` (int64)
        and ``columns`` as Arrow tables (the table is never read whole; the ids were checked
        by :meth:`rows`)."""
        self.dtypes()
        col = self.table.id_column
        wanted = [c for c in dict.fromkeys(columns) if c != "client_id"]

        def one(batch: pa.Table) -> pa.Table:
            ids = pd.to_numeric(batch.column(col).to_pandas()).to_numpy().astype("int64")
            batch = batch.drop_columns([col]).add_column(0, "client_id", pa.array(ids, type=pa.int64()))
            return batch.replace_schema_metadata(None)  # pandas' metadata names the id column

        if self.parquet:
            schema = self._schema()
            target = pa.schema([schema.field(c) for c in [col, *wanted]])
            for f in self._files():
                for batch in pq.ParquetFile(f).iter_batches(batch_size=rows, columns=[col, *wanted]):
                    yield one(pa.Table.from_batches([batch]).cast(target))
        else:  # chunks with the types of the whole file, as Arrow types fixed from them
            dtypes = self._csv().dtypes
            target = pa.schema([(c, _arrow_type(dtypes[c])) for c in self._csv().columns if c in {col, *wanted}])
            for chunk in self._csv_chunks([col, *wanted], rows):
                yield one(pa.Table.from_pandas(chunk, schema=target, preserve_index=False))


def write_partition_files(table: ClientTable, columns: Sequence[Any], parts: Sequence[np.ndarray],
                          folder: Path) -> list[Path]:
    """One Parquet file per partition of client ids (``parts``: sorted, ascending, disjoint)
    in ``folder``, holding those clients' rows of ``client_id`` and ``columns``: one pass over
    the table in batches, each batch's rows sent to their partitions' files (rows of clients
    in no partition are left out). Returns the files in partition order."""
    parts = [np.asarray(p, dtype=np.int64) for p in parts]
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"table-{i:05d}.parquet" for i in range(len(parts))]
    wanted = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    owner = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)]) if parts else wanted
    order = np.argsort(wanted, kind="stable")
    wanted, owner = wanted[order], owner[order]
    writers: dict[int, pq.ParquetWriter] = {}
    schema: pa.Schema | None = None
    try:
        for batch in table.batches(columns):  # every batch has the table's types
            schema = batch.schema if schema is None else schema
            pos, hit = sorted_positions(wanted, batch.column("client_id").to_numpy())
            rows = np.flatnonzero(hit)
            if not len(rows):
                continue
            dest = owner[pos[rows]]
            by_dest = np.argsort(dest, kind="stable")
            rows, dest = rows[by_dest], dest[by_dest]
            cuts = np.flatnonzero(np.diff(dest)) + 1
            for chunk in np.split(np.arange(len(rows)), cuts):
                i = int(dest[chunk[0]])
                if i not in writers:
                    writers[i] = pq.ParquetWriter(paths[i], schema)
                writers[i].write_table(batch.take(pa.array(rows[chunk])))
    finally:
        for w in writers.values():
            w.close()
    for i, path in enumerate(paths):  # a partition of clients the table lacks: an empty file
        if i not in writers and schema is not None:
            pq.write_table(schema.empty_table(), path)
    return paths


def check_filter_columns(filters: Sequence[Any], columns: Sequence[str]) -> None:
    """:class:`ConfigError` naming the base filters whose column the table lacks."""
    missing = [f"{f.name} ({f.column})" for f in filters if f.column not in columns]
    if missing:
        raise ConfigError(
            f"campaign.filters: {', '.join(missing)} filter on column(s) the client table lacks; the table "
            f"has {[c for c in columns if c != 'client_id'][:_SHOW]}; filter on those columns "
            "(campaign.filters=[] for none)")


def base_columns(filters: Sequence[Any], columns: Sequence[Any]) -> list[Any]:
    """The table's columns the base filters compare (the client base holds them beside the ids)."""
    return [c for c in dict.fromkeys(f.column for f in filters) if c in columns and c != "client_id"]


def _safe(name: object) -> str | None:
    try:
        return sanitize_name(name)
    except UpliftError:
        return None


def _plan(dtypes: Mapping[Any, Any], features: Sequence[str], categorical: Sequence[str]) -> tuple[list, list, dict]:
    """Which table columns (``dtypes``: column -> pandas dtype) make which features:
    ``(source columns, encoded columns, missing hints)``.

    A feature is a kept column's sanitised name or, for an encoded column, its name plus
    ``_<value>``. When several encoded columns' names prefix a feature (``email`` and
    ``email_opt_out`` both prefix ``email_opt_out_no``) the longest one makes it, so a column
    of addresses is never encoded for its neighbour's features. ``missing`` maps each
    feature no column makes to a hint (or '').
    """
    numeric: dict[str, object] = {}
    prefixes: dict[str, object] = {}
    numeric_prefixes: dict[str, object] = {}
    for col, dtype in dtypes.items():
        if col == "client_id":
            continue
        safe = _safe(col)
        if safe is None:
            continue
        if is_one_hot(pd.Series([], dtype=dtype), col, categorical):
            prefixes[safe + "_"] = col
        else:
            numeric[safe] = col
            numeric_prefixes[safe + "_"] = col
    owners: dict[object, None] = {}
    missing: dict[str, str] = {}
    for f in features:
        if f in numeric:
            owners[numeric[f]] = None
            continue
        matching = [p for p in prefixes if f.startswith(p)]
        if matching:
            owners[prefixes[max(matching, key=len)]] = None
            continue
        missing[f] = next((f"column {c!r} is numeric here: if the model was trained with it as categorical, "
                           f"list it in {KEY}.categorical" for p, c in numeric_prefixes.items() if f.startswith(p)), "")
    sources = [c for c in dtypes if c in owners]
    encoded = [c for c in sources if c in prefixes.values()]
    return sources, encoded, missing


def missing_features(dtypes: Mapping[Any, Any], features: Sequence[str], categorical: Sequence[str]) -> dict[str, str]:
    """The model features a table of these columns (column -> dtype) cannot make, each with a
    hint ('' when none)."""
    return _plan(dtypes, features, categorical)[2]


def feature_sources(dtypes: Mapping[Any, Any], features: Sequence[str], categorical: Sequence[str]) -> list[Any]:
    """The table's columns that make ``features`` (the only ones the factor stage reads)."""
    return _plan(dtypes, features, categorical)[0]


def missing_features_error(model: Any, missing: dict[str, str], columns: Sequence[Any], path: Any) -> DataValidationError:
    """The one error for model features the client table lacks (names them and the table's columns)."""
    hints = sorted({h for h in missing.values() if h})
    columns = [c for c in columns if c != "client_id"]
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
    sources, encoded, missing = _plan(dict(frame.dtypes), features, categorical)
    if missing:
        raise DataValidationError(TABLE, None, f"cannot make feature(s) {list(missing)[:_SHOW]} from the table")
    wide = prepare_wide(frame[sources], categorical=encoded) if sources else pd.DataFrame(index=frame.index)
    out = pd.DataFrame({"client_id": frame["client_id"].to_numpy(dtype="int64")}, index=frame.index)
    cols = {f: (wide[f] if f in wide.columns else pd.Series(np.zeros(len(frame), dtype="int8"), index=frame.index))
            for f in features}
    return pd.concat([out, pd.DataFrame(cols, index=frame.index)], axis=1).reset_index(drop=True)


def table_partition(features: Sequence[str], categorical: Sequence[str], path: str | Path) -> pd.DataFrame:
    """:func:`table_features` of one partition's rows, read from its file of
    :func:`write_partition_files` and ordered by client (the factor stage's mapped function)."""
    rows = pd.read_parquet(path).sort_values("client_id", kind="stable").reset_index(drop=True)
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
