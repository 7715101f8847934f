"""Scoring service: every endpoint, every bad input, policies, hot reload, refusal, logging."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.fixtures.api_model import demo_factors, train_demo_model
from api.schemas import PredictResponse
from api.service import ApiSettings
from tasks.core.config import PROJECT_ROOT
from tasks.core.io import atomic_write_json, atomic_write_parquet
from tasks.monitoring.prediction_log import COLUMNS, log_dir, read_predictions
from tasks.modelling.registry import ModelRegistry

NAME = "demo_uplift"
FEATURES = [f"f{j}" for j in range(7)] + ["visits_90d"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A registry with one real LightGBM solo uplift model (champion v0001)."""
    root = tmp_path_factory.mktemp("trained") / "models"
    train_demo_model(ModelRegistry(root), NAME, n_clients=2000, seed=0)
    return root


@pytest.fixture
def world(tmp_path: Path, trained: Path) -> Path:
    """An artifacts root with the trained registry, two frozen campaigns and campaign YAMLs."""
    art = tmp_path / "artifacts"
    shutil.copytree(trained, art / "models")
    for cid, frozen, seed in (("old_campaign", "2026-01-01T00:00:00+00:00", 5),
                              ("new_campaign", "2026-02-01T00:00:00+00:00", 6)):
        cdir = art / "campaigns" / cid
        atomic_write_parquet(demo_factors(300, seed=seed, first_id=1000 if cid == "new_campaign" else 1),
                             cdir / "stages" / "04_factors.parquet")
        atomic_write_json({"campaign_id": cid, "frozen_at": frozen, "policy": {"kind": "top_fraction"},
                           "threshold": {"score_cutoff": 0.05}, "model": {"name": NAME, "version": "v0001"}},
                          cdir / "manifest.json")
    conf = tmp_path / "campaign_conf"
    conf.mkdir()
    (conf / "cut.yaml").write_text("id: cut_2026\npolicy: {kind: score_cutoff, score_cutoff: 0.1}\n")
    (conf / "profit.yaml").write_text("id: profit_2026\npolicy: {kind: profit, margin: 20.0, contact_cost: 2.0}\n")
    (conf / "top.yaml").write_text("id: top_2026\npolicy: {kind: top_fraction, top_fraction: 0.3}\n")
    (conf / "nopolicy.yaml").write_text("id: nopolicy\n")
    (conf / "broken.yaml").write_text("policy: [unclosed\n")
    return art


def settings(art: Path, **kw) -> ApiSettings:
    base = dict(artifacts=art, model_name=NAME, campaign_conf_dir=art.parent / "campaign_conf",
                reload_interval=0.0, snapshot_interval=0.0, policy_ttl=0.0, log_flush_seconds=60.0)
    base.update(kw)
    return ApiSettings(**base)


@pytest.fixture
def client(world: Path):
    with TestClient(create_app(settings(world))) as c:
        yield c


def row(client_id: int | None = 7, **over) -> dict:
    r = {"client_id": client_id, **{f: 0.25 for f in FEATURES[:-1]}, "visits_90d": 3}
    if client_id is None:
        del r["client_id"]
    r.update(over)
    return r


def expected_scores(art: Path, frame: pd.DataFrame) -> np.ndarray:
    return ModelRegistry(art / "models").load(NAME).predict(frame)


# ---------------------------------------------------------------------- endpoints
def test_health_and_model_describe_the_champion(client):
    h = client.get("/health")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["model"]["version"] == "v0001"
    assert body["model"]["scoring_path"] == "lightgbm"
    assert body["factor_snapshot"]["campaign_id"] == "new_campaign"
    m = client.get("/model").json()
    assert m["name"] == NAME and m["version"] == "v0001" and m["features"] == FEATURES
    assert m["feature_dtypes"]["visits_90d"] == "int64" and "reference" not in m
    # the guards' verdicts travel with a champion promoted past them
    assert m["signal"] == "none" and m["signal_test"]["ci"] == [-0.01, 0.01]
    assert [leak["column"] for leak in m["suspected_leaks"]] == [FEATURES[0]] and "split" in m["validation"]
    assert client.get("/openapi.json").json()["paths"]["/predict"]["post"]


def test_predict_factor_values_matches_the_registry_model(client, world):
    rows = [row(1), row(2, f0=-1.5, f1=2.0), row(None, visits_90d=0)]
    r = client.post("/predict", json={"clients": rows}, headers={"X-Request-ID": "req-1"})
    assert r.status_code == 200, r.text
    body = PredictResponse.model_validate(r.json())
    assert body.request_id == "req-1" and r.headers["X-Request-ID"] == "req-1"
    assert [p.client_id for p in body.predictions] == [1, 2, None]
    assert body.model.version == "v0001" and body.campaign is None
    frame = pd.DataFrame([{f: x[f] for f in FEATURES} for x in rows])
    np.testing.assert_allclose([p.score for p in body.predictions], expected_scores(world, frame), rtol=1e-9)


def test_predict_by_client_id_uses_the_frozen_campaigns_snapshots(client, world):
    ids = [1299, 1000, 1150, 7]  # three of the newest campaign, one only the older one holds
    r = client.post("/predict", json={"client_ids": ids})
    assert r.status_code == 200, r.text
    new = pd.read_parquet(world / "campaigns" / "new_campaign" / "stages" / "04_factors.parquet")
    old = pd.read_parquet(world / "campaigns" / "old_campaign" / "stages" / "04_factors.parquet")
    frame = pd.concat([new.set_index("client_id").loc[ids[:3]], old.set_index("client_id").loc[ids[3:]]])
    got = [p["score"] for p in r.json()["predictions"]]
    np.testing.assert_allclose(got, expected_scores(world, frame.reset_index()), rtol=1e-9)
    assert [p["client_id"] for p in r.json()["predictions"]] == ids
    sources = client.get("/health").json()["factor_snapshot"]["sources"]
    assert [(s["campaign_id"], s["clients"]) for s in sources] == [("new_campaign", 300), ("old_campaign", 300)]


def test_configured_snapshot_path_replaces_the_campaign_checkpoint(world, tmp_path):
    path = tmp_path / "snap.parquet"
    atomic_write_parquet(demo_factors(50, seed=9, first_id=500_000), path)
    with TestClient(create_app(settings(world, factor_snapshot=path))) as c:
        assert c.post("/predict", json={"client_ids": [500_010]}).status_code == 200
        r = c.post("/predict", json={"client_ids": [1000]})
        assert r.status_code == 404 and "client_ids[0]" in r.json()["message"]


def test_offer_decisions_follow_campaign_policies(client, world):
    rows = [row(i, f1=v) for i, v in enumerate([-2.0, 0.0, 2.0, 3.0])]
    scores = np.array([p["score"] for p in client.post("/predict", json={"clients": rows}).json()["predictions"]])
    cut = client.post("/predict", json={"clients": rows, "campaign": "cut"}).json()
    assert cut["campaign"]["score_cutoff"] == 0.1 and cut["campaign"]["threshold_source"] == "config"
    assert [p["offer"] for p in cut["predictions"]] == list(scores >= 0.1)
    profit = client.post("/predict?campaign=profit", json={"clients": rows}).json()
    assert profit["campaign"]["score_cutoff"] == pytest.approx(0.1)
    assert [p["offer"] for p in profit["predictions"]] == list(scores * 20.0 > 2.0)
    frozen = client.post("/predict?campaign=new_campaign", json={"clients": rows}).json()
    assert frozen["campaign"]["threshold_source"] == "manifest"
    assert [p["offer"] for p in frozen["predictions"]] == list(scores >= 0.05)


def test_top_fraction_campaign_needs_freezing_then_uses_manifest(client, world):
    r = client.post("/predict?campaign=top", json={"clients": [row()]})
    assert r.status_code == 409 and r.json()["error"] == "threshold_unknown"
    assert "frozen" in r.json()["message"] and r.json()["field"] == "campaign"
    atomic_write_json({"campaign_id": "top_2026", "frozen_at": "2026-03-01T00:00:00+00:00",
                       "threshold": {"score_cutoff": -1.0}, "model": {"version": "v0001"}},
                      world / "campaigns" / "top_2026" / "manifest.json")
    r = client.post("/predict?campaign=top", json={"clients": [row()]})
    assert r.status_code == 200 and r.json()["predictions"][0]["offer"] is True
    assert r.json()["campaign"]["campaign_id"] == "top_2026"


@pytest.mark.parametrize("query,body,status,code", [
    ("unknown", {}, 404, "unknown_campaign"),
    ("nopolicy", {}, 409, "bad_campaign_config"),
    ("broken", {}, 409, "bad_campaign_config"),
    ("../etc", {}, 422, "invalid_campaign"),
    ("cut", {"campaign": "profit"}, 422, "conflicting_campaign"),
])
def test_bad_campaigns_are_named(client, query, body, status, code):
    r = client.post(f"/predict?campaign={query}", json={"clients": [row()], **body})
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["field"] == "campaign"


# ---------------------------------------------------------------------- the README example
def _readme_api_example() -> tuple[str, dict]:
    """The path with query and the JSON body of the first curl in the README's API section."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Online scoring API", 1)[1].split("\n## ", 1)[0]
    curl = re.search(r"curl [^\n]*'http://127\.0\.0\.1:8000(/[^']+)'.*?-d '([^']+)'", section, re.S)
    assert curl, "no curl example in the README's API section"
    return curl.group(1), json.loads(curl.group(2))


def _freeze(art: Path, cid: str, factors: pd.DataFrame, frozen_at: str, *, data: str = "synthetic",
            model: str = NAME, policy: str = "top_fraction", cutoff: float = 0.03) -> None:
    """A frozen campaign as flows.campaign leaves it, as far as the API reads it."""
    cdir = art / "campaigns" / cid
    atomic_write_parquet(factors, cdir / "stages" / "04_factors.parquet")
    atomic_write_json({"campaign_id": cid, "campaign_date": "2026-01-01", "frozen_at": frozen_at,
                       "data": {"name": data}, "model": {"name": model, "version": "v0001"},
                       "policy": {"kind": policy}, "threshold": {"score_cutoff": cutoff}}, cdir / "manifest.json")


def test_readme_example_works_as_printed_on_demo_like_artifacts(tmp_path, trained):
    """`make demo` freezes the default campaign over the whole base; later a spring sale is run
    on a 20% sample that holds neither 101 nor 102. The README's request works before and after."""
    path, body = _readme_api_example()
    assert path.startswith("/predict?campaign=spring_sale") and body == {"client_ids": [101, 102]}
    art = tmp_path / "artifacts"
    shutil.copytree(trained, art / "models")
    base = demo_factors(2000, seed=11)
    _freeze(art, "default_campaign", base, "2026-12-01T05:14:34+00:00")
    _freeze(art, "other_world", demo_factors(200, seed=13), "2026-12-03T00:00:00+00:00", data="hillstrom",
            model="hillstrom_uplift")  # another model's campaign: never mixed in
    _freeze(art, "big_world", demo_factors(200, seed=14), "2026-11-01T00:00:00+00:00", data="big")
    app = create_app(ApiSettings(artifacts=art, model_name=NAME, snapshot_interval=0.0, policy_ttl=0.0,
                                 log_flush_seconds=60.0))  # conf/campaign of the project: spring_sale.yaml
    with TestClient(app) as c:
        r = c.post(path, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["campaign"]["campaign_id"] == "spring_sale_2026"
        assert r.json()["campaign"]["threshold_source"] == "config"
        sample = demo_factors(2000, seed=12)
        sample = sample[sample["client_id"] % 5 == 0]  # 400 clients; 101 and 102 are not among them
        _freeze(art, "spring_sale_2026", sample, "2026-12-01T05:17:42+00:00", policy="profit", cutoff=0.025)

        def merged() -> bool:  # the snapshot is rebuilt in the background after a look-up notices the change
            c.post(path, json=body)
            return len(c.get("/health").json()["factor_snapshot"]["sources"]) == 2
        _wait_for(merged)
        r = c.post(path, json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["campaign"]["threshold_source"] == "manifest"
        expected = expected_scores(art, base.set_index("client_id").loc[[101, 102]].reset_index())
        np.testing.assert_allclose([p["score"] for p in answer["predictions"]], expected, rtol=1e-9)
        assert [p["offer"] for p in answer["predictions"]] == [bool(x >= 0.025) for x in expected]
        r = c.post(path, json={"client_ids": [105]})  # in the spring sale: its newer factors are used
        expected = expected_scores(art, sample.set_index("client_id").loc[[105]].reset_index())
        np.testing.assert_allclose(r.json()["predictions"][0]["score"], expected[0], rtol=1e-9)
        r = c.post(path, json={"client_ids": [101, 2500]})
        assert r.status_code == 404 and r.json()["field"] == "client_ids[1]"
        assert "spring_sale_2026, default_campaign" in r.json()["message"] and "'clients'" in r.json()["message"]
        sources = c.get("/health").json()["factor_snapshot"]["sources"]
        assert [(s["campaign_id"], s["clients"]) for s in sources] == [("spring_sale_2026", 400),
                                                                       ("default_campaign", 1600)]


# ---------------------------------------------------------------------- bad input
BAD = [
    ({"clients": [row(f0="high")]}, 422, "clients[0].f0"),
    ({"clients": [row(), row(f3=True)]}, 422, "clients[1].f3"),
    ({"clients": [row(f0=None)]}, 422, "clients[0].f0"),
    ({"clients": [row(visits_90d=2.5)]}, 422, "clients[0].visits_90d"),
    ({"clients": [row(f2=[1, 2])]}, 422, "clients[0].f2"),
    ({"clients": [{k: v for k, v in row().items() if k != "f4"}]}, 422, "clients[0].f4"),
    ({"clients": [row(colour=1.0)]}, 422, "clients[0].colour"),
    ({"clients": [row(client_id="abc")]}, 422, "clients[0].client_id"),
    ({"clients": [row(client_id=2**70)]}, 422, "clients[0].client_id"),
    ({"clients": [row(f1=10**400)]}, 422, "clients[0].f1"),
    ({"clients": ["not an object"]}, 422, "clients[0]"),
    ({"clients": []}, 422, "clients"),
    ({"client_ids": ["x"]}, 422, "client_ids[0]"),
    ({"client_ids": [1000, 5000]}, 404, "client_ids[1]"),
    ({"client_ids": [1000, True]}, 422, "client_ids[1]"),
    ({"client_ids": ["101"]}, 422, "client_ids[0]"),
    ({"client_ids": [1.0]}, 422, "client_ids[0]"),
    ({"clients": [-(2**63) - 1]}, 422, "clients[0]"),  # found by the fuzzer: a huge int where a row belongs
    ({"client_ids": [2**64]}, 422, "client_ids[0]"),
    ({"client_ids": ["x" * 5000]}, 422, "client_ids[0]"),
    ({"clients": [row(visits_90d=1e30)]}, 422, "clients[0].visits_90d"),
    ({"clients": [row(visits_90d=10**30)]}, 422, "clients[0].visits_90d"),
    ({"clients": [row(visits_90d=-1)]}, 422, "clients[0].visits_90d"),
    ({"clients": [row(), row(f3=1e6)]}, 422, "clients[1].f3"),
    ({"client_ids": [1000], "clients": [row()]}, 422, "clients"),
    ({}, 422, "clients"),
    ({"clients": [row()], "extra": 1}, 422, "extra"),
    ({"clients": [row()] * 11}, 413, "clients"),
    ({"client_ids": list(range(1000, 1011))}, 413, "client_ids"),
]


@pytest.mark.parametrize("body,status,field", BAD)
def test_bad_input_gets_a_clear_error_naming_the_field(world, body, status, field):
    with TestClient(create_app(settings(world, max_batch=10))) as c:
        r = c.post("/predict", json=body)
        assert r.status_code == status, r.text
        err = r.json()
        assert err["field"] == field and field in err["message"]
        assert c.get("/health").json()["status"] == "ok"  # the server carries on


def test_non_finite_and_malformed_json_are_rejected(client):
    r = client.post("/predict", content=json.dumps({"clients": [row(f0=float("nan"))]}),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "clients[0].f0"
    r = client.post("/predict", content=b'{"clients": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_json"


@pytest.mark.parametrize("raw,words", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"client_ids": [1000, "\xff"]}', "not valid UTF-8"),
    (b'{"client_ids": [1000]}\xff', "not valid UTF-8"),
    (b"\xef\xbb\xbf", "JSON"),
])
def test_unparseable_bodies_get_the_documented_422_shape(client, raw, words):
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "message", "field"} and body["error"] == "invalid_json"
    assert body["field"] == "body" and words in body["message"]
    assert client.get("/health").json()["status"] == "ok"


def test_plausible_range_comes_from_the_training_reference(client, world):
    meta = json.loads((world / "models" / NAME / "v0001" / "metadata.json").read_text())
    edges = meta["reference"]["f0"]["edges"]
    lo, hi = edges[0], edges[-1]
    width = max(hi - lo, abs(lo), abs(hi), 1.0)
    inside, outside = hi + 9.9 * width, hi + 10.1 * width
    assert client.post("/predict", json={"clients": [row(f0=inside)]}).status_code == 200
    r = client.post("/predict", json={"clients": [row(f0=outside)]})
    assert r.status_code == 422 and r.json()["error"] == "implausible_value"
    assert "clients[0].f0" in r.json()["message"] and "plausible range" in r.json()["message"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]
    rows = next(a for a in schema["properties"]["clients"]["anyOf"] if a.get("type") == "array")["items"]
    assert rows["properties"]["f0"]["maximum"] == pytest.approx(hi + 10 * width)
    assert rows["properties"]["visits_90d"]["minimum"] == 0.0


def test_unknown_paths_and_methods_answer_in_the_error_shape(client):
    r = client.get("/no/such/path")
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "field" in r.json()
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_docs_work_offline_from_the_installed_bundles(client):
    """/docs and /redoc load only files the service serves itself (no CDN, no web fonts)."""
    import re

    for page, needed in (("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        assert not re.search(r"https?://", html.text), f"{page} links outside the service"
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert needed <= {u.rsplit("/", 1)[-1] for u in urls}
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 500, url
        assert "'/openapi.json'" in html.text or '"/openapi.json"' in html.text


def test_client_ids_without_any_snapshot_is_a_clear_409(world):
    shutil.rmtree(world / "campaigns")
    with TestClient(create_app(settings(world))) as c:
        r = c.post("/predict", json={"client_ids": [1]})
        assert r.status_code == 409 and r.json()["field"] == "client_ids"
        assert "--factor-snapshot" in r.json()["message"]
        assert c.post("/predict", json={"clients": [row()]}).status_code == 200


def test_no_champion_answers_503_with_a_hint(tmp_path):
    with TestClient(create_app(ApiSettings(artifacts=tmp_path, model_name="absent"))) as c:
        h = c.get("/health")
        assert h.status_code == 503 and h.json()["status"] == "no_model"
        assert "python -m flows.train" in h.json()["model_error"]
        r = c.post("/predict", json={"clients": [{"a": 1}]})
        assert r.status_code == 503 and r.json()["error"] == "no_model"
        assert c.get("/model").status_code == 503


# ---------------------------------------------------------------------- champion changes
def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_new_champion_is_hot_reloaded_without_dropping_requests(client, world):
    reg = ModelRegistry(world / "models")
    v2 = train_demo_model(reg, NAME, n_clients=1500, seed=3, approach="two_models", promote=False)
    assert client.post("/predict", json={"clients": [row()]}).json()["model"]["version"] == "v0001"
    reg.promote(NAME, v2)
    versions = set()

    def served_v2() -> bool:
        r = client.post("/predict", json={"clients": [row()]})
        assert r.status_code == 200  # every request during the swap is answered
        versions.add(r.json()["model"]["version"])
        return r.json()["model"]["version"] == v2
    _wait_for(served_v2)
    assert versions <= {"v0001", v2}
    assert client.get("/model").json()["approach"] == "two_models"
    assert client.get("/health").json()["reloads"] == 2


def test_tampered_model_is_refused_and_the_old_one_keeps_serving(client, world):
    reg = ModelRegistry(world / "models")
    v2 = train_demo_model(reg, NAME, n_clients=1500, seed=4, promote=False)
    model_file = world / "models" / NAME / v2 / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    reg.promote(NAME, v2)

    def refused() -> bool:
        client.post("/predict", json={"clients": [row()]})
        return client.get("/health").json()["refused"] is not None
    _wait_for(refused)
    h = client.get("/health").json()
    assert h["status"] == "degraded" and h["refused"]["version"] == v2
    assert "checksum" in h["refused"]["reason"] and h["model"]["version"] == "v0001"
    r = client.post("/predict", json={"clients": [row()]})
    assert r.status_code == 200 and r.json()["model"]["version"] == "v0001"


def test_tampered_champion_at_startup_serves_nothing_and_says_why(world):
    model_file = world / "models" / NAME / "v0001" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes()[:-10])
    with TestClient(create_app(settings(world))) as c:
        h = c.get("/health")
        assert h.status_code == 503 and "checksum" in h.json()["refused"]["reason"]
        assert c.post("/predict", json={"clients": [row()]}).status_code == 503


# ---------------------------------------------------------------------- prediction log
def test_prediction_log_survives_restarts_and_stays_append_only(world):
    ids = []
    for run in range(2):
        with TestClient(create_app(settings(world))) as c:
            for i in range(3):
                r = c.post("/predict?campaign=cut", json={"clients": [row(10 * run + i)]})
                ids.append(r.json()["request_id"])
            c.post("/predict", json={"client_ids": [1000, 1001]})
    log = read_predictions(log_dir(world), source="api")
    assert list(log.columns) == COLUMNS and len(log) == 2 * (3 + 2)
    assert set(ids) <= set(log["request_id"])
    # each run wrote one segment; the second run's shutdown merged both into one file
    assert not list(log_dir(world).glob("api-*.parquet"))
    assert len(list(log_dir(world).glob("compacted-api-*.parquet"))) == 1 and not log.duplicated().any()
    cut = log[log["campaign_id"] == "cut_2026"]
    assert len(cut) == 6 and cut["decision"].notna().all()
    assert log["campaign_id"].isna().sum() == 4 and log["decision"].isna().sum() == 4
    assert (log["model_version"] == "v0001").all() and log["time"].dt.tz is not None


def test_prediction_log_flushes_in_the_background(world):
    with TestClient(create_app(settings(world, log_flush_rows=5, log_flush_seconds=60.0))) as c:
        c.post("/predict", json={"client_ids": list(range(1000, 1006))})
        _wait_for(lambda: len(read_predictions(log_dir(world))) == 6)
        assert c.get("/health").json()["prediction_log"]["segments_written"] == 1


def test_python_m_api_help_documents_the_options():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "api", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert out.returncode == 0
    for opt in ("--host", "--port", "--artifacts", "--model", "--factor-snapshot"):
        assert opt in out.stdout


@pytest.mark.slow
def test_served_by_uvicorn_and_log_flushed_on_sigterm(world):
    """`python -m api` on loopback: answers, and SIGTERM flushes the buffered log."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "api", "--port", str(port), "--artifacts", str(world), "--model", NAME,
           "--log-flush-seconds", "600", "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: server.poll() is None and _up(httpx, url), timeout=120)
        r = httpx.post(url + "/predict", json={"client_ids": [1000, 1001, 1002]}, timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
        assert read_predictions(log_dir(world)).empty  # still buffered
    finally:
        server.terminate()
        server.wait(timeout=60)
    log = read_predictions(log_dir(world))
    assert log["client_id"].tolist() == [1000, 1001, 1002]


def _up(httpx, url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
