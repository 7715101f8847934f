"""The drift reference through the product's path: the campaign's eligible base at the latest
training date, stored with the model; an unshifted world's campaign does not alarm, a shifted
one does (real Prefect flows, Parquet, DuckDB factors and LightGBM on a small world)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tasks.campaign.config import CampaignConfig, FilterSpec
from tasks.campaign.eligible import eligible_clients, filter_base
from tasks.core.config import compose_config, from_conf
from tasks.core.errors import ConfigError
from tasks.data.tables import read_table
from tasks.modelling.registry import ModelRegistry
from tasks.monitoring import decay as mon

# a world this small may show no uplift signal (no automatic champion): the drift reference is the point here
SMALL_MODEL = ["model.approaches=[solo]", "model.promote=always", "model.cv_folds=2", "model.n_boot=10", "model.lgbm.n_estimators=40"]


def test_filter_base_takes_point_in_time_factors_for_non_client_columns(tmp_path):
    base = pd.DataFrame({"client_id": [1, 2, 3, 4], "marketing_opt_out": [False, True, False, False]})
    seen = {}

    def factor_fn(data_dir, date, names, ids):
        seen.update(date=date, names=names, ids=list(ids))
        return pd.DataFrame({"client_id": ids, "purchase_count_365d": [5, 0, 2, 0]})

    filters = [FilterSpec("reachable", "marketing_opt_out", "==", False),
               FilterSpec("buyers", "purchase_count_365d", ">", 0)]
    kept, report = filter_base(base, filters, tmp_path, pd.Timestamp("2025-09-01"), factor_fn)
    assert kept["client_id"].tolist() == [1, 3] and [r["removed"] for r in report] == [1, 1]
    assert seen["names"] == ["purchase_count_365d"] and seen["date"] == pd.Timestamp("2025-09-01")
    with pytest.raises(ConfigError, match="neither clients columns"):
        filter_base(base, filters, tmp_path, pd.Timestamp("2025-09-01"), factor_fn, known={"age"})


@pytest.fixture(scope="module")
def trained(prefect_env, tmp_path_factory):
    """A 3,000-client world, the default model trained on its history through the train flow."""
    from flows.generate import generate
    from flows.train import train_model

    art = str(tmp_path_factory.mktemp("drift_ref") / "artifacts")
    cfg = compose_config(["data.n_clients=3000", "data.seed=11", f"paths.artifacts={art}", *SMALL_MODEL])
    c = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    generate(c(cfg.data), art)
    train_model(c(cfg.data), c(cfg.model), c(cfg.factors), art, campaign=c(cfg.campaign))
    return art, cfg, c


def test_reference_is_the_eligible_base_at_the_latest_training_date(trained):
    art, cfg, c = trained
    meta = ModelRegistry(f"{art}/models").load(cfg.model.name).metadata
    described = meta["extras"]["drift_reference"]
    latest = pd.Timestamp(max(cfg.data.past_campaign_dates))
    assert described["date"] == str(latest.date()) and described["population"] == "eligible base"
    campaign = from_conf(CampaignConfig, "campaign/default")
    data_dir = f"{art}/data/{cfg.data.name}"
    eligible = eligible_clients(data_dir, latest, campaign.filters)
    clients = read_table(data_dir, "clients")
    registered = int((clients["registration_date"] < latest).sum())
    # the opt-out filter removed someone: the reference is not every registered client
    assert described["rows"] == len(eligible) < registered
    assert set(meta["reference"]) == set(meta["features"])


def test_unshifted_campaign_no_alarm_shifted_campaign_alarms(trained):
    from flows.campaign import campaign_flow
    from flows.generate import generate

    art, cfg, c = trained
    reference = ModelRegistry(f"{art}/models").load(cfg.model.name).metadata["reference"]
    dcfg = from_conf(mon.MonitorConfig, "monitor/default").drift
    campaign_flow(c(cfg.campaign), art)
    same = mon.campaign_data_drift(art, cfg.campaign.id, reference, dcfg)
    assert same["alarm"] is False and same["drifted_share"] <= 0.05, same["drifted_factors"]

    # the same clients after a change of behaviour, scored by the model trained before it
    generate(dict(c(cfg.data), name="shifted", shift=1.0), art)
    campaign_flow(dict(c(cfg.campaign), id="after_shift", data="shifted"), art)
    shifted = mon.campaign_data_drift(art, "after_shift", reference, dcfg)
    assert shifted["alarm"] is True and shifted["drifted_share"] > 0.5
    assert np.isfinite(shifted["max_psi"])
