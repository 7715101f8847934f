"""Campaign benchmark on the 1M-client synthetic world.

    python benchmarks/campaign.py [--artifacts artifacts] [--campaign default]

1. Makes sure the world ``bench1m`` (1,000,000 clients) and a champion model
   ``bench1m_uplift`` trained on it exist (generates / trains them when missing; not timed).
2. Calculates the campaign end to end through the command line
   (``python -m flows.campaign campaign=<name> campaign.data=bench1m ...``, the real Prefect
   flow in ephemeral mode) and measures wall time and the peak RSS of the process tree.
   Targets: at most 180 s and 8 GiB.
3. Reruns it: the identical command on the frozen campaign (a no-op), and the plain pipeline
   with every stage checkpoint valid and the freeze redone. Target: at most 10 s.

Prints human lines, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core.layout import Layout  # noqa: E402
from tasks.modelling.registry import CHAMPION_FILE  # noqa: E402

WORLD = "bench1m"
MODEL = "bench1m_uplift"
CAMPAIGN_ID = "bench1m_campaign"


class PeakRss:
    """Samples the summed RSS of a process and its children until stopped (``peak``), and the
    process's own RSS (``driver_peak``: the flow process, without Prefect's server or Dask
    workers)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.driver_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                total += rss
                if p is root:
                    self.driver_peak = max(self.driver_peak, rss)
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(cmd: list[str], peaks: dict | None = None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``cmd`` from the project root; return wall seconds, peak tree RSS and the result
    (``peaks``, when given, gets ``tree`` and ``driver``: the command's own process)."""
    env = {**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRss(proc.pid) as mon:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if peaks is not None:
        peaks.update(tree=mon.peak, driver=mon.driver_peak)
    return wall, mon.peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ensure_world_and_model(artifacts: Path) -> None:
    """Generate bench1m and train a champion on it when missing (untimed preparation)."""
    py = sys.executable
    layout = Layout(artifacts)
    if not layout.dataset_manifest(WORLD).exists():
        print(f"generating {WORLD} (1,000,000 clients) ...", flush=True)
        subprocess.run([py, "-m", "flows.generate", "data.n_clients=1000000", f"data.name={WORLD}",
                        f"paths.artifacts={artifacts}"], cwd=PROJECT_ROOT, check=True)
    if not (layout.models / MODEL / CHAMPION_FILE).exists():
        print(f"training a champion {MODEL} on {WORLD} ...", flush=True)
        subprocess.run([py, "-m", "flows.train", f"data.name={WORLD}", f"model.name={MODEL}",
                        "model.max_rows=200000", "model.approaches=[two_models]", "model.n_boot=50",
                        "model.cv_folds=2", f"paths.artifacts={artifacts}"],
                       cwd=PROJECT_ROOT, check=True,
                       env={**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--campaign", default="default", help="campaign config in conf/campaign/")
    args = parser.parse_args()
    artifacts = Path(args.artifacts).resolve()
    ensure_world_and_model(artifacts)

    layout = Layout(artifacts)
    paths = layout.campaign(CAMPAIGN_ID)
    folder = paths.folder
    if folder.exists():
        shutil.rmtree(folder)  # the benchmark's own campaign from an earlier run
    for seg in layout.predictions.glob(f"campaign-{CAMPAIGN_ID}*.parquet"):
        seg.unlink()
    cmd = [sys.executable, "-m", "flows.campaign", f"campaign={args.campaign}", f"campaign.id={CAMPAIGN_ID}",
           f"campaign.data={WORLD}", f"campaign.model={MODEL}", f"paths.artifacts={artifacts}"]

    wall, peak, res = run_measured(cmd)
    if res.returncode != 0:
        print(res.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"campaign run failed with exit code {res.returncode}")
    manifest = json.loads(paths.manifest.read_text())
    print(f"end to end (CLI, Prefect ephemeral): {wall:.1f} s wall, peak RSS {peak / 2**30:.2f} GiB")
    print(f"clients {manifest['counts']['client_base']} -> after filters {manifest['counts']['after_filters']} "
          f"-> campaign {manifest['counts']['clients']}, offers {manifest['counts']['offers_total']}, "
          f"features {len(manifest['features'])}")
    from tasks.campaign.stages import STAGES

    for stage in STAGES:
        info = manifest["stages"][stage]
        print(f"  stage {stage:12s} {info['rows']:>9d} rows {info['seconds']:8.2f} s")

    noop_wall, noop_peak, res2 = run_measured(cmd)
    assert res2.returncode == 0 and "nothing to do" in res2.stdout, res2.stderr[-2000:]
    print(f"rerun of the frozen campaign (CLI, no-op): {noop_wall:.2f} s wall")

    # Unfreeze (drop the frozen outputs, keep the stage checkpoints): every stage is valid.
    for path in (paths.manifest, paths.table, paths.summary):
        path.unlink()
    from omegaconf import OmegaConf

    from tasks.campaign.config import CampaignConfig
    from tasks.campaign.run import run_campaign
    from tasks.core.config import compose_config, to_dataclass

    node = compose_config([f"campaign={args.campaign}", f"campaign.id={CAMPAIGN_ID}", f"campaign.data={WORLD}",
                           f"campaign.model={MODEL}"]).campaign
    cfg = to_dataclass(OmegaConf.to_container(node, resolve=True), CampaignConfig, "campaign")
    t0 = time.perf_counter()
    result = run_campaign(cfg, artifacts)
    valid_wall = time.perf_counter() - t0
    reused = [s for s, o in result.outcomes.items() if o.status == "reused"]
    print(f"rerun with every stage checkpoint valid (plain pipeline, freeze redone): {valid_wall:.2f} s; "
          f"reused {len(reused)} stages, computed {result.computed}")
    same = json.loads(paths.manifest.read_text())["campaign_sha256"] == manifest["campaign_sha256"]
    print(f"campaign.parquet identical after the rerun: {same}")

    print(json.dumps({
        "benchmark": "campaign",
        "clients_in_world": manifest["counts"]["client_base"],
        "campaign_clients": manifest["counts"]["clients"],
        "features": len(manifest["features"]),
        "end_to_end_wall_s": round(wall, 2),
        "end_to_end_peak_rss_gib": round(peak / 2**30, 3),
        "stage_seconds": {s: manifest["stages"][s]["seconds"] for s in STAGES},
        "rerun_frozen_noop_wall_s": round(noop_wall, 2),
        "rerun_all_stages_valid_wall_s": round(valid_wall, 2),
        "rerun_identical": same,
        "targets": {"end_to_end_wall_s": 180, "peak_rss_gib": 8, "rerun_wall_s": 10},
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
