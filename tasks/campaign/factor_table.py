"""Factor tables on disk: compute a factor set for clients as of a date and write Parquet.

:func:`build_factor_table` is the plain function; :func:`compute_factor_table` is its thin
Prefect task. The frame goes to disk (atomically), only a small summary is returned.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from factors import compute_factors
from tasks.core.errors import DataValidationError, NotFoundError
from tasks.core.io import atomic_write_parquet


def read_client_ids(path: str | Path) -> pd.Series:
    """The ``client_id`` column of a Parquet file (e.g. a campaign stage checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"client list {path} does not exist")
    try:
        df = pd.read_parquet(path, columns=["client_id"])
    except (KeyError, ValueError) as exc:
        raise DataValidationError(str(path), "client_id", f"missing column ({exc})") from None
    return df["client_id"]


def build_factor_table(
    data_dir: str,
    as_of: str,
    factor_names: list[str],
    out_path: str,
    client_ids_path: str | None = None,
) -> dict:
    """Compute ``factor_names`` as of ``as_of`` and write them to ``out_path`` (Parquet).

    Clients: those listed in ``client_ids_path`` (a Parquet file with ``client_id``), in
    its order, or every client registered before ``as_of``. Returns
    ``{"rows", "columns", "seconds", "path", "as_of"}``. Nothing is written on error.
    """
    start = time.perf_counter()
    ids = read_client_ids(client_ids_path) if client_ids_path else None
    table = compute_factors(Path(data_dir), as_of, list(factor_names), client_ids=ids)
    atomic_write_parquet(table, out_path)
    return {
        "rows": int(len(table)),
        "columns": int(table.shape[1] - 1),
        "seconds": round(time.perf_counter() - start, 3),
        "path": str(out_path),
        "as_of": str(pd.Timestamp(as_of)),
    }
