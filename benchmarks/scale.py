"""Scale-out benchmark: the 1M-client campaign with the local runner and on Dask.

    python benchmarks/scale.py [--artifacts artifacts] [--campaign default] [--partitions 8]

1. Makes sure the world ``bench1m`` and the champion ``bench1m_uplift`` exist (the campaign
   benchmark's helpers generate / train them when missing; not timed).
2. Calculates the same campaign three times through the command line, each under a fresh
   campaign id so nothing is reused: ``runner=local``; ``runner=dask runner.n_workers=1``;
   ``runner=dask runner.n_workers=2`` (a LocalCluster of worker processes started by
   prefect-dask's DaskTaskRunner). For each: wall time, peak RSS of the whole process tree
   (the flow process, Prefect's ephemeral server and the Dask scheduler and worker processes,
   polled with psutil), the factor and score stage seconds and the load average around it.
3. Checks that the three campaign.parquet hold the same rows (campaign_id aside) and that the
   stage checkpoints have the same keys and fingerprints.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.campaign import MODEL, WORLD, ensure_world_and_model, run_measured  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402

RUNS = {
    "local": ["runner=local"],
    "dask_1_worker": ["runner=dask", "runner.n_workers=1", "runner.threads_per_worker=1"],
    "dask_2_workers": ["runner=dask", "runner.n_workers=2", "runner.threads_per_worker=1"],
}


def fresh_campaign(artifacts: Path, campaign_id: str) -> None:
    """Remove an earlier run's folder and prediction log segment of ``campaign_id``."""
    layout = Layout(artifacts)
    folder = layout.campaign(campaign_id).folder
    if folder.exists():
        shutil.rmtree(folder)
    for seg in layout.predictions.glob(f"campaign-{campaign_id}*.parquet"):
        seg.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--campaign", default="default", help="campaign config in conf/campaign/")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the Dask runs")
    args = parser.parse_args()
    artifacts = Path(args.artifacts).resolve()
    ensure_world_and_model(artifacts)

    import pandas as pd

    from tasks.campaign.stages import STAGES

    results: dict[str, dict] = {}
    tables: dict[str, pd.DataFrame] = {}
    manifests: dict[str, dict] = {}
    for name, runner in RUNS.items():
        cid = f"scale_{name}"
        fresh_campaign(artifacts, cid)
        extra = [] if name == "local" else [f"runner.partitions={args.partitions}"]
        cmd = [sys.executable, "-m", "flows.campaign", f"campaign={args.campaign}", f"campaign.id={cid}",
               f"campaign.data={WORLD}", f"campaign.model={MODEL}", f"paths.artifacts={artifacts}", *runner, *extra]
        load_before = os.getloadavg()
        wall, peak, res = run_measured(cmd)
        load_after = os.getloadavg()
        if res.returncode != 0:
            print(res.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{name}: campaign run failed with exit code {res.returncode}")
        paths = Layout(artifacts).campaign(cid)
        manifest = json.loads(paths.manifest.read_text())
        manifests[name] = manifest
        tables[name] = pd.read_parquet(paths.table).drop(columns="campaign_id")
        stages = manifest["stages"]
        results[name] = {
            "wall_s": round(wall, 2),
            "peak_rss_gib": round(peak / 2**30, 3),
            "factors_s": stages["factors"]["seconds"],
            "score_s": stages["score"]["seconds"],
            "partitions": 1 if name == "local" else args.partitions,
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(load_after[0], 2),
        }
        r = results[name]
        print(f"{name:15s} wall {r['wall_s']:7.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB  "
              f"factors {r['factors_s']:6.1f} s  score {r['score_s']:6.1f} s  "
              f"load avg {r['loadavg_1m_before']:.2f} -> {r['loadavg_1m_after']:.2f}", flush=True)

    ref = tables["local"]
    equal = {}
    for name, table in tables.items():
        try:
            pd.testing.assert_frame_equal(ref, table, check_exact=True)
            equal[name] = True
        except AssertionError:
            equal[name] = False
    same_keys = all(
        (manifests[n]["stages"][s]["key"], manifests[n]["stages"][s]["fingerprint"]) ==
        (manifests["local"]["stages"][s]["key"], manifests["local"]["stages"][s]["fingerprint"])
        for n in manifests for s in STAGES[:-1])
    print(f"campaign.parquet equal to the local runner's: {equal}; stage keys and fingerprints equal: {same_keys}")
    print(f"clients in campaign: {len(ref)}; offers: {int(ref['offer'].sum())}; cpus: {os.cpu_count()}; "
          f"load average now: {tuple(round(x, 2) for x in os.getloadavg())}")

    print(json.dumps({
        "benchmark": "scale",
        "campaign_clients": int(len(ref)),
        "clients_in_world": manifests["local"]["counts"]["client_base"],
        "runs": results,
        "campaigns_equal": all(equal.values()),
        "checkpoint_keys_equal": same_keys,
        "cpu_count": os.cpu_count(),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
