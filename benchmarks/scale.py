"""Scale benchmark: the campaign across runners, or generation and campaign across base sizes.

    python benchmarks/scale.py [--artifacts artifacts] [--campaign default] [--partitions 8]
    python benchmarks/scale.py --points 1m,3m,10m [--skip-10m] [--skip-generate] [--skip-campaign]

``--points`` (growth mode): for each base size, generates the world ``scale<size>`` through
the command line (kept when ``--skip-generate`` and it exists) and calculates the default
campaign on it with the champion ``bench1m_uplift`` (trained once on bench1m, untimed). Per
point and step it prints wall time, CPU seconds of the process tree (user + system of the
finished children, steadier than wall time on a shared machine), peak RSS of the tree
(psutil sampling), per-stage seconds (generation: its two table groups; campaign: every
stage from its manifest) and the load average before and after; then the growth exponent
of wall time, CPU time and peak memory between consecutive points and between the first
and the last (``log(v2/v1) / log(n2/n1)``: 1 is linear). ``--skip-10m`` drops the 10M
point on small machines. The last line is one JSON object.

Runner mode (no ``--points``):

1. Makes sure the world ``bench1m`` and the champion ``bench1m_uplift`` exist (the campaign
   benchmark's helpers generate / train them when missing; not timed).
2. Calculates the same campaign three times through the command line, each under a fresh
   campaign id so nothing is reused: ``runner=local``; ``runner=dask runner.n_workers=1``;
   ``runner=dask runner.n_workers=2`` (a LocalCluster of worker processes started by
   prefect-dask's DaskTaskRunner). For each: wall time, peak RSS of the whole process tree
   (the flow process, Prefect's ephemeral server and the Dask scheduler and worker processes,
   polled with psutil) and of the flow process alone (the driver), the factor and score stage
   seconds and the load average around it.
3. Checks that the three campaign.parquet hold the same rows (campaign_id aside) and that the
   stage checkpoints have the same keys and fingerprints.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
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


def size(point: str) -> int:
    """Clients of a point written like 1m, 3m, 10m or 200k."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", point)
    if not m:
        raise SystemExit(f"--points: {point!r} is not a size like 1m, 3m, 10m or 200k")
    return int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2)])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; wall and CPU seconds, peak tree RSS, load average around it, output."""
    load_before, cpu_before = os.getloadavg(), _children_cpu()
    wall, peak, res = run_measured(cmd)
    if res.returncode != 0:
        print(res.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(cmd[2:4])}: failed with exit code {res.returncode}")
    return {"wall_s": round(wall, 2), "cpu_s": round(_children_cpu() - cpu_before, 2),
            "peak_rss_gib": round(peak / 2**30, 3), "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "_out": res.stdout + res.stderr}


def exponent(n1: int, v1: float, n2: int, v2: float) -> float | None:
    """Growth exponent of ``v`` between base sizes ``n1`` and ``n2`` (1.0 = linear)."""
    if v1 <= 0 or v2 <= 0 or n1 == n2:
        return None
    return round(math.log(v2 / v1) / math.log(n2 / n1), 3)


def growth(args: argparse.Namespace, artifacts: Path) -> None:
    points = [p.strip().lower() for p in args.points.split(",") if p.strip()]
    SIZES = {p: size(p) for p in points}
    if args.skip_10m:
        points = [p for p in points if p != "10m"]
    py = sys.executable
    if not args.skip_campaign:
        ensure_world_and_model(artifacts)
    layout = Layout(artifacts)
    results: dict[str, dict] = {}
    for point in points:
        n, world = SIZES[point], f"scale{point}"
        row: dict = {"n_clients": n}
        if not (args.skip_generate and layout.dataset_manifest(world).exists()):
            r = measure([py, "-m", "flows.generate", f"data.n_clients={n}", f"data.name={world}",
                         f"paths.artifacts={artifacts}"])
            r["stages_s"] = {g: float(s) for g, s in re.findall(r"(purchases|contacts): [^\n]*?; ([\d.]+) s", r.pop("_out"))}
            row["generate"] = r
            print(f"{point:>4} generate  wall {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  peak {r['peak_rss_gib']:6.2f} GiB  "
                  f"stages {r['stages_s']}  load {r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}", flush=True)
        if not args.skip_campaign:
            cid = f"scale_{point}"
            fresh_campaign(artifacts, cid)
            r = measure([py, "-m", "flows.campaign", f"campaign={args.campaign}", f"campaign.id={cid}",
                         f"campaign.data={world}", f"campaign.model={MODEL}", f"paths.artifacts={artifacts}", "runner=local"])
            r.pop("_out")
            manifest = json.loads(layout.campaign(cid).manifest.read_text())
            r["stages_s"] = {s: v.get("seconds") for s, v in manifest["stages"].items()}
            r["campaign_clients"] = manifest["counts"].get("client_base")
            row["campaign"] = r
            print(f"{point:>4} campaign  wall {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  peak {r['peak_rss_gib']:6.2f} GiB  "
                  f"stages {r['stages_s']}  load {r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}", flush=True)
        results[point] = row

    exps: dict[str, dict] = {}
    pairs = list(zip(points[:-1], points[1:]))
    if len(points) > 2:
        pairs.append((points[0], points[-1]))
    for a, b in pairs:
        for step in ("generate", "campaign"):
            if step in results[a] and step in results[b]:
                ra, rb = results[a][step], results[b][step]
                exps[f"{step} {a}->{b}"] = {k: exponent(SIZES[a], ra[k], SIZES[b], rb[k])
                                            for k in ("wall_s", "cpu_s", "peak_rss_gib")}
                print(f"growth exponent {step} {a}->{b}: {exps[f'{step} {a}->{b}']}")
    print(json.dumps({"benchmark": "scale_growth", "points": results, "exponents": exps,
                      "cpu_count": os.cpu_count(), "loadavg_end": [round(x, 2) for x in os.getloadavg()]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--campaign", default="default", help="campaign config in conf/campaign/")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the Dask runs")
    parser.add_argument("--points", default=None, help="growth mode: base sizes, e.g. 1m,3m,10m (or 200k)")
    parser.add_argument("--skip-10m", action="store_true", help="growth mode: leave out the 10M point")
    parser.add_argument("--skip-generate", action="store_true", help="growth mode: reuse existing scale<size> worlds")
    parser.add_argument("--skip-campaign", action="store_true", help="growth mode: measure generation only")
    args = parser.parse_args()
    artifacts = Path(args.artifacts).resolve()
    if args.points:
        growth(args, artifacts)
        return
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
        peaks: dict = {}
        wall, peak, res = run_measured(cmd, peaks)
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
            "driver_peak_rss_gib": round(peaks["driver"] / 2**30, 3),
            "factors_s": stages["factors"]["seconds"],
            "score_s": stages["score"]["seconds"],
            "partitions": 1 if name == "local" else args.partitions,
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(load_after[0], 2),
        }
        r = results[name]
        print(f"{name:15s} wall {r['wall_s']:7.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB "
              f"(flow process {r['driver_peak_rss_gib']:.2f})  "
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
