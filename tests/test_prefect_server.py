"""Operations through a real Prefect server: deploy every flow from prefect.yaml, run a
campaign deployment through a process worker, inspect it through the Prefect API, and
resume a deployment run that failed inside a stage from that stage's checkpoints."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tasks.core.config import PROJECT_ROOT, SyntheticDataConfig, from_conf
from tasks.data.synthetic.world import generate_world, write_world

PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "uplift-process"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([PREFECT, "--no-prompt", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `prefect server start` on loopback with its own home, plus a process worker."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING")
    log = open(home / "server.log", "w")
    srv = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                           cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if srv.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
            time.sleep(1)
        _cli(env, "work-pool", "create", POOL, "--type", "process")
        _cli(env, "deploy", "--all")
        wlog = open(home / "worker.log", "w")
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"], cwd=PROJECT_ROOT,
                                  env=env, stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True)
        yield {"env": env, "url": url, "home": home}
    finally:
        for proc in (worker, srv):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    """A small synthetic world and a champion model trained through the server."""
    artifacts = tmp_path_factory.mktemp("ops") / "artifacts"
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=3000, seed=5, name="ops")
    write_world(generate_world(cfg), artifacts / "data" / "ops", cfg)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.train", f"paths.artifacts={artifacts}", "data.name=ops",
         "model.approaches=[solo]", "model.cv_folds=2", "model.lgbm.n_estimators=30", "model.n_boot=20",
         "model.promote=always"],  # a small world may show no signal: champion all the same
        cwd=PROJECT_ROOT, env=server["env"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return artifacts


def _api(server, method: str, path: str, **kw) -> httpx.Response:
    r = httpx.request(method, f"{server['url']}{path}", timeout=30, **kw)
    r.raise_for_status()
    return r


def _run_deployment(server, name: str, overrides: list[str], env: dict | None = None) -> str:
    import json

    args = ["deployment", "run", name, "--params", json.dumps({"overrides": overrides})]
    if env:
        args += ["--job-variable", f"env={json.dumps(env)}"]
    out = _cli(server["env"], *args).stdout
    flow_run_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
    return flow_run_id


def _wait(server, flow_run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _api(server, "GET", f"/flow_runs/{flow_run_id}").json()
        if run["state"]["type"] in TERMINAL:
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} did not finish; worker log:\n"
                         + (server["home"] / "worker.log").read_text()[-3000:])


def _overrides(artifacts: Path, campaign_id: str) -> list[str]:
    return ["campaign=default", f"paths.artifacts={artifacts}", "campaign.data=ops", f"campaign.id={campaign_id}"]


def test_every_flow_is_deployed(server):
    deployments = _api(server, "POST", "/deployments/filter", json={}).json()
    flows = {f["id"]: f["name"] for f in _api(server, "POST", "/flows/filter", json={}).json()}
    names = {f"{flows[d['flow_id']]}/{d['name']}" for d in deployments}
    for expected in ("run-generate/synthetic", "run-train/synthetic-uplift", "run-campaign/default",
                     "run-campaign/spring-sale", "run-simulate-responses/simulate", "run-evaluate/evaluate",
                     "run-monitor/daily", "run-profile/profile", "run-ingest/snapshot"):
        assert expected in names
    daily = next(d for d in deployments if d["name"] == "daily")
    schedules = _api(server, "GET", f"/deployments/{daily['id']}/schedules").json()
    assert schedules and schedules[0]["schedule"]["cron"] == "0 6 * * *"


def test_campaign_deployment_runs_through_a_worker(server, world):
    run_id = _run_deployment(server, "run-campaign/default", _overrides(world, "ops_campaign"))
    run = _wait(server, run_id)
    assert run["state"]["type"] == "COMPLETED", (server["home"] / "worker.log").read_text()[-3000:]

    task_runs = _api(server, "POST", "/task_runs/filter", json={}).json()
    names = {t["name"].rsplit("-", 1)[0] for t in task_runs if t["state"]["type"] == "COMPLETED"}
    for stage_task in ("build_client_base", "apply_base_filters", "compute_factors", "score_clients",
                       "split_groups", "assign_offers", "freeze_campaign"):
        assert stage_task in names, sorted(names)
    keys = {a["key"] for a in _api(server, "POST", "/artifacts/filter", json={}).json() if a.get("key")}
    assert "campaign-ops-campaign-freeze" in keys and "campaign-ops-campaign-split" in keys
    table = pd.read_parquet(world / "campaigns" / "ops_campaign" / "campaign.parquet")
    assert set(table["group"]) == {"targeted", "random_target", "control"}


def test_failed_deployment_run_resumes_from_the_failed_stage(server, world):
    cid = "ops_resume"
    failed = _wait(server, _run_deployment(server, "run-campaign/default", _overrides(world, cid),
                                           env={"UPLIFT_FAULT_STAGE": "score"}))
    assert failed["state"]["type"] in {"CRASHED", "FAILED"}
    stages = world / "campaigns" / cid / "stages"
    before = {p.name: p.stat().st_mtime_ns for p in stages.glob("*.parquet")}
    assert sorted(before) == ["01_client_base.parquet", "02_filters.parquet", "03_subset.parquet",
                              "04_factors.parquet"]
    assert not (world / "campaigns" / cid / "campaign.parquet").exists()

    # a second run finds the lock of the killed run stale and resumes at the score stage
    done = _wait(server, _run_deployment(server, "run-campaign/default", _overrides(world, cid)))
    assert done["state"]["type"] == "COMPLETED"
    after = {p.name: p.stat().st_mtime_ns for p in stages.glob("*.parquet")}
    for name, mtime in before.items():
        assert after[name] == mtime, f"{name} was recomputed"
    assert "05_score.parquet" in after and (world / "campaigns" / cid / "campaign.parquet").exists()

    reference = pd.read_parquet(world / "campaigns" / "ops_campaign" / "campaign.parquet")
    resumed = pd.read_parquet(world / "campaigns" / cid / "campaign.parquet")
    pd.testing.assert_frame_equal(resumed.drop(columns="campaign_id"), reference.drop(columns="campaign_id"))


_STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")
# Prefect 3.8's own SQLite race (its issue 23051, fixed upstream after 3.8.8): the worker's
# poll marks its queues and deployments ready in a transaction that reads before it writes,
# and under load a concurrent writer makes it wait out the 60 s busy timeout. Runs carry on;
# only the readiness timestamps and the worker heartbeat miss one beat.
_KNOWN_SQLITE_RACE = ("mark_work_queues_ready", "mark_deployments_ready",
                      "Worker channel heartbeat persistence failed")


def server_errors(log: str) -> list[str]:
    """The server log's error records (an ERROR line with the traceback lines under it) and
    any line naming SQLAlchemy's bulk DML failure, leaving out only the known SQLite lock
    race of the worker's readiness bookkeeping; a record of that race that names any error
    other than a locked database still counts."""
    records: list[list[str]] = []
    for line in log.splitlines():
        if _STAMP.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    errors = []
    for record in records:
        text = "\n".join(record)
        if "bulk DML" not in text and "| ERROR" not in record[0]:
            continue
        race = any(name in record[0] for name in _KNOWN_SQLITE_RACE)
        other = [ln for ln in record[1:] if re.match(r"^\w[\w.]*(Error|Exception)\b", ln)
                 and "database is locked" not in ln]
        if race and "bulk DML" not in text and not other:
            continue
        errors.append(text[:3000])
    return errors


def test_server_errors_tolerates_only_the_known_sqlite_race():
    """The log filter of the scheduler test: the known lock race passes, whether or not its
    traceback was printed; the scheduler's bulk-DML failure and any other error count, and
    so does the race's record when it ends in another error."""
    race = ("02:05:48.295 | ERROR   | docket.dependencies - ↩ [ 60181ms] mark_work_queues_ready(polled_work_queue_ids=...)\n"
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
            "sqlite3.OperationalError: database is locked\n"
            "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n"
            "02:05:48.368 | ERROR   | prefect.server.utilities.worker_channel - Worker channel heartbeat "
            "persistence failed: work_pool=uplift-process worker_name=w\n")
    assert server_errors("02:05:40.000 | INFO    | prefect - started\n" + race) == []
    scheduler = ("02:06:00.000 | ERROR   | prefect.server.services.scheduler - Unexpected error\n"
                 "Traceback (most recent call last):\n"
                 "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement\n")
    assert len(server_errors(race + scheduler)) == 1
    assert len(server_errors("02:06:00.000 | ERROR   | prefect.server - Encountered exception in request\n")) == 1
    other = race.replace("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked",
                         "sqlalchemy.exc.IntegrityError: UNIQUE constraint failed")
    assert len(server_errors(other)) == 1
    assert len(server_errors("a line\nsqlalchemy bulk DML statement failed\n")) == 1


def test_scheduler_creates_the_daily_runs(server):
    """The server's scheduler turns the daily cron schedule into scheduled runs, and logs no
    error while doing so (an unpinned SQLAlchemy 2.1 made it fail every minute)."""
    daily = next(d for d in _api(server, "POST", "/deployments/filter", json={}).json() if d["name"] == "daily")
    query = {"deployments": {"id": {"any_": [daily["id"]]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}
    deadline = time.monotonic() + 150
    runs: list = []
    while time.monotonic() < deadline:
        runs = _api(server, "POST", "/flow_runs/filter", json=query).json()
        if len(runs) >= 3:
            break
        time.sleep(3)
    errors = server_errors((server["home"] / "server.log").read_text())
    assert errors == [], "server log:\n" + "\n\n".join(errors[:10])
    assert len(runs) >= 3, f"the scheduler made {len(runs)} scheduled run(s) of run-monitor/daily"
    times = sorted(r["next_scheduled_start_time"] or r["expected_start_time"] for r in runs)
    assert all(t.endswith("06:00:00Z") or "T06:00:00" in t for t in times), times
