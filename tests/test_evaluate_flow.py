"""The evaluate flow end to end: on a hand-made frozen campaign, and on a campaign frozen by the
product whose responses come back as a user's CSV, complete or with lost records (real Prefect,
real Parquet, real LightGBM, the command line)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.evaluate import evaluate_campaign_flow
from tasks.campaign.run import run_campaign
from tasks.core.errors import DataValidationError, StateError
from tasks.core.io import atomic_write_parquet, read_json
from tasks.core.layout import Layout
from tasks.data.synthetic.truth import draw_responses
from tasks.data.tables import read_table
from tests.conftest import PROJECT_ROOT
from tests.test_campaign import WORLD, build_world, campaign
from tests.test_evaluation import responses_frame, write_campaign

ENV = dict(os.environ, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")


def test_flow_writes_metrics_report_and_plots(prefect_env, artifacts):
    write_campaign(artifacts)
    result = evaluate_campaign_flow("c1", str(artifacts), settings={"n_boot": 10})
    out = Layout(artifacts).evaluation("c1")
    stored = read_json(out / "metrics.json")
    assert stored["targeted_vs_control"]["response"]["estimate"] == pytest.approx(0.5)
    assert stored["targeted_vs_control"]["response"] == pytest.approx(result["targeted_vs_control"]["response"])
    assert len(stored["deciles"]) == 10
    assert stored["model"]["version"] == "v0001" and stored["responses_path"].endswith("responses.parquet")
    for name in ("report.md", "report.html", "uplift_by_decile.png", "qini_curve.png", "group_comparison.png"):
        assert (out / name).stat().st_size > 0
    assert result["report_path"] == str((out / "report.md").resolve())


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
        evaluate_campaign_flow("c1", str(artifacts), settings={"n_boot": 0, "missing_responses": "error"})
    bad = pd.concat([responses_frame(), pd.DataFrame({"client_id": [99], "response": [1], "revenue": [0.0]})])
    atomic_write_parquet(bad, folder / "responses.parquet")
    with pytest.raises(DataValidationError, match=r"row\(s\) 13 of responses.parquet \(client ids \[99\]\)"):
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
    proc = subprocess.run(
        [sys.executable, "-m", "flows.evaluate", "campaign_id=c1", f"paths.artifacts={art}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env=ENV, timeout=300,
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


# --------------------------------------------------------------------------- a campaign frozen by the product


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """A world of 3,000 clients, a LightGBM uplift model, a campaign computed and frozen by
    run_campaign (80/10/10 split, top 30% offered) and every client's outcome drawn from the truth."""
    root = tmp_path_factory.mktemp("evaluate_world")
    build_world(root)
    cfg = campaign("ev1", filters=[{"name": "not_opted_out", "column": "marketing_opt_out", "op": "==", "value": False}],
                   sample_fraction=None)
    run_campaign(cfg, root)
    table = pd.read_parquet(Layout(root).campaign("ev1").table)
    truth = read_table(root / "data" / WORLD, "truth")
    responses = draw_responses(truth, table["client_id"].to_numpy(), table["offer"].to_numpy(), seed=5)
    return root, table, responses


def as_user_csv(responses: pd.DataFrame, path: Path) -> Path:
    """The responses as a user's export: ';'-separated, yes/no, revenue empty for non-buyers."""
    out = pd.DataFrame({"client_id": responses["client_id"],
                        "response": np.where(responses["response"] == 1, "yes", "no"),
                        "revenue": responses["revenue"].where(responses["response"] == 1)})
    out.sample(frac=1.0, random_state=3).to_csv(path, sep=";", index=False)
    return path


def evaluate_cli(root: Path, csv: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.evaluate", "campaign_id=ev1", f"responses={csv}", f"paths.artifacts={root}",
         "evaluate.positive=yes", "evaluate.strict=true", "evaluate.n_boot=0", *extra],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env=ENV, timeout=600)


def test_strict_evaluation_passes_with_every_record_and_fails_naming_the_check_when_targeted_rows_are_lost(
        frozen, tmp_path):
    root, table, responses = frozen
    proc = evaluate_cli(root, as_user_csv(responses, tmp_path / "back.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Layout(root).evaluation("ev1")
    assert f"{out / 'report.md'}" in proc.stdout and (out / "report.html").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checks"]["failed"] == [] and metrics["n_analysed"] == len(table)
    assert metrics["primary"]["offers"] == int((table["offer"] & (table["group"] == "targeted")).sum())

    # the sending system lost the outcome records of 5% of the targeted clients
    targeted = responses.index[table["group"].to_numpy() == "targeted"]
    lost = np.random.default_rng(7).choice(targeted, size=int(0.05 * len(targeted)), replace=False)
    proc = evaluate_cli(root, as_user_csv(responses.drop(index=lost), tmp_path / "lossy.csv"))
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith("error: evaluation check(s) failed: missing_outcomes (clients without an outcome record:")
    assert "(evaluate.strict=true)" in errors[0]
    # the report is written all the same, with the failed check in it
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checks"]["failed"] == ["missing_outcomes"]
    assert metrics["checks"]["items"]["missing_outcomes"]["missing"]["targeted"] == len(lost)
    assert "- **FAIL**: missing outcome records" in (out / "report.md").read_text()
    # without strict the same responses are reported and the command succeeds
    proc = evaluate_cli(root, tmp_path / "lossy.csv", "evaluate.strict=false")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_deployment_run_fails_on_a_failed_check_under_strict_after_writing_the_report(prefect_env, artifacts):
    from flows.evaluate import run
    from tasks.core.config import compose_config

    write_campaign(artifacts)
    # p = exp(-2/3) = 0.51 for the hand-made split: a check level of 0.6 makes the sample-ratio check fail
    over = ["campaign_id=c1", f"paths.artifacts={artifacts}", "evaluate.n_boot=0", "evaluate.srm_alpha=0.6"]
    assert run(compose_config(over), raise_on_failed_checks=True)["checks"]["failed"] == ["sample_ratio"]
    with pytest.raises(StateError, match=r"^evaluation check\(s\) failed: sample_ratio \(clients analysed per group"):
        run(compose_config([*over, "evaluate.strict=true"]), raise_on_failed_checks=True)
    assert read_json(Layout(artifacts).evaluation("c1") / "metrics.json")["checks"]["failed"] == ["sample_ratio"]
