"""Authentication of the scoring API: named bearer tokens from the environment or a file,
compared in constant time, 401 in the documented shape, and a service that refuses to listen
beyond loopback without a token."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import api.auth as auth
from api.__main__ import build_parser, is_loopback, main, parse_args, settings_from_args
from api.app import create_app
from api.auth import TokenChecker, load_tokens, tokens_from_env_value
from api.service import ApiSettings
from tasks.core.config import PROJECT_ROOT
from tasks.core.errors import ConfigError
from tasks.modelling.registry import ModelRegistry
from tasks.monitoring.prediction_log import log_dir, read_predictions
from tests.fixtures.api_model import train_demo_model, write_demo_snapshot

NAME = "demo_uplift"
SHOP = "shop-7Hc2kQ9vXw3LmN4pRt"  # 20 characters
BATCH = "batch-Zq8sW1eYu5Io0PaSd6F"
TOKENS_ENV = f"shop:{SHOP},batch:{BATCH}"


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Path:
    """An artifacts root with a real trained champion and a factor snapshot (ids 1..200)."""
    root = tmp_path_factory.mktemp("auth") / "artifacts"
    train_demo_model(ModelRegistry(root / "models"), NAME, n_clients=1200, seed=0)
    write_demo_snapshot(root / "snapshot.parquet", 200)
    return root


def _settings(art: Path, **kw) -> ApiSettings:
    base = dict(artifacts=art, model_name=NAME, factor_snapshot=art / "snapshot.parquet",
                tokens=tokens_from_env_value(TOKENS_ENV), log_predictions=False)
    base.update(kw)
    return ApiSettings(**base)


@pytest.fixture
def client(art):
    with TestClient(create_app(_settings(art))) as c:
        yield c


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------- where tokens come from
def test_tokens_from_the_environment_and_from_a_file(tmp_path):
    assert [t.name for t in tokens_from_env_value(TOKENS_ENV)] == ["shop", "batch"]
    f = tmp_path / "tokens"
    f.write_text(f"# rotated 2026-05-01\n\nshop:{SHOP}\n  batch : {BATCH}  \n")
    f.chmod(0o600)
    assert [t.name for t in load_tokens(f, env={})] == ["shop", "batch"]
    assert [t.name for t in load_tokens(env={"UPLIFT_API_TOKENS_FILE": str(f)})] == ["shop", "batch"]
    assert [t.name for t in load_tokens(env={"UPLIFT_API_TOKENS": TOKENS_ENV})] == ["shop", "batch"]
    assert load_tokens(env={}) == ()
    token = tokens_from_env_value(TOKENS_ENV)[0]
    assert SHOP not in repr(token) and "digest" not in repr(token)


@pytest.mark.parametrize("value,words", [
    ("shop:" + "x" * 16, None),  # 16 characters: enough
    ("shop:" + "x" * 15, "has 15 characters; use at least 16"),
    ("shop" + SHOP, "no ':'"),
    ("sh op:" + SHOP, "token name"),
    (f"shop:{SHOP},shop:{BATCH}", "used twice"),
    (f"shop:{SHOP},batch:{SHOP}", "repeats another"),
    ("shop:" + "é" * 20, "printable ASCII"),
    ("shop:", "is empty"),
    ("", "no tokens found"),
])
def test_bad_token_entries_are_refused_without_showing_the_token(value, words):
    if words is None:
        assert tokens_from_env_value(value)
        return
    with pytest.raises(ConfigError, match=words) as err:
        tokens_from_env_value(value)
    secret = value.partition(":")[2]
    assert "UPLIFT_API_TOKENS" in str(err.value)
    if len(secret) > 3:
        assert secret.split(",")[0] not in str(err.value)


def test_token_file_problems_name_the_file_and_line(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"shop:{SHOP}\nbatch:tooshort\n")
    with pytest.raises(ConfigError, match=r"tokens file .*tokens, line 2: token 'batch' has 8 characters"):
        load_tokens(f, env={})
    f.write_text(f"shop:{SHOP},x\n")
    with pytest.raises(ConfigError, match="no spaces or commas"):
        load_tokens(f, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_tokens(tmp_path / "absent", env={})
    with pytest.raises(ConfigError, match="configured twice"):
        load_tokens(f, env={"UPLIFT_API_TOKENS": TOKENS_ENV})


def test_checker_compares_every_token_every_time(monkeypatch):
    checker = TokenChecker(tokens_from_env_value(TOKENS_ENV))
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert checker.identify(f"Bearer {SHOP}") == "shop" and len(calls) == 2  # no early exit on a match
    assert checker.identify(f"bearer {BATCH}") == "batch"
    assert checker.identify(f"Bearer {SHOP}x") is None and checker.identify(f"Bearer {SHOP[:-1]}") is None
    assert checker.identify(f"Basic {SHOP}") is None and checker.identify("Bearer ") is None
    assert checker.identify(None) is None and checker.identify(SHOP) is None
    assert len(calls) == 2 + 2 + 2 * 2  # the four well-formed bearer headers, both tokens each


# ---------------------------------------------------------------------- the service with tokens
def test_requests_without_a_valid_token_get_401_in_the_error_shape(client):
    r = client.post("/predict", json={"client_ids": [1]})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="uplift-api"'
    assert r.json() == {"error": "unauthorized", "field": "Authorization",
                        "message": "Authorization: send the header 'Authorization: Bearer <token>'"}
    for header in (_bearer(SHOP + "x"), _bearer("a" * 40), {"Authorization": f"Basic {SHOP}"}):
        r = client.post("/predict", json={"client_ids": [1]}, headers=header)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="uplift-api", error="invalid_token"'
    assert client.get("/model").status_code == 401
    assert client.post("/health").status_code == 401  # only GET is open
    assert client.get("/no/such/path").status_code == 401  # no probing for routes without a token
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/predict", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 401  # refused before the body is read


def test_each_named_token_is_accepted(client):
    for token in (SHOP, BATCH):
        r = client.post("/predict", json={"client_ids": [1, 2]}, headers=_bearer(token))
        assert r.status_code == 200, r.text
        assert [p["client_id"] for p in r.json()["predictions"]] == [1, 2]
    assert client.get("/model", headers=_bearer(SHOP)).json()["name"] == NAME
    assert client.get("/no/such/path", headers=_bearer(SHOP)).status_code == 404


def test_health_and_docs_stay_open_but_details_need_a_token(client):
    client.post("/predict", json={"client_ids": [1]})  # one refusal to count
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    detail = client.get("/health", headers=_bearer(SHOP)).json()
    assert detail["model"]["version"] == "v0001"
    assert detail["authentication"]["tokens"] == ["shop", "batch"]
    assert detail["authentication"]["refused_requests"] >= 1
    assert SHOP not in str(detail) and BATCH not in str(detail)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        assert client.get(path).status_code == 200, path
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "A token of UPLIFT_API_TOKENS or the tokens file."}
    assert schema["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/model"]["get"]["responses"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_access_log_names_the_caller_never_the_token(art, caplog):
    caplog.set_level(logging.INFO, logger="uplift.api")
    with TestClient(create_app(_settings(art, access_log=True))) as c:
        c.post("/predict", json={"client_ids": [3]}, headers={**_bearer(BATCH), "X-Request-ID": "req-9"})
        c.post("/predict", json={"client_ids": [3]}, headers=_bearer(SHOP[:-1] + "?"))
    lines = [r.getMessage() for r in caplog.records if r.name == "uplift.api"]
    assert any("POST /predict 200 caller=batch request_id=req-9" in line for line in lines), lines
    assert any("POST /predict 401 caller=-" in line for line in lines)
    assert any("refused 1 request(s) without a valid token" in line and "wrong token" in line for line in lines)
    assert not any(SHOP[:-1] in line or BATCH in line for line in lines)


def test_without_tokens_the_service_is_open(art):
    with TestClient(create_app(_settings(art, tokens=()))) as c:
        assert c.post("/predict", json={"client_ids": [1]}).status_code == 200
        assert c.get("/health").json()["authentication"] is None
        assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})


# ---------------------------------------------------------------------- the command line
@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                           ("::", False), ("10.1.2.3", False), ("no-such-host.invalid", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_cli_refuses_a_public_interface_without_a_token(art, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UPLIFT_API_TOKENS", raising=False)
    monkeypatch.delenv("UPLIFT_API_TOKENS_FILE", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--host", "0.0.0.0", "--artifacts", str(art), "--model", NAME])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "no API token is configured" in err and "UPLIFT_API_TOKENS_FILE" in err and "127.0.0.1" in err
    monkeypatch.setenv("UPLIFT_API_TOKENS", "shop:" + "k" * 12)
    with pytest.raises(SystemExit) as exit_:
        main(["--artifacts", str(art), "--model", NAME])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "at least 16" in err and "k" * 12 not in err
    f = tmp_path / "tokens"
    f.write_text(f"shop:{SHOP}\n")
    monkeypatch.delenv("UPLIFT_API_TOKENS")
    settings = settings_from_args(parse_args(["--host", "0.0.0.0", "--tokens-file", str(f),
                                              "--artifacts", str(art), "--model", NAME]))
    assert [t.name for t in settings.tokens] == ["shop"]


def test_no_option_takes_a_token_itself():
    out = subprocess.run([sys.executable, "-m", "api", "--help"], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, timeout=120).stdout
    assert "--tokens-file" in out and "UPLIFT_API_TOKENS" in out
    options = [o for action in build_parser()._actions for o in action.option_strings]
    assert [o for o in options if "token" in o] == ["--tokens-file"]


# ---------------------------------------------------------------------- real processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLIFT_API_TOKENS")}
    env.update(extra)
    return env


def test_real_process_refuses_to_start_on_a_public_interface_without_a_token(art):
    port = _free_port()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "api", "--host", "0.0.0.0", "--port", str(port),
                           "--artifacts", str(art), "--model", NAME], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=_env(), timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --host 0.0.0.0") and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_real_process_with_tokens_on_loopback_and_prompt_sigterm(art, tmp_path):
    """uvicorn on 127.0.0.1 with a tokens file: 401/200 over a socket, the caller in the access
    log but no token anywhere in the output, and SIGTERM with a request stuck half-sent exits in
    seconds with the prediction log flushed (it used to wait for that request forever)."""
    f = tmp_path / "tokens"
    f.write_text(f"# the shop's token\nshop:{SHOP}\nbatch:{BATCH}\n")
    f.chmod(0o600)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "api", "--port", str(port), "--artifacts", str(art), "--model", NAME,
           "--factor-snapshot", str(art / "snapshot.parquet"), "--log-flush-seconds", "600", "--access-log"]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=_env(UPLIFT_API_TOKENS_FILE=str(f)),
                                  stdout=out, stderr=subprocess.STDOUT)
    stuck = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert httpx.post(url + "/predict", json={"client_ids": [1]}, timeout=10).status_code == 401
        r = httpx.post(url + "/predict", json={"client_ids": [4, 5, 6]}, headers=_bearer(BATCH), timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer " + SHOP.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"client")
        time.sleep(0.5)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if server.poll() is None:
            server.kill()
        if stuck is not None:
            stuck.close()
    assert took < 5, f"SIGTERM took {took:.1f} s"
    text = log.read_text()
    assert "authentication on: 2 token(s): shop, batch" in text
    assert "POST /predict 200 caller=batch" in text and "POST /predict 401 caller=-" in text
    assert SHOP not in text and BATCH not in text and "Traceback" not in text
    logged = read_predictions(log_dir(art))
    assert sorted(logged["client_id"].tolist()) == [4, 5, 6]
