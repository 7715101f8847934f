"""Benchmark: the factor stage's preparation on a flat or a client-id-bucketed dataset.

    python benchmarks/factor_preparation.py DATA_DIR [--bucket-pass] [--slice-clients 1000000]
    python benchmarks/factor_preparation.py DATA_DIR --bucket-into NEW_DIR --buckets 16

Times :func:`factors.partitioned.prepare_factors` for every client registered before the
dataset's as-of date and every registered factor (the request's checks, and the
aggregation of the tables not ordered by client), then the first partition of 250,000
clients. With ``--bucket-into`` it first copies the dataset into client-id buckets
(:func:`tasks.data.buckets.bucket_dataset`, timed) and measures the copy. Prints the load
average before and after, and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import factors  # noqa: E402
from factors import partitioned  # noqa: E402
from tasks.data.buckets import bucket_dataset  # noqa: E402
from tasks.data.tables import read_manifest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--bucket-into", default=None)
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--memory", default="4GB", help="DuckDB memory limit of the bucketing copy")
    ap.add_argument("--bucket-pass", action="store_true")
    ap.add_argument("--slice-clients", type=int, default=partitioned.SLICE_CLIENTS)
    a = ap.parse_args()
    out: dict = {"load_before": os.getloadavg()[0]}
    data = Path(a.data_dir)
    if a.bucket_into:
        t = time.perf_counter()
        out["buckets"] = bucket_dataset(data, a.bucket_into, a.buckets, a.memory)["buckets"]
        out["bucket_seconds"] = round(time.perf_counter() - t, 1)
        data = Path(a.bucket_into)
    partitioned.SLICE_CLIENTS = a.slice_clients
    as_of = pd.Timestamp(read_manifest(data)["as_of"])
    clients = data / "clients.parquet"
    glob = str(clients / "**" / "*.parquet") if clients.is_dir() else str(clients)
    ids = duckdb.sql(f"SELECT client_id FROM read_parquet('{glob}', hive_partitioning = false) "
                     f"WHERE registration_date < TIMESTAMP '{as_of}' ORDER BY 1").df()["client_id"].to_numpy()
    names = list(factors.all_factors())
    with tempfile.TemporaryDirectory(prefix="factor_prep_") as work:
        t = time.perf_counter()
        plan = partitioned.prepare_factors(data, as_of, names, ids, work, bucket_pass=a.bucket_pass)
        out["prepare_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        plan.compute(ids[:250_000])
        out["first_partition_seconds"] = round(time.perf_counter() - t, 1)
    out.update(data=str(data), clients=int(len(ids)), factors=len(names), aggregated_once=sorted(plan.preaggregated),
               load_after=os.getloadavg()[0])
    print(f"{data}: {len(ids):,} clients, {len(names)} factors; preparation {out['prepare_seconds']} s, "
          f"first partition (250,000) {out['first_partition_seconds']} s; load {out['load_before']:.2f} -> "
          f"{out['load_after']:.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
