"""A dataset's tables partitioned by a client-id bucket, for bases that outgrow one file or disk.

Layout of a bucketed table (a folder where a flat dataset has one file)::

    <dataset>/<table>.parquet/bucket=<k>/part-<i>.parquet     k = client_id // width, zero-padded

and in ``manifest.json`` the key ``buckets``: ``{"column": "client_id", "rule": "client_id // width",
"width": W, "count": N}``. Bucket ``k`` holds exactly the rows whose ``client_id`` lies in
``[k*W, (k+1)*W - 1]``, so a range of client ids (a campaign partition, a slice of the factor
stage's preparation) lies in a few consecutive buckets, and each bucket folder can live on its
own disk (a symlink) or be handed to its own worker. Every reader takes such a folder like a
single file (:func:`tasks.core.contracts.find_table_file`); the factor engine reads for each
range of clients the bucket files whose client ids overlap it
(:mod:`factors.partitioned`), so a table not ordered by client is never scanned whole once per
slice.

:func:`bucket_table` writes one table into the layout in one DuckDB pass;
:func:`bucket_dataset` copies a whole dataset; the ingest flow writes it with
``source.buckets=N`` (:func:`tasks.data.ingest.ingest`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.core.errors import ConfigError
from tasks.core.io import atomic_write_json, sha256_folder
from tasks.core.layout import DATASET_MANIFEST

BUCKET_DIGITS = 5
ROW_GROUP_SIZE = 122_880


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def bucket_width(max_client_id: int, buckets: int) -> int:
    """Ids per bucket so that ``buckets`` buckets hold the ids 0..``max_client_id``."""
    if int(buckets) < 1:
        raise ConfigError(f"buckets must be a positive integer (got {buckets}); hint: 0 or unset writes one file per table")
    return max(1, -(-(int(max_client_id) + 1) // int(buckets)))


def layout_entry(width: int, max_client_id: int) -> dict[str, Any]:
    """The manifest's ``buckets`` entry."""
    return {"column": "client_id", "rule": "client_id // width", "width": int(width),
            "count": int(max_client_id) // int(width) + 1,
            "path": "<table>.parquet/bucket=<k>/part-<i>.parquet"}


def bucket_table(source: str | Path, dest: str | Path, width: int, memory_limit: str = "1GB") -> int:
    """Write the Parquet table ``source`` (a file or folder) into the bucketed folder ``dest``
    (``dest/bucket=<k>/part-<i>.parquet``, rows of a bucket ordered by ``client_id``); return its
    rows. ``dest`` must not exist. One DuckDB pass (it spills to a temporary folder beyond
    ``memory_limit``), then each bucket sorted by client."""
    import duckdb

    source, dest = Path(source), Path(dest)
    if dest.exists():
        raise ConfigError(f"{dest} already exists; hint: bucket into a new folder")
    src = str(source / "**" / "*.parquet") if source.is_dir() else str(source)
    with tempfile.TemporaryDirectory(prefix="uplift_buckets_") as spill:
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute(f"SET memory_limit = {_quote(memory_limit)}")
            con.execute(f"SET temp_directory = {_quote(spill)}")
            rows = con.execute(f"SELECT count(*) FROM read_parquet({_quote(src)}, hive_partitioning = false)"
                               ).fetchone()[0]
            # 1. one pass over the table, rows split by bucket (a partitioned write keeps no order)
            unsorted = Path(spill) / "unsorted"
            con.execute(
                f"COPY (SELECT *, lpad(CAST(client_id // {int(width)} AS VARCHAR), {BUCKET_DIGITS}, '0') AS bucket "
                f"FROM read_parquet({_quote(src)}, hive_partitioning = false)) "
                f"TO {_quote(str(unsorted))} (FORMAT parquet, PARTITION_BY (bucket), ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
            # 2. each bucket sorted by client (memory bounded by a bucket), so a range of clients
            #    inside a bucket reads only its row groups
            for folder in sorted(unsorted.glob("bucket=*")):
                (dest / folder.name).mkdir(parents=True)
                con.execute(
                    f"COPY (SELECT * FROM read_parquet({_quote(str(folder / '*.parquet'))}, hive_partitioning = false) "
                    f"ORDER BY client_id) TO {_quote(str(dest / folder.name / 'part-0.parquet'))} "
                    f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
                shutil.rmtree(folder)
        finally:
            con.close()
    return int(rows)


def _has_client_id(path: Path) -> bool:
    first = path if path.is_file() else next(iter(sorted(path.rglob("*.parquet"))))
    return "client_id" in pq.read_schema(first).names


def max_client_id(path: str | Path) -> int:
    """Highest ``client_id`` of a Parquet table (file or folder), from the files' statistics."""
    import duckdb

    p = Path(path)
    src = str(p / "**" / "*.parquet") if p.is_dir() else str(p)
    with duckdb.connect(":memory:") as con:
        value = con.execute(f"SELECT max(client_id) FROM read_parquet({_quote(src)}, hive_partitioning = false)"
                            ).fetchone()[0]
    return int(value or 0)


def bucket_folder(folder: str | Path, buckets: int, memory_limit: str = "1GB") -> dict[str, Any]:
    """Rewrite, in place, every ``<table>.parquet`` file of ``folder`` that has a ``client_id``
    into the bucketed layout (width from the clients table's highest id); return the manifest's
    ``buckets`` entry. Used by the ingest on its staging folder."""
    folder = Path(folder)
    top = max_client_id(folder / "clients.parquet")
    width = bucket_width(top, buckets)
    for path in sorted(folder.glob("*.parquet")):
        if not _has_client_id(path):
            continue
        flat = path.with_name(path.name + ".flat")
        path.rename(flat)
        bucket_table(flat, path, width, memory_limit)
        shutil.rmtree(flat) if flat.is_dir() else flat.unlink()
    return layout_entry(width, top)


def bucket_dataset(source: str | Path, dest: str | Path, buckets: int, memory_limit: str = "1GB") -> dict[str, Any]:
    """Copy the dataset folder ``source`` to ``dest`` with its tables bucketed (other files
    copied as they are); the copy's manifest gets the ``buckets`` entry and the bucketed
    tables' hashes. Returns the new manifest."""
    source, dest = Path(source), Path(dest)
    if dest.exists():
        raise ConfigError(f"{dest} already exists; hint: choose a new dataset folder")
    manifest = json.loads((source / DATASET_MANIFEST).read_text(encoding="utf-8"))
    top = max_client_id(source / "clients.parquet")
    width = bucket_width(top, buckets)
    dest.mkdir(parents=True)
    hashes = dict(manifest.get("table_sha256") or {})
    for path in sorted(source.iterdir()):
        if path.name == DATASET_MANIFEST:
            continue
        if path.name.endswith(".parquet") and _has_client_id(path):
            bucket_table(path, dest / path.name, width, memory_limit)
            hashes[path.name[: -len(".parquet")]] = sha256_folder(dest / path.name)
        elif path.is_dir():
            shutil.copytree(path, dest / path.name)
        else:
            shutil.copy2(path, dest / path.name)
    manifest = {**manifest, "table_sha256": hashes, "buckets": layout_entry(width, top)}
    atomic_write_json(manifest, dest / DATASET_MANIFEST)
    return manifest
