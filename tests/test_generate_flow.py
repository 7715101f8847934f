"""The generate flow end to end (real Prefect) and its command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tasks.data.tables import dataset_dir, read_manifest, read_table
from tasks.core.errors import ConfigError
from tasks.data.synthetic.world import TABLES

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_with_api() -> dict[str, str]:
    """Child environment pointed at the session's test Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    url = PREFECT_API_URL.value()
    if url:
        env["PREFECT_API_URL"] = url
    return env


def _artifact_markdown(key: str) -> str:
    """The latest Markdown artifact published under ``key``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(found[0].data)


def test_flow_writes_world_and_replaces_it(prefect_env, artifacts):
    from flows.generate import generate

    manifest = generate(data={"n_clients": 1500, "seed": 3, "name": "tiny"}, artifacts=str(artifacts))
    out = dataset_dir(artifacts, "tiny")
    assert read_manifest(out) == manifest
    assert manifest["kind"] == "synthetic" and manifest["n_clients"] == 1500
    for table in TABLES:
        df = read_table(out, table, as_of=manifest["as_of"])
        assert len(df) == manifest["row_counts"][table]
    first = pd.read_parquet(out / "purchases.parquet")
    assert _artifact_markdown("synthetic-world-tiny").startswith("# Synthetic world `tiny`")

    again = generate(data={"n_clients": 1500, "seed": 4, "name": "tiny"}, artifacts=str(artifacts))
    assert again["seed"] == 4
    assert not pd.read_parquet(out / "purchases.parquet").equals(first)
    assert sorted(p.name for p in (artifacts / "data").iterdir()) == ["tiny"]


def test_flow_rejects_bad_config_before_writing(prefect_env, artifacts):
    from flows.generate import generate

    with pytest.raises(ConfigError, match="past_campaign_dates"):
        generate(data={"n_clients": 100, "past_campaign_dates": ["2020-01-01"]}, artifacts=str(artifacts))
    assert not (artifacts / "data").exists() or not any((artifacts / "data").iterdir())


def test_cli_generates_and_reports(prefect_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.generate", "data.n_clients=500", "data.name=cli",
         f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, env=_env_with_api(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str((tmp_path / "data" / "cli").resolve()) in proc.stdout
    assert "purchases" in proc.stdout
    assert read_manifest(tmp_path / "data" / "cli")["n_clients"] == 500


def test_cli_bad_value_exits_with_one_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.generate", "data.n_clients=0", f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: config 'data', key 'n_clients': must be an integer >= 1, got 0"]
    assert not (tmp_path / "data").exists()
