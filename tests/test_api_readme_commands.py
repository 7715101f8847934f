"""The README's security commands, run as printed: the scoring API with a tokens file, and a
Prefect server protected by its basic-auth string. Only the ports (free ones instead of 8000
and 4200), HOME (a temporary folder) and the API's --host (127.0.0.1 instead of 0.0.0.0: tests
listen on loopback only) are changed."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tasks.core.config import PROJECT_ROOT
from tasks.core.io import atomic_write_json, atomic_write_parquet
from tasks.modelling.registry import ModelRegistry
from tests.fixtures.api_model import demo_factors, train_demo_model

BIN = Path(sys.executable).parent


def _section(title: str) -> list[str]:
    """The command lines of the first bash block under ``title`` (continuations joined)."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    part = text.split(title, 1)[1]
    block = re.search(r"```bash\n(.*?)```", part, re.S).group(1)
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "UPLIFT_API_TOKENS"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def _wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


@pytest.mark.slow
def test_readme_api_with_tokens_commands(tmp_path):
    lines = _section("### Running the API with tokens")
    make_token, serve, curl = lines
    assert "secrets.token_urlsafe" in make_token and "UPLIFT_API_TOKENS_FILE=" in serve and "--host 0.0.0.0" in serve
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "project"
    art = work / "artifacts"  # demo-like: the champion synthetic_uplift and a frozen full-base campaign
    train_demo_model(ModelRegistry(art / "models"), "synthetic_uplift", n_clients=1200, seed=0)
    atomic_write_parquet(demo_factors(500, seed=1), art / "campaigns" / "default_campaign" / "stages" / "04_factors.parquet")
    atomic_write_json({"campaign_id": "default_campaign", "campaign_date": "2026-01-01", "frozen_at": "2026-12-01T00:00:00",
                       "data": {"name": "synthetic"}, "model": {"name": "synthetic_uplift"}},
                      art / "campaigns" / "default_campaign" / "manifest.json")
    env = _env(home, PYTHONPATH=str(PROJECT_ROOT))
    subprocess.run(["bash", "-c", make_token], cwd=work, env=env, check=True, timeout=60)
    token_file = home / ".uplift-api-tokens"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    serve = serve.replace("--port 8000", f"--port {port}").replace("--host 0.0.0.0", "--host 127.0.0.1")
    log = tmp_path / "api.log"
    with open(log, "w") as out:
        server = subprocess.Popen(["bash", "-c", serve], cwd=work, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_up(f"http://127.0.0.1:{port}/health", server, log)
        got = subprocess.run(["bash", "-c", curl.replace(":8000", f":{port}")], cwd=work, env=env,
                             capture_output=True, text=True, timeout=60)
        assert '"client_id":101' in got.stdout and '"client_id":102' in got.stdout, got.stdout + got.stderr
        assert '"campaign_id":"spring_sale_2026"' in got.stdout
        bare = re.sub(r'-H "Authorization: [^"]*"', "", curl.replace(":8000", f":{port}"))
        refused = subprocess.run(["bash", "-c", bare + " -i"], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=60)
        assert "401 Unauthorized" in refused.stdout and 'www-authenticate: Bearer realm="uplift-api"' in refused.stdout
    finally:
        _stop(server)
    assert token_file.read_text().split(":", 1)[1].strip() not in log.read_text()


@pytest.mark.slow
def test_readme_prefect_server_protection_commands(tmp_path):
    lines = _section("### Protecting the Prefect server")
    make_secret, start, export, set_url, check = lines
    assert start.startswith("PREFECT_SERVER_API_AUTH_STRING=") and "prefect server start --host 127.0.0.1" in start
    port = _free_port()
    home = tmp_path / "home"
    (home / ".prefect").mkdir(parents=True)
    env = _env(home, PREFECT_HOME=str(home / ".prefect"), PREFECT_SERVER_API_PORT=str(port),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    subprocess.run(["bash", "-c", make_secret], cwd=tmp_path, env=env, check=True, timeout=60)
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(["bash", "-c", start], cwd=tmp_path, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_up(f"http://127.0.0.1:{port}/api/health", server, log)
        api = f"http://127.0.0.1:{port}/api"
        assert httpx.post(f"{api}/work_pools/filter", json={}, timeout=10).status_code == 401
        client = set_url.replace(":4200", f":{port}")
        without = subprocess.run(["bash", "-c", f"{client} && {check}"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=180)
        assert "401 Unauthorized" in without.stdout + without.stderr
        with_auth = subprocess.run(["bash", "-c", f"{export} && {client} && {check}"], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=180)
        assert with_auth.returncode == 0 and "No work pools found" in with_auth.stdout, with_auth.stdout + with_auth.stderr
        assert "401" not in with_auth.stdout + with_auth.stderr
    finally:
        _stop(server)
