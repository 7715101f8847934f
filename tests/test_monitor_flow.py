"""The monitor flow end to end on a small synthetic world: real Prefect, Parquet and LightGBM."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from flows.monitor import monitor_flow
from tasks.core.config import compose_config
from tasks.core.errors import NotFoundError
from tasks.core.io import read_json
from tasks.core.layout import Layout
from tasks.modelling.registry import ModelRegistry

SMALL_MODEL = ["model.approaches=[solo]", "model.cv_folds=2", "model.n_boot=10", "model.lgbm.n_estimators=40"]


@pytest.fixture(scope="module")
def world(prefect_env, tmp_path_factory):
    """A world of 2,000 clients, a champion, one frozen campaign with responses, evaluated."""
    from flows.campaign import campaign_flow
    from flows.evaluate import evaluate_campaign_flow
    from flows.generate import generate
    from flows.simulate_responses import simulate_responses_flow
    from flows.train import train_model

    art = str(tmp_path_factory.mktemp("monitor") / "artifacts")
    # 2,000 clients may show no signal to so small a model: promote=always gives the campaign its champion
    cfg = compose_config(["data.n_clients=2000", "data.seed=5", f"paths.artifacts={art}", *SMALL_MODEL,
                          "model.promote=always"])
    c = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    generate(c(cfg.data), art)
    train_model(c(cfg.data), c(cfg.model), c(cfg.factors), art)
    campaign_flow(c(cfg.campaign), art)
    simulate_responses_flow(cfg.campaign.id, art)
    evaluate_campaign_flow(cfg.campaign.id, art, settings={"n_boot": 0})
    return art, c(cfg.model), cfg.campaign.id


def test_no_limit_crossed_no_retraining(world):
    art, model, cid = world
    settings = {"drift": {"max_drifted_share": 0.99, "psi_limit": 1e9}, "decay": {"min_fraction": 0.0}}
    record = monitor_flow(art, settings, model)
    assert record["campaign_id"] == cid and record["retrain_needed"] is False and "retrain" not in record
    assert record["champion_before"] == record["champion_after"] == "v0001"
    assert record["drift"]["n_factors"] == len(ModelRegistry(f"{art}/models").load(model["name"]).metadata["reference"])
    assert record["decay"]["observed_value"] is not None
    files = sorted(p.suffix for p in Layout(art).monitoring.iterdir())
    assert files == [".json", ".md"]


def test_drift_alarm_retrains_and_decides_on_holdout(world):
    art, model, cid = world
    # forced: any PSI above 1e-6 counts as drifted and any drifted factor raises the alarm (with
    # the eligible-base reference an unshifted world's campaign does not drift)
    settings = {"drift": {"max_drifted_share": 0.0, "psi_limit": 1e-6}, "retrain": {"n_boot": 20}}
    record = monitor_flow(art, settings, model)
    assert record["retrain_needed"] is True and record["reasons"][0].startswith("data drift")
    r = record["retrain"]
    c = r["comparison"]
    assert r["challenger_version"] == "v0002" and r["holdout_campaign"] == cid
    assert c["n_holdout"] > 0 and c["difference"] == pytest.approx(c["challenger"] - c["champion"])
    assert c["promote"] == (c["difference_ci_low"] > c["margin"] and not c["blockers"]) and "on the same" in c["reason"]
    assert record["champion_after"] == ("v0002" if c["promote"] else "v0001")
    assert ModelRegistry(f"{art}/models").champion(model["name"]) == record["champion_after"]
    # the challenger's drift reference is the held-out campaign's factor snapshot, not its training rows
    challenger_meta = ModelRegistry(f"{art}/models").metadata(model["name"], "v0002")
    assert challenger_meta["extras"]["drift_reference"]["population"] == f"factor snapshot of campaign {cid}"
    stored = read_json(sorted(Layout(art).monitoring.glob("*.json"))[-1])
    assert stored["retrain"]["comparison"]["challenger"] == pytest.approx(c["challenger"])
    md = sorted(Layout(art).monitoring.glob("*.md"))[-1].read_text()
    assert "Retraining because data drift" in md and "Champion after this run" in md


def test_without_champion_is_an_error(prefect_env, artifacts):
    with pytest.raises(NotFoundError, match="no champion"):
        monitor_flow(str(artifacts), {}, {"name": "synthetic_uplift"})
    assert not Layout(artifacts).monitoring.exists()


def test_cli_fails_fast_with_one_message(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    proc = subprocess.run([sys.executable, "-m", "flows.monitor", f"paths.artifacts={tmp_path}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: model synthetic_uplift: no champion")
    proc = subprocess.run([sys.executable, "-m", "flows.monitor", f"paths.artifacts={tmp_path}",
                           "monitor.decay.metric=auc"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "decay.metric" in proc.stderr
