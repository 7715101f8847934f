"""The profile's arm-size test against the design shares, set on the command line, at the
evaluation's level."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from flows.profile import profile_settings
from tasks.analytics.stats import SRM_ALPHA
from tasks.core.config import compose_config, from_conf, to_dataclass
from tasks.core.errors import ConfigError
from tasks.data.datasets import TabularDataConfig
from tasks.evaluation.readout import EvaluateConfig
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import profile_analysis
from tasks.profile.report import build_report, render_markdown
from tasks.profile.stats import planned_arm_shares, treatment_design_shares


def test_treatment_shares_from_the_command_line():
    cfg = compose_config(["data=hillstrom", "data.treatment_shares={treated:0.75,control:0.25}"])
    data = to_dataclass(cfg.data, TabularDataConfig, "data")
    assert data.treatment_shares == {"treated": 0.75, "control": 0.25}
    assert treatment_design_shares(data.treatment_shares) == {"0": 0.25, "1": 0.75}
    # the shipped Hillstrom config states its design: 1:1 between the two arms kept
    assert treatment_design_shares(to_dataclass(compose_config(["data=hillstrom"]).data, TabularDataConfig,
                                                "data").treatment_shares) == {"0": 0.5, "1": 0.5}
    # 0/1 keys mean the same, and shares are rescaled
    assert treatment_design_shares({1: 3, 0: 1}) == {"0": 0.25, "1": 0.75}
    with pytest.raises(ConfigError, match=r"unknown arm 'test'; use treated and control, e.g. "
                                          r"data.treatment_shares=\{treated:0.75,control:0.25\}"):
        treatment_design_shares({"test": 0.5, "control": 0.5})
    with pytest.raises(ConfigError, match="give both arms"):
        treatment_design_shares({"treated": 1.0})
    with pytest.raises(ConfigError, match="positive share"):
        treatment_design_shares({"treated": 0.0, "control": 1.0})


def test_expected_arm_shares_of_raw_arm_columns_from_the_command_line():
    cfg = compose_config(["profile.expected_arm_shares={Mens E-Mail:1,Womens E-Mail:1,No E-Mail:2}"])
    p = to_dataclass(cfg.profile, ProfileConfig, "profile")
    assert planned_arm_shares(["Mens E-Mail", "No E-Mail", "Womens E-Mail"], p.expected_arm_shares) == {
        "Mens E-Mail": 0.25, "No E-Mail": 0.5, "Womens E-Mail": 0.25}
    ints = to_dataclass(compose_config(["profile.expected_arm_shares={0:1,1:3}"]).profile, ProfileConfig, "profile")
    assert planned_arm_shares(["0", "1"], ints.expected_arm_shares) == {"0": 0.25, "1": 0.75}


def test_one_level_for_every_sample_ratio_check():
    container = OmegaConf.to_container(compose_config([]), resolve=True)
    assert container["evaluate"]["srm_alpha"] == SRM_ALPHA == from_conf(EvaluateConfig, "evaluate/default:evaluate").srm_alpha == from_conf(ProfileConfig, "profile/default").srm_alpha
    assert to_dataclass(profile_settings(container), ProfileConfig, "profile").srm_alpha == SRM_ALPHA
    moved = OmegaConf.to_container(compose_config(["evaluate.srm_alpha=0.01"]), resolve=True)
    assert to_dataclass(profile_settings(moved), ProfileConfig, "profile").srm_alpha == 0.01


def rct(n_treated: int = 3000, n_control: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.r_[np.ones(n_treated, int), np.zeros(n_control, int)]
    return pd.DataFrame({"x": rng.normal(size=t.size), "z": rng.random(t.size),
                         "y": (rng.random(t.size) < 0.1 + 0.05 * t).astype(int), "t": t})


def test_a_75_25_design_is_balanced_against_its_design_shares_and_not_against_equal_ones():
    cfg = from_conf(ProfileConfig, "profile/default", max_plot_columns=2, max_heatmap_columns=2)
    df = rct()
    equal = profile_analysis(df, ["x", "z"], "y", cfg, treatment="t")
    assert equal.arm_p_value < SRM_ALPHA and equal.arm_shares is None
    md = render_markdown(build_report("rct", "2026-01-01", [], equal, cfg))
    assert "equal shares (no data.treatment_shares given)" in md and "possible sample-ratio mismatch" in md
    designed = profile_analysis(df, ["x", "z"], "y", cfg, treatment="t",
                                treatment_shares={"treated": 0.75, "control": 0.25})
    assert designed.arm_p_value == pytest.approx(1.0) and designed.arm_shares == {"0": 0.25, "1": 0.75}
    md = render_markdown(build_report("rct", "2026-01-01", [], designed, cfg))
    assert "the design shares (control: 0.25, treated: 0.75, data.treatment_shares)" in md
    assert "consistent with the intended randomisation" in md and f"flagged below {SRM_ALPHA}" in md
    # a real mismatch against the design still fires: 3,000 vs 1,300 is not 75/25
    off = profile_analysis(rct(3000, 1300), ["x", "z"], "y", cfg, treatment="t",
                           treatment_shares={"treated": 0.75, "control": 0.25})
    assert off.arm_p_value < SRM_ALPHA
