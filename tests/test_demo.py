"""The README's main command: generate -> train -> campaign -> simulate_responses -> evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from flows.demo import demo_flow


def test_demo_runs_the_main_job_end_to_end(prefect_env, artifacts: Path):
    overrides = [f"paths.artifacts={artifacts}", "data.n_clients=4000", "data.name=demo",
                 "campaign.data=demo", "model.approaches=[solo]", "model.cv_folds=2", "model.n_boot=20",
                 "model.promote=always"]  # a 4,000-client world may show no signal: champion all the same
    out = demo_flow(overrides)
    campaign = pd.read_parquet(Path(out["campaign"]) / "campaign.parquet")
    assert set(campaign["group"]) == {"targeted", "random_target", "control"}
    assert Path(out["evaluation"]).exists()
    metrics = json.loads((artifacts / "evaluations" / "default_campaign" / "metrics.json").read_text())
    assert metrics["n_clients"] == len(campaign)
    offered_targeted = int((campaign["offer"] & (campaign["group"] == "targeted")).sum())
    assert out["metrics"]["targeted_vs_control"]["response"]["n_t"] == offered_targeted
    assert campaign.loc[campaign["group"] == "random_target", "offer"].all()
    assert not campaign.loc[campaign["group"] == "control", "offer"].any()

    # a second run with the same settings reuses the frozen campaign
    again = demo_flow(overrides)
    assert again["campaign"] == out["campaign"]
    pd.testing.assert_frame_equal(pd.read_parquet(Path(again["campaign"]) / "campaign.parquet"), campaign)
