"""The stage table: one entry per stage, checkpoint keys as before the table, config loading."""
from __future__ import annotations

from dataclasses import asdict, replace
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from tasks.campaign.checkpoints import stage_key
from tasks.campaign.config import (
    GROUPS, LEGACY_BALANCE, available_campaigns, campaign_config_hash, load_campaign_config,
)
from tasks.campaign.policy import policy_params
from tasks.campaign.run import CampaignRun
from tasks.campaign.stages import CHECKPOINTED, STAGE_TABLE, STAGES, stage, stage_checkpoint
from tasks.core.config import compose_config, to_dataclass
from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.io import stable_hash
from tasks.core.layout import Layout
from tests.test_campaign import campaign

TASK_NAMES = ["build_client_base", "apply_base_filters", "draw_random_subset", "compute_factors", "score_clients",
              "sort_clients", "split_groups", "assign_offers", "freeze_campaign"]


def test_table_declares_each_stage_once_in_order():
    assert STAGES == ["client_base", "filters", "subset", "factors", "score", "sort", "split", "offer", "freeze"]
    assert [s.task for s in STAGE_TABLE] == TASK_NAMES
    assert CHECKPOINTED == STAGES[:-1] and not stage("freeze").checkpointed
    for i, s in enumerate(STAGE_TABLE):
        assert (s.inputs[0] == STAGES[i - 1]) if i else s.inputs == ()
        assert all(STAGES.index(x) < i for x in s.inputs)
    with pytest.raises(ConfigError, match="unknown stage 'nope'"):
        stage("nope")


def test_stage_checkpoint_paths_come_from_the_layout(tmp_path):
    paths = Layout(tmp_path).campaign("c")
    assert stage_checkpoint(paths, "factors") == tmp_path / "campaigns" / "c" / "stages" / "04_factors.parquet"
    assert stage_checkpoint(paths.folder, "offer").name == "08_offer.parquet"
    with pytest.raises(ConfigError, match="no checkpoint"):
        stage_checkpoint(paths, "freeze")


def test_flow_builds_its_prefect_tasks_from_the_table():
    from flows.campaign import STAGE_TASKS

    assert list(STAGE_TASKS) == STAGES
    assert [t.name for t in STAGE_TASKS.values()] == TASK_NAMES


def _run(tmp_path, cfg) -> CampaignRun:
    model = SimpleNamespace(name="m", version="v0007", features=["age", "open_rate"], kind="uplift",
                            metadata={"model_sha256": "abc"})
    run = CampaignRun(cfg, tmp_path, model=model)
    run._data = {"name": cfg.data, "dir": tmp_path, "hash": "datahash", "date": pd.Timestamp("2026-01-01"),
                 "manifest": {}}
    run._fingerprints = {s: f"fp-{s}" for s in STAGES}
    return run


def _keys_before_the_table(run: CampaignRun) -> dict[str, str]:
    """The keys as the campaign computed them stage by stage before the stage table."""
    cfg, d = run.cfg, run.data()
    fp = run._fingerprints
    slices = {
        "client_base": ({"data": d["name"], "data_hash": d["hash"], "date": str(d["date"])}, None),
        "filters": ({"filters": [asdict(f) for f in cfg.filters], "data_hash": d["hash"], "date": str(d["date"])},
                    None),
        "subset": ({"fraction": cfg.sample_fraction, "size": cfg.sample_size, "seed": cfg.seed}, None),
        "factors": ({"factors": run.factor_names(), "data_hash": d["hash"], "date": str(d["date"])}, None),
        "score": ({}, run.model_identity()),
        "sort": ({}, None),
        "split": ({"groups": {g: float(cfg.groups.get(g, 0.0)) for g in GROUPS}, "seed": cfg.seed,
                   "balance_factors": run.balance_columns()}, {"factors": fp.get("factors")}),
        "offer": ({"policy": {"kind": cfg.policy.kind, **policy_params(cfg.policy)}}, None),
    }
    return {s: stage_key(s, sl, fp.get(STAGES[i - 1]) if i else None, extra)
            for i, (s, (sl, extra)) in enumerate(slices.items())}


def test_checkpoint_keys_are_the_ones_made_before_the_table(tmp_path):
    for cfg in (campaign(), campaign(policy={"kind": "profit", "margin": 20.0, "contact_cost": 0.5},
                                     balance_factors=["age", "score"], sample_fraction=None, sample_size=50)):
        run = _run(tmp_path, cfg)
        assert {s: run.stage_key(s) for s in CHECKPOINTED} == _keys_before_the_table(run)


def test_default_balance_limits_leave_keys_and_config_hash_alone(tmp_path):
    cfg = campaign()
    resolved = asdict(cfg)
    del resolved["balance"], resolved["client_table"]  # an unset client table stays out as well
    assert campaign_config_hash(cfg) == stable_hash(resolved)
    strict = replace(cfg, balance=replace(cfg.balance, smd_limit=0.05))
    assert campaign_config_hash(strict) != campaign_config_hash(cfg)
    a, b = _run(tmp_path, cfg), _run(tmp_path, strict)
    assert a.stage_key("split") != b.stage_key("split")
    assert a.stage_key("sort") == b.stage_key("sort") and a.stage_key("offer") == b.stage_key("offer")


def test_shipped_campaigns_carry_the_balance_limits():
    assert {"default", "spring_sale"} <= set(available_campaigns())
    for name in ("default", "spring_sale"):
        node = compose_config([f"campaign={name}"]).campaign
        assert "balance" in node
        # the limits of the time before they were settings: the shipped campaigns' hashes stay
        assert to_dataclass(node, type(campaign()), "campaign").balance == LEGACY_BALANCE
    with pytest.raises(ConfigError, match="srm_alpha"):
        from tasks.campaign.config import validate_campaign_config

        validate_campaign_config(replace(campaign(), balance=replace(campaign().balance, srm_alpha=2.0)))


def test_load_campaign_config_for_a_named_file(tmp_path):
    (tmp_path / "p.yaml").write_text("policy: {kind: profit, margin: 10, contact_cost: 1}\n")
    cfg = load_campaign_config(tmp_path / "p.yaml", default_id="p", required=("policy",))
    assert cfg.id == "p" and cfg.policy.kind == "profit" and cfg.policy.margin == 10.0
    (tmp_path / "wrapped.yaml").write_text(yaml.safe_dump({"campaign": {"id": "w", "seed": 3}}))
    assert load_campaign_config(tmp_path / "wrapped.yaml").seed == 3
    (tmp_path / "nopolicy.yaml").write_text("id: x\n")
    with pytest.raises(ConfigError, match="no 'policy' section"):
        load_campaign_config(tmp_path / "nopolicy.yaml", required=("policy",))
    (tmp_path / "escape.yaml").write_text("id: ../x\npolicy: {kind: budget, budget: 3}\n")
    with pytest.raises(ConfigError, match="campaign.id"):
        load_campaign_config(tmp_path / "escape.yaml")
    (tmp_path / "broken.yaml").write_text("policy: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaign_config(tmp_path / "broken.yaml")
    with pytest.raises(NotFoundError):
        load_campaign_config(tmp_path / "absent.yaml")
