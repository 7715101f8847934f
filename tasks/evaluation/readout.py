"""Evaluation of a frozen campaign against its random control group.

Every client is analysed in the group it was assigned to (intention to treat), whether or
not the offer reached them. Clients without an outcome record enter as ``missing_responses``
says (:mod:`tasks.evaluation.responses`): by default (``observed``) the estimates use the
clients with an outcome record, which is unbiased when records go missing alike in every
group; that is what the ``missing_outcomes`` and ``sample_ratio`` checks test
(:mod:`tasks.evaluation.checks`), and the primary endpoint also gets worst-case bounds that
fill every missing outcome in the least and the most favourable way.

Comparisons, each for response (difference of rates) and revenue (difference of means):

(a) ``targeted_vs_control``, the PRIMARY endpoint on response: targeted clients with score at
    or above the campaign's threshold (who got the offer) against control clients above the
    same threshold (who would have got it). Both are selected by the same score rule out of two
    random groups, so this is an unbiased estimate of the offer's effect on the clients the
    model chose.
(b) ``random_target_vs_control``: everyone in random_target got the offer, nobody in control.
(c) ``targeted_group_vs_control``: the whole targeted group (offered or not) against control.
(d) ``model_value_per_offer``: (a) minus (b), what the model adds per offer over random
    targeting. (a) and (b) share the control group, so the variance of the difference
    subtracts that covariance: ``Var(a) + Var(b) - 2 v(control above) / n(control)``.

Everything except the primary endpoint is secondary: its p-values are Holm-adjusted as one
family (:func:`tasks.analytics.stats.holm_adjusted`). Rates get Wilson intervals and
differences of rates Newcombe's when a cell has under ``small_cell`` responders or
non-responders (:func:`tasks.analytics.stats.rate_difference`). Revenue is zero for most
clients and heavy-tailed where it is not: a small arm with a few dozen buyers usually lacks the
rare large baskets, and then its own variance is too low just when its mean is too low. Its
intervals therefore take each arm's variance from the arm's share of buyers and the amounts of
both arms' buyers (:func:`tasks.analytics.stats.diff_in_amounts`; ``revenue_variance=welch``
for Welch's); benchmarks/evaluation_validity.py measures their coverage.

Where the responses say which offers were delivered, a per-protocol comparison (delivered
offers only) is reported beside the intention-to-treat one; it is not randomised (who gets an
offer delivered is not random) and only descriptive.

Profit = incremental responses x margin - offers x contact cost, with margin and cost from the
evaluation config or the campaign's. Without a margin there is no profit: the report gives
incremental revenue, and revenue net of contact costs, under that name.

Also: the model's Qini AUC and uplift@k on random_target + control (a fresh randomised
experiment) and an uplift-by-score-decile table. The Markdown report and the plots are
rendered by :mod:`tasks.evaluation.report`.
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
from tasks.campaign.policy import is_strict, offer_mask
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.layout import CampaignPaths
from tasks.evaluation.checks import run_checks
from tasks.evaluation.responses import MISSING_POLICIES

GROUPS = ("targeted", "random_target", "control")
CAMPAIGN_COLUMNS = ("client_id", "group", "offer", "score")
PRIMARY = ("targeted_vs_control", "response")
REVENUE_VARIANCES = ("pooled_amounts", "welch")
COMPARISONS = {
    "targeted_vs_control": "targeted above the cutoff vs control above the cutoff",
    "random_target_vs_control": "random_target vs control",
    "targeted_group_vs_control": "whole targeted group vs control",
    "model_value_per_offer": "model vs random targeting, per offer",
}


@dataclass
class EvaluateConfig:
    """Settings of an evaluation; the values live in ``conf/evaluate/default.yaml`` (key ``evaluate``)."""

    alpha: float
    srm_alpha: float
    missing_responses: str
    positive: str | None
    strict: bool
    k: float
    bins: int
    n_boot: int
    revenue_variance: str
    small_cell: int
    seed: int
    margin: float | None
    contact_cost: float | None
    currency: str

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"config 'evaluate', key '{key}': {why}")

        if not 0 < self.alpha < 1:
            raise bad("alpha", f"must be in (0, 1), got {self.alpha}")
        if not 0 < self.srm_alpha < 1:
            raise bad("srm_alpha", f"must be in (0, 1), got {self.srm_alpha}")
        if self.missing_responses not in MISSING_POLICIES:
            raise bad("missing_responses", f"must be one of {list(MISSING_POLICIES)}, got {self.missing_responses!r}")
        if not 0 < self.k < 1:
            raise bad("k", f"must be a fraction in (0, 1), got {self.k}")
        if self.bins < 2:
            raise bad("bins", f"must be at least 2, got {self.bins}")
        if self.revenue_variance not in REVENUE_VARIANCES:
            raise bad("revenue_variance", f"must be one of {list(REVENUE_VARIANCES)}, got {self.revenue_variance!r}")
        if self.small_cell < 0:
            raise bad("small_cell", f"must be >= 0, got {self.small_cell}")


# --------------------------------------------------------------------------- statistics


def unit_variance(y: np.ndarray) -> float:
    """Per-client outcome variance as :func:`tasks.analytics.stats.diff_in_means` uses it:
    p(1 - p) for 0/1 outcomes, the sample variance (ddof=1) otherwise."""
    y = np.asarray(y, dtype="float64")
    if np.all((y == 0) | (y == 1)):
        m = float(y.mean())
        return m * (1.0 - m)
    return float(y.var(ddof=1))


def _enough(arrays: dict[str, np.ndarray], where: str) -> None:
    for name, arr in arrays.items():
        if len(arr) < 2:
            raise DataValidationError(
                "responses", None, f"{where}: the {name} sample has {len(arr)} client(s) with an outcome; "
                "at least 2 are needed")


def diff_in_means(y_t: np.ndarray, y_c: np.ndarray, alpha: float = 0.05, where: str = "effect") -> Effect:
    """:func:`tasks.analytics.stats.diff_in_means` with a message naming the comparison when an arm is too small."""
    _enough({"treated": y_t, "control": y_c}, where)
    return stats.diff_in_means(y_t, y_c, alpha)


def rate_effect(y_t: np.ndarray, y_c: np.ndarray, alpha: float, small_cell: int, where: str) -> Effect:
    """Difference of the response rates of two arms of 0/1 outcomes (:func:`tasks.analytics.stats.rate_difference`)."""
    _enough({"treated": y_t, "control": y_c}, where)
    return stats.rate_difference(int(np.sum(y_t)), len(y_t), int(np.sum(y_c)), len(y_c), alpha, small_cell)


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


def scaled(effect: Effect | dict, factor: float, shift: float = 0.0) -> dict[str, float]:
    """``factor * effect + shift`` with its interval (a linear transform of the estimate)."""
    e = effect if isinstance(effect, dict) else effect.to_dict()
    lo, hi = sorted((factor * e["ci_low"] + shift, factor * e["ci_high"] + shift))
    return {"estimate": factor * e["estimate"] + shift, "ci_low": lo, "ci_high": hi,
            "se": abs(factor) * e["se"], "p_value": e["p_value"]}


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


# --------------------------------------------------------------------------- the design


def design_masks(joined: pd.DataFrame, manifest: dict, cutoff: float) -> dict[str, np.ndarray]:
    """Masks of ``joined`` for every arm of the comparisons, all as assigned (intention to treat).

    ``above``: the score passes the campaign's rule at ``cutoff`` (``>`` for the profit policy,
    ``>=`` otherwise), so control clients above are the ones the policy would have offered.
    """
    group = joined["group"].to_numpy()
    strict = is_strict(str((manifest.get("policy") or {}).get("kind", "")))
    above = offer_mask(joined["score"].to_numpy(dtype=float), cutoff, strict)
    targeted, control, random = group == "targeted", group == "control", group == "random_target"
    return {"above": above, "targeted": targeted, "control": control, "random_target": random,
            "t_above": targeted & above, "c_above": control & above}


def _arms(comparison: str, m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return {"targeted_vs_control": (m["t_above"], m["c_above"]),
            "random_target_vs_control": (m["random_target"], m["control"]),
            "targeted_group_vs_control": (m["targeted"], m["control"])}[comparison]


def response_effects(y: np.ndarray, m: dict[str, np.ndarray], cfg: EvaluateConfig) -> dict[str, Effect]:
    """Each comparison's difference of response rates on clients with an outcome (``y`` 0/1)."""
    out = {}
    for comp in ("targeted_vs_control", "random_target_vs_control", "targeted_group_vs_control"):
        t, c = _arms(comp, m)
        out[comp] = rate_effect(y[t], y[c], cfg.alpha, cfg.small_cell, f"{COMPARISONS[comp]} (response)")
    out["model_value_per_offer"] = model_value(y[m["t_above"]], y[m["c_above"]], y[m["random_target"]],
                                               y[m["control"]], cfg.alpha)
    return out


def revenue_effects(y: np.ndarray, m: dict[str, np.ndarray], cfg: EvaluateConfig) -> dict[str, Effect]:
    """Each comparison's difference of mean revenue per client.

    ``cfg.revenue_variance="pooled_amounts"`` (default): :func:`tasks.analytics.stats.diff_in_amounts`,
    each arm's variance from its share of buyers and the amounts of both arms' buyers, which keeps
    its coverage when an arm has few buyers and the amounts are heavy-tailed (Welch's variance is
    too low exactly when a small arm missed the rare large baskets). ``"welch"``: Welch's t.
    The model value uses the same variances in the shared-control formula of :func:`model_value`.
    """
    out: dict[str, Effect] = {}
    welch = cfg.revenue_variance == "welch"
    for comp in ("targeted_vs_control", "random_target_vs_control", "targeted_group_vs_control"):
        t, c = _arms(comp, m)
        _enough({"treated": y[t], "control": y[c]}, f"{COMPARISONS[comp]} (revenue)")
        out[comp] = stats.diff_in_means(y[t], y[c], cfg.alpha) if welch else stats.diff_in_amounts(y[t], y[c], cfg.alpha)
    ta, ca, rt, ctrl = (y[m[k]] for k in ("t_above", "c_above", "random_target", "control"))
    if welch:
        out["model_value_per_offer"] = model_value(ta, ca, rt, ctrl, cfg.alpha)
        return out
    a, b = out["targeted_vs_control"], out["random_target_vs_control"]
    m1, m2 = stats.amount_moments(ta, ca)
    var = a.se**2 + b.se**2 - 2.0 * stats.amount_variance(ca, m1, m2) / len(ctrl)
    out["model_value_per_offer"] = stats.normal_effect(
        a.estimate - b.estimate, math.sqrt(max(var, 0.0)), cfg.alpha, a.n_t, b.n_t, a.estimate, b.estimate,
        "difference of two effects sharing control (variances from pooled amounts; normal)")
    return out


def group_rates(y: np.ndarray, m: dict[str, np.ndarray], alpha: float) -> list[dict[str, Any]]:
    """Response rate of each arm with its Wilson interval."""
    arms = (("targeted above the cutoff (offered)", m["t_above"]), ("targeted below the cutoff", m["targeted"] & ~m["above"]),
            ("random_target (all offered)", m["random_target"]), ("control above the cutoff", m["c_above"]),
            ("control (all)", m["control"]))
    rows = []
    for name, mask in arms:
        n, k = int(mask.sum()), int(y[mask].sum())
        lo, hi = stats.wilson_interval(k, n, alpha) if n else (math.nan, math.nan)
        rows.append({"arm": name, "clients": n, "responders": k, "rate": k / n if n else math.nan,
                     "ci_low": lo, "ci_high": hi})
    return rows


def missing_bounds(joined: pd.DataFrame, m: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Worst-case bounds of the primary effect over every way the missing outcomes could be:
    all missing treated responses 0 and missing control responses 1 (lower), and the reverse
    (upper), on every assigned client of the two arms. None when no outcome is missing there."""
    has = joined["has_outcome"].to_numpy(dtype=bool)
    y = np.nan_to_num(joined["response"].to_numpy(dtype="float64"))
    t, c = m["t_above"], m["c_above"]
    miss_t, miss_c = int((t & ~has).sum()), int((c & ~has).sum())
    if miss_t + miss_c == 0:
        return None
    n_t, n_c = int(t.sum()), int(c.sum())
    k_t, k_c = int(y[t & has].sum()), int(y[c & has].sum())
    return {"missing_treated": miss_t, "missing_control": miss_c, "assigned_treated": n_t, "assigned_control": n_c,
            "lower": k_t / n_t - (k_c + miss_c) / n_c, "upper": (k_t + miss_t) / n_t - k_c / n_c,
            "note": "every missing outcome filled in the least (lower) and the most (upper) favourable way; "
                    "no sampling error included"}


def per_protocol(a: pd.DataFrame, m: dict[str, np.ndarray], cfg: EvaluateConfig) -> dict[str, Any] | None:
    """Offered clients whose offer was delivered against the control arm (descriptive, not randomised).
    None when the responses do not say which offers were delivered."""
    delivered = a["delivered"].to_numpy(dtype="float64")
    offered = m["t_above"] | m["random_target"]
    if np.isnan(delivered[offered]).all():
        return None
    y = a["response"].to_numpy(dtype="float64")
    rev = a["revenue"].to_numpy(dtype="float64")
    out: dict[str, Any] = {"note": "delivered offers only: not randomised (whether an offer is delivered is not "
                                   "random), so this is descriptive; the intention-to-treat effects are the estimates"}
    for comp in ("targeted_vs_control", "random_target_vs_control"):
        t, c = _arms(comp, m)
        t = t & (delivered == 1)
        if t.sum() < 2 or c.sum() < 2:
            out[comp] = None
            continue
        entry = {"response": rate_effect(y[t], y[c], cfg.alpha, cfg.small_cell, f"per protocol {comp}").to_dict(),
                 "delivered": int(t.sum()), "unknown_delivery": int((_arms(comp, m)[0] & np.isnan(delivered)).sum())}
        if not np.isnan(rev).all():
            entry["revenue"] = diff_in_means(rev[t], rev[c], cfg.alpha, f"per protocol {comp}").to_dict()
        out[comp] = entry
    return out


def secondary_family(result: dict[str, Any], alpha: float) -> list[dict[str, Any]]:
    """Holm adjustment of every comparison but the primary one, as one family; also writes
    ``p_holm`` and ``significant`` into each effect of ``result``."""
    family = [(comp, out) for comp in COMPARISONS for out in ("response", "revenue")
              if (comp, out) != PRIMARY and result[comp].get(out) is not None]
    adjusted = stats.holm_adjusted([result[c][o]["p_value"] for c, o in family]) if family else []
    rows = []
    for (comp, out), p_adj in zip(family, adjusted):
        e = result[comp][out]
        e.update(p_holm=float(p_adj), significant=bool(p_adj <= alpha), role="secondary")
        rows.append({"comparison": comp, "outcome": out, "estimate": e["estimate"], "ci_low": e["ci_low"],
                     "ci_high": e["ci_high"], "p_value": e["p_value"], "p_holm": float(p_adj),
                     "significant": bool(p_adj <= alpha)})
    return rows


def decile_table(joined: pd.DataFrame, bins: int = 10, alpha: float = 0.05,
                 small_cell: int = stats.SMALL_CELL_EVENTS) -> pd.DataFrame:
    """Uplift of random_target over control in each score bin of the campaign.

    Bins are equal-count slices of the clients with an outcome, ranked by descending score
    (bin 1 = best); within each bin the random_target and control response rates are compared
    (:func:`tasks.analytics.stats.rate_difference`: Newcombe's interval in small cells; no
    interval when an arm of the bin holds fewer than two clients). Also lists each bin's score
    range and the share of its targeted clients who got the offer.
    """
    if "has_outcome" in joined:
        joined = joined[joined["has_outcome"].to_numpy(dtype=bool) | joined["response"].notna().to_numpy()]
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
            e = stats.rate_difference(int(yt.sum()), yt.size, int(yc.sum()), yc.size, alpha, small_cell)
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
    """Qini AUC and uplift@k of the campaign's scores on random_target + control (clients with
    an outcome), with bootstrap CIs."""
    sub = joined[joined["group"].isin(["random_target", "control"]) & joined["response"].notna()]
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


def profit(resp: dict[str, Any], rev: dict[str, Any] | None, offers: int, margin: float | None,
           cost: float) -> dict[str, Any]:
    """Money of one arm's offers: ``profit`` = incremental responses x margin - offers x cost
    (only with a margin); ``incremental_revenue`` and ``revenue_net_of_contact_cost`` (only
    with revenue; not a profit: revenue is not margin)."""
    out: dict[str, Any] = {"offers": offers, "contact_cost_total": offers * cost,
                           "incremental_responses": scaled(resp, offers)}
    if margin is not None:
        out["profit"] = scaled(resp, offers * margin, -offers * cost)
        out["profit_per_offer"] = scaled(resp, margin, -cost)
    if rev is not None:
        out["incremental_revenue"] = scaled(rev, offers)
        out["revenue_net_of_contact_cost"] = scaled(rev, offers, -offers * cost)
    return out


def analysed_mask(joined: pd.DataFrame, policy: str) -> np.ndarray:
    """Clients who enter the estimates: those with an outcome, or everyone when missing rows
    count as non-responses."""
    if policy == "non_responder" or "has_outcome" not in joined:
        return np.ones(len(joined), dtype=bool)
    return joined["has_outcome"].to_numpy(dtype=bool)


def evaluate_campaign(joined: pd.DataFrame, manifest: dict, cfg: EvaluateConfig) -> dict[str, Any]:
    """Every estimand and check of the evaluation as a JSON-ready dict (see the module docstring).

    ``joined``: :func:`tasks.evaluation.responses.join_responses` of the campaign table.
    """
    if "has_outcome" not in joined:
        joined = joined.assign(has_outcome=joined["response"].notna().to_numpy())
    if "delivered" not in joined:
        joined = joined.assign(delivered=np.nan)
    if "revenue" not in joined:
        joined = joined.assign(revenue=np.nan)
    cutoff = score_cutoff(manifest, joined)
    m_all = design_masks(joined, manifest, cutoff)
    analysed = analysed_mask(joined, cfg.missing_responses)
    a = joined[analysed]
    m = {k: v[analysed] for k, v in m_all.items()}
    y = a["response"].to_numpy(dtype="float64")
    rev_values = a["revenue"].to_numpy(dtype="float64")
    has_revenue = len(a) > 0 and not np.isnan(rev_values).any()

    resp = response_effects(y, m, cfg)
    rev = revenue_effects(rev_values, m, cfg) if has_revenue else {}
    group = joined["group"].to_numpy()
    offers = joined["offer"].to_numpy(dtype=bool)
    n_offers = int(m_all["t_above"].sum())
    n_offers_random = int(m_all["random_target"].sum())
    counts = {g: int((group == g).sum()) for g in GROUPS}
    result: dict[str, Any] = {
        "campaign_id": manifest.get("campaign_id"),
        "model": manifest.get("model"),
        "alpha": cfg.alpha,
        "score_cutoff": cutoff,
        "estimand": "intention to treat: every client in the group it was assigned to, delivered or not",
        "missing_responses": cfg.missing_responses,
        "n_clients": int(len(joined)),
        "n_analysed": int(analysed.sum()),
        "groups": counts,
        "analysed_groups": {g: int((analysed & (group == g)).sum()) for g in GROUPS},
        "outcomes": {"with_record": int(joined["has_outcome"].sum()),
                     "without_record": int((~joined["has_outcome"].to_numpy(dtype=bool)).sum()),
                     "counted_as_non_responders": int((~joined["has_outcome"].to_numpy(dtype=bool)).sum())
                     if cfg.missing_responses == "non_responder" else 0},
        "offers": {"targeted": n_offers, "random_target": n_offers_random,
                   "targeted_above_cutoff_without_offer_or_below_with_offer":
                       int((m_all["t_above"] & ~offers).sum() + (m_all["targeted"] & ~m_all["above"] & offers).sum())},
    }
    for comp in COMPARISONS:
        result[comp] = {"label": COMPARISONS[comp], "response": resp[comp].to_dict(),
                        "revenue": rev[comp].to_dict() if comp in rev else None}
    primary = result[PRIMARY[0]][PRIMARY[1]]
    # the decision is the interval's: significant when it leaves out 0
    primary.update(role="primary", significant=bool(not primary["ci_low"] <= 0 <= primary["ci_high"]))
    for comp, n in (("targeted_vs_control", n_offers), ("random_target_vs_control", n_offers_random),
                    ("model_value_per_offer", n_offers)):
        result[comp]["incremental_responses_total"] = scaled(result[comp]["response"], n)
        if result[comp]["revenue"] is not None:
            result[comp]["incremental_revenue_total"] = scaled(result[comp]["revenue"], n)
    result["primary"] = {"comparison": PRIMARY[0], "outcome": PRIMARY[1], "label": COMPARISONS[PRIMARY[0]],
                         "offers": n_offers, **{k: primary[k] for k in ("estimate", "ci_low", "ci_high", "p_value",
                                                                        "significant", "method")}}
    result["secondary"] = secondary_family(result, cfg.alpha)
    result["group_rates"] = group_rates(y, m, cfg.alpha)
    result["missing_sensitivity"] = (missing_bounds(joined, m_all)
                                     if cfg.missing_responses == "observed" else None)
    result["per_protocol"] = per_protocol(a, m, cfg)
    margin, cost = economics(manifest, cfg)
    result["profit"] = {
        "margin": margin, "contact_cost": cost, "measure": "profit" if margin is not None else "revenue",
        "targeted": profit(result["targeted_vs_control"]["response"], result["targeted_vs_control"]["revenue"],
                           n_offers, margin, cost),
        "random_target": profit(result["random_target_vs_control"]["response"],
                                result["random_target_vs_control"]["revenue"], n_offers_random, margin, cost),
    }
    planned = {g: float(v) for g, v in (manifest.get("groups") or {}).items()}
    result["checks"] = run_checks(joined, planned, cfg.srm_alpha, cfg.missing_responses, analysed,
                                  {"targeted": m_all["t_above"], "random_target": m_all["random_target"]})
    result["model_quality"] = model_quality(a, cfg.k, cfg.n_boot, cfg.seed, cfg.alpha)
    return result
