"""The offer policy: which clients of a ranked table get the offer, and the score cutoff.

One module decides offers for the campaign's offer stage, for the scoring API's single-client
decision and for training's threshold suggestions. The four kinds (``campaign.policy.kind``):

- ``score_cutoff``  offer when ``score >= score_cutoff``;
- ``top_fraction``  the best ``round(top_fraction * n)`` targeted clients, plus every client
                    tied with the last of them (so the rule stays ``score >= cutoff``);
- ``budget``        the best ``min(budget, n)`` targeted clients; a group tied across the
                    boundary is left out, so the budget is never exceeded (``score > cutoff``);
- ``profit``        offer when ``uplift * margin > contact_cost`` (expected incremental profit
                    above the cost of one contact), i.e. ``uplift > contact_cost / margin``, where
                    ``uplift`` is the model's calibrated uplift (the raw score when the model has
                    no calibration). A calibration is strictly increasing, so the rule is one
                    cutoff on the raw score: :func:`profit_score_cutoff`.

Pure functions any caller can use (training's threshold suggestions among them):

- :func:`profit_cutoff` ``(margin, contact_cost) -> contact_cost / margin``: the per-client
  cutoff of the profit rule;
- :func:`top_fraction_count` ``(fraction, n) -> int(round(fraction * n))``: how many of ``n``
  ranked clients a top fraction takes;
- :func:`top_k_cutoff` ``(scores_desc, k, keep_within=False) -> (cutoff, strict)``: the cutoff
  that offers the best ``k`` of scores sorted in descending order, with the tie rule above
  (``keep_within=True`` is the budget's "never exceed k");
- :func:`offer_mask` ``(scores, cutoff, strict)``: the single-client decision, ``score >=
  cutoff`` (or ``score > cutoff`` when ``strict``); nobody when the cutoff is None;
- :func:`is_strict` ``(kind)``: True for ``profit`` (decided by ``>``), False otherwise;
- :func:`config_cutoff` ``(policy)``: the cutoff known from the config alone (``score_cutoff``
  and ``profit``); None for the kinds that need the whole ranked base.

:func:`assign_offers` applies a policy to a campaign's ranked, split table and records the
threshold (``score_cutoff``: the lowest offered score, or ``contact_cost / margin`` for
profit), so any client can be decided later from the frozen manifest by :func:`offer_mask`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.errors import ConfigError

POLICY_KINDS = ("score_cutoff", "top_fraction", "budget", "profit")
STRICT_KINDS = ("profit",)
_PARAMS = {"score_cutoff": ["score_cutoff"], "top_fraction": ["top_fraction"], "budget": ["budget"],
           "profit": ["margin", "contact_cost"]}


@dataclass
class PolicyConfig:
    """Threshold policy of the offer stage (only the fields of ``kind`` are used)."""

    kind: str                       # score_cutoff | top_fraction | budget | profit
    score_cutoff: float | None      # score_cutoff: offer when score >= this
    top_fraction: float | None      # top_fraction: the best share of the targeted group
    budget: int | None              # budget: at most this many offers in the targeted group
    margin: float | None            # profit: value of one incremental response
    contact_cost: float | None      # profit: cost of one offer


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def validate_policy(p: PolicyConfig) -> None:
    """Raise :class:`ConfigError` naming the first inconsistent ``campaign.policy`` setting."""
    if p.kind not in POLICY_KINDS:
        raise ConfigError(f"campaign.policy.kind {p.kind!r} is unknown; use one of {list(POLICY_KINDS)}")
    if p.kind == "score_cutoff" and p.score_cutoff is None:
        raise ConfigError("campaign.policy.score_cutoff is required for policy kind score_cutoff")
    if p.kind == "score_cutoff" and not _finite(p.score_cutoff):
        raise ConfigError(f"campaign.policy.score_cutoff must be a finite number, got {p.score_cutoff}")
    if p.kind == "top_fraction" and (p.top_fraction is None or not 0 < p.top_fraction <= 1):
        raise ConfigError(f"campaign.policy.top_fraction must be in (0, 1], got {p.top_fraction}")
    if p.kind == "budget" and (p.budget is None or p.budget < 0):
        raise ConfigError(f"campaign.policy.budget must be a count >= 0, got {p.budget}")
    if p.kind == "profit":
        if p.margin is None or not _finite(p.margin) or p.margin <= 0:
            raise ConfigError(f"campaign.policy.margin must be positive for the profit policy, got {p.margin}")
        if p.contact_cost is None or not _finite(p.contact_cost) or p.contact_cost < 0:
            raise ConfigError(f"campaign.policy.contact_cost must be >= 0 for the profit policy, got {p.contact_cost}")


def policy_params(policy: PolicyConfig) -> dict:
    """The parameters the policy ``kind`` actually uses."""
    return {k: getattr(policy, k) for k in _PARAMS[policy.kind]}


# --------------------------------------------------------------------------- cutoffs
def profit_cutoff(margin: float, contact_cost: float) -> float:
    """Per-client cutoff of the profit rule ``score * margin > contact_cost``."""
    return float(contact_cost) / float(margin)


def profit_score_cutoff(margin: float, contact_cost: float, calibration: Any = None) -> float:
    """The profit rule's cutoff on the raw score: ``contact_cost / margin`` mapped back through
    the model's uplift calibration (anything with ``score_cutoff(uplift)``; None: the score is
    the uplift)."""
    cut = profit_cutoff(margin, contact_cost)
    return cut if calibration is None else float(calibration.score_cutoff(cut))


def top_fraction_count(fraction: float, n: int) -> int:
    """How many of ``n`` ranked clients the top ``fraction`` takes: ``round(fraction * n)``."""
    return int(round(fraction * n))


def top_k_cutoff(scores_desc: np.ndarray, k: int, keep_within: bool = False) -> tuple[float | None, bool]:
    """``(cutoff, strict)`` offering the best ``k`` of ``scores_desc`` (sorted descending).

    The cutoff is the ``k``-th score. Clients tied with it are all offered (``score >=
    cutoff``) unless ``keep_within`` and the tie crosses the boundary, in which case the tied
    group is left out (``score > cutoff``) so that no more than ``k`` are offered. ``k <= 0``
    gives ``(None, False)``: nobody.
    """
    n = len(scores_desc)
    if k <= 0 or n == 0:
        return None, False
    k = min(int(k), n)
    cut = scores_desc[k - 1]
    tie_crosses = k < n and scores_desc[k] == cut
    return float(cut), bool(keep_within and tie_crosses)


def is_strict(kind: str) -> bool:
    """True when the policy ``kind`` offers only above its cutoff (``>``), not at it."""
    return kind in STRICT_KINDS


def offer_mask(scores: np.ndarray, cutoff: float | None, strict: bool = False) -> np.ndarray:
    """The single-client decision: ``score >= cutoff`` (``>`` when ``strict``); None: nobody."""
    scores = np.asarray(scores)
    if cutoff is None:
        return np.zeros(len(scores), dtype=bool)
    return scores > cutoff if strict else scores >= cutoff


def config_cutoff(policy: PolicyConfig) -> float | None:
    """The cutoff the config alone fixes: ``score_cutoff``, or ``contact_cost / margin`` for
    profit; None for ``top_fraction`` and ``budget``, which depend on the ranked base."""
    if policy.kind == "score_cutoff":
        return float(policy.score_cutoff)
    if policy.kind == "profit":
        return profit_cutoff(policy.margin, policy.contact_cost)
    return None


# --------------------------------------------------------------------------- the offer stage
def targeted_offers(score: np.ndarray, targeted: np.ndarray, policy: PolicyConfig,
                    calibration: Any = None) -> np.ndarray:
    """Offer decisions of the targeted rows of a table ordered by rank (score descending);
    ``calibration``: the model's uplift calibration, used by the profit rule."""
    if policy.kind == "score_cutoff":
        return targeted & offer_mask(score, float(policy.score_cutoff))
    if policy.kind in ("top_fraction", "budget"):
        n_t = int(targeted.sum())
        k = (top_fraction_count(policy.top_fraction, n_t) if policy.kind == "top_fraction"
             else min(int(policy.budget), n_t))
        cut, strict = top_k_cutoff(score[targeted], k, keep_within=policy.kind == "budget")
        return targeted & offer_mask(score, cut, strict)
    if policy.kind == "profit":
        if calibration is not None:
            return targeted & (calibration.apply(score) * float(policy.margin) > float(policy.contact_cost))
        return targeted & (score * float(policy.margin) > float(policy.contact_cost))
    raise ConfigError(f"campaign.policy.kind {policy.kind!r} is unknown")  # pragma: no cover - validated earlier


def assign_offers(split: pd.DataFrame, policy: PolicyConfig, calibration: Any = None) -> tuple[pd.DataFrame, dict]:
    """Decide the offer per client and record the threshold used.

    ``split`` holds client_id, score, rank, percentile, group, ordered by rank. random_target
    clients all get the offer, control clients none, targeted clients per the policy (see the
    module docstring). The threshold's ``score_cutoff`` is the lowest score that got an offer
    in the targeted group (for profit: :func:`profit_score_cutoff`, on the raw score, with the
    ``uplift_cutoff`` contact_cost / margin and the ``calibration`` beside it), so any client
    can be decided later by ``score >= score_cutoff`` (``>`` for profit).
    """
    out = split.copy()
    targeted = (out["group"] == "targeted").to_numpy()
    score = out["score"].to_numpy()
    n_t = int(targeted.sum())
    offer_t = targeted_offers(score, targeted, policy, calibration)
    out["offer"] = offer_t | (out["group"] == "random_target").to_numpy()
    offered_scores = score[offer_t]
    lowest = float(offered_scores.min()) if len(offered_scores) else None
    cutoff = profit_score_cutoff(policy.margin, policy.contact_cost, calibration) if policy.kind == "profit" else lowest
    threshold = {
        "score_cutoff": cutoff,
        "lowest_offered_score": lowest,
        "policy": policy.kind,
        "params": policy_params(policy),
        "targeted": n_t,
        "targeted_offers": int(offer_t.sum()),
        "offer_rate_targeted": round(float(offer_t.sum()) / n_t, 6) if n_t else 0.0,
    }
    if policy.kind == "profit":
        threshold["uplift_cutoff"] = profit_cutoff(policy.margin, policy.contact_cost)
        threshold["calibration"] = None if calibration is None else calibration.as_dict()
    return out, threshold
