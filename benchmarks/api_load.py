"""Load benchmark of the scoring API on loopback.

Trains a small real LightGBM uplift model into a temporary registry, writes a factor
snapshot, starts ``python -m api`` (uvicorn) on 127.0.0.1 and drives it with a bounded load
generator (keep-alive connections from the standard library's http.client in threads, one
phase repeated with httpx for comparison; a fixed number of requests per phase):

* single client by factor values and by id: one connection (latency), then 4 connections
  (throughput), with a new champion promoted half way through to count dropped requests;
* 1,000-client batches by id and by factor values;
* the cost of authentication: the server runs with bearer tokens (as it must off loopback)
  and a second one without, and the single-client phase alternates between the two over
  three rounds; requests with a wrong token (401) are timed too, as is the token check alone;
* shutdown: SIGTERM to each server, one of them with a request stuck half-sent, timed to exit.

Also times the two ways of logging predictions that were considered: appending to the
in-memory buffer flushed as Parquet segments (used) and a synchronous SQLite insert per
request in WAL mode. Prints human lines, then one JSON object as the last line.

    python benchmarks/api_load.py [--requests 2000] [--batch-requests 60] [--auth-rounds 3]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
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
# the project root first: this folder has scripts named like project packages (factors.py)
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tests.fixtures.api_model import demo_factors, train_demo_model, write_demo_snapshot  # noqa: E402
from api.auth import TokenChecker, tokens_from_env_value  # noqa: E402
from api.logbuffer import PredictionLogBuffer  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402
from tasks.monitoring.prediction_log import read_predictions  # noqa: E402
from tasks.modelling.registry import ModelRegistry  # noqa: E402

NAME = "bench_uplift"
N_SNAPSHOT = 50_000
TOKEN = "bench-" + "k" * 38  # the benchmark's own throwaway token


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

    def __init__(self, url: str, headers: dict | None = None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"content-type": "application/json", **(headers or {})}

    def post(self, raw: bytes) -> int:
        self.conn.request("POST", "/predict", raw, self.headers)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self) -> None:
        self.conn.close()


class _HttpxClient:
    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.client = httpx.Client(base_url=url, timeout=30.0)
        self.headers = {"content-type": "application/json", **(headers or {})}

    def post(self, raw: bytes) -> int:
        return self.client.post("/predict", content=raw, headers=self.headers).status_code

    def close(self) -> None:
        self.client.close()


def run_phase(url: str, bodies: list[dict], threads: int, on_half=None, client: str = "stdlib",
              headers: dict | None = None, expect: int = 200, latencies: list | None = None) -> dict:
    """Send every body once, split over ``threads`` keep-alive connections; latency per request.

    Bodies are encoded before the clock starts; ``client`` is ``stdlib`` (http.client) or ``httpx``;
    an answer other than ``expect`` counts as an error; ``latencies`` (a list) receives every latency.
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
        conn = make(url, headers)
        try:
            for raw in part:
                t0 = time.perf_counter()
                status = conn.post(raw)
                local.append(time.perf_counter() - t0)
                bad += status != expect
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
    if latencies is not None:
        latencies.extend(lat)
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
    ap.add_argument("--auth-rounds", type=int, default=3,
                    help="alternating rounds of the single-client phase with and without authentication")
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

    tokens_file = tmp / "tokens"
    tokens_file.write_text(f"bench:{TOKEN}\n")
    tokens_file.chmod(0o600)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    server, url = start_server(art, snap, conf, tmp, "auth", {"UPLIFT_API_TOKENS_FILE": str(tokens_file)})
    open_server, open_url = start_server(art, snap, conf, tmp, "open", {})
    try:
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
        run_phase(url, single_rows[:200], 1, headers=auth)  # warm-up
        run_phase(open_url, single_rows[:200], 1)
        results: dict[str, dict] = {}
        rounds: dict[str, list[dict]] = {"with_token": [], "without_auth": []}
        pooled_lat: dict[str, list[float]] = {"with_token": [], "without_auth": []}
        for _ in range(args.auth_rounds):  # alternate, so both see the same machine load
            rounds["without_auth"].append(run_phase(open_url, single_rows, 1, latencies=pooled_lat["without_auth"]))
            rounds["with_token"].append(run_phase(url, single_rows, 1, headers=auth,
                                                  latencies=pooled_lat["with_token"]))
        for key, runs in rounds.items():
            results[f"single_values_1conn_{key}"] = summarise(
                pooled_lat[key], sum(r["seconds"] for r in runs), sum(r["errors"] for r in runs))
        results["single_values_1conn_wrong_token_401"] = run_phase(
            url, single_rows[:500], 1, headers={"Authorization": "Bearer " + "x" * 44}, expect=401)
        results["single_values_1conn_httpx"] = run_phase(url, single_rows, 1, client="httpx", headers=auth)
        results["single_ids_1conn"] = run_phase(url, single_ids, 1, headers=auth)
        results["single_values_4conn_with_champion_swap"] = run_phase(
            url, single_rows, args.threads, on_half=lambda: reg.promote(NAME, v2), headers=auth)
        results["single_ids_4conn"] = run_phase(url, single_ids, args.threads, headers=auth)
        results["batch1000_ids_1conn"] = run_phase(url, batch_ids, 1, headers=auth)
        results["batch1000_values_1conn"] = run_phase(url, batch_rows, 1, headers=auth)
        results["batch1000_ids_2conn"] = run_phase(url, batch_ids, 2, headers=auth)
        health = httpx.get(url + "/health", headers=auth).json()
        results["in_process_single_values"] = in_process_latency(art, snap, conf, single_rows)
        rss_mb = proc.memory_info().rss / 2**20
        for name, r in results.items():
            print(f"{name:42s} {r['requests']:5d} req  {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                  f"p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:7.2f} ms  errors {r['errors']}")
        print(f"served model after the swap: {health['model']['version']} (reloads {health['reloads']})")
        shutdown = {"idle_seconds": sigterm_seconds(open_server),
                    "request_half_sent_seconds": sigterm_seconds(server, stuck_port=int(url.rsplit(":", 1)[1]))}
    finally:
        for proc_ in (server, open_server):
            if proc_.poll() is None:
                proc_.kill()
                proc_.wait()
    print(f"SIGTERM to exit: idle server {shutdown['idle_seconds']} s, with a request stuck half-sent "
          f"{shutdown['request_half_sent_seconds']} s")
    expected_rows = sum(r["requests"] * (1000 if k.startswith("batch") else 1) for k, r in results.items()
                        if not k.startswith("in_process") and "401" not in k) + 400
    logged = len(read_predictions(Layout(art).predictions, source="api"))
    segments = len(list(Layout(art).predictions.glob("*api-*.parquet")))
    print(f"prediction log after shutdown (both servers): {logged} rows in {segments} files (expected {expected_rows})")
    costs = log_write_costs(tmp)
    print("log write cost per request: " + ", ".join(f"{k} {v}" for k, v in costs.items()))
    check = token_check_cost()
    print("token check alone: " + ", ".join(f"{k} {v}" for k, v in check.items()))
    with_t, without = results["single_values_1conn_with_token"], results["single_values_1conn_without_auth"]
    print(f"authentication: p50 {without['p50_ms']} -> {with_t['p50_ms']} ms, p99 {without['p99_ms']} -> "
          f"{with_t['p99_ms']} ms (single client, 1 connection, {args.auth_rounds} alternating rounds)")
    cpu = os.cpu_count()
    load = os.getloadavg()
    print(f"machine: {cpu} CPUs (shared with other work), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"load generator in the same machine; server RSS {rss_mb:.0f} MiB")
    single_p99 = with_t["p99_ms"]
    print(f"target p99 < 20 ms for a single client: {'met' if single_p99 < 20 else 'NOT met'} ({single_p99} ms)")
    print(json.dumps({"benchmark": "api_load", "cpus": cpu, "loadavg": [round(x, 2) for x in load],
                      "server_rss_mib": round(rss_mb, 1), "phases": results,
                      "auth_rounds": {k: v for k, v in rounds.items()}, "token_check": check,
                      "shutdown_seconds": shutdown, "champion_after_swap": health["model"]["version"],
                      "log_rows": logged, "log_rows_expected": expected_rows, "log_segments": segments,
                      "log_costs": costs, "single_p99_ms": single_p99, "target_met": single_p99 < 20}))


def start_server(art: Path, snap: Path, conf: Path, tmp: Path, tag: str, env: dict) -> tuple[subprocess.Popen, str]:
    """``python -m api`` on 127.0.0.1 with its own port; returns once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port), "--artifacts", str(art),
           "--model", NAME, "--factor-snapshot", str(snap), "--campaign-dir", str(conf), "--log-level", "warning"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UPLIFT_API_TOKENS")}
    err = tmp / f"server-{tag}.err"
    server = subprocess.Popen(cmd, cwd=ROOT, env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.time() > deadline:
            server.kill()
            raise SystemExit(f"server did not start: {err.read_text()[-2000:]}")
        time.sleep(0.2)


def sigterm_seconds(server: subprocess.Popen, stuck_port: int | None = None) -> float:
    """Seconds from SIGTERM to exit; with ``stuck_port`` a request is left half-sent first."""
    stuck = None
    if stuck_port is not None:
        stuck = socket.create_connection(("127.0.0.1", stuck_port))
        stuck.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
    t0 = time.perf_counter()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        return float("inf")
    finally:
        if stuck is not None:
            stuck.close()
    return round(time.perf_counter() - t0, 3)


def token_check_cost(n: int = 20_000) -> dict:
    """Microseconds per Authorization header check with 2 and 10 configured tokens."""
    out = {}
    for count in (2, 10):
        checker = TokenChecker(tokens_from_env_value(",".join(f"t{i}:{'s' * 20}{i:04d}" for i in range(count))))
        header = f"Bearer {'s' * 20}{count - 1:04d}"
        t0 = time.perf_counter()
        for _ in range(n):
            checker.identify(header)
        out[f"us_per_check_{count}_tokens"] = round((time.perf_counter() - t0) / n * 1e6, 2)
    return out


if __name__ == "__main__":
    main()
