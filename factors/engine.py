"""The factor engine: compiles requested factors into one DuckDB query over Parquet.

A table kept as CSV or TSV instead (``clients.csv``) is read and validated by the contract
validator every other reader uses and registered with DuckDB as a relation.

How a request becomes a query:

1. The requested names are resolved (derived factors pull in their inputs).
2. Aggregate factors are grouped by source table and window. Each table gets one source
   CTE over ``read_parquet`` filtered to ``timestamp < as_of`` (and to the longest window
   when every factor of the table has one); each (table, window) group is one
   ``GROUP BY client_id`` over it.
3. The requested clients (a registered frame, or every client registered before the as-of
   date) are left-joined to every group and to ``clients``; ``COALESCE`` applies each
   factor's default and ``CAST`` its dtype.
4. Derived factors are computed in layers over the joined columns.

The result is a pandas frame: ``client_id`` then the requested factors, in the requested
client order. Only events strictly before the as-of date are read.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from factors.base import Factor
from factors.registry import resolve
from tasks.core.contracts import CONTRACTS, load_table, require_table_file
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError

SQL_TYPES = {"float64": "DOUBLE", "int64": "BIGINT", "int8": "TINYINT"}


@dataclass(frozen=True)
class EngineOptions:
    """DuckDB settings for one computation."""

    threads: int | None = None          # None = every core this process may use
    memory_limit: str | None = None     # DuckDB spills to temp files beyond it; None = machine_memory_limit()


def _as_of_timestamp(as_of: str | pd.Timestamp) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(as_of)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"as_of {as_of!r} is not a date: {exc}") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError(f"as_of {as_of!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _sql_timestamp(ts: pd.Timestamp) -> str:
    return f"TIMESTAMP '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def table_files(data_dir: Path, table: str) -> str:
    """The Parquet file of a table, a glob over a folder of part files, or its CSV / TSV file
    (:func:`tasks.core.contracts.find_table_file`).

    Raises :class:`NotFoundError` when none exists.
    """
    found = require_table_file(data_dir, table)
    if found.is_dir():
        return str(found / "**" / "*.parquet")
    return str(found)


def _is_text(files: str) -> bool:
    return not files.endswith(".parquet")


def table_source(data_dir: Path, table: str) -> str:
    """The SQL source of a table (see :func:`table_files`): ``read_parquet(...)``, or for a
    CSV / TSV table the relation ``text_<table>`` that :func:`register_text_tables` makes."""
    files = table_files(data_dir, table)
    if _is_text(files):
        return f"text_{table}"
    if "*" not in files:
        return f"read_parquet({_quote(files)})"
    return f"read_parquet({_quote(files)}, hive_partitioning = false)"


def register_text_tables(con, files: dict[str, str]) -> None:
    """Register each CSV / TSV table as ``text_<table>``, read and validated by
    :func:`tasks.core.contracts.load_table` (the validator of every other reader)."""
    for table, path in files.items():
        if _is_text(path):
            con.register(f"text_{table}", load_table(Path(path), CONTRACTS[table]))


def _kind_of(duck_type: str) -> str:
    t = duck_type.upper()
    if t in ("BOOLEAN",):
        return "bool"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT"):
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t.startswith("VARCHAR") or t.startswith("ENUM"):
        return "string"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "datetime"
    return t.lower()


def check_columns(con, table: str, source: str, needed: Sequence[str]) -> None:
    """Raise :class:`DataValidationError` when a needed column is missing or of the wrong kind.

    Only the schema is read (no data), so the check is cheap on big files.
    """
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {r[0]: r[1] for r in rows}
    contract = CONTRACTS[table]
    for col in needed:
        if col not in types:
            raise DataValidationError(table, col, f"missing column; the file has {list(types)[:20]}")
        want = contract.column(col).kind
        got = _kind_of(types[col])
        ok = got == want or (want == "float" and got == "int")
        if not ok:
            raise DataValidationError(table, col, f"expected {want} values, found type {types[col]}")


def _examples(con, source: str, condition: str, columns: Sequence[str]) -> tuple[list[int], str]:
    cols = ", ".join(columns)
    rows = con.execute(
        f"SELECT row__, {cols} FROM (SELECT row_number() OVER () - 1 AS row__, * FROM {source}) "
        f"WHERE {condition} ORDER BY row__ LIMIT 5").fetch_df()
    return [int(r) for r in rows["row__"]], rows.drop(columns=["row__"]).to_string(index=False)


def check_values(con, table: str, files: str, source: str, needed: Sequence[str]) -> None:
    """Cheap value checks of the needed columns against the table's contract.

    Missing values and values below the contract's minimum are found from the Parquet
    statistics (metadata only); duplicate ``client_id`` in ``clients`` by one grouped
    count. Offending rows are looked up only when there is a problem. Raises
    :class:`DataValidationError` naming the table, the column and a few rows.
    """
    contract = CONTRACTS[table]
    stats = con.execute(
        f"SELECT path_in_schema, sum(stats_null_count), min(TRY_CAST(stats_min_value AS DOUBLE)), "
        f"bool_and(stats_null_count IS NOT NULL) FROM parquet_metadata({_quote(files)}) GROUP BY 1"
    ).fetchall()
    by_col = {r[0]: r for r in stats}
    for name in needed:
        col = contract.column(name)
        if name not in by_col:
            continue
        _, nulls, low, _ = by_col[name]
        if nulls and not col.nullable:
            rows, ex = _examples(con, source, f"{name} IS NULL", contract.column_names)
            raise DataValidationError(table, name, f"{int(nulls)} missing value(s)", rows, ex)
        if col.min_value is not None and low is not None and low < col.min_value:
            rows, ex = _examples(con, source, f"{name} < {col.min_value}", contract.column_names)
            raise DataValidationError(table, name, f"value(s) below {col.min_value}", rows, ex)
    if table == "clients":
        dups = con.execute(f"SELECT count(*) FROM (SELECT client_id FROM {source} GROUP BY client_id "
                           f"HAVING count(*) > 1)").fetchall()[0][0]
        if dups:
            rows, ex = _examples(con, source, f"client_id IN (SELECT client_id FROM {source} GROUP BY client_id "
                                 f"HAVING count(*) > 1)", ["client_id", "registration_date"])
            raise DataValidationError(table, "client_id", f"{int(dups)} client id(s) appear more than once",
                                      rows, ex)


def _requested_frame(client_ids: pd.Series | np.ndarray | Sequence[int]) -> pd.DataFrame:
    ids = pd.Series(np.asarray(client_ids))
    if ids.isna().any():
        rows = list(np.flatnonzero(ids.isna().to_numpy())[:5])
        raise DataValidationError("requested clients", "client_id", "missing client id(s)", rows)
    try:
        as_int = ids.astype("int64")
    except (ValueError, TypeError):
        raise DataValidationError("requested clients", "client_id",
                                  f"client ids must be integers, got dtype {ids.dtype}") from None
    if not (as_int.to_numpy() == ids.to_numpy()).all():
        raise DataValidationError("requested clients", "client_id", "client ids must be whole numbers")
    dup = as_int.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = [int(i) for i in np.flatnonzero(dup)[:5]]
        raise DataValidationError(
            "requested clients", "client_id",
            f"{int(dup.sum())} duplicate client id(s), e.g. {sorted(set(as_int[dup].tolist()))[:5]}", rows)
    return pd.DataFrame({"client_id": as_int.to_numpy(), "ord__": np.arange(len(as_int), dtype=np.int64)})


def _fill(sql: str, as_of_sql: str) -> str:
    return sql.replace("{as_of}", as_of_sql)


def _finish(expr: str, f: Factor) -> str:
    default = repr(float(f.default)) if f.dtype == "float64" else str(int(f.default))
    return f"CAST(COALESCE({expr}, {default}) AS {SQL_TYPES[f.dtype]})"


def _by_table(factors: Sequence[Factor]) -> dict[str, list[Factor]]:
    """Aggregate factors by source table, in request order."""
    by_table: dict[str, list[Factor]] = {}
    for f in factors:
        if f.kind == "aggregate":
            by_table.setdefault(f.table, []).append(f)  # type: ignore[arg-type]
    return by_table


def source_select(table: str, fs: Sequence[Factor], sources: dict[str, str], as_of_sql: str, requested: bool,
                  id_range: tuple[int, int] | None = None) -> str:
    """The rows of ``table`` the aggregate factors ``fs`` read: before the as-of date, within the
    longest window when every factor has one, of the requested clients (and their id range)."""
    lower = ""
    if all(f.window for f in fs):
        lower = f" AND timestamp >= {as_of_sql} - INTERVAL {max(f.window for f in fs)} DAY"  # type: ignore[type-var]
    semi = " AND client_id IN (SELECT client_id FROM req)" if requested else ""
    if requested and id_range is not None:
        semi += f" AND client_id BETWEEN {int(id_range[0])} AND {int(id_range[1])}"
    return f"SELECT * FROM {sources[table]} WHERE timestamp < {as_of_sql}{lower}{semi}"


def group_select(group: Sequence[Factor], source: str, window: int, as_of_sql: str) -> str:
    """One ``GROUP BY client_id`` computing the aggregate factors ``group`` (one window) over ``source``."""
    aggs = ", ".join(f"{_fill(f.sql, as_of_sql)} AS {f.name}" for f in group)
    where = f" WHERE timestamp >= {as_of_sql} - INTERVAL {window} DAY" if window else ""
    return f"SELECT client_id, {aggs} FROM {source}{where} GROUP BY client_id"


def compile_query(
    factors: Sequence[Factor],
    output: Sequence[str],
    sources: dict[str, str],
    as_of: pd.Timestamp,
    requested: bool,
    id_range: tuple[int, int] | None = None,
    preaggregated: dict[str, str] | None = None,
) -> str:
    """Build the single SQL query computing ``factors`` (resolved, inputs first).

    ``sources`` maps each needed table to its ``read_parquet`` expression; ``requested``
    tells whether a registered relation ``requested_clients(client_id, ord__)`` chooses
    the clients (else every client registered before ``as_of``). ``output`` are the
    factor names returned, in order. ``id_range`` (lowest, highest requested id) lets
    DuckDB skip row groups of event files sorted by client (and of the clients table).
    ``preaggregated`` maps a group's alias ``<table>_w<window>`` to the SQL source of its
    per-client aggregates computed beforehand (:func:`group_select` over every client).
    """
    a = _sql_timestamp(as_of)
    ctes: list[str] = []
    if requested:
        ctes.append("req AS (SELECT client_id, ord__ FROM requested_clients)")
    else:
        ctes.append(f"req AS (SELECT client_id, row_number() OVER () AS ord__ FROM {sources['clients']} "
                    f"WHERE registration_date < {a})")
    select = ["req.client_id AS client_id", "req.ord__ AS ord__"]
    joins: list[str] = []

    by_table = _by_table(factors)
    pre = preaggregated or {}
    in_range = f" WHERE client_id BETWEEN {int(id_range[0])} AND {int(id_range[1])}" if id_range is not None else ""
    for table, fs in by_table.items():
        windows = sorted({f.window or 0 for f in fs})
        if not all(f"{table}_w{w}" in pre for w in windows):
            ctes.append(f"src_{table} AS ({source_select(table, fs, sources, a, requested, id_range)})")
        for w in windows:
            group = [f for f in fs if (f.window or 0) == w]
            alias = f"{table}_w{w}"
            if alias in pre:  # aggregated once for every client (factors.partitioned)
                ctes.append(f"{alias} AS (SELECT * FROM {pre[alias]}{in_range})")
            else:
                ctes.append(f"{alias} AS ({group_select(group, f'src_{table}', w, a)})")
            joins.append(f"LEFT JOIN {alias} ON {alias}.client_id = req.client_id")
            select += [f"{_finish(f'{alias}.{f.name}', f)} AS {f.name}" for f in group]
    profile = [f for f in factors if f.kind == "profile"]
    if profile:
        exprs = ", ".join(f"{_fill(f.sql, a)} AS {f.name}" for f in profile)
        ctes.append(f"profile AS (SELECT client_id, {exprs} FROM {sources['clients']}{in_range})")
        joins.append("LEFT JOIN profile ON profile.client_id = req.client_id")
        select += [f"{_finish(f'profile.{f.name}', f)} AS {f.name}" for f in profile]
    ctes.append(f"layer0 AS (SELECT {', '.join(select)} FROM req {' '.join(joins)})")

    done = {f.name for f in factors if f.kind != "derived"}
    pending = [f for f in factors if f.kind == "derived"]
    layer = 0
    while pending:
        ready = [f for f in pending if all(i in done for i in f.inputs)]
        if not ready:  # cannot happen for registered factors (inputs are registered first)
            raise ConfigError(f"derived factors {[f.name for f in pending]} have unresolved inputs")
        exprs = ", ".join(f"{_finish(_fill(f.sql, a), f)} AS {f.name}" for f in ready)
        ctes.append(f"layer{layer + 1} AS (SELECT *, {exprs} FROM layer{layer})")
        layer += 1
        done |= {f.name for f in ready}
        pending = [f for f in pending if f.name not in done]

    cols = ", ".join(["client_id", *output])
    return "WITH " + ",\n".join(ctes) + f"\nSELECT {cols} FROM layer{layer} ORDER BY ord__"


def _available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def machine_memory_limit(share: float = 0.25, cap_gb: float = 6.0) -> str:
    """DuckDB's memory limit from the machine: ``share`` of its physical memory, at most
    ``cap_gb`` GB and at least 0.5 GB (6GB, the old fixed value, on a 24 GiB machine)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return f"{cap_gb:g}GB"
    mb = int(min(max(total * share / 1e6, 500), cap_gb * 1000))
    return f"{mb}MB"


def _connect(options: EngineOptions, spill_dir: str):
    import duckdb

    con = duckdb.connect(":memory:")
    threads = options.threads or _available_cores()
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = {_quote(options.memory_limit or machine_memory_limit())}")
    con.execute(f"SET temp_directory = {_quote(spill_dir)}")
    con.execute("SET preserve_insertion_order = true")
    return con


def _check_known_clients(con, sources: dict[str, str], as_of_sql: str) -> None:
    missing = con.execute(
        f"SELECT r.client_id, c.registration_date FROM requested_clients r "
        f"LEFT JOIN {sources['clients']} c ON c.client_id = r.client_id "
        f"WHERE c.client_id IS NULL OR c.registration_date >= {as_of_sql} ORDER BY r.ord__"
    ).fetchall()
    if missing:
        unknown = [int(r[0]) for r in missing if r[1] is None]
        later = [int(r[0]) for r in missing if r[1] is not None]
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} not in the clients table, e.g. {unknown[:5]}")
        if later:
            parts.append(f"{len(later)} registered on or after the as-of date, e.g. {later[:5]}")
        raise NotFoundError(f"table 'clients', column 'client_id': requested client(s) unknown as of "
                            f"{as_of_sql}: " + "; ".join(parts))


def compute_factors(
    data_dir: str | Path,
    as_of: str | pd.Timestamp,
    factor_names: Sequence[str],
    client_ids: pd.Series | np.ndarray | Sequence[int] | None = None,
    options: EngineOptions | None = None,
) -> pd.DataFrame:
    """Compute factors for clients as of a date from the tables in ``data_dir`` (Parquet or CSV).

    Returns one row per requested client (input order; with ``client_ids=None`` every
    client registered before ``as_of``, in the clients table's order): ``client_id``
    (int64) then one column per factor in the requested order with its declared dtype;
    clients without the needed events get each factor's default. Reads only events
    strictly before ``as_of``; never reads the truth or campaign tables.

    Raises :class:`NotFoundError` for an unknown factor, a missing table file or a
    requested client unknown (or not yet registered) as of the date;
    :class:`DataValidationError` for a missing or mistyped column or duplicate requested
    ids; :class:`ConfigError` for a bad date or an empty factor list.
    """
    names, ts, resolved, files, sources, needed = plan_request(data_dir, as_of, factor_names)
    spill = tempfile.TemporaryDirectory(prefix="uplift_factors_")
    con = _connect(options or EngineOptions(), spill.name)
    try:
        register_text_tables(con, files)
        check_tables(con, files, sources, needed)
        requested = client_ids is not None
        id_range = None
        if requested:
            frame = _requested_frame(client_ids)  # type: ignore[arg-type]
            if len(frame):
                id_range = (int(frame["client_id"].min()), int(frame["client_id"].max()))
            con.register("requested_clients", frame)
            _check_known_clients(con, sources, _sql_timestamp(ts))
        sql = compile_query(resolved, names, sources, ts, requested, id_range)
        out = con.execute(sql).fetch_df()
    finally:
        con.close()
        spill.cleanup()
    return _with_dtypes(out, [f for f in resolved if f.name in set(names)], names)


def plan_request(data_dir: str | Path, as_of: str | pd.Timestamp, factor_names: Sequence[str]
                 ) -> tuple[list[str], pd.Timestamp, list[Factor], dict[str, str], dict[str, str], dict[str, set[str]]]:
    """``(names, as_of, resolved factors, files, sql sources, needed columns per table)`` of a
    request; the errors of a bad request (no factor, a factor twice, a bad date, an unknown
    factor or a missing table file)."""
    names = list(factor_names)
    if not names:
        raise ConfigError("no factors requested (factor_names is empty)")
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        raise ConfigError(f"factor(s) requested twice: {dup_names}")
    ts = _as_of_timestamp(as_of)
    resolved = resolve(names)
    data_dir = Path(data_dir)
    needed: dict[str, set[str]] = {"clients": {"client_id", "registration_date"}}
    for f in resolved:
        if f.table:
            needed.setdefault(f.table, set()).update(f.columns)
            if f.table != "clients":
                needed[f.table].update({"client_id", "timestamp"})
    files = {t: table_files(data_dir, t) for t in needed}
    sources = {t: table_source(data_dir, t) for t in needed}
    return names, ts, resolved, files, sources, needed


def check_tables(con, files: dict[str, str], sources: dict[str, str], needed: dict[str, set[str]]) -> None:
    """The columns and cheap value checks of every table a request reads (see :func:`check_values`)."""
    for t, cols in needed.items():
        check_columns(con, t, sources[t], sorted(cols))
        if not _is_text(files[t]):  # a text table was validated whole on loading
            check_values(con, t, files[t], sources[t], sorted(cols))


def _with_dtypes(df: pd.DataFrame, factors: Sequence[Factor], names: Sequence[str]) -> pd.DataFrame:
    by_name = {f.name: f for f in factors}
    dtypes = {"client_id": "int64", **{n: by_name[n].dtype for n in names}}
    if any(str(df[c].dtype) != t for c, t in dtypes.items()):
        df = df.astype(dtypes)
    return df.reset_index(drop=True)
