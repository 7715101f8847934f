"""The offer policy's pure functions: cutoffs, the tie rule, the single-client decision."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.campaign.policy import (
    PolicyConfig, config_cutoff, is_strict, offer_mask, policy_params, profit_cutoff, top_fraction_count,
    top_k_cutoff, validate_policy,
)
from tasks.core.config import from_conf
from tasks.core.errors import ConfigError


def _policy(**kw) -> PolicyConfig:
    """conf/campaign/default.yaml's policy with ``kw`` changed."""
    return from_conf(PolicyConfig, "campaign/default:policy", **kw)


def test_profit_cutoff_and_strict_decision():
    assert profit_cutoff(20.0, 0.5) == 0.025
    assert is_strict("profit") and not is_strict("score_cutoff") and not is_strict("top_fraction")
    scores = np.array([0.025, 0.0251, 0.01])
    assert offer_mask(scores, 0.025, strict=True).tolist() == [False, True, False]
    assert offer_mask(scores, 0.025).tolist() == [True, True, False]
    assert offer_mask(scores, None).tolist() == [False, False, False]


def test_top_fraction_count_rounds():
    assert top_fraction_count(0.3, 10) == 3
    assert top_fraction_count(0.25, 10) == 2  # round half to even, as the campaign always did
    assert top_fraction_count(1.0, 7) == 7 and top_fraction_count(0.01, 10) == 0


def test_top_k_cutoff_tie_rule():
    desc = np.array([0.9, 0.8, 0.5, 0.5, 0.5, 0.1])
    assert top_k_cutoff(desc, 3) == (0.5, False)  # the tie is kept in: score >= 0.5
    assert top_k_cutoff(desc, 3, keep_within=True) == (0.5, True)  # a budget leaves the tie out
    assert top_k_cutoff(desc, 5, keep_within=True) == (0.5, False)  # the tie ends at k: no crossing
    assert top_k_cutoff(desc, 2, keep_within=True) == (0.8, False)
    assert top_k_cutoff(desc, 0) == (None, False)
    assert top_k_cutoff(desc, 99) == (0.1, False)
    cut, strict = top_k_cutoff(desc, 3, keep_within=True)
    assert offer_mask(desc, cut, strict).sum() == 2


def test_config_cutoff_only_for_rank_free_kinds():
    assert config_cutoff(_policy(kind="score_cutoff", score_cutoff=0.2)) == 0.2
    assert config_cutoff(_policy(kind="profit", margin=10.0, contact_cost=1.0)) == pytest.approx(0.1)
    assert config_cutoff(_policy(kind="top_fraction", top_fraction=0.3)) is None
    assert config_cutoff(_policy(kind="budget", budget=5)) is None
    assert policy_params(_policy(kind="profit", margin=10.0, contact_cost=1.0)) == {
        "margin": 10.0, "contact_cost": 1.0}


@pytest.mark.parametrize("policy, match", [
    (_policy(kind="magic"), "policy.kind 'magic'"),
    (_policy(kind="score_cutoff"), "score_cutoff is required"),
    (_policy(kind="score_cutoff", score_cutoff=math.nan), "finite"),
    (_policy(kind="top_fraction", top_fraction=0.0), "top_fraction"),
    (_policy(kind="budget", budget=-1), "budget"),
    (_policy(kind="profit", margin=0.0, contact_cost=1.0), "margin must be positive"),
    (_policy(kind="profit", margin=math.inf, contact_cost=1.0), "margin must be positive"),
    (_policy(kind="profit", margin=1.0, contact_cost=-1.0), "contact_cost"),
])
def test_bad_policies_are_named(policy, match):
    with pytest.raises(ConfigError, match=match):
        validate_policy(policy)
