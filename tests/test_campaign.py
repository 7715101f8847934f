"""Campaign calculation: stage logic, resume and invalidation, freeze, lock, bad input.

One small synthetic world and a real LightGBM uplift model in a real registry are built once
per module; campaigns run through the plain pipeline (tasks.campaign.run.run_campaign), and one
test runs the Prefect flow in-process.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.campaign.balance import balance_check
from tasks.campaign.config import GROUPS, BalanceConfig, CampaignConfig, FilterSpec, validate_campaign_config
from tasks.campaign.policy import PolicyConfig, assign_offers
from tasks.campaign.checkpoint_parts import PART_RECORD
from tasks.campaign.run import run_campaign
from tasks.campaign.stages import STAGES
from tasks.campaign.transforms import (
    CAMPAIGN_COLUMNS, apply_filters, assign_groups, draw_subset, group_counts, rank_scores,
)
from tasks.core.config import from_conf, to_dataclass
from tasks.core.errors import ConfigError, NotFoundError, StateError
from tasks.core.io import sha256_file
from tasks.core.layout import Layout

FEATURES = ["age", "tenure_days", "days_since_last_purchase", "purchase_count_90d",
            "purchase_amount_365d", "open_rate"]
MODEL = "synthetic_uplift"
WORLD = "tiny"


def build_world(root: Path, n_clients: int = 3000, seed: int = 7) -> None:
    """A small synthetic world under ``root/data/tiny`` and a champion uplift model in ``root/models``."""
    from tasks.core.config import SyntheticDataConfig
    from tasks.data.synthetic.world import generate_world, write_world

    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n_clients, name=WORLD, seed=seed)
    tables = generate_world(cfg)
    write_world(tables, root / "data" / WORLD, cfg)
    train_model(root, tables["campaign_history"], FEATURES)


def train_model(root: Path, history: pd.DataFrame, features: list[str], promote: bool = True,
                n_estimators: int = 30) -> str:
    """Fit a small two-model LightGBM uplift model on the latest past campaign and register it."""
    import factors
    from tasks.modelling.models import UpliftModel
    from tasks.modelling.registry import ModelRegistry

    last = history.loc[history["campaign_date"] == history["campaign_date"].max()]
    X = factors.compute_factors(root / "data" / WORLD, last["campaign_date"].iloc[0], features,
                                last["client_id"].to_numpy())
    model = UpliftModel("two_models", {"n_estimators": n_estimators, "num_leaves": 8, "verbose": -1}, seed=1)
    model.fit(X[features], last["treatment"].to_numpy(), last["response"].to_numpy())
    reg = ModelRegistry(root / "models")
    version = reg.save(MODEL, model, {"kind": "uplift", "features": features, "factor_set": None})
    if promote:
        reg.promote(MODEL, version)
    return version


def campaign(cid: str = "c1", **over) -> CampaignConfig:
    """A campaign on the tiny world: two filters, an 80% subset, top 30% (the rest as
    conf/campaign/default.yaml)."""
    node = {
        "id": cid, "data": WORLD, "model": MODEL,
        "filters": [
            {"name": "recent", "column": "days_since_last_purchase", "op": "<=", "value": 120},
            {"name": "not_opted_out", "column": "marketing_opt_out", "op": "==", "value": False},
        ],
        "sample_fraction": 0.8,
        "groups": {"targeted": 0.8, "random_target": 0.1, "control": 0.1},
        "policy": {"kind": "top_fraction", "top_fraction": 0.3},
        "seed": 11,
    }
    node.update(over)
    return from_conf(CampaignConfig, "campaign/default", **node)


def policy(**kw) -> PolicyConfig:
    """An offer policy: conf/campaign/default.yaml's with ``kw`` changed."""
    return from_conf(PolicyConfig, "campaign/default:policy", **kw)


LIMITS = from_conf(BalanceConfig, "campaign/default:balance")


def link_root(shared: Path, dest: Path) -> Path:
    """A fresh artifacts root sharing the world and the models of ``shared``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("data", "models"):
        (dest / name).symlink_to(shared / name)
    return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("campaign_world")
    build_world(root)
    return root


@pytest.fixture
def root(world, tmp_path) -> Path:
    return link_root(world, tmp_path / "artifacts")


def stage_files(root: Path, cid: str) -> dict[str, tuple[int, str]]:
    d = Layout(root).campaign(cid).folder / "stages"
    return {p.name: checkpoint_state(p) for p in sorted(d.glob("*.parquet"))}


def checkpoint_state(path: Path) -> tuple[int, str]:
    """mtime and sha256 of a checkpoint file, or of a part folder's record (which holds its parts' hashes)."""
    if path.is_dir():
        path = path / PART_RECORD
    return path.stat().st_mtime_ns, sha256_file(path)


# --------------------------------------------------------------------------- pure logic
def test_validate_config_rejects_bad_settings():
    validate_campaign_config(campaign())
    with pytest.raises(ConfigError, match="sum to 1.1, not 1"):
        validate_campaign_config(campaign(groups={"targeted": 0.8, "random_target": 0.2, "control": 0.1}))
    with pytest.raises(ConfigError, match="unknown group"):
        validate_campaign_config(campaign(groups={"targeted": 0.9, "holdout": 0.1}))
    with pytest.raises(ConfigError, match="policy.kind 'magic'"):
        validate_campaign_config(campaign(policy={"kind": "magic"}))
    with pytest.raises(ConfigError, match="margin"):
        validate_campaign_config(campaign(policy={"kind": "profit", "contact_cost": 1.0}))
    with pytest.raises(ConfigError, match="not both"):
        validate_campaign_config(campaign(sample_size=10))
    with pytest.raises(ConfigError, match="unknown op"):
        validate_campaign_config(campaign(filters=[{"name": "x", "column": "age", "op": "~", "value": 1}]))
    with pytest.raises(ConfigError, match="campaign.id"):
        validate_campaign_config(campaign(cid="../escape"))
    with pytest.raises(ConfigError, match="key 'id'"):
        to_dataclass({"data": WORLD}, CampaignConfig, "campaign")


def test_apply_filters_reports_removals_and_refuses_empty_result():
    frame = pd.DataFrame({"client_id": np.arange(10), "age": np.arange(20, 30), "opt": [True, False] * 5})
    filters = [FilterSpec("adult", "age", ">=", 23), FilterSpec("reachable", "opt", "==", False)]
    kept, report = apply_filters(frame, filters)
    assert kept["client_id"].tolist() == [3, 5, 7, 9]
    assert [(r["name"], r["before"], r["removed"], r["after"]) for r in report] == [
        ("adult", 10, 3, 7), ("reachable", 7, 3, 4)]
    assert len(frame) == 10 and list(frame.columns) == ["client_id", "age", "opt"]
    with pytest.raises(ConfigError, match="filter 'old' .* left no clients"):
        apply_filters(frame, [FilterSpec("old", "age", ">", 99)])
    with pytest.raises(ConfigError, match="column 'income' is not available"):
        apply_filters(frame, [FilterSpec("rich", "income", ">", 1)])


def test_subset_is_seeded_and_sized():
    ids = np.arange(1000, 2000)
    a = draw_subset(ids, 0.25, None, 5)
    assert len(a) == 250 and np.array_equal(a, draw_subset(ids[::-1], 0.25, None, 5))
    assert not np.array_equal(a, draw_subset(ids, 0.25, None, 6))
    assert len(draw_subset(ids, None, 40, 5)) == 40
    assert np.array_equal(draw_subset(ids, None, None, 5), ids)


def test_group_counts_exact_and_split_independent_of_scores():
    assert group_counts(1001, {"targeted": 0.8, "random_target": 0.1, "control": 0.1}) == {
        "targeted": 801, "random_target": 100, "control": 100}
    assert sum(group_counts(7, {"targeted": 0.5, "random_target": 0.25, "control": 0.25}).values()) == 7
    ids = np.arange(5000)
    groups = {"targeted": 0.6, "random_target": 0.2, "control": 0.2}
    a = assign_groups(ids, groups, 3)
    b = assign_groups(np.random.default_rng(0).permutation(ids), groups, 3)
    pd.testing.assert_frame_equal(a, b)
    assert a["group"].value_counts().to_dict() == {"targeted": 3000, "random_target": 1000, "control": 1000}
    # With scores attached, the groups' score distributions are alike (a random split).
    frame = a.assign(score=np.random.default_rng(1).normal(size=5000))
    check = balance_check(frame, ["score"], groups, LIMITS)
    assert check["balanced"] and check["srm_p_value"] > 0.99
    assert abs(check["smd"][0]["targeted_vs_control"]) < 0.15


def test_balance_check_flags_a_biased_split():
    rng = np.random.default_rng(2)
    groups = {"targeted": 0.5, "random_target": 0.0, "control": 0.5}
    frame = pd.DataFrame({"group": ["targeted"] * 2000 + ["control"] * 1000, "x": rng.normal(size=3000)})
    frame.loc[frame["group"] == "targeted", "x"] += 0.5
    check = balance_check(frame, ["x"], groups, LIMITS)
    assert not check["balanced"]
    assert check["flagged"][0]["factor"] == "x"
    assert check["srm_p_value"] < 1e-6


def test_rank_and_offer_policies():
    scored = pd.DataFrame({"client_id": np.arange(10, dtype="int64"),
                           "score": [0.5, 0.1, 0.9, 0.1, 0.3, 0.7, 0.2, 0.8, 0.0, 0.6]})
    ranked = rank_scores(scored)
    assert ranked["client_id"].tolist()[:3] == [2, 7, 5]
    assert ranked["rank"].tolist() == list(range(1, 11))
    assert ranked.loc[ranked["client_id"] == 1, "rank"].item() < ranked.loc[ranked["client_id"] == 3, "rank"].item()
    assert ranked["percentile"].iloc[-1] == 100.0
    split = ranked.assign(group=["targeted"] * 6 + ["random_target"] * 2 + ["control"] * 2)
    t_scores = np.sort(split.loc[split["group"] == "targeted", "score"].to_numpy())[::-1]

    out, th = assign_offers(split, policy(kind="top_fraction", top_fraction=0.5))
    assert out.loc[out["group"] == "targeted", "offer"].sum() == 3
    assert th["score_cutoff"] == t_scores[2] == th["lowest_offered_score"]
    assert out.loc[out["group"] == "random_target", "offer"].all()
    assert not out.loc[out["group"] == "control", "offer"].any()
    assert "offer" not in split.columns

    out, th = assign_offers(split, policy(kind="budget", budget=2))
    assert out.loc[out["group"] == "targeted", "offer"].sum() == 2 and th["score_cutoff"] == t_scores[1]

    out, th = assign_offers(split, policy(kind="score_cutoff", score_cutoff=0.55))
    assert th["targeted_offers"] == int((t_scores >= 0.55).sum()) and th["score_cutoff"] == t_scores[t_scores >= 0.55].min()

    out, th = assign_offers(split, policy(kind="profit", margin=10.0, contact_cost=4.0))
    offered = out.loc[(out["group"] == "targeted") & out["offer"], "score"]
    assert (offered * 10 > 4).all() and th["targeted_offers"] == int((t_scores * 10 > 4).sum())
    assert th["score_cutoff"] == pytest.approx(0.4)


def test_ties_at_the_boundary_keep_offer_equal_to_score_above_cutoff():
    scores = [0.9, 0.8, 0.5, 0.5, 0.5, 0.1]
    split = rank_scores(pd.DataFrame({"client_id": np.arange(6, dtype="int64"), "score": scores}))
    split = split.assign(group="targeted")
    out, th = assign_offers(split, policy(kind="top_fraction", top_fraction=0.5))
    assert out["offer"].sum() == 5 and th["score_cutoff"] == 0.5
    out, th = assign_offers(split, policy(kind="budget", budget=3))
    assert out["offer"].sum() == 2 and th["score_cutoff"] == 0.8
    out, th = assign_offers(split, policy(kind="budget", budget=5))
    assert out["offer"].sum() == 5
    for o in (out,):
        assert (o["offer"] == (o["score"] >= th["score_cutoff"])).all()


# --------------------------------------------------------------------------- pipeline
def test_campaign_end_to_end_outputs(root):
    res = run_campaign(campaign(), root)
    assert res.computed == STAGES and not res.noop
    folder = Layout(root).campaign("c1").folder
    table = pd.read_parquet(folder / "campaign.parquet")
    assert list(table.columns) == CAMPAIGN_COLUMNS
    assert str(table["client_id"].dtype) == "int64" and str(table["rank"].dtype) == "int64"
    assert table["client_id"].is_unique and table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["score"].is_monotonic_decreasing
    m = json.loads((folder / "manifest.json").read_text())
    assert m["counts"]["clients"] == len(table) == m["counts"]["after_subset"]
    assert m["counts"]["after_subset"] == round(0.8 * m["counts"]["after_filters"])
    assert [f["name"] for f in m["filters"]] == ["recent", "not_opted_out"]
    assert m["filters"][0]["removed"] > 0
    sizes = table["group"].value_counts().to_dict()
    assert sizes == m["counts"]["groups"] and set(sizes) == set(GROUPS)
    targeted = table.loc[table["group"] == "targeted"]
    assert targeted["offer"].sum() >= round(0.3 * len(targeted))  # more only when scores tie at the cutoff
    cutoff = m["threshold"]["score_cutoff"]
    assert (targeted["offer"] == (targeted["score"] >= cutoff)).all()
    assert m["model"]["version"] == "v0001" and (table["model_version"] == "v0001").all()
    assert set(m["stages"]) == set(STAGES) and m["balance"]["srm_p_value"] > 0.9
    factors_ckpt = pd.read_parquet(folder / "stages" / "04_factors.parquet")
    assert list(factors_ckpt.columns) == ["client_id", *FEATURES] and len(factors_ckpt) == len(table)
    summary = (folder / "summary.md").read_text()
    assert "| recent |" in summary and "Balance check" in summary
    from tasks.monitoring.prediction_log import log_dir, read_predictions

    log = read_predictions(log_dir(root), campaign_id="c1")
    assert len(log) == len(table) and log["decision"].sum() == table["offer"].sum()
    assert not (folder / ".lock").exists()


def test_identical_rerun_is_noop_and_frozen_campaign_is_immutable(root):
    run_campaign(campaign(), root)
    folder = Layout(root).campaign("c1").folder
    before = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in folder.rglob("*") if p.is_file()}
    res = run_campaign(campaign(), root)
    assert res.noop and res.computed == []
    with pytest.raises(StateError, match=r"frozen .* different config .*policy.*new campaign id"):
        run_campaign(campaign(policy={"kind": "top_fraction", "top_fraction": 0.5}), root)
    after = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_changing_a_stage_setting_recomputes_that_stage_and_later_only(root):
    base = campaign()
    first = run_campaign(base, root, until="offer")
    assert first.computed == STAGES[:-1] and not (Layout(root).campaign("c1").folder / "manifest.json").exists()
    files = stage_files(root, "c1")

    cases = [
        ({"policy": {"kind": "budget", "budget": 50}}, "offer"),
        ({"groups": {"targeted": 0.7, "random_target": 0.15, "control": 0.15}}, "split"),
        ({"sample_fraction": 0.5}, "subset"),
        ({"filters": [{"name": "recent", "column": "days_since_last_purchase", "op": "<=", "value": 60}]}, "filters"),
    ]
    for over, stage in cases:
        res = run_campaign(replace(base, **{k: getattr(campaign(**over), k) for k in over}), root, until="offer")
        k = STAGES.index(stage)
        assert res.computed == STAGES[k:-1], over
        now = stage_files(root, "c1")
        for name in list(files)[:k]:
            assert now[name] == files[name], (over, name)
        # Back to the base config: everything from that stage on is recomputed again.
        res = run_campaign(base, root, until="offer")
        assert res.computed == STAGES[k:-1]
        files = stage_files(root, "c1")
    same = run_campaign(base, root, until="offer")
    assert same.computed == []


def test_new_model_version_recomputes_from_score(root, world):
    from tasks.data.tables import read_table

    run_campaign(campaign(cid="mv"), root, until="offer")
    files = stage_files(root, "mv")
    private = root / "models_private"
    shutil.copytree(world / "models", private)
    (root / "models").unlink()
    private.rename(root / "models")
    train_model(root, read_table(root / "data" / WORLD, "campaign_history"), FEATURES, n_estimators=12)
    res = run_campaign(campaign(cid="mv"), root)
    assert res.computed == STAGES[STAGES.index("score"):]
    now = stage_files(root, "mv")
    assert [now[n] == files[n] for n in files] == [True] * 4 + [False] * 4
    assert res.manifest["model"]["version"] == "v0002"


def test_reproducible_from_seed_and_partition_independent(root):
    a = run_campaign(campaign(cid="a"), root)
    b = run_campaign(campaign(cid="b"), root, partitions=4)
    c = run_campaign(campaign(cid="c", seed=12), root)
    ta, tb, tc = (pd.read_parquet(r.folder / "campaign.parquet").drop(columns="campaign_id") for r in (a, b, c))
    pd.testing.assert_frame_equal(ta, tb)
    assert b.outcomes["factors"].info["partitions"] == 4
    fa = pd.read_parquet(a.folder / "stages" / "04_factors.parquet")
    fb = pd.read_parquet(b.folder / "stages" / "04_factors.parquet")
    pd.testing.assert_frame_equal(fa, fb)
    assert not ta[["client_id", "group"]].equals(tc[["client_id", "group"]])


def test_filters_leaving_nobody_fail_cleanly(root):
    cfg = campaign(filters=[{"name": "centenarians", "column": "age", "op": ">=", "value": 150}])
    with pytest.raises(ConfigError, match="filter 'centenarians' .* left no clients"):
        run_campaign(cfg, root)
    folder = Layout(root).campaign("c1").folder
    assert [p.name for p in (folder / "stages").glob("*.parquet")] == ["01_client_base.parquet"]
    assert not (folder / "campaign.parquet").exists() and not (folder / ".lock").exists()
    with pytest.raises(ConfigError, match="neither clients columns .* nor known factors"):
        run_campaign(campaign(filters=[{"name": "x", "column": "shoe_size", "op": ">", "value": 1}]), root)


def _wide_client_base(ctx):
    """The client base as it was written before it was narrow: every clients column."""
    from tasks.campaign.transforms import select_client_base
    from tasks.data.tables import read_table

    d = ctx.data()
    clients = read_table(d["dir"], "clients")
    base = select_client_base(clients, d["date"])
    return base, {"registered_later": int(len(clients) - len(base))}


def _wide_filters(ctx):
    """The filters as they ran on a wide base: the base's own columns, the factors beside."""
    from tasks.campaign.eligible import filter_base

    d = ctx.data()
    kept, report = filter_base(ctx.store.read("client_base"), ctx.cfg.filters, d["dir"], d["date"], ctx.factor_fn,
                               ctx.known_factors())
    return kept, {"filters": report}


def test_the_client_base_holds_the_ids_and_clients_are_read_by_column(root, monkeypatch):
    import pyarrow.parquet as pq

    import tasks.data.tables as tables

    reads = []
    real = tables.read_table

    def recording(data_dir, table, as_of=None, columns=None):
        reads.append((table, None if columns is None else list(columns)))
        return real(data_dir, table, as_of=as_of, columns=columns)

    monkeypatch.setattr(tables, "read_table", recording)
    cfg = campaign(filters=[*campaign().filters[:1], FilterSpec("adults", "age", ">=", 18),
                            *campaign().filters[1:]])
    res = run_campaign(cfg, root, until="subset")
    stages = res.folder / "stages"
    assert pq.read_schema(stages / "01_client_base.parquet").names == ["client_id"]
    assert list(pd.read_parquet(stages / "02_filters.parquet").columns) == [
        "client_id", "days_since_last_purchase", "age", "marketing_opt_out"]
    # the ids with the registration date, then the two clients columns the filters compare
    assert [cols for table, cols in reads if table == "clients"] == [
        ["client_id", "registration_date"], ["client_id", "age", "marketing_opt_out"]]


def test_a_date_before_every_registration_leaves_no_base(root):
    from tasks.core.errors import DataValidationError

    with pytest.raises(DataValidationError, match=r"table 'clients', column 'registration_date': no client "
                                                  r"registered before the campaign date 1990-01-01"):
        run_campaign(campaign(date="1990-01-01"), root, until="client_base")


def test_a_campaign_with_a_wide_client_base_checkpoint_resumes_to_the_same_campaign(world, tmp_path, monkeypatch):
    from tasks.campaign import stages

    new = link_root(world, tmp_path / "new")
    fresh = run_campaign(campaign(), new)
    with monkeypatch.context() as m:  # checkpoints of the code before the base was narrow
        m.setitem(stages.STAGE_BY_NAME, "client_base", replace(stages.stage("client_base"), compute=_wide_client_base))
        m.setitem(stages.STAGE_BY_NAME, "filters", replace(stages.stage("filters"), compute=_wide_filters))
        wide = run_campaign(campaign(), link_root(world, tmp_path / "wide"))
        assert wide.computed == STAGES
        half = link_root(world, tmp_path / "half")
        run_campaign(campaign(), half, until="client_base")
        most = link_root(world, tmp_path / "most")
        run_campaign(campaign(), most, until="subset")
    want = sha256_file(fresh.folder / "campaign.parquet")
    assert sha256_file(wide.folder / "campaign.parquet") == want  # the same bytes as the wide base gave
    # the same keys as before: a wide base checkpoint is reused and read for its ids only
    resumed = run_campaign(campaign(), half)
    assert resumed.computed == STAGES[1:] and resumed.outcomes["client_base"].status == "reused"
    assert sha256_file(resumed.folder / "campaign.parquet") == want
    resumed = run_campaign(campaign(), most)
    assert resumed.computed == STAGES[STAGES.index("factors"):]
    assert sha256_file(resumed.folder / "campaign.parquet") == want
    # the filters' rows are the same whatever the base carried: the keys from the subset on are too
    assert resumed.outcomes["filters"].key != fresh.outcomes["filters"].key
    assert [resumed.outcomes[s].key for s in STAGES[2:-1]] == [fresh.outcomes[s].key for s in STAGES[2:-1]]


def test_model_features_the_factors_cannot_supply(root, world):
    import joblib
    from tasks.modelling.registry import ModelRegistry

    private = root / "models_private"
    shutil.copytree(world / "models", private)
    (root / "models").unlink()
    private.rename(root / "models")
    reg = ModelRegistry(root / "models")
    fitted = joblib.load(reg.version_dir(MODEL, "v0001") / "model.joblib")
    version = reg.save(MODEL, fitted, {"kind": "uplift", "features": FEATURES + ["crystal_ball_score"]})
    with pytest.raises(ConfigError, match=r"needs feature\(s\) \['crystal_ball_score'\] that the factor library cannot supply"):
        run_campaign(campaign(model_version=version), root)
    assert not (Layout(root).campaign("c1").folder / "stages" / "04_factors.parquet").exists()


def test_no_champion_says_how_to_train(tmp_path, world):
    root = tmp_path / "art"
    root.mkdir()
    (root / "data").symlink_to(world / "data")
    with pytest.raises(NotFoundError, match=r"no champion.*python -m flows.train"):
        run_campaign(campaign(), root)
    with pytest.raises(NotFoundError, match="dataset .* not found"):
        run_campaign(campaign(data="nowhere"), root)


def test_second_run_refused_while_lock_held_and_stale_lock_recovered(root):
    lock = Layout(root).campaign("c1").folder / ".lock"
    code = ("import time; from tasks.core.locks import PidLock\n"
            f"PidLock({str(lock)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match="locked by process"):
            run_campaign(campaign(), root)
        assert not (Layout(root).campaign("c1").folder / "stages").exists()
    finally:
        proc.kill()
        proc.wait()
    assert lock.exists()
    res = run_campaign(campaign(), root)
    assert res.computed == STAGES and not lock.exists()


def test_prefect_flow_runs_and_resumes(root, prefect_env):
    from flows.campaign import campaign_flow
    from dataclasses import asdict

    cfg = asdict(campaign(cid="pf"))
    out = campaign_flow(campaign=cfg, artifacts=str(root), runner={"partitions": 2})
    assert not out["noop"] and [v["status"] for v in out["stages"].values()] == ["computed"] * 9
    again = campaign_flow(campaign=cfg, artifacts=str(root))
    assert again["noop"]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.campaign import artifact_key

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key("pf", s) for s in STAGES])))
    assert {a.key for a in found} == {artifact_key("pf", s) for s in STAGES}
    freeze = [a for a in found if a.key == artifact_key("pf", "freeze")][0]
    assert "Balance check" in freeze.data
    reference = run_campaign(campaign(cid="pf"), link_root(root, root.parent / "ref"))
    pd.testing.assert_frame_equal(pd.read_parquet(Layout(root).campaign("pf").folder / "campaign.parquet"),
                                  pd.read_parquet(reference.folder / "campaign.parquet"))


def test_dask_runner_gives_the_same_campaign(root, prefect_env):
    from flows.campaign import partition_mapper
    from tasks.core.config import RunnerConfig

    local = run_campaign(campaign(cid="loc"), root)
    with partition_mapper(from_conf(RunnerConfig, "runner/dask", n_workers=2, partitions=3)) as mapper:
        dask_run = run_campaign(campaign(cid="dsk"), root, partitions=3, mapper=mapper)
    assert dask_run.outcomes["score"].info["partitions"] == 3
    a, b = (pd.read_parquet(r.folder / "campaign.parquet").drop(columns="campaign_id") for r in (local, dask_run))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ConfigError, match="runner.kind 'spark'"):
        with partition_mapper(from_conf(RunnerConfig, "runner/local", kind="spark")):
            pass
