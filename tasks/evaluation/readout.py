"""Evaluation of a frozen campaign against its random control group.

Responses (client_id, response, revenue) are joined to the frozen campaign table and the
following estimands are computed, each with a normal confidence interval and a two-sided
p-value (Welch standard errors, so unequal group sizes and variances are fine):

(a) ``targeted_vs_control``: targeted clients with score at or above the campaign's
    threshold (who got the offer) against control clients with score at or above the same
    threshold (who would have got it). Both groups are selected by the same score rule out
    of two random groups, so the comparison is an unbiased estimate of the offer's effect on
    the clients the model chose. Totals scale the per-client effect by the number of offers.
(b) ``random_target_vs_control``: everyone in random_target got the offer, nobody in control
    did: what a blanket campaign does per client.
(c) ``model_value``: (a) minus (b), the incremental responses (revenue) per offer the model
    adds over random targeting. The two estimates share the control group (control clients
    above the threshold are part of the whole control group), so the variance of the
    difference subtracts that covariance: ``Var(a) + Var(b) - 2 * s2(control above) / n(control)``.
(d) ``profit``: incremental responses times the policy's margin, or incremental revenue,
    minus the contact cost of every offer.

Also: a sample-ratio-mismatch test of the group sizes against the configured proportions,
the model's Qini AUC and uplift@k on random_target + control (a fresh randomised experiment,
so an honest out-of-sample measure) and an uplift-by-score-decile table.

Clients of the campaign without a response row are an error by default (naming how many are
missing); with ``missing_responses="non_responder"`` they count as response 0, revenue 0.

The intervals and tests are those of :mod:`tasks.analytics.stats`; the campaign folder's
files are found through :class:`tasks.core.layout.CampaignPaths`; the Markdown report and
the plots are rendered by :mod:`tasks.evaluation.report`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.analytics import metrics, stats
from tasks.analytics.stats import Effect
from tasks.campaign.frozen import read_frozen_campaign, require_frozen
from tasks.core.contracts import RESPONSES, coerce_to_contract, load_table, validate_table
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError, StateError
from tasks.core.io import read_json
from tasks.core.layout import CampaignPaths

GROUPS = ("targeted", "random_target", "control")
CAMPAIGN_COLUMNS = ("client_id", "group", "offer", "score")
MISSING_POLICIES = ("error", "non_responder")


@dataclass
class EvaluateConfig:
    """Settings of an evaluation (``conf/evaluate/default.yaml``, key ``evaluate``)."""

    alpha: float = 0.05
    srm_alpha: float = 0.001
    missing_responses: str = "error"
    k: float = 0.3
    bins: int = 10
    n_boot: int = 200
    seed: int = 0
    margin: float | None = None
    contact_cost: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"config 'evaluate', key 'alpha': must be in (0, 1), got {self.alpha}")
        if not 0 < self.srm_alpha < 1:
            raise ConfigError(f"config 'evaluate', key 'srm_alpha': must be in (0, 1), got {self.srm_alpha}")
        if self.missing_responses not in MISSING_POLICIES:
            raise ConfigError(
                f"config 'evaluate', key 'missing_responses': must be one of {list(MISSING_POLICIES)}, "
                f"got {self.missing_responses!r}"
            )
        if not 0 < self.k < 1:
            raise ConfigError(f"config 'evaluate', key 'k': must be a fraction in (0, 1), got {self.k}")
        if self.bins < 2:
            raise ConfigError(f"config 'evaluate', key 'bins': must be at least 2, got {self.bins}")


# --------------------------------------------------------------------------- statistics


def unit_variance(y: np.ndarray) -> float:
    """Per-client outcome variance as :func:`tasks.analytics.stats.diff_in_means` uses it:
    p(1 - p) for 0/1 outcomes, the sample variance (ddof=1) otherwise."""
    y = np.asarray(y, dtype="float64")
    if np.all((y == 0) | (y == 1)):
        m = float(y.mean())
        return m * (1.0 - m)
    return float(y.var(ddof=1))


def diff_in_means(y_t: np.ndarray, y_c: np.ndarray, alpha: float = 0.05, where: str = "effect") -> Effect:
    """:func:`tasks.analytics.stats.diff_in_means` with a message naming the comparison when an arm is too small.

    0/1 outcomes: difference of proportions with the unpooled normal interval; other outcomes
    (revenue): Welch's t interval.
    """
    for name, arr in (("treated", y_t), ("control", y_c)):
        if len(arr) < 2:
            raise DataValidationError(
                "responses", None, f"{where}: the {name} sample has {len(arr)} client(s); at least 2 are needed"
            )
    return stats.diff_in_means(y_t, y_c, alpha)


def srm_check(counts: dict[str, int], planned: dict[str, float], alpha: float) -> dict[str, Any]:
    """Sample-ratio check of group sizes against the planned proportions.

    Groups planned with share 0 are left out of the chi-square test; any client in such a
    group is itself a mismatch. ``mismatch`` is True when the p-value is below ``alpha``.
    """
    out: dict[str, Any] = {"observed": counts, "expected_share": planned, "alpha": alpha}
    positive = {g: float(s) for g, s in planned.items() if s and s > 0}
    if len(positive) < 2:
        return dict(out, chi2=None, p_value=None, mismatch=None,
                    note="fewer than two groups with a planned share in the manifest")
    total = sum(positive.values())
    chi2, p = stats.srm_test({g: int(counts.get(g, 0)) for g in positive},
                             {g: s / total for g, s in positive.items()})
    unplanned = {g: n for g, n in counts.items() if g not in positive and n > 0}
    out.update(chi2=chi2, p_value=p, mismatch=bool(p < alpha or unplanned))
    if unplanned:
        out["note"] = f"clients in groups without a planned share: {unplanned}"
    return out


# --------------------------------------------------------------------------- inputs


def check_frozen(folder: str | Path) -> None:
    """Raise unless the campaign folder ``folder`` (``Layout.campaign(id).folder``) holds a
    frozen campaign whose files verify (:func:`tasks.campaign.frozen.require_frozen`).

    No folder: :class:`NotFoundError`; a folder without both files, or files that do not
    verify: :class:`StateError`.
    """
    require_frozen(CampaignPaths(Path(folder)))


def load_frozen_campaign(folder: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a frozen campaign's table and manifest, verified by
    :func:`tasks.campaign.frozen.read_frozen_campaign` (see :func:`check_frozen` for the errors).

    Checks the table's columns, groups and unique client ids.
    """
    manifest, df = read_frozen_campaign(CampaignPaths(Path(folder)))
    table = CampaignPaths(Path(folder)).table
    lacking = [c for c in CAMPAIGN_COLUMNS if c not in df.columns]
    if lacking:
        raise DataValidationError("campaign", lacking[0], f"missing column(s) {lacking} in {table}")
    bad = ~df["group"].isin(GROUPS).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataValidationError(
            "campaign", "group", f"{int(bad.sum())} value(s) outside {list(GROUPS)}", rows,
            df.iloc[rows][["client_id", "group"]].to_string(),
        )
    dup = df["client_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:5].tolist()
        raise DataValidationError("campaign", "client_id", f"{int(dup.sum())} duplicate client id row(s)", rows)
    return df, manifest


def read_responses(path: str | Path) -> pd.DataFrame:
    """Read a responses table (Parquet or CSV) and validate it against the RESPONSES contract.

    Missing file: :class:`NotFoundError`; missing or mistyped columns, values outside 0/1,
    negative revenue or duplicate client ids: :class:`DataValidationError`.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(
            f"table 'responses': file {path} does not exist; simulate responses with "
            "`python -m flows.simulate_responses campaign_id=<id>` or pass responses=<path>"
        )
    return load_table(path, RESPONSES)


def validate_responses(responses: pd.DataFrame) -> pd.DataFrame:
    """Coerce an in-memory responses frame to its contract and validate it (a new frame)."""
    out = coerce_to_contract(responses, RESPONSES)
    validate_table(out, RESPONSES)
    return out


def join_responses(
    campaign: pd.DataFrame, responses: pd.DataFrame, missing_responses: str = "error"
) -> pd.DataFrame:
    """The campaign table with ``response`` and ``revenue`` joined on client_id (a new frame).

    Responses for clients that are not in the campaign are an error naming them. Campaign
    clients without a response row are an error (``missing_responses="error"``) or count as
    non-responders with zero revenue (``"non_responder"``).
    """
    if missing_responses not in MISSING_POLICIES:
        raise ConfigError(f"missing_responses must be one of {list(MISSING_POLICIES)}, got {missing_responses!r}")
    resp = validate_responses(responses)
    known = resp["client_id"].isin(campaign["client_id"]).to_numpy()
    if not known.all():
        rows = np.flatnonzero(~known)[:5].tolist()
        raise DataValidationError(
            "responses", "client_id",
            f"{int((~known).sum())} response row(s) for client ids that are not in the campaign", rows,
            resp.iloc[rows][["client_id", "response", "revenue"]].to_string(),
        )
    joined = campaign.merge(resp[["client_id", "response", "revenue"]], on="client_id", how="left")
    absent = joined["response"].isna().to_numpy()
    if absent.any():
        if missing_responses == "error":
            ids = joined.loc[absent, "client_id"].head(5).tolist()
            raise DataValidationError(
                "responses", "client_id",
                f"{int(absent.sum())} of {len(joined)} campaign client(s) have no response row "
                f"(e.g. client ids {ids}); supply them or set evaluate.missing_responses=non_responder "
                "to count them as non-responders",
            )
        joined["response"] = joined["response"].fillna(0)
        joined["revenue"] = joined["revenue"].fillna(0.0)
    joined["response"] = joined["response"].astype("int64")
    joined["revenue"] = joined["revenue"].astype("float64")
    return joined


def economics(manifest: dict, cfg: EvaluateConfig) -> tuple[float | None, float]:
    """``(margin, contact_cost)``: the config's values, else the manifest's ``economics`` or
    policy parameters; a missing contact cost counts as 0, a missing margin as unknown."""
    params = dict((manifest.get("policy") or {}).get("params") or {})
    params.update({k: v for k, v in (manifest.get("economics") or {}).items() if v is not None})
    margin = cfg.margin if cfg.margin is not None else params.get("margin")
    cost = cfg.contact_cost if cfg.contact_cost is not None else params.get("contact_cost")
    return (None if margin is None else float(margin)), float(cost or 0.0)


def score_cutoff(manifest: dict, campaign: pd.DataFrame) -> float:
    """The threshold recorded at freeze; falls back to the lowest offered targeted score."""
    cutoff = (manifest.get("threshold") or {}).get("score_cutoff")
    if cutoff is not None:
        return float(cutoff)
    offered = campaign.loc[(campaign["group"] == "targeted") & campaign["offer"].astype(bool), "score"]
    if offered.empty:
        raise DataValidationError(
            "manifest", "threshold.score_cutoff",
            "no threshold recorded and no targeted client got an offer, so the targeted comparison is undefined",
        )
    return float(offered.min())


# --------------------------------------------------------------------------- estimands


def _pair(joined: pd.DataFrame, t_mask: np.ndarray, c_mask: np.ndarray, alpha: float, what: str) -> dict[str, Effect]:
    return {
        col: diff_in_means(joined[col].to_numpy()[t_mask], joined[col].to_numpy()[c_mask], alpha, f"{what} ({col})")
        for col in ("response", "revenue")
    }


def model_value(
    above_t: np.ndarray, above_c: np.ndarray, random_t: np.ndarray, control: np.ndarray, alpha: float = 0.05
) -> Effect:
    """(mean above_t - mean above_c) - (mean random_t - mean control), with a standard error
    that accounts for ``above_c`` being a subset of ``control``.

    ``Var = Var(a) + Var(b) - 2 v(above_c) / n(control)``, where ``v`` is the per-client
    variance (:func:`unit_variance`): the covariance of the mean of a subset with the mean of
    the whole group is the subset's variance over the whole group's size.
    """
    a = diff_in_means(above_t, above_c, alpha, "model value (targeted)")
    b = diff_in_means(random_t, control, alpha, "model value (random)")
    var = a.se**2 + b.se**2 - 2.0 * unit_variance(above_c) / len(control)
    return stats.normal_effect(a.estimate - b.estimate, math.sqrt(max(var, 0.0)), alpha, a.n_t, b.n_t,
                               a.estimate, b.estimate, "difference of two effects sharing control (normal)")


def scaled(effect: Effect, factor: float, shift: float = 0.0) -> dict[str, float]:
    """``factor * effect + shift`` with its interval (a linear transform of the estimate)."""
    lo, hi = sorted((factor * effect.ci_low + shift, factor * effect.ci_high + shift))
    return {"estimate": factor * effect.estimate + shift, "ci_low": lo, "ci_high": hi,
            "se": abs(factor) * effect.se, "p_value": effect.p_value}


def decile_table(joined: pd.DataFrame, bins: int = 10, alpha: float = 0.05) -> pd.DataFrame:
    """Uplift of random_target over control in each score bin of the whole campaign.

    Bins are equal-count slices of the campaign ranked by descending score (bin 1 = best);
    within each bin the random_target and control response rates are compared
    (:func:`tasks.analytics.stats.diff_in_proportions`: unpooled SE, normal interval; no
    interval when an arm of the bin holds fewer than two clients). Also lists each bin's
    score range and the share of its targeted clients who got the offer.
    """
    order = np.argsort(-joined["score"].to_numpy(), kind="stable")
    bin_of = np.empty(len(joined), dtype="int64")
    bin_of[order] = np.arange(len(joined)) * bins // len(joined)
    rows = []
    group = joined["group"].to_numpy()
    resp = joined["response"].to_numpy(dtype=float)
    score = joined["score"].to_numpy(dtype=float)
    offer = joined["offer"].to_numpy(dtype=bool)
    for b in range(bins):
        in_bin = bin_of == b
        yt, yc = resp[in_bin & (group == "random_target")], resp[in_bin & (group == "control")]
        tg = in_bin & (group == "targeted")
        rt = yt.mean() if yt.size else np.nan
        rc = yc.mean() if yc.size else np.nan
        se = lo = hi = np.nan
        if yt.size > 1 and yc.size > 1:
            e = stats.diff_in_proportions(rt, yt.size, rc, yc.size, alpha)
            se, lo, hi = e.se, e.ci_low, e.ci_high
        rows.append({
            "bin": b + 1, "score_min": float(score[in_bin].min()), "score_max": float(score[in_bin].max()),
            "n_random_target": int(yt.size), "n_control": int(yc.size),
            "rate_random_target": rt, "rate_control": rc, "uplift": rt - rc, "se": se,
            "ci_low": lo, "ci_high": hi,
            "offered_share_targeted": float(offer[tg].mean()) if tg.any() else np.nan,
        })
    return pd.DataFrame(rows)


def model_quality(joined: pd.DataFrame, k: float, n_boot: int, seed: int, alpha: float) -> dict[str, Any]:
    """Qini AUC and uplift@k of the campaign's scores on random_target + control, with bootstrap CIs."""
    sub = joined[joined["group"].isin(["random_target", "control"])]
    y = sub["response"].to_numpy(dtype=float)
    u = sub["score"].to_numpy(dtype=float)
    t = (sub["group"] == "random_target").to_numpy(dtype=float)
    out: dict[str, Any] = {"n": int(len(sub)), "n_treatment": int(t.sum()), "n_control": int(len(t) - t.sum()), "k": k}
    for name, fn in (("qini_auc", lambda a, b, c: metrics.qini_auc(a, b, c)),
                     ("uplift_at_k", lambda a, b, c: metrics.uplift_at_k(a, b, c, k=k))):
        try:
            point = float(fn(y, u, t))
        except (DataValidationError, ConfigError) as exc:
            out[name] = {"estimate": None, "ci_low": None, "ci_high": None, "error": str(exc)}
            continue
        lo = hi = None
        if n_boot >= 2:
            try:
                _, lo, hi = metrics.bootstrap_ci(fn, y, u, t, n_boot=n_boot, seed=seed, alpha=alpha, stratify=t)
            except (DataValidationError, ConfigError):
                pass
        out[name] = {"estimate": point, "ci_low": lo, "ci_high": hi}
    return out


def evaluate_campaign(joined: pd.DataFrame, manifest: dict, cfg: EvaluateConfig) -> dict[str, Any]:
    """Every estimand of the evaluation as a JSON-ready dict (see the module docstring)."""
    alpha = cfg.alpha
    cutoff = score_cutoff(manifest, joined)
    group = joined["group"].to_numpy()
    above = joined["score"].to_numpy(dtype=float) >= cutoff
    offer = joined["offer"].to_numpy(dtype=bool)
    t_above, c_above = (group == "targeted") & above, (group == "control") & above
    rt, ctrl = group == "random_target", group == "control"
    n_offers = int((offer & (group == "targeted")).sum())
    n_offers_random = int((offer & rt).sum())

    a = _pair(joined, t_above, c_above, alpha, "targeted vs control above the threshold")
    b = _pair(joined, rt, ctrl, alpha, "random_target vs control")
    c = {col: model_value(joined[col].to_numpy()[t_above], joined[col].to_numpy()[c_above],
                          joined[col].to_numpy()[rt], joined[col].to_numpy()[ctrl], alpha)
         for col in ("response", "revenue")}
    margin, cost = economics(manifest, cfg)

    def _profit(eff: dict[str, Effect], offers: int) -> dict[str, Any]:
        out: dict[str, Any] = {"offers": offers, "contact_cost_total": offers * cost}
        out["by_revenue_total"] = scaled(eff["revenue"], offers, -offers * cost)
        out["by_revenue_per_offer"] = scaled(eff["revenue"], 1.0, -cost)
        if margin is not None:
            out["by_margin_total"] = scaled(eff["response"], offers * margin, -offers * cost)
            out["by_margin_per_offer"] = scaled(eff["response"], margin, -cost)
        return out

    counts = {g: int((group == g).sum()) for g in GROUPS}
    planned = {g: float(v) for g, v in (manifest.get("groups") or {}).items()}
    srm = srm_check(counts, planned, cfg.srm_alpha)

    mismatch_offer = int((t_above & ~offer).sum() + ((group == "targeted") & ~above & offer).sum())
    return {
        "campaign_id": manifest.get("campaign_id"),
        "model": manifest.get("model"),
        "alpha": alpha,
        "score_cutoff": cutoff,
        "n_clients": int(len(joined)),
        "groups": counts,
        "offers": {"targeted": n_offers, "random_target": n_offers_random,
                   "targeted_above_cutoff_without_offer_or_below_with_offer": mismatch_offer},
        "targeted_vs_control": {
            "response": a["response"].to_dict(), "revenue": a["revenue"].to_dict(),
            "incremental_responses_total": scaled(a["response"], n_offers),
            "incremental_revenue_total": scaled(a["revenue"], n_offers),
        },
        "random_target_vs_control": {
            "response": b["response"].to_dict(), "revenue": b["revenue"].to_dict(),
            "incremental_responses_total": scaled(b["response"], n_offers_random),
            "incremental_revenue_total": scaled(b["revenue"], n_offers_random),
        },
        "targeted_group_vs_control": {
            k: v.to_dict() for k, v in _pair(joined, group == "targeted", ctrl, alpha, "targeted group vs control").items()
        },
        "model_value_per_offer": {
            "response": c["response"].to_dict(), "revenue": c["revenue"].to_dict(),
            "incremental_responses_total": scaled(c["response"], n_offers),
        },
        "profit": {"margin": margin, "contact_cost": cost,
                   "targeted": _profit(a, n_offers), "random_target": _profit(b, n_offers_random)},
        "srm": srm,
        "model_quality": model_quality(joined, cfg.k, cfg.n_boot, cfg.seed, alpha),
    }
