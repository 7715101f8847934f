"""Simulated responses of a frozen campaign: drawn from the truth with the offer's true effect."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.simulate_responses import (
    simulate_campaign_responses, simulate_outcomes, simulate_responses_flow, simulation_target,
)
from tasks.campaign.checkpoints import campaign_dir
from tasks.campaign.run import run_campaign
from tasks.core.config import compose_config
from tasks.data.tables import read_table
from tasks.core.errors import ConfigError, NotFoundError, StateError
from tests.test_campaign import WORLD, build_world, campaign, link_root


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    world = tmp_path_factory.mktemp("sim_world")
    build_world(world, n_clients=2500, seed=9)
    root = link_root(world, tmp_path_factory.mktemp("sim") / "artifacts")
    run_campaign(campaign("sim", sample_fraction=None), root)
    return root


def test_responses_follow_the_offer_and_are_seeded(frozen):
    path = simulate_campaign_responses(frozen, "sim")
    assert path == campaign_dir(frozen, "sim") / "responses.parquet"
    resp = pd.read_parquet(path)
    table = pd.read_parquet(campaign_dir(frozen, "sim") / "campaign.parquet")
    assert list(resp.columns) == ["client_id", "response", "revenue"]
    assert resp["client_id"].tolist() == table["client_id"].tolist()
    assert set(resp["response"].unique()) <= {0, 1}
    assert (resp.loc[resp["response"] == 0, "revenue"] == 0).all()
    assert (resp.loc[resp["response"] == 1, "revenue"] > 0).all()
    first = resp.copy()
    simulate_campaign_responses(frozen, "sim")
    pd.testing.assert_frame_equal(pd.read_parquet(path), first)
    other = pd.read_parquet(simulate_campaign_responses(frozen, "sim", seed=123))
    assert not other["response"].equals(first["response"])


def test_offer_uses_p_treated_and_no_offer_p_control(frozen):
    truth = read_table(frozen / "data" / WORLD, "truth")
    ids = truth["client_id"].to_numpy()
    n = len(ids)
    # Repeat the population to measure rates precisely: all offered vs none offered.
    many = pd.DataFrame({"client_id": np.tile(ids, 40), "offer": True})
    big_truth = truth  # lookup table; ids repeat in the campaign frame only
    treated = simulate_outcomes(many, big_truth, seed=1)["response"].mean()
    control = simulate_outcomes(many.assign(offer=False), big_truth, seed=1)["response"].mean()
    p_t, p_c = truth["p_treated"].mean(), truth["p_control"].mean()
    se = np.sqrt(max(p_t, p_c) / (40 * n))
    assert abs(treated - p_t) < 4 * se and abs(control - p_c) < 4 * se


def test_unknown_or_unfrozen_campaign_is_a_clear_error(frozen, tmp_path):
    with pytest.raises(NotFoundError, match="campaign 'nope': folder .* does not exist.*python -m flows.campaign"):
        simulate_campaign_responses(frozen, "nope")
    run_campaign(campaign("half"), frozen, until="offer")
    with pytest.raises(StateError, match="campaign 'half' is not frozen: campaign.parquet, manifest.json missing"):
        simulate_campaign_responses(frozen, "half")


def test_campaign_id_and_seed_are_config_keys():
    # the top-level keys of conf/config.yaml every flow reads; no hand-parsed command line
    assert simulation_target(compose_config(["campaign_id=x", "seed=4", "paths.artifacts=a"])) == ("x", 4)
    assert simulation_target(compose_config(["campaign=spring_sale"])) == ("spring_sale_2026", None)
    with pytest.raises(ConfigError, match="key 'seed': 'four' is not an integer"):
        simulation_target(compose_config(["seed=four"]))


def test_cli_reads_campaign_id_and_seed(frozen):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "flows.simulate_responses", *args, f"paths.artifacts={frozen}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    bad = run("campaign_id=sim", "seed=four")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: config key 'seed'")
    missing = run("campaign_id=nope")
    assert missing.returncode == 2 and "campaign 'nope': folder" in missing.stderr and "does not exist" in missing.stderr
    assert "campaign.id=" not in missing.stderr  # that would calculate the default campaign under this id
    done = run("campaign_id=sim", "seed=7")
    assert done.returncode == 0, done.stderr[-2000:]
    expected = simulate_outcomes(pd.read_parquet(campaign_dir(frozen, "sim") / "campaign.parquet"),
                                 read_table(frozen / "data" / WORLD, "truth"), seed=7)
    pd.testing.assert_frame_equal(pd.read_parquet(campaign_dir(frozen, "sim") / "responses.parquet"), expected,
                                  check_dtype=False)


def test_flow_writes_responses(frozen, prefect_env):
    out = simulate_responses_flow(campaign_id="sim", artifacts=str(frozen), seed=5)
    assert out["rows"] == len(pd.read_parquet(campaign_dir(frozen, "sim") / "campaign.parquet"))
    assert out["responses"] == int(pd.read_parquet(out["path"])["response"].sum())
