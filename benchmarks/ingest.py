"""Benchmark: snapshot a synthetic world from a real PostgreSQL, against PostgreSQL's own COPY.

    python benchmarks/ingest.py [--n-clients 100000] [--batch-mb 8 64] [--repeats 2] [--compare-libraries]

A synthetic world of ``--n-clients`` clients is generated, loaded into a private PostgreSQL
server (``pgserver``, tests/fixtures/postgres.py) and then, in turns, (a) read with
``psql -c "COPY (SELECT * FROM <table>) TO STDOUT"`` into /dev/null for the four event tables
(the floor: the server's own export, no client work) and (b) snapshotted by the product's
code path (:func:`tasks.data.ingest.ingest`: read, check by contract, write Parquet, whole
table checks, manifest) in a child process, once per batch size. The child's whole process
tree is polled for resident memory (and the child samples its own, per step: reading the
tables vs the whole-table checks, whose DuckDB memory limit is ``source.check_memory_mb``).
Reported: rows per second, peak RSS per batch size, the in-memory size of the largest table, and the ratio of the snapshot's time to COPY's (best of
``--repeats`` turns each, the turns interleaved so both see the same machine load). Targets:
the ratio at most 2; peak memory set by the batch size, not by the table.

``--compare-libraries`` also times the candidate readers on the same tables (fetch and write
Parquet only, no checks): ADBC, connectorx, psycopg's COPY parsed by pyarrow's CSV reader, and
SQLAlchemy + pandas chunks; those not installed are skipped. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.generate import tree_rss  # noqa: E402

TABLES = ("clients", "purchases", "messages", "campaign_history")
TARGET_RATIO = 2.0


# --------------------------------------------------------------------------- child runs

def child_ingest(url: str, out: str, batch_mb: int, schema: str) -> dict:
    """The product's snapshot; this process's own peak RSS per step (reading vs whole-table checks)."""
    import threading

    from tasks.core.config import from_conf
    from tasks.data.ingest import SourceConfig, ingest

    me, current, peaks = psutil.Process(), ["start"], {}

    def sample() -> None:
        while True:
            rss = me.memory_info().rss
            peaks[current[0]] = max(peaks.get(current[0], 0), rss)
            time.sleep(0.01)

    def step(label, fn, args):
        current[0] = "copy" if label.startswith("copy_") else label
        try:
            return fn(*args)
        finally:
            current[0] = "after"

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()
    manifest = ingest(from_conf(SourceConfig, "source/postgres", url=url, as_of="latest", batch_mb=batch_mb, schema=schema), Path(out).name, out,
                      step=step)
    return {"seconds": time.perf_counter() - started, "rows": sum(manifest["row_counts"].values()),
            "peak_rss_mb_by_step": {k: round(v / 2**20, 1) for k, v in peaks.items() if k in ("copy", "check_tables")}}


def child_library(method: str, url: str, out: str, batch_mb: int, schema: str) -> dict:
    """Fetch every table with one candidate library and write it to Parquet (no checks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch_bytes = batch_mb << 20
    rows = 0
    started = time.perf_counter()
    Path(out).mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        query = f"SELECT * FROM {schema}.{table}"
        path = Path(out) / f"{table}.parquet"
        writer = None
        if method == "adbc":
            import adbc_driver_postgresql.dbapi as adbc

            conn = adbc.connect(url)
            cur = conn.cursor()
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_bytes)})
            cur.execute(query)
            batches = cur.fetch_record_batch()
        elif method == "connectorx":
            import connectorx as cx

            # batch_size counts rows; ~40 bytes a row here
            batches = cx.read_sql(url, query, return_type="arrow_stream", batch_size=max(1, batch_bytes // 40))
        elif method == "psycopg_copy_csv":
            import psycopg
            import pyarrow.csv as pcsv

            conn = psycopg.connect(url)
            copy = conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)")
            stream = copy.__enter__()
            chunks = iter(stream)

            class _Pipe(io.RawIOBase):
                buf = b""

                def readable(self) -> bool:
                    return True

                def readinto(self, mem) -> int:
                    while not self.buf:
                        try:
                            self.buf = bytes(next(chunks))
                        except StopIteration:
                            return 0
                    n = min(len(mem), len(self.buf))
                    mem[:n], self.buf = self.buf[:n], self.buf[n:]
                    return n

            batches = pcsv.open_csv(io.BufferedReader(_Pipe(), 1 << 20),
                                    read_options=pcsv.ReadOptions(block_size=batch_bytes))
        elif method == "sqlalchemy":
            import pandas as pd
            import sqlalchemy as sa

            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
            conn = engine.connect().execution_options(stream_results=True)
            frames = pd.read_sql(sa.text(query), conn, chunksize=max(1, batch_bytes // 40))
            batches = (b for df in frames for b in pa.Table.from_pandas(df, preserve_index=False).to_batches())
        else:
            raise SystemExit(f"unknown method {method}")
        for batch in batches:
            writer = writer or pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is not None:
            writer.close()
    return {"seconds": time.perf_counter() - started, "rows": rows}


def measured(args: list[str], interval: float = 0.05) -> dict:
    """Run this script as a child with ``args``; its result plus the tree's peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = fh.name
    cmd = [sys.executable, __file__, "--child", result_file, *args]
    child = subprocess.Popen(cmd, cwd=PROJECT_ROOT)
    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(interval)
    if child.returncode != 0:
        raise SystemExit(f"child {args} failed with exit code {child.returncode}")
    result = json.loads(Path(result_file).read_text())
    os.unlink(result_file)
    return dict(result, peak_rss_mb=round(peak / 2**20, 1))


class CpuMeter:
    """CPU seconds spent by this script's finished children (the snapshot child, psql) and by
    the server (the postmaster and its finished backends): a figure the machine's load does not
    inflate the way it does wall time."""

    def __init__(self, postmaster_pid: int) -> None:
        self.server = psutil.Process(postmaster_pid)

    def read(self) -> tuple[float, float]:
        time.sleep(0.5)  # the postmaster reaps a finished backend (and its CPU time) asynchronously
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = self.server.cpu_times()
        return kids.ru_utime + kids.ru_stime, t.user + t.system + t.children_user + t.children_system


def copy_seconds(psql: Path, url: str, schema: str) -> float:
    """PostgreSQL's own ``COPY (SELECT * FROM t) TO STDOUT`` of every table, into /dev/null."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        for table in TABLES:
            subprocess.run([str(psql), url, "-X", "-q", "-c", f"COPY (SELECT * FROM {schema}.{table}) TO STDOUT"],
                           stdout=sink, check=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- main

def build_world(n_clients: int, folder: Path) -> dict:
    """A synthetic world written table group by table group (as flows.generate does)."""
    from tasks.core.config import SyntheticDataConfig, from_conf
    from tasks.data.synthetic.world import generate_group

    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n_clients, name="bench_ingest")
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict = {}
    for group in ("purchases", "contacts"):
        counts.update(generate_group(group, cfg, folder))
    return counts


def bench_world(pg, work: Path, n_clients: int, args: argparse.Namespace) -> dict:
    """Generate and load one world (schema ``w<n_clients>``), then time COPY and the snapshot in turns."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.fixtures.postgres import load_tables, psql_binary

    schema = f"w{n_clients}"
    folder = work / schema
    t0 = time.perf_counter()
    counts = build_world(n_clients, folder)
    print(f"world of {n_clients:,} clients generated in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{t} {counts[t]:,}" for t in TABLES), flush=True)
    t0 = time.perf_counter()
    pg.psql(f"CREATE SCHEMA {schema} AUTHORIZATION {pg.user}")
    for table in TABLES:  # one table in memory at a time
        load_tables(pg, {table: pd.read_parquet(folder / f"{table}.parquet")}, schema=schema)
    pg.psql("VACUUM ANALYZE")  # hint bits set once, so no turn pays for them
    print(f"loaded into PostgreSQL in {time.perf_counter() - t0:.1f} s", flush=True)
    biggest = max(TABLES, key=lambda t: counts[t])
    whole = pq.read_table(folder / f"{biggest}.parquet")
    whole = whole.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                  for f in whole.schema]))
    table_mb = whole.nbytes / 2**20  # the whole table as the driver delivers it (plain strings)
    del whole
    url, psql = pg.url(), psql_binary()
    rows = sum(counts[t] for t in TABLES)
    copies: list[float] = []
    copy_cpu: list[dict] = []
    runs: dict[int, list[dict]] = {mb: [] for mb in args.batch_mb}
    meter = CpuMeter(pg._handle.get_pid())
    for turn in range(args.repeats):
        before = meter.read()
        copies.append(copy_seconds(psql, url, schema))
        after = meter.read()
        copy_cpu.append({"client": after[0] - before[0], "server": after[1] - before[1]})
        print(f"turn {turn + 1}: COPY {copies[-1]:.2f} s (CPU: client {copy_cpu[-1]['client']:.2f} s, "
              f"server {copy_cpu[-1]['server']:.2f} s)", flush=True)
        for mb in args.batch_mb:
            before = meter.read()
            res = measured(["ingest", url, str(work / "snap" / f"{schema}_b{mb}"), str(mb), schema])
            after = meter.read()
            res["cpu"] = {"client": after[0] - before[0], "server": after[1] - before[1]}
            assert res["rows"] == rows, (res, rows)
            runs[mb].append(res)
            steps = res["peak_rss_mb_by_step"]
            print(f"turn {turn + 1}: snapshot, batch {mb} MiB: {res['seconds']:.2f} s (CPU: client "
                  f"{res['cpu']['client']:.2f} s, server {res['cpu']['server']:.2f} s), peak RSS "
                  f"{res['peak_rss_mb']:.0f} MiB (reading {steps['copy']:.0f}, whole-table checks "
                  f"{steps.get('check_tables', 0):.0f})", flush=True)
    copy_best = min(copies)
    copy_cpu_best = min(c["client"] + c["server"] for c in copy_cpu)
    per_batch = {}
    for mb, rs in runs.items():
        best = min(r["seconds"] for r in rs)
        cpu_best = min(r["cpu"]["client"] + r["cpu"]["server"] for r in rs)
        per_batch[str(mb)] = {"seconds_best": round(best, 2), "seconds_all": [round(r["seconds"], 2) for r in rs],
                              "rows_per_second": int(rows / best), "ratio_to_copy": round(best / copy_best, 2),
                              "cpu_seconds_best": round(cpu_best, 2),
                              "cpu_ratio_to_copy": round(cpu_best / copy_cpu_best, 2),
                              # the child's own 10 ms samples catch spikes the 50 ms tree poll can miss
                              "peak_rss_mb": max(max(r["peak_rss_mb"], *r["peak_rss_mb_by_step"].values()) for r in rs),
                              "peak_rss_mb_reading": max(r["peak_rss_mb_by_step"]["copy"] for r in rs),
                              "peak_rss_mb_checks": max(r["peak_rss_mb_by_step"].get("check_tables", 0) for r in rs)}
    libraries = {}
    if args.compare_libraries:
        for method, module in (("adbc", "adbc_driver_postgresql"), ("connectorx", "connectorx"),
                               ("psycopg_copy_csv", "psycopg"), ("sqlalchemy", "sqlalchemy")):
            if importlib.util.find_spec(module) is None or (method == "sqlalchemy" and
                                                            importlib.util.find_spec("psycopg") is None):
                libraries[method] = "not installed"
                continue
            for mb in args.batch_mb:
                res = measured([method, url, str(work / "lib" / f"{method}_{mb}"), str(mb), schema])
                libraries[f"{method}@{mb}MiB"] = {"seconds": round(res["seconds"], 2),
                                                  "rows_per_second": int(res["rows"] / res["seconds"]),
                                                  "peak_rss_mb": res["peak_rss_mb"]}
                print(f"library {method}, batch {mb} MiB: {res['seconds']:.2f} s, "
                      f"peak RSS {res['peak_rss_mb']:.0f} MiB", flush=True)
    shutil.rmtree(work / "snap", ignore_errors=True)
    shutil.rmtree(work / "lib", ignore_errors=True)
    return {"n_clients": n_clients, "rows": rows, "row_counts": {t: counts[t] for t in TABLES},
            "copy_seconds_best": round(copy_best, 2), "copy_seconds_all": [round(c, 2) for c in copies],
            "copy_cpu_seconds_best": round(copy_cpu_best, 2),
            "per_batch_mb": per_batch, "largest_table": biggest, "largest_table_in_memory_mb": round(table_mb, 1),
            "libraries": libraries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clients", type=int, nargs="+", default=[100_000],
                        help="world sizes (several show that peak memory does not grow with the table)")
    parser.add_argument("--batch-mb", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compare-libraries", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result_file, kind, url, out, mb, schema = args.child
        result = (child_ingest(url, out, int(mb), schema) if kind == "ingest"
                  else child_library(kind, url, out, int(mb), schema))
        Path(result_file).write_text(json.dumps(result))
        return

    from tests.fixtures.postgres import start_postgres

    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    pg = None
    try:
        pg = start_postgres(work)
        worlds = [bench_world(pg, work, n, args) for n in args.n_clients]
        first = worlds[0]["per_batch_mb"][str(args.batch_mb[0])]
        summary = {
            "benchmark": "ingest", "server": "PostgreSQL 16 (pgserver), same machine",
            "n_clients": args.n_clients, "batch_mb": args.batch_mb,
            "rows_per_second": first["rows_per_second"], "peak_rss_mb": first["peak_rss_mb"],
            "ratio_to_copy": first["ratio_to_copy"], "cpu_ratio_to_copy": first["cpu_ratio_to_copy"],
            "target_ratio": TARGET_RATIO,
            "ratio_ok": first["ratio_to_copy"] <= TARGET_RATIO, "worlds": worlds,
            "load_avg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        }
        print(json.dumps(summary))
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
