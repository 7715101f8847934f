"""Factors of a large client list, partition by partition, in memory bounded by a partition.

:func:`compute_factors` answers one request with one query and returns one frame: its memory
grows with the client list. For a base of millions the campaign asks in partitions of
contiguous client ids instead, and this module makes that linear in the base:

1. :func:`prepare_factors` runs once per request: the column and value checks of every
   table, the duplicate-client check and the check that every requested client is known
   (each one pass over a table, not one per partition). An event table whose row groups are
   not ordered by client (the synthetic messages are written mailing by mailing, so every
   row group spans every client) cannot be cut by client id: each partition would scan it
   whole. Its aggregate groups (one per window) are computed here once for every requested
   client, one ``GROUP BY client_id`` per group and slice of at most :data:`SLICE_CLIENTS`
   contiguous clients, and written sorted by client to Parquet under ``work_dir``; a slice
   reads only the table's files whose client ids overlap it (a table stored in client-id
   buckets whose row groups overlap is read about once in all, not once per slice).
   A table stored in client-id buckets sorted by client (:mod:`tasks.data.buckets`) is
   ordered by client: nothing to aggregate beforehand.
2. :meth:`FactorPlan.compute` (the plan is also a factor function) computes one partition:
   the same query as :func:`compute_factors`, reading the tables ordered by client (and the
   clients table) only in the partition's id range, so DuckDB skips the other row groups,
   and the pre-aggregated groups in that range.

Each client's factor values are the same as :func:`compute_factors` gives (the same
aggregates over the same rows, joined the same way), whatever the partitions.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from factors.engine import (
    EngineOptions, _by_table, _check_known_clients, _connect, _is_text, _quote, _requested_frame, _sql_timestamp,
    _with_dtypes, check_tables, compile_query, group_select, plan_request, register_text_tables, source_select,
)

PREAGGREGATE_ROW_GROUP = 131_072
# Clients per slice of a pre-aggregation: one GROUP BY per slice of contiguous requested ids
# (each scan reads the whole table, but the hash table of a slice stays in memory; one
# GROUP BY over ten million clients outgrew DuckDB's memory limit and spilled, 2-3x slower
# per client than a million).
SLICE_CLIENTS = 1_000_000
# With ``bucket_pass=True``, a table whose row groups are not confined to ranges of clients
# (rows of every client in every row group) and which the slices would read more than this
# many times over gets one pass writing its needed rows partitioned by slice first
# (:func:`bucket_by_slice`). Off by default: on the 10M world that pass (328.7 s) cost more
# than the ten re-scans of the compressed columns (245.0 s); a base stored in client-id
# buckets (tasks.data.buckets) needs neither (docs/benchmarks.md).
BUCKET_PASS_FACTOR = 2


def client_clustered(con, files: str) -> bool:
    """True when the Parquet file(s) ``files`` hold their rows ordered by ``client_id`` across
    row groups (each row group's lowest id at least the previous one's highest, taken in order
    of their lowest id whatever file holds them), so a client id range reads only its own row
    groups. Metadata only."""
    rows = con.execute(
        f"SELECT file_name, row_group_id, TRY_CAST(stats_min_value AS BIGINT), TRY_CAST(stats_max_value AS BIGINT) "
        f"FROM parquet_metadata({_quote(files)}) WHERE path_in_schema = 'client_id' ORDER BY 3, 4").fetchall()
    previous = None
    for _, _, low, high in rows:  # by lowest id: part files (buckets) may come in any name order
        if low is None or high is None or (previous is not None and low < previous):
            return False
        previous = high
    return True


def file_ranges(con, files: str) -> list[tuple[str, int | None, int | None, int]]:
    """``(file, lowest client_id, highest client_id, rows)`` of each Parquet file of ``files``
    (None bounds when a file has no statistics). Metadata only."""
    rows = con.execute(
        f"SELECT file_name, min(TRY_CAST(stats_min_value AS BIGINT)), max(TRY_CAST(stats_max_value AS BIGINT)), "
        f"sum(row_group_num_rows), bool_or(stats_min_value IS NULL) "
        f"FROM parquet_metadata({_quote(files)}) WHERE path_in_schema = 'client_id' GROUP BY 1 ORDER BY 1").fetchall()
    return [(f, None if gap else lo, None if gap else hi, int(n)) for f, lo, hi, n, gap in rows]


def rows_read(con, files: str, slices: Sequence[tuple[int, int]]) -> int:
    """Rows a query per slice of client ids would read from ``files``: those of the row groups whose
    client-id statistics overlap each slice (DuckDB skips the others). Metadata only."""
    groups = con.execute(
        f"SELECT TRY_CAST(stats_min_value AS BIGINT), TRY_CAST(stats_max_value AS BIGINT), row_group_num_rows "
        f"FROM parquet_metadata({_quote(files)}) WHERE path_in_schema = 'client_id'").fetchall()
    return sum(int(n) for lo, hi in slices for a, b, n in groups if a is None or b is None or (a <= hi and b >= lo))


def _overlapping(ranges: Sequence[tuple[str, int | None, int | None, int]], lo: int, hi: int) -> list[str]:
    return [f for f, a, b, _ in ranges if a is None or b is None or (a <= hi and b >= lo)]


@dataclass(frozen=True)
class FactorPlan:
    """What :func:`prepare_factors` found and made; computes partitions of its clients.

    Picklable (paths and names only), so a worker process can compute a partition. Calling
    the plan like a factor function ``plan(data_dir, as_of, names, client_ids)`` computes
    ``client_ids`` (a part of the ids it was prepared for; the arguments must be the plan's).
    """

    data_dir: str
    as_of: pd.Timestamp
    names: tuple[str, ...]
    preaggregated: dict[str, tuple[str, ...]] = field(default_factory=dict)  # alias -> files, by client
    options: EngineOptions | None = None

    def compute(self, client_ids: np.ndarray | Sequence[int]) -> pd.DataFrame:
        """Factors of ``client_ids`` (rows in their order): ``client_id`` then :attr:`names`."""
        names, ts, resolved, files, sources, _ = plan_request(self.data_dir, self.as_of, self.names)
        frame = _requested_frame(client_ids)
        id_range = (int(frame["client_id"].min()), int(frame["client_id"].max())) if len(frame) else None
        pre = {alias: f"read_parquet([{', '.join(_quote(p) for p in paths)}])"
               for alias, paths in self.preaggregated.items()}
        with tempfile.TemporaryDirectory(prefix="uplift_factors_") as spill:
            con = _connect(self.options or EngineOptions(), spill)
            try:
                register_text_tables(con, files)
                con.register("requested_clients", frame)
                sql = compile_query(resolved, names, sources, ts, True, id_range, pre)
                out = con.execute(sql).fetch_df()
            finally:
                con.close()
        return _with_dtypes(out, [f for f in resolved if f.name in set(names)], names)

    def __call__(self, data_dir: Path, as_of: pd.Timestamp, names: list, client_ids: np.ndarray) -> pd.DataFrame:
        if list(names) != list(self.names) or pd.Timestamp(as_of) != self.as_of:
            raise ValueError("a factor plan computes the factors and date it was prepared for")
        return self.compute(client_ids)


def bucket_by_slice(con, table: str, fs, sources: dict[str, str], columns: set[str], as_of_sql: str,
                    slices: Sequence[tuple[int, int]], dest: Path) -> list[tuple[str, int | None, int | None, int]]:
    """One pass over ``table``: the rows the factors ``fs`` read (``columns`` only) written to
    ``dest`` partitioned by slice of client ids, so each slice then reads its own rows instead of
    the whole table; returns :func:`file_ranges` of the written files."""
    case = " ".join(f"WHEN client_id <= {hi} THEN {k}" for k, (_, hi) in enumerate(slices))
    cols = ", ".join(sorted(columns))
    con.execute(
        f"COPY (SELECT {cols}, CASE {case} END AS slice__ FROM ({source_select(table, fs, sources, as_of_sql, False)}) "
        f"WHERE client_id BETWEEN {slices[0][0]} AND {slices[-1][1]}) "
        f"TO {_quote(str(dest))} (FORMAT parquet, PARTITION_BY (slice__), ROW_GROUP_SIZE {PREAGGREGATE_ROW_GROUP})")
    return file_ranges(con, str(dest / "**" / "*.parquet"))


def prepare_factors(data_dir: str | Path, as_of: str | pd.Timestamp, factor_names: Sequence[str],
                    client_ids: np.ndarray | Sequence[int], work_dir: str | Path,
                    options: EngineOptions | None = None, aggregate_once: bool = True,
                    bucket_pass: bool = False) -> FactorPlan:
    """Check a request once and pre-aggregate the tables not ordered by client (see the module doc).

    Raises what :func:`factors.engine.compute_factors` raises for the same request (unknown
    factor, missing table or column, bad values, duplicate or unknown clients). The
    pre-aggregated files go to ``work_dir`` (the caller removes it after the last partition);
    ``aggregate_once=False`` leaves every table to the partitions (a single partition);
    ``bucket_pass=True`` allows :func:`bucket_by_slice` (see :data:`BUCKET_PASS_FACTOR`).
    """
    names, ts, resolved, files, sources, needed = plan_request(data_dir, as_of, factor_names)
    frame = _requested_frame(client_ids)
    pre: dict[str, tuple[str, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="uplift_factors_") as spill:
        con = _connect(options or EngineOptions(), spill)
        try:
            register_text_tables(con, files)
            check_tables(con, files, sources, needed)
            con.register("requested_clients", frame)
            a = _sql_timestamp(ts)
            _check_known_clients(con, sources, a)
            ids = np.unique(frame["client_id"].to_numpy())
            slices = [(int(p[0]), int(p[-1])) for p in np.array_split(ids, max(1, -(-len(ids) // SLICE_CLIENTS)))
                      if len(p)]
            for table, fs in _by_table(resolved).items() if aggregate_once else ():
                if _is_text(files[table]) or client_clustered(con, files[table]):
                    continue
                ranges = file_ranges(con, files[table])
                if bucket_pass and len(slices) > 1 and rows_read(con, files[table], slices) > BUCKET_PASS_FACTOR * sum(r[3] for r in ranges):
                    ranges = bucket_by_slice(con, table, fs, sources, needed[table], a, slices,
                                             Path(work_dir) / f"{table}_buckets")
                for w in sorted({f.window or 0 for f in fs}):
                    group = [f for f in fs if (f.window or 0) == w]
                    paths = []
                    for k, (lo, hi) in enumerate(slices):
                        part = _overlapping(ranges, lo, hi) or [ranges[0][0]]
                        own = {**sources, table: f"read_parquet([{', '.join(_quote(p) for p in part)}], "
                                                 f"hive_partitioning = false)"}
                        src = (f"({source_select(table, fs, own, a, requested=False)} "
                               f"AND client_id BETWEEN {lo} AND {hi}) AS src_{table}")
                        path = Path(work_dir) / f"{table}_w{w}_{k:05d}.parquet"
                        con.execute(f"COPY ({group_select(group, src, w, a)} ORDER BY client_id) TO "
                                    f"{_quote(str(path))} (FORMAT parquet, ROW_GROUP_SIZE {PREAGGREGATE_ROW_GROUP})")
                        paths.append(str(path))
                    pre[f"{table}_w{w}"] = tuple(paths)
        finally:
            con.close()
    return FactorPlan(str(data_dir), ts, tuple(names), pre, options)
