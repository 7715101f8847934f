"""Where datasets live and how their tables are read.

A dataset generated or imported under the name NAME lives in ``<artifacts>/data/NAME/`` as
one file per table and a ``manifest.json``; the folder is :meth:`tasks.core.layout.Layout.dataset`.
A table is ``<table>.parquet`` (a file or a folder of part files) or, without one,
``<table>.csv`` / ``<table>.tsv`` (:func:`tasks.core.contracts.find_table_file`). Every read
goes through :func:`read_table`, which validates the table against its contract
(:mod:`tasks.core.contracts`), CSV and Parquet alike.

The manifest's ``as_of`` is a promise: no purchase or message at or after it, no client
registered and no past campaign after it. :func:`read_table` holds every table it reads to
that promise, and :func:`check_dataset` checks the tables a run will need before the run
writes anything (for Parquet from the files' statistics, without reading the rows).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.core.contracts import (
    CONTRACTS, TableContract, as_of_word, load_table, require_table_file, table_file_columns,
)
from tasks.core.errors import DataValidationError, NotFoundError
from tasks.core.layout import DATASET_MANIFEST, Layout


def dataset_dir(artifacts: str | Path, name: str) -> Path:
    """Folder of dataset ``name`` under the artifacts root (:meth:`tasks.core.layout.Layout.dataset`)."""
    return Layout(artifacts).dataset(name)


def table_path(data_dir: str | Path, table: str) -> Path:
    """Path of ``table``'s Parquet file inside a dataset folder (where writers put it)."""
    return Path(data_dir) / f"{table}.parquet"


def table_file(data_dir: str | Path, table: str) -> Path:
    """The file holding ``table`` (Parquet, else CSV / TSV); :class:`NotFoundError` when there is none."""
    return require_table_file(data_dir, table)


def table_columns(data_dir: str | Path, table: str) -> list[str]:
    """The columns of ``table`` in a dataset folder, from its Parquet schema or CSV header
    (no row read): what :func:`read_table` returns without ``columns``."""
    return table_file_columns(table_file(data_dir, table), table)


def read_manifest(data_dir: str | Path) -> dict:
    """The dataset's manifest.json; a clear error when it is missing or unreadable."""
    path = Path(data_dir) / DATASET_MANIFEST
    if not path.exists():
        raise NotFoundError(
            f"dataset at {data_dir} not found (no manifest.json); generate it with "
            f"`python -m flows.generate data.name={Path(data_dir).name}` or write a manifest.json "
            f"with at least {{\"name\": ..., \"as_of\": \"YYYY-MM-DD\"}}"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataValidationError("manifest", None, f"{path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(manifest, dict):
        raise DataValidationError("manifest", None, f"{path} must hold a JSON object, not {type(manifest).__name__}")
    return manifest


def manifest_as_of(data_dir: str | Path, manifest: dict | None = None) -> pd.Timestamp | None:
    """The dataset's as-of date from its manifest (None without manifest or date)."""
    if manifest is None:
        if not (Path(data_dir) / DATASET_MANIFEST).exists():
            return None
        manifest = read_manifest(data_dir)
    value = manifest.get("as_of")
    if value in (None, ""):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if pd.isna(ts):
        raise DataValidationError("manifest", "as_of", f"{value!r} in {Path(data_dir) / DATASET_MANIFEST} "
                                                       "is not a date (write YYYY-MM-DD)")
    return ts


def read_table(
    data_dir: str | Path,
    table: str,
    as_of: pd.Timestamp | str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read and validate one table of a dataset folder (Parquet, else CSV).

    Event times are checked against the earlier of ``as_of`` and the manifest's as-of date
    (see :func:`tasks.core.contracts.validate_table`).
    """
    if table not in CONTRACTS:
        raise NotFoundError(f"unknown table {table!r}; known tables: {sorted(CONTRACTS)}")
    limits = [pd.Timestamp(t) for t in (as_of, manifest_as_of(data_dir)) if t is not None]
    return load_table(table_file(data_dir, table), CONTRACTS[table], as_of=min(limits) if limits else None,
                      columns=columns)


def _stats_max(path: Path, column: str) -> pd.Timestamp | None:
    """Latest value of a time column of a Parquet file from its row-group statistics (the
    column is read where a row group has none); None for an empty file."""
    md = pq.read_metadata(path)
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}.get(column)
    if leaf is None:
        return None  # a missing column is reported by the validator
    best = None
    for rg in range(md.num_row_groups):
        st = md.row_group(rg).column(leaf).statistics
        if st is None or not st.has_min_max:
            values = pq.read_table(path, columns=[column]).column(column)
            top = pc.max(values).as_py()
            return None if top is None else _naive(pd.Timestamp(top))
        value = _naive(pd.Timestamp(st.max))
        best = value if best is None else max(best, value)
    return best


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def check_event_times(data_dir: str | Path, table: str, as_of: pd.Timestamp | str) -> None:
    """Raise :class:`DataValidationError` naming rows when ``table`` has events past ``as_of``.

    Parquet is judged by its statistics (no rows read unless there is a breach, or a row group
    without statistics); CSV is read and validated whole.
    """
    contract: TableContract = CONTRACTS[table]
    col = contract.event_time
    if col is None:
        return
    path = table_file(data_dir, table)
    limit = pd.Timestamp(as_of)
    if path.suffix == ".parquet":
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        tops = [t for t in (_stats_max(f, col) for f in files) if t is not None]
        latest = max(tops) if tops else None
        ok = latest is None or (latest < limit if contract.events_strictly_before else latest <= limit)
        if ok:
            return
        # the offending rows, named by the validator (an error by construction)
        load_table(path, contract, as_of=limit, columns=[c for c in contract.unique if c != col] + [col])
        raise DataValidationError(table, col, f"event times {as_of_word(contract)} the as-of date "
                                              f"{limit.date()} (latest {latest})")
    load_table(path, contract, as_of=limit)


def check_dataset(data_dir: str | Path, tables: list[str]) -> dict:
    """Check a dataset before a run uses it; returns its manifest.

    The manifest must exist and be valid JSON with a readable ``as_of``; each of ``tables``
    must exist (Parquet or CSV), hold its contract's columns, and keep the manifest's as-of
    promise. Rows are read only for CSV tables and where a Parquet file breaks the promise.
    """
    manifest = read_manifest(data_dir)
    as_of = manifest_as_of(data_dir, manifest)
    for table in tables:
        path = table_file(data_dir, table)
        contract = CONTRACTS[table]
        if path.suffix == ".parquet":
            first = path if path.is_file() else sorted(path.rglob("*.parquet"))[0]
            names = pq.read_schema(first).names
            missing = [c for c in contract.column_names if c not in names]
            if missing:
                raise DataValidationError(table, missing[0], f"missing column(s) {missing} in {path}; "
                                                             f"the file has {names[:20]}")
            if as_of is not None:
                check_event_times(data_dir, table, as_of)
        else:
            load_table(path, contract, as_of=as_of)
    return manifest
