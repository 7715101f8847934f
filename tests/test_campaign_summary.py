"""summary.md states what the campaign's design can detect, and warns when the control group is too small."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.analytics.stats import mde_rate_difference
from tasks.campaign.run import run_campaign
from tasks.campaign.summary import design_power, history_base_rate, render_summary
from tasks.core.layout import Layout
from tasks.data.tables import read_table
from tests.test_campaign import WORLD, build_world, campaign, link_root

MANIFEST = {"threshold": {"score_cutoff": 0.5}, "policy": {"kind": "top_fraction"}, "model": {"kind": "uplift"}}


def table(n_t: int, n_r: int, n_c: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.repeat(["targeted", "random_target", "control"], [n_t, n_r, n_c])
    score = rng.random(len(group))
    offer = (group == "random_target") | ((group == "targeted") & (score >= 0.5))
    return pd.DataFrame({"client_id": np.arange(len(group)), "group": group, "offer": offer, "score": score})


def test_design_power_by_hand():
    t = table(8000, 1000, 1000)
    p = design_power(MANIFEST, t, base_rate=0.04)
    n = p["sizes"]
    assert n["t_above"] == int(((t["group"] == "targeted") & (t["score"] >= 0.5)).sum())
    assert n["c_above"] == int(((t["group"] == "control") & (t["score"] >= 0.5)).sum())
    assert p["mde"]["targeted_vs_control"] == pytest.approx(mde_rate_difference(0.04, n["t_above"], n["c_above"]))
    assert p["mde"]["random_target_vs_control"] == pytest.approx(mde_rate_difference(0.04, 1000, 1000))
    z = mde_rate_difference(0.5, 1, 1) / math.sqrt(0.25 * 2)  # z_0.975 + z_0.8
    v = 0.04 * 0.96
    assert p["mde"]["model_value_per_offer"] == pytest.approx(
        z * math.sqrt(v * (1 / n["t_above"] + 1 / n["c_above"] + 1 / 1000 - 1 / 1000)))
    # the model's expected uplift: mean score of the offered targeted clients (about 0.75 here)
    assert p["expected_effect"] == pytest.approx(t.loc[(t["group"] == "targeted") & t["offer"], "score"].mean())
    assert p["control_too_small"] is False


def test_a_small_control_group_is_flagged_with_the_share_that_would_do():
    t = table(9900, 50, 50).assign(score=lambda d: d["score"] * 0.04)  # uplifts of 0 to 4 pp
    manifest = dict(MANIFEST, threshold={"score_cutoff": 0.02})
    p = design_power(manifest, t, base_rate=0.05)
    assert p["control_too_small"] is True and p["mde"]["targeted_vs_control"] > p["expected_effect"]
    share = p["suggested_control_share"]
    # at the suggested share the control clients above the cutoff give an MDE equal to the expected effect
    n_c_above = share * len(t) * p["sizes"]["c_above"] / p["sizes"]["control"]
    assert mde_rate_difference(0.05, p["sizes"]["t_above"], max(int(round(n_c_above)), 1)) == pytest.approx(
        p["expected_effect"], rel=0.02)
    md = render_summary_tail(manifest, t, p)
    assert "**Warning: the control group is too small**" in md and f"about {share:.2f}" in md
    # no base rate known: said so, nothing computed
    none = design_power(manifest, t, base_rate=None)
    assert none["mde"] == {} and "No base response rate is known" in render_summary_tail(manifest, t, none)
    # no control client above the cutoff at all
    empty = design_power(MANIFEST, t.assign(group=np.where(t["group"] == "control", "targeted", t["group"])), 0.05)
    assert empty["control_too_small"] is True and "no control client is above the cutoff" in render_summary_tail(
        MANIFEST, t, empty)


def render_summary_tail(manifest: dict, t: pd.DataFrame, power: dict) -> str:
    from tasks.campaign.summary import _power_lines

    return "\n".join(_power_lines(power))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("summary_world")
    build_world(root)
    return root


def test_frozen_campaign_summary_states_the_mde_from_the_history(world, tmp_path):
    root = link_root(world, tmp_path / "a")
    run_campaign(campaign("s1", sample_fraction=None), root)
    md = (Layout(root).campaign("s1").folder / "summary.md").read_text()
    history = read_table(root / "data" / WORLD, "campaign_history")
    base = float(history.loc[history["treatment"] == 0, "response"].mean())
    assert history_base_rate(root / "data" / WORLD) == pytest.approx(base)
    t = pd.read_parquet(Layout(root).campaign("s1").table)
    n_t = int((t["offer"] & (t["group"] == "targeted")).sum())
    n_c = int(((t["group"] == "control") & (t["score"] >= t.loc[t["offer"] & (t["group"] == "targeted"), "score"].min())).sum())
    assert "## What the design can detect" in md and f"base rate {100 * base:.2f}%" in md
    assert f"| offered targeted ({n_t:,}) vs control above the cutoff ({n_c:,}) | " \
           f"{100 * mde_rate_difference(base, n_t, n_c):.2f} pp |" in md
    # a 1% control group on the same world is too small for what the model expects
    run_campaign(campaign("s2", sample_fraction=None, groups={"targeted": 0.95, "random_target": 0.04,
                                                               "control": 0.01}), root)
    small = (Layout(root).campaign("s2").folder / "summary.md").read_text()
    assert "**Warning" in small and "control" in small
