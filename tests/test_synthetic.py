"""The synthetic retail world: determinism, contracts, configured rates, visible signal."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import SyntheticDataConfig, compose_config, from_conf, to_dataclass
from tasks.core.contracts import CONTRACTS, UPLIFT_TYPES, validate_table
from tasks.data.tables import read_manifest, read_table
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.data.synthetic.traits import validate_config
from tasks.data.synthetic.truth import draw_responses
from tasks.data.synthetic.world import TABLES, generate_group, generate_world, write_world

N = 4000


@pytest.fixture(scope="module")
def cfg() -> SyntheticDataConfig:
    return from_conf(SyntheticDataConfig, "data/synthetic", n_clients=N, seed=11)


@pytest.fixture(scope="module")
def world(cfg: SyntheticDataConfig) -> dict[str, pd.DataFrame]:
    return generate_world(cfg)


def test_every_table_passes_its_contract(world, cfg):
    assert set(world) == set(TABLES)
    for name, df in world.items():
        validate_table(df, CONTRACTS[name], as_of=cfg.end_date)
    assert len(world["clients"]) == N
    assert world["clients"]["client_id"].is_unique
    assert world["truth"]["client_id"].tolist() == world["clients"]["client_id"].tolist()


def test_sizes_are_realistic(world):
    per_client_purchases = len(world["purchases"]) / N
    per_client_messages = len(world["messages"]) / N
    assert 15 <= per_client_purchases <= 40
    assert 20 <= per_client_messages <= 60
    assert set(world["messages"]["event"].unique()) == {"send", "open", "click", "purchase", "unsubscribe", "bounce"}
    assert set(world["messages"]["channel"].unique()) == {"email", "mobile_push", "sms"}


def test_purchases_sorted_by_client_and_time_inside_window(world, cfg):
    p = world["purchases"]
    cid = p["client_id"].to_numpy()
    ts = p["timestamp"].to_numpy()
    assert (np.diff(cid) >= 0).all()
    same = np.diff(cid) == 0
    assert (np.diff(ts)[same] >= np.timedelta64(0)).all()
    assert p["timestamp"].min() >= pd.Timestamp(cfg.start_date)
    assert p["timestamp"].max() < pd.Timestamp(cfg.end_date)
    reg = world["clients"].set_index("client_id")["registration_date"]
    assert (p["timestamp"].to_numpy() >= reg.loc[p["client_id"]].to_numpy()).all()


def test_heavy_tailed_baskets_and_varied_recency(world, cfg):
    amount = world["purchases"]["amount"]
    assert amount.quantile(0.99) > 4 * amount.median()
    last = world["purchases"].groupby("client_id")["timestamp"].max()
    recency = (pd.Timestamp(cfg.end_date) - last).dt.days
    assert (recency <= 30).mean() > 0.25
    assert (recency > 180).mean() > 0.05


def test_same_seed_same_tables_other_seed_differs(cfg, world):
    again = generate_world(cfg)
    for name in TABLES:
        pd.testing.assert_frame_equal(world[name], again[name])
    other = generate_world(dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert not world["purchases"]["amount"].head(100).equals(other["purchases"]["amount"].head(100))
    assert not np.allclose(world["truth"]["p_control"], other["truth"]["p_control"])


def test_base_rate_and_type_shares(world, cfg):
    truth = world["truth"]
    assert truth["p_control"].mean() == pytest.approx(cfg.base_response_rate, rel=0.05)
    shares = truth["uplift_type"].value_counts(normalize=True)
    assert set(shares.index) == set(UPLIFT_TYPES)
    assert shares["sleeping_dog"] == pytest.approx(cfg.negative_uplift_share, abs=0.01)
    assert shares["persuadable"] == pytest.approx(cfg.persuadable_share, abs=0.01)
    assert shares["sure_thing"] == pytest.approx(cfg.sure_thing_share, abs=0.01)


def test_uplift_types_behave_as_named(world, cfg):
    truth = world["truth"]
    effect = truth["p_treated"] - truth["p_control"]
    kind = truth["uplift_type"]
    assert (effect[kind == "sleeping_dog"] < 0).all()
    assert (effect[kind == "persuadable"] > 0.01).all()
    assert effect[kind == "persuadable"].mean() > 0.04
    assert effect[kind == "sleeping_dog"].mean() < -0.01
    assert truth.loc[kind == "sure_thing", "p_control"].mean() > 2 * cfg.base_response_rate
    assert truth.loc[kind == "lost_cause", "p_control"].mean() < cfg.base_response_rate


def test_configured_shares_are_followed():
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=2000, seed=5, base_response_rate=0.08,
                    negative_uplift_share=0.2, persuadable_share=0.3, sure_thing_share=0.1)
    truth = generate_world(cfg)["truth"]
    assert truth["p_control"].mean() == pytest.approx(0.08, rel=0.05)
    assert (truth["uplift_type"] == "sleeping_dog").mean() == pytest.approx(0.2, abs=0.01)
    assert (truth["uplift_type"] == "lost_cause").mean() == pytest.approx(0.4, abs=0.01)


def test_past_campaigns_are_randomised(world, cfg):
    hist = world["campaign_history"]
    assert hist["campaign_id"].nunique() == len(cfg.past_campaign_dates) >= 2
    assert sorted(hist["campaign_date"].dt.strftime("%Y-%m-%d").unique()) == sorted(cfg.past_campaign_dates)
    reg = world["clients"].set_index("client_id")["registration_date"]
    assert (reg.loc[hist["client_id"]].to_numpy() < hist["campaign_date"].to_numpy()).all()
    truth = world["truth"].set_index("client_id")
    for _, one in hist.groupby("campaign_id", observed=True):
        assert one["treatment"].mean() == pytest.approx(cfg.past_campaign_treated_share, abs=0.04)
        assert len(one) / N == pytest.approx(cfg.past_campaign_fraction, abs=0.1)
        # balance: the arms do not differ in the true baseline propensity
        p0 = truth.loc[one["client_id"], "p_control"].to_numpy()
        arm = one["treatment"].to_numpy() == 1
        pooled = np.sqrt((p0[arm].var() + p0[~arm].var()) / 2)
        assert abs(p0[arm].mean() - p0[~arm].mean()) / pooled < 0.1
    assert (hist.loc[hist["response"] == 0, "revenue"] == 0).all()
    assert (hist.loc[hist["response"] == 1, "revenue"] > 0).all()
    treated = hist[hist["treatment"] == 1]["response"].mean()
    control = hist[hist["treatment"] == 0]["response"].mean()
    assert treated > control


def _observed(world, cfg) -> pd.DataFrame:
    """Behaviour aggregates a factor library could compute (from purchases and messages only)."""
    ids = world["clients"]["client_id"]
    p = world["purchases"].groupby("client_id")
    out = pd.DataFrame(index=ids)
    out["log_n"] = np.log1p(p.size().reindex(ids).fillna(0))
    out["promo_share"] = p["promo"].mean().reindex(ids).fillna(0)
    days = (pd.Timestamp(cfg.end_date) - p["timestamp"].max()).dt.days
    out["log_recency"] = np.log1p(days.reindex(ids).fillna(1000))
    email = world["messages"][world["messages"]["channel"] == "email"]
    counts = email.groupby(["client_id", "event"], observed=True).size().unstack(fill_value=0).reindex(ids).fillna(0)
    out["open_rate"] = counts["open"] / counts["send"].clip(lower=1)
    out["click_rate"] = counts["click"] / counts["send"].clip(lower=1)
    return out


def test_true_uplift_is_visible_in_behaviour_but_no_column_equals_it(world, cfg):
    truth = world["truth"]
    uplift = (truth["p_treated"] - truth["p_control"]).to_numpy()
    obs = _observed(world, cfg)
    for col in ("promo_share", "log_recency", "open_rate"):
        assert np.corrcoef(obs[col].rank(), pd.Series(uplift).rank())[0, 1] > 0.1, col
    assert np.corrcoef(obs["log_n"].rank(), pd.Series(uplift).rank())[0, 1] < -0.1
    x = np.column_stack([np.ones(len(obs)), obs.to_numpy()])
    beta, *_ = np.linalg.lstsq(x, uplift, rcond=None)
    fitted = x @ beta
    r2 = 1 - ((uplift - fitted) ** 2).sum() / ((uplift - uplift.mean()) ** 2).sum()
    assert 0.15 < r2 < 0.9
    for col in obs:
        assert abs(np.corrcoef(obs[col], uplift)[0, 1]) < 0.9


def test_shift_drifts_behaviour(cfg, world):
    shifted = generate_world(dataclasses.replace(cfg, shift=1.0))
    base_p, new_p = world["purchases"], shifted["purchases"]
    assert len(new_p) < 0.85 * len(base_p)
    assert (new_p["channel"] == "online").mean() > (base_p["channel"] == "online").mean() + 0.05
    assert shifted["clients"]["age"].mean() > world["clients"]["age"].mean() + 3

    def open_rate(m):
        email = m[m["channel"] == "email"]["event"]
        return (email == "open").sum() / (email == "send").sum()

    assert open_rate(shifted["messages"]) < 0.9 * open_rate(world["messages"])


def test_opt_outs_follow_unsubscribes(world):
    m = world["messages"]
    clients = world["clients"].set_index("client_id")
    quit_email = m[(m["event"] == "unsubscribe") & (m["channel"] == "email")]["client_id"].unique()
    assert len(quit_email) > 0
    assert clients.loc[quit_email, "email_opt_out"].all()
    sends = m[m["event"] == "send"]
    blocked = clients.index[clients["marketing_opt_out"]]
    assert not sends["client_id"].isin(blocked).any()
    # nothing is sent on a channel after the client unsubscribed from it
    first_quit = m[m["event"] == "unsubscribe"].groupby(["client_id", "channel"], observed=True)["timestamp"].min()
    later = sends.join(first_quit.rename("quit"), on=["client_id", "channel"], how="inner")
    assert (later["timestamp"] < later["quit"]).all()


def test_draw_responses_follows_truth(world):
    truth = world["truth"]
    ids = truth["client_id"].to_numpy()
    all_t = draw_responses(truth, ids, np.ones(len(ids), dtype=bool), seed=1)
    none_t = draw_responses(truth, ids, np.zeros(len(ids), dtype=bool), seed=1)
    assert list(all_t.columns) == ["client_id", "response", "revenue"]
    validate_table(all_t, CONTRACTS["responses"])
    assert all_t["response"].mean() == pytest.approx(truth["p_treated"].mean(), abs=0.012)
    assert none_t["response"].mean() == pytest.approx(truth["p_control"].mean(), abs=0.012)
    assert (all_t.loc[all_t["response"] == 0, "revenue"] == 0).all()
    pd.testing.assert_frame_equal(all_t, draw_responses(truth, ids, np.ones(len(ids), dtype=bool), seed=1))
    # revenue follows the basket trait
    rev = all_t[all_t["response"] == 1].merge(truth[["client_id", "basket_scale"]], on="client_id")
    assert np.corrcoef(np.log(rev["revenue"]), np.log(rev["basket_scale"]))[0, 1] > 0.3


def test_draw_responses_rejects_bad_input(world):
    truth = world["truth"]
    with pytest.raises(NotFoundError, match="client_id"):
        draw_responses(truth, [1, 2, 10**9], [True, False, True], seed=0)
    with pytest.raises(DataValidationError, match="treated"):
        draw_responses(truth, [1, 2], [True], seed=0)
    with pytest.raises(DataValidationError, match="treated"):
        draw_responses(truth, [1, 2], [3, 0], seed=0)


def test_write_world_and_groups_match(world, cfg, tmp_path):
    out = tmp_path / "data" / "w"
    manifest = write_world(world, out, cfg)
    assert read_manifest(out) == manifest
    assert manifest["row_counts"] == {t: len(world[t]) for t in TABLES}
    assert manifest["as_of"] == cfg.end_date and manifest["n_clients"] == N
    assert [c["campaign_date"] for c in manifest["past_campaigns"]] == sorted(cfg.past_campaign_dates)
    for name in TABLES:
        back = read_table(out, name, as_of=cfg.end_date)
        assert len(back) == len(world[name])
    staged = tmp_path / "groups"
    staged.mkdir()
    generate_group("purchases", cfg, staged)
    pd.testing.assert_frame_equal(pd.read_parquet(staged / "purchases.parquet"),
                                  pd.read_parquet(out / "purchases.parquet"))
    for name in ("truth", "campaign_history"):
        pd.testing.assert_frame_equal(pd.read_parquet(staged / f"{name}.parquet"),
                                      pd.read_parquet(out / f"{name}.parquet"))
    assert not list(out.parent.glob(".w.*"))
    with pytest.raises(ConfigError, match="unknown table group 'nope'"):
        generate_group("nope", cfg, staged)


def test_write_world_leaves_old_world_on_bad_table(world, cfg, tmp_path):
    out = tmp_path / "w"
    write_world(world, out, cfg)
    broken = dict(world)
    broken["purchases"] = world["purchases"].drop(columns=["amount"])
    with pytest.raises(DataValidationError, match="purchases.*amount"):
        write_world(broken, out, cfg)
    assert len(pd.read_parquet(out / "purchases.parquet")) == len(world["purchases"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "change, key",
    [
        ({"n_clients": 0}, "n_clients"),
        ({"persuadable_share": 1.5}, "persuadable_share"),
        ({"persuadable_share": 0.6, "sure_thing_share": 0.5}, "negative_uplift_share"),
        ({"end_date": "2023-01-01"}, "end_date"),
        ({"past_campaign_dates": ["2023-05-01"]}, "past_campaign_dates[0]"),
        ({"past_campaign_dates": ["2025-12-20"]}, "past_campaign_dates[0]"),
        ({"past_campaign_dates": []}, "past_campaign_dates"),
        ({"base_response_rate": 0.0}, "base_response_rate"),
        ({"kind": "hillstrom"}, "kind"),
        ({"name": "../x"}, "name"),
    ],
)
def test_bad_config_is_named(change, key):
    cfg = dataclasses.replace(from_conf(SyntheticDataConfig, "data/synthetic", n_clients=100), **change)
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")):
        validate_config(cfg)


def test_composed_defaults_equal_from_conf_and_overrides_compose():
    cfg = compose_config(["data.n_clients=123", "data.seed=9"])
    data = to_dataclass(cfg.data, SyntheticDataConfig, "data")
    assert data.n_clients == 123 and data.seed == 9
    defaults = to_dataclass(compose_config().data, SyntheticDataConfig, "data")
    assert defaults == from_conf(SyntheticDataConfig, "data/synthetic")
    with pytest.raises(ConfigError, match="n_clients"):
        to_dataclass(compose_config(["data.n_clients=abc"]).data, SyntheticDataConfig, "data")


def test_contracts_doc_is_up_to_date():
    from tasks.core.config import PROJECT_ROOT
    from tasks.data.contracts_doc import render_contracts_doc

    doc = (PROJECT_ROOT / "docs" / "data_contracts.md").read_text(encoding="utf-8")
    assert render_contracts_doc(doc) == doc, (
        "docs/data_contracts.md is out of date: run "
        "python -c \"from tasks.data.contracts_doc import update_contracts_doc; update_contracts_doc()\""
    )
    for name in CONTRACTS:
        assert f"### {name}" in doc
    with pytest.raises(DataValidationError, match="markers"):
        render_contracts_doc("no markers here")


@pytest.mark.parametrize("n_clients", [1, 3])
def test_tiny_worlds_are_valid(n_clients, tmp_path):
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=n_clients, seed=4)
    tables = generate_world(cfg)
    manifest = write_world(tables, tmp_path / "tiny", cfg)
    assert manifest["row_counts"]["clients"] == n_clients
    assert len(tables["truth"]) == n_clients and tables["truth"]["p_control"].notna().all()
