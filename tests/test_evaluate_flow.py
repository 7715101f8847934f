"""The evaluate flow end to end on a hand-made frozen campaign (real Prefect, real Parquet)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flows.evaluate import evaluate_campaign_flow
from tasks.core.errors import DataValidationError, StateError
from tasks.core.io import atomic_write_parquet, read_json
from tasks.core.layout import Layout
from tests.conftest import PROJECT_ROOT
from tests.test_evaluation import responses_frame, write_campaign


def test_flow_writes_metrics_report_and_plots(prefect_env, artifacts):
    write_campaign(artifacts)
    result = evaluate_campaign_flow("c1", str(artifacts), settings={"n_boot": 10})
    out = Layout(artifacts).evaluation("c1")
    stored = read_json(out / "metrics.json")
    assert stored["targeted_vs_control"]["response"]["estimate"] == pytest.approx(0.5)
    assert stored["targeted_vs_control"]["response"] == pytest.approx(result["targeted_vs_control"]["response"])
    assert len(stored["deciles"]) == 10
    assert stored["model"]["version"] == "v0001" and stored["responses_path"].endswith("responses.parquet")
    for name in ("report.md", "uplift_by_decile.png", "qini_curve.png", "group_comparison.png"):
        assert (out / name).stat().st_size > 0


def test_flow_explicit_responses_path(prefect_env, artifacts, tmp_path):
    write_campaign(artifacts, with_responses=False)
    path = tmp_path / "mine.parquet"
    atomic_write_parquet(responses_frame(), path)
    result = evaluate_campaign_flow("c1", str(artifacts), responses=str(path), settings={"n_boot": 0})
    assert result["random_target_vs_control"]["response"]["estimate"] == pytest.approx(0.25)


def test_flow_bad_responses_write_nothing(prefect_env, artifacts):
    folder = write_campaign(artifacts)
    atomic_write_parquet(responses_frame().iloc[:5], folder / "responses.parquet")
    with pytest.raises(DataValidationError, match="7 of 12 campaign client"):
        evaluate_campaign_flow("c1", str(artifacts), settings={"n_boot": 0})
    assert not Layout(artifacts).evaluation("c1").exists()


def test_flow_not_frozen(prefect_env, artifacts):
    folder = write_campaign(artifacts)
    (folder / "manifest.json").unlink()
    with pytest.raises(StateError, match="not frozen"):
        evaluate_campaign_flow("c1", str(artifacts), settings={"n_boot": 0})


def test_cli_exits_2_with_one_message(tmp_path):
    art = tmp_path / "art"
    write_campaign(art, with_responses=False)
    env = dict(os.environ, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.evaluate", "campaign_id=c1", f"paths.artifacts={art}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: table 'responses': file" in proc.stderr
    assert not (art / "evaluations").exists()


def test_cli_requires_campaign_id(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.evaluate", f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "config key 'campaign_id' is required" in proc.stderr


def test_cli_unfrozen_campaign_fails_before_the_flow(tmp_path):
    folder = write_campaign(tmp_path)
    (folder / "manifest.json").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "flows.evaluate", "campaign_id=c1", f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "campaign 'c1' is not frozen: manifest.json missing" in proc.stderr
