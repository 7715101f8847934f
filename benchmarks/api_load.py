"""Load benchmark of the scoring API on loopback.

Trains a small real LightGBM uplift model into a temporary registry, writes a factor
snapshot, starts ``python -m api`` (uvicorn) on 127.0.0.1 and drives it with a bounded load
generator (keep-alive connections from the standard library's http.client in threads, one
phase repeated with httpx for comparison; a fixed number of requests per phase):

* single client by factor values and by id: one connection (latency), then 4 connections
  (throughput), with a new champion promoted half way through to count dropped requests;
* 1,000-client batches by id and by factor values.

Also times the two ways of logging predictions that were considered: appending to the
in-memory buffer flushed as Parquet segments (used) and a synchronous SQLite insert per
request in WAL mode. Prints human lines, then one JSON object as the last line.

    python benchmarks/api_load.py [--requests 2000] [--batch-requests 60] [--port 0]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.api_model import demo_factors, train_demo_model, write_demo_snapshot  # noqa: E402
from api.logbuffer import PredictionLogBuffer  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402
from tasks.monitoring.prediction_log import read_predictions  # noqa: E402
from tasks.modelling.registry import ModelRegistry  # noqa: E402

NAME = "bench_uplift"
N_SNAPSHOT = 50_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarise(lat: list[float], wall: float, errors: int) -> dict:
    ms = np.asarray(lat) * 1e3
    return {"requests": len(lat), "errors": errors, "seconds": round(wall, 3),
            "rps": round(len(lat) / wall, 1) if wall > 0 else None,
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3)}


class _StdlibClient:
    """A keep-alive HTTP/1.1 connection from the standard library (lighter than httpx)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(self, raw: bytes) -> int:
        self.conn.request("POST", "/predict", raw, {"content-type": "application/json"})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self) -> None:
        self.conn.close()


class _HttpxClient:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30.0)

    def post(self, raw: bytes) -> int:
        return self.client.post("/predict", content=raw, headers={"content-type": "application/json"}).status_code

    def close(self) -> None:
        self.client.close()


def run_phase(url: str, bodies: list[dict], threads: int, on_half=None, client: str = "stdlib") -> dict:
    """Send every body once, split over ``threads`` keep-alive connections; latency per request.

    Bodies are encoded before the clock starts; ``client`` is ``stdlib`` (http.client) or ``httpx``.
    """
    raws = [json.dumps(b).encode() for b in bodies]
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    sent = [0]
    half = len(raws) // 2
    make = _StdlibClient if client == "stdlib" else _HttpxClient

    def worker(part: list[bytes]) -> None:
        local, bad = [], 0
        conn = make(url)
        try:
            for raw in part:
                t0 = time.perf_counter()
                status = conn.post(raw)
                local.append(time.perf_counter() - t0)
                bad += status != 200
                with lock:
                    sent[0] += 1
                    fire = on_half is not None and sent[0] == half
                if fire:
                    on_half()
        finally:
            conn.close()
        with lock:
            lat.extend(local)
            errors[0] += bad

    parts = [raws[i::threads] for i in range(threads)]
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return summarise(lat, time.perf_counter() - t0, errors[0])


def in_process_latency(art: Path, snap: Path, conf: Path, bodies: list[dict]) -> dict:
    """The application alone: ASGI calls in one event loop, no sockets, no uvicorn, no log."""
    import asyncio

    from api.app import create_app
    from api.service import ApiSettings

    app = create_app(ApiSettings(artifacts=art, model_name=NAME, factor_snapshot=snap, campaign_conf_dir=conf,
                                 log_predictions=False))
    service = app.state.service
    service.start()

    async def go() -> dict:
        lat, bad = [], 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for body in bodies[:100]:
                await client.post("/predict", json=body)
            t0 = time.perf_counter()
            for body in bodies:
                t1 = time.perf_counter()
                r = await client.post("/predict", json=body)
                lat.append(time.perf_counter() - t1)
                bad += r.status_code != 200
            return summarise(lat, time.perf_counter() - t0, bad)
    try:
        return asyncio.run(go())
    finally:
        service.close()


def log_write_costs(tmp: Path, n: int = 2000) -> dict:
    """Per-request cost of the buffered Parquet log against a synchronous SQLite WAL insert."""
    buf = PredictionLogBuffer(tmp / "buflog", flush_rows=10**9, flush_seconds=3600)
    t0 = time.perf_counter()
    for i in range(n):
        buf.add(time.time_ns(), f"r{i}", "c", [i], np.array([0.1]), np.array([True]), NAME, "v0001")
    add_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    buf.flush()
    flush_ms = (time.perf_counter() - t0) * 1e3
    out = {"buffer_add_us_per_request": round(add_us, 2), "segment_flush_ms_per_2000_rows": round(flush_ms, 2)}
    for sync in ("NORMAL", "FULL"):
        con = sqlite3.connect(tmp / f"log_{sync}.sqlite", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={sync}")
        con.execute("CREATE TABLE p (time INTEGER, source TEXT, request_id TEXT, campaign_id TEXT, "
                    "client_id INTEGER, score REAL, decision INTEGER, model_name TEXT, model_version TEXT)")
        t0 = time.perf_counter()
        for i in range(n):
            con.execute("INSERT INTO p VALUES (?,?,?,?,?,?,?,?,?)",
                        (time.time_ns(), "api", f"r{i}", "c", i, 0.1, 1, NAME, "v0001"))
        out[f"sqlite_wal_{sync.lower()}_us_per_request"] = round((time.perf_counter() - t0) / n * 1e6, 2)
        con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="single-client requests per phase")
    ap.add_argument("--batch-requests", type=int, default=60, help="1,000-client batch requests per phase")
    ap.add_argument("--threads", type=int, default=4, help="concurrent connections in throughput phases")
    ap.add_argument("--port", type=int, default=0, help="port (0 = a free one)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="api_load_"))
    art = tmp / "artifacts"
    reg = ModelRegistry(Layout(art).models)
    t0 = time.perf_counter()
    train_demo_model(reg, NAME, n_clients=20_000, seed=0, approach="solo")
    v2 = train_demo_model(reg, NAME, n_clients=20_000, seed=1, approach="solo", promote=False)
    snap = write_demo_snapshot(tmp / "snapshot.parquet", N_SNAPSHOT)
    conf = tmp / "campaigns"
    conf.mkdir()
    (conf / "bench.yaml").write_text("id: bench\npolicy: {kind: score_cutoff, score_cutoff: 0.05}\n")
    print(f"setup: 2 solo LightGBM models (40 trees, 8 features) and a {N_SNAPSHOT}-client snapshot "
          f"in {time.perf_counter() - t0:.1f}s")

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port), "--artifacts", str(art),
           "--model", NAME, "--factor-snapshot", str(snap), "--campaign-dir", str(conf),
           "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.err", "w"))
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start: {(tmp / 'server.err').read_text()[-2000:]}")
            time.sleep(0.2)
        proc = psutil.Process(server.pid)
        rng = np.random.default_rng(7)
        rows = demo_factors(5000, seed=3).to_dict("records")
        single_rows = [{"clients": [rows[i % 5000]], "campaign": "bench"} for i in range(args.requests)]
        single_ids = [{"client_ids": [int(i)], "campaign": "bench"}
                      for i in rng.integers(1, N_SNAPSHOT + 1, args.requests)]
        batch_ids = [{"client_ids": rng.integers(1, N_SNAPSHOT + 1, 1000).tolist(), "campaign": "bench"}
                     for _ in range(args.batch_requests)]
        batch_rows = [{"clients": rows[(i * 1000) % 4000:(i * 1000) % 4000 + 1000], "campaign": "bench"}
                      for i in range(args.batch_requests)]
        run_phase(url, single_rows[:200], 1)  # warm-up
        results: dict[str, dict] = {}
        results["single_values_1conn"] = run_phase(url, single_rows, 1)
        results["single_values_1conn_httpx"] = run_phase(url, single_rows, 1, client="httpx")
        results["single_ids_1conn"] = run_phase(url, single_ids, 1)
        results["single_values_4conn_with_champion_swap"] = run_phase(
            url, single_rows, args.threads, on_half=lambda: reg.promote(NAME, v2))
        results["single_ids_4conn"] = run_phase(url, single_ids, args.threads)
        results["batch1000_ids_1conn"] = run_phase(url, batch_ids, 1)
        results["batch1000_values_1conn"] = run_phase(url, batch_rows, 1)
        results["batch1000_ids_2conn"] = run_phase(url, batch_ids, 2)
        health = httpx.get(url + "/health").json()
        results["in_process_single_values"] = in_process_latency(art, snap, conf, single_rows)
        rss_mb = proc.memory_info().rss / 2**20
        for name, r in results.items():
            print(f"{name:42s} {r['requests']:5d} req  {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                  f"p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:7.2f} ms  errors {r['errors']}")
        print(f"served model after the swap: {health['model']['version']} (reloads {health['reloads']})")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    expected_rows = sum(r["requests"] * (1000 if k.startswith("batch") else 1) for k, r in results.items()
                        if not k.startswith("in_process")) + 200
    logged = len(read_predictions(Layout(art).predictions, source="api"))
    segments = len(list(Layout(art).predictions.glob("api-*.parquet")))
    print(f"prediction log after shutdown: {logged} rows in {segments} segments (expected {expected_rows})")
    costs = log_write_costs(tmp)
    print("log write cost per request: " + ", ".join(f"{k} {v}" for k, v in costs.items()))
    cpu = os.cpu_count()
    print(f"machine: {cpu} CPUs (shared with other work), load generator in the same machine; "
          f"server RSS {rss_mb:.0f} MiB")
    single_p99 = results["single_values_1conn"]["p99_ms"]
    print(f"target p99 < 20 ms for a single client: {'met' if single_p99 < 20 else 'NOT met'} ({single_p99} ms)")
    print(json.dumps({"benchmark": "api_load", "cpus": cpu, "server_rss_mib": round(rss_mb, 1),
                      "phases": results, "champion_after_swap": health["model"]["version"],
                      "log_rows": logged, "log_rows_expected": expected_rows, "log_segments": segments,
                      "log_costs": costs, "single_p99_ms": single_p99, "target_met": single_p99 < 20}))


if __name__ == "__main__":
    main()
