"""Data-profile benchmark on the 1M-client synthetic world.

    python benchmarks/data_profile.py [--artifacts artifacts]

Runs ``python -m flows.profile data.name=bench1m`` through the command line (the real
Prefect flow in ephemeral mode; the world is generated first when missing, untimed) and
measures wall time and the peak RSS of the process tree. Every raw table is read whole
(row counts, missing values and duplicates on all rows); distributions, correlations and the
factor section use seeded samples of ``profile.max_rows`` rows.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.campaign import WORLD, run_measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args()
    artifacts = Path(args.artifacts).resolve()
    if not (artifacts / "data" / WORLD / "manifest.json").exists():
        print(f"generating {WORLD} (1,000,000 clients) ...", flush=True)
        subprocess.run([sys.executable, "-m", "flows.generate", "data.n_clients=1000000", f"data.name={WORLD}",
                        f"paths.artifacts={artifacts}"], cwd=PROJECT_ROOT, check=True)
    cmd = [sys.executable, "-m", "flows.profile", f"data.name={WORLD}", "data.n_clients=1000000",
           f"paths.artifacts={artifacts}"]
    wall, peak, res = run_measured(cmd)
    if res.returncode != 0:
        print(res.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"profile run failed with exit code {res.returncode}")
    reports = sorted((artifacts / "profiles" / WORLD).glob("*/findings.json"), key=lambda p: p.stat().st_mtime)
    findings = json.loads(reports[-1].read_text())
    rows = findings["row_counts"]
    print(f"profile of {WORLD} (CLI, Prefect ephemeral): {wall:.1f} s wall, peak RSS {peak / 2**30:.2f} GiB")
    print("rows per table: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    print(json.dumps({"world": WORLD, "wall_seconds": wall, "peak_rss_gib": peak / 2**30, "table_rows": rows,
                      "report": str(reports[-1].parent)}))


if __name__ == "__main__":
    main()
