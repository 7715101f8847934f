"""Client-table benchmark: a campaign over a user's own client table of a large base.

    python benchmarks/client_table.py [--artifacts artifacts/bench_table] [--rows 1m] [--extra 40]
                                      [--format parquet|csv] [--partitions 8]

Makes (untimed, kept between runs) a shop: a past randomised test of 20,000 clients with the
mart's columns (yes/no response, string arms) and an uplift model trained on it through
``python -m flows.train data=table ...``; then this month's mart of ``--rows`` clients:
ids under another name, the model's four features (NaN cells, a text region), a yes/no
e-mail opt-out the campaign filters on, an e-mail address, and ``--extra`` numeric columns
no model uses (a client mart is wider than a model). It calculates the campaign over the
mart through ``python -m flows.campaign campaign.client_table.path=...`` under a fresh id
and prints wall time, CPU seconds, peak RSS of the process tree (the flow process, the
ephemeral Prefect server), per-stage seconds and the load average around it. The last line
is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.campaign import run_measured  # noqa: E402
from benchmarks.scale import fresh_campaign, size  # noqa: E402
from tasks.core.io import read_json  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402

MODEL = "bench_mart_uplift"
ID = "customer_no"


def mart_rows(n: int, first_id: int, seed: int, extra: int) -> pd.DataFrame:
    """A client mart: the model's columns with gaps, a text region, an opt-out, an e-mail
    address and ``extra`` numeric columns no model uses."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n, dtype=np.int64) * 7
    df = pd.DataFrame({
        ID: rng.permutation(ids),  # a mart is not ordered by client
        "age": rng.integers(18, 80, n).astype(float),
        "spend_90d": rng.gamma(2.0, 40.0, n).round(2),
        "visits": rng.poisson(3, n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "email_opt_out": rng.choice(["yes", "no"], n, p=[0.15, 0.85]),
    })
    df["email"] = pd.Series(df[ID].astype(str)).radd("client").add("@example.com")
    df.loc[rng.random(n) < 0.06, "age"] = np.nan
    df.loc[rng.random(n) < 0.06, "spend_90d"] = np.nan
    df["region"] = df["region"].where(rng.random(n) >= 0.05)
    for i in range(extra):
        df[f"metric_{i:02d}"] = rng.normal(0.0, 1.0, n).round(3)
    return df


def ensure_shop(root: Path) -> None:
    """The past test and a champion trained on it through the command line (untimed)."""
    layout = Layout(root)
    if (layout.models / MODEL).exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    past = mart_rows(20_000, 1, seed=1, extra=0)  # the model's columns; the mart has more
    rng = np.random.default_rng(2)
    treated = rng.integers(0, 2, len(past))
    young = (past["age"].fillna(50) < 40).to_numpy()
    north = (past["region"] == "north").to_numpy()
    bought = rng.random(len(past)) < 0.05 + treated * (0.12 * young + 0.08 * north)
    past["arm"] = np.where(treated == 1, "offer", "no offer")
    past["response"] = np.where(bought, "yes", "no")
    past.to_parquet(root / "past_test.parquet", index=False)
    print("training the mart's model on a past test of 20,000 clients ...", flush=True)
    cmd = [sys.executable, "-m", "flows.train", "data=table", f"data.path={root / 'past_test.parquet'}",
           f"data.id_column={ID}", "data.target=response", "data.treatment=arm", "data.treated=offer",
           "data.control='no offer'", "data.drop=[email]", "model=uplift", f"model.name={MODEL}",
           "model.approaches=[two_models]", "model.cv_folds=2", "model.n_boot=50", "model.promote=always",
           f"paths.artifacts={root}"]
    wall, _, res = run_measured(cmd)
    if res.returncode != 0:
        sys.exit(f"error: training the mart's model failed:\n{res.stderr[-3000:]}")


def ensure_mart(root: Path, rows: int, extra: int, fmt: str) -> Path:
    path = root / f"mart_{rows}_{extra}.{fmt}"
    if not path.exists():
        print(f"writing a mart of {rows:,} clients and {extra + 7} columns as {fmt} ...", flush=True)
        df = mart_rows(rows, 100_000_000, seed=3, extra=extra)
        tmp = path.with_suffix(".tmp")
        if fmt == "parquet":
            df.to_parquet(tmp, index=False, row_group_size=250_000)
        else:
            df.to_csv(tmp, sep=";", index=False)
        os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts/bench_table")
    parser.add_argument("--rows", default="1m", help="clients in the mart: 1m, 300k, 2500000 ...")
    parser.add_argument("--extra", type=int, default=40, help="numeric columns no model uses")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    try:
        rows = size(args.rows)
    except SystemExit:
        print(f"error: --rows {args.rows!r} is not a size like 1m, 300k or 2500000; e.g. --rows 1m", file=sys.stderr)
        sys.exit(2)
    root = Path(args.artifacts).resolve()
    ensure_shop(root)
    path = ensure_mart(root, rows, args.extra, args.format)

    cid = f"bench_table_{args.format}_{rows}"
    fresh_campaign(root, cid)
    cmd = [sys.executable, "-m", "flows.campaign", f"campaign.id={cid}", f"campaign.model={MODEL}",
           f"campaign.client_table.path={path}", f"campaign.client_table.id_column={ID}",
           "campaign.filters=[{name: reachable, column: email_opt_out, op: '==', value: 'no'}]",
           "campaign.sample_fraction=null", f"runner.partitions={args.partitions}", f"paths.artifacts={root}"]
    load_before = os.getloadavg()
    cpu0 = os.times()
    wall, peak, res = run_measured(cmd)
    cpu1 = os.times()
    if res.returncode != 0:
        sys.exit(f"error: the campaign failed:\n{res.stderr[-3000:]}")
    manifest = read_json(Layout(root).campaign(cid).manifest)
    stages = {k: v.get("seconds") for k, v in manifest["stages"].items() if v.get("seconds") is not None}
    result = {"rows": rows, "columns": args.extra + 7, "format": args.format, "file_mib": round(path.stat().st_size / 2**20, 1),
              "wall_s": round(wall, 1),
              "cpu_s": round((cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system), 1),
              "peak_rss_gib": round(peak / 2**30, 3), "stage_seconds": stages,
              "clients": manifest.get("counts", {}).get("clients"),
              "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
              "partitions": args.partitions, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"{rows:,} clients ({args.format}, {result['file_mib']} MiB): wall {result['wall_s']} s, cpu {result['cpu_s']} s, "
          f"peak {result['peak_rss_gib']} GiB; stages {stages}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
