"""Benchmark: generate a large synthetic world through the real command line.

    python benchmarks/generate.py [--n-clients 1000000] [--name bench1m] [--artifacts artifacts]

Runs ``python -m flows.generate data.n_clients=N data.name=NAME`` in a child process,
polls the resident memory of the child's whole process tree with psutil, and prints the
wall time, peak RSS, row counts and file sizes. Targets for 1,000,000 clients: at most
90 s and 6 GiB. The generated world is left in place for the other benchmarks.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core.layout import Layout  # noqa: E402
from tasks.data.tables import read_manifest  # noqa: E402

TARGET_SECONDS = 90.0
TARGET_GIB = 6.0


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(n_clients: int, name: str, artifacts: str, interval: float = 0.1) -> dict:
    """Run the generate command once; return timing, peak memory and the manifest's counts."""
    cmd = [sys.executable, "-m", "flows.generate", f"data.n_clients={n_clients}", f"data.name={name}",
           f"paths.artifacts={artifacts}"]
    started = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(child.stdout), daemon=True)
    reader.start()
    watched = psutil.Process(child.pid)
    while child.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(interval)
    seconds = time.perf_counter() - started
    reader.join(timeout=5)
    if child.returncode != 0:
        print("".join(output[-40:]), file=sys.stderr)
        raise SystemExit(f"generate failed with exit code {child.returncode}")
    data_dir = Layout(PROJECT_ROOT / artifacts).dataset(name)  # an absolute ``artifacts`` wins
    manifest = read_manifest(data_dir)
    sizes = {p.stem: p.stat().st_size for p in sorted(data_dir.glob("*.parquet"))}
    return {"seconds": seconds, "peak_rss_bytes": peak, "row_counts": manifest["row_counts"],
            "file_bytes": sizes, "data_dir": str(data_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clients", type=int, default=1_000_000)
    parser.add_argument("--name", default=None, help="dataset name (default bench1m for 1M, else benchN)")
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args()
    name = args.name or ("bench1m" if args.n_clients == 1_000_000 else f"bench{args.n_clients}")

    result = run(args.n_clients, name, args.artifacts)
    gib = result["peak_rss_bytes"] / 2**30
    rows = result["row_counts"]
    print(f"generated {args.n_clients:,} clients into {result['data_dir']}")
    for table, count in rows.items():
        size = result["file_bytes"].get(table, 0) / 2**20
        print(f"  {table:<17} {count:>12,} rows  {size:8.1f} MiB  ({count / args.n_clients:.1f} per client)")
    print(f"wall time {result['seconds']:.1f} s (target <= {TARGET_SECONDS:.0f} s for 1M clients)")
    print(f"peak RSS of the process tree {gib:.2f} GiB (target <= {TARGET_GIB:.0f} GiB)")
    print(f"machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
          f"load average {', '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    within = result["seconds"] <= TARGET_SECONDS and gib <= TARGET_GIB
    print(json.dumps({
        "benchmark": "generate",
        "n_clients": args.n_clients,
        "seconds": round(result["seconds"], 2),
        "peak_rss_gib": round(gib, 3),
        "rows": rows,
        "purchases_per_client": round(rows["purchases"] / args.n_clients, 2),
        "messages_per_client": round(rows["messages"] / args.n_clients, 2),
        "load_average_1m": round(psutil.getloadavg()[0], 2),
        "within_targets": bool(within),
    }))


if __name__ == "__main__":
    main()
