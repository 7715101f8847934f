"""Where datasets live and how their tables are read.

A dataset generated or imported under the name NAME lives in ``<artifacts>/data/NAME/`` as
one Parquet file per table (``clients.parquet``, ``purchases.parquet``, ...) and a
``manifest.json``; the folder is :meth:`tasks.core.layout.Layout.dataset`. Every read goes
through :func:`read_table`, which validates the table against its contract
(:mod:`tasks.core.contracts`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.core.contracts import CONTRACTS, load_table
from tasks.core.errors import NotFoundError
from tasks.core.io import read_json
from tasks.core.layout import DATASET_MANIFEST, Layout


def dataset_dir(artifacts: str | Path, name: str) -> Path:
    """Folder of dataset ``name`` under the artifacts root (:meth:`tasks.core.layout.Layout.dataset`)."""
    return Layout(artifacts).dataset(name)


def table_path(data_dir: str | Path, table: str) -> Path:
    """Path of ``table`` (e.g. ``"purchases"``) inside a dataset folder."""
    return Path(data_dir) / f"{table}.parquet"


def read_manifest(data_dir: str | Path) -> dict:
    """The dataset's manifest.json; a clear error when the dataset was never generated."""
    path = Path(data_dir) / DATASET_MANIFEST
    if not path.exists():
        raise NotFoundError(
            f"dataset at {data_dir} not found (no manifest.json); generate it with "
            f"`python -m flows.generate data.name={Path(data_dir).name}`"
        )
    return read_json(path)


def read_table(
    data_dir: str | Path,
    table: str,
    as_of: pd.Timestamp | str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read and validate one table of a dataset folder.

    ``as_of`` rejects event times after it (see :func:`tasks.core.contracts.validate_table`).
    """
    if table not in CONTRACTS:
        raise NotFoundError(f"unknown table {table!r}; known tables: {sorted(CONTRACTS)}")
    return load_table(table_path(data_dir, table), CONTRACTS[table], as_of=as_of, columns=columns)
