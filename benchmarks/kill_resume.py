"""Kill-and-resume trials of a campaign on a 200k-client world, through the command line.

    python benchmarks/kill_resume.py [--artifacts artifacts] [--kills 10] [--terms 3] [--seed 0]

1. Makes sure the world ``kill200k`` (200,000 clients) and a champion ``kill200k_uplift``
   exist (generated / trained when missing; not timed).
2. Runs the default campaign once uninterrupted through ``python -m flows.campaign`` (real
   Prefect, ephemeral server): the reference campaign.parquet and the run's wall time T.
3. ``--kills`` trials: a fresh campaign folder, the same command in its own process group,
   SIGKILL to the whole group at a uniformly random moment in (0.5 s, T), then the same command
   again to completion. Each rerun must exit 0 with a campaign.parquet byte-identical to the
   reference. Also counted: Prefect servers left running afterwards (the watcher's job).
4. ``--terms`` trials: SIGTERM to the group at a random moment instead; measured: the time to
   exit (target < 10 s), the exit code (143) and the rerun's identity.

Prints one line per trial, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tasks.core.io import sha256_file  # noqa: E402
from tasks.core.layout import Layout  # noqa: E402
from tasks.modelling.registry import CHAMPION_FILE  # noqa: E402

WORLD = "kill200k"
MODEL = "kill200k_uplift"
CAMPAIGN_ID = "kill200k_campaign"
TAG = f"kill-resume-{os.getpid()}"  # marks every process this benchmark starts
ENV = {**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300", "UPLIFT_BENCH_TAG": TAG}


def ensure_world_and_model(artifacts: Path) -> None:
    py = sys.executable
    layout = Layout(artifacts)
    if not layout.dataset_manifest(WORLD).exists():
        print(f"generating {WORLD} (200,000 clients) ...", flush=True)
        subprocess.run([py, "-m", "flows.generate", "data.n_clients=200000", f"data.name={WORLD}",
                        f"paths.artifacts={artifacts}"], cwd=PROJECT_ROOT, check=True, env=ENV)
    if not (layout.models / MODEL / CHAMPION_FILE).exists():
        print(f"training a champion {MODEL} on {WORLD} ...", flush=True)
        subprocess.run([py, "-m", "flows.train", f"data.name={WORLD}", f"model.name={MODEL}",
                        "model.max_rows=100000", "model.approaches=[two_models]", "model.n_boot=20",
                        "model.cv_folds=2", f"paths.artifacts={artifacts}"], cwd=PROJECT_ROOT, check=True, env=ENV)


def leftovers() -> list[psutil.Process]:
    """Processes this benchmark started (they carry its tag) that are still running."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and p.environ().get("UPLIFT_BENCH_TAG") == TAG:
                found.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def run(cmd: list[str], signum: int | None = None, at: float | None = None) -> tuple[int, float, float | None, str]:
    """Run ``cmd`` in its own process group, optionally sending ``signum`` to the group ``at``
    seconds after the start. Returns (exit code, wall seconds, seconds from the signal to
    the exit, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=ENV, stdout=out, stderr=err, text=True,
                                start_new_session=True)
        sent = None
        try:
            if signum is not None:
                try:
                    code = proc.wait(timeout=at)
                except subprocess.TimeoutExpired:
                    sent = time.monotonic()
                    os.killpg(proc.pid, signum)
                    code = proc.wait(timeout=120)
            else:
                code = proc.wait(timeout=1800)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        end = time.monotonic()
        err.seek(0)
        return code, end - t0, (end - sent) if sent else None, err.read()


def last_checkpoint(folder: Path) -> str:
    files = sorted((folder / "stages").glob("*.parquet")) if (folder / "stages").is_dir() else []
    if (folder / "manifest.json").exists():
        return "frozen"
    return files[-1].stem if files else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--terms", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    artifacts = Path(args.artifacts).resolve()
    ensure_world_and_model(artifacts)
    layout = Layout(artifacts)
    folder = layout.campaign(CAMPAIGN_ID).folder
    cmd = [sys.executable, "-m", "flows.campaign", "campaign=default", f"campaign.id={CAMPAIGN_ID}",
           f"campaign.data={WORLD}", f"campaign.model={MODEL}", f"paths.artifacts={artifacts}"]

    shutil.rmtree(folder, ignore_errors=True)
    code, wall, _, err = run(cmd)
    if code != 0:
        raise SystemExit(f"reference run failed ({code}):\n{err[-3000:]}")
    reference = sha256_file(folder / "campaign.parquet")
    print(f"reference run: {wall:.1f} s, campaign.parquet {reference[:12]}...", flush=True)

    rng = random.Random(args.seed)
    trials = [("SIGKILL", signal.SIGKILL)] * args.kills + [("SIGTERM", signal.SIGTERM)] * args.terms
    results = []
    for i, (name, signum) in enumerate(trials, 1):
        shutil.rmtree(folder, ignore_errors=True)
        at = rng.uniform(0.5, wall)
        code, _, exit_s, err = run(cmd, signum, at)
        state = last_checkpoint(folder)
        time.sleep(2.0)  # give the watcher its moment
        orphans = leftovers()
        recode, rewall, _, reerr = run(cmd)
        same = recode == 0 and sha256_file(folder / "campaign.parquet") == reference
        lines = [ln for ln in err.splitlines() if ln.startswith(("interrupted", "error:"))]
        results.append({"signal": name, "at_s": round(at, 2), "exit_code": code,
                        "exit_after_signal_s": None if exit_s is None else round(exit_s, 2),
                        "state_at_kill": state, "orphan_servers": len(orphans), "rerun_exit": recode,
                        "rerun_s": round(rewall, 1), "identical": same, "lines": lines})
        after = "(finished first)" if exit_s is None else f"after {exit_s:.2f} s"
        print(f"trial {i:2d} {name} at {at:5.1f} s: exit {code} {after}, left at {state}, "
              f"orphan servers {len(orphans)}; rerun exit {recode} in {rewall:.1f} s, identical {same}"
              + (f" [{lines[0][:60]}]" if lines else ""), flush=True)
        if recode != 0:
            print(reerr[-2000:], file=sys.stderr)
        for proc in orphans:  # leave the machine as found
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass

    kills = [r for r in results if r["signal"] == "SIGKILL"]
    terms = [r for r in results if r["signal"] == "SIGTERM"]
    print(json.dumps({
        "benchmark": "kill_resume",
        "clients_in_world": 200000,
        "reference_wall_s": round(wall, 1),
        "kills": len(kills), "kills_identical": sum(r["identical"] for r in kills),
        "kill_states": sorted({r["state_at_kill"] for r in kills}),
        "terms": len(terms), "terms_identical": sum(r["identical"] for r in terms),
        "term_exit_codes": sorted({r["exit_code"] for r in terms}),
        "term_exit_after_signal_s_max": max((r["exit_after_signal_s"] for r in terms
                                             if r["exit_after_signal_s"] is not None), default=None),
        "signalled_before_the_end": sum(r["exit_after_signal_s"] is not None for r in results),
        "orphan_servers": sum(r["orphan_servers"] for r in results),
        "targets": {"identical": "all", "term_exit_s": 10},
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
