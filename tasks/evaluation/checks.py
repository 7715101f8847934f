"""Checks that the experiment behind a campaign's readout held, each able to fire.

Groups are assigned with exact sizes, so a test of the assigned group sizes cannot fail. What
breaks an experiment happens after assignment: offers that bounce or are filtered by the
sending system, clients who opt out before the send, outcome records that never arrive, and it
is usually uneven between groups. The checks look at that:

- ``sample_ratio``: the clients analysed (those with an outcome record) per group against the
  design shares frozen in the campaign's manifest, chi-square goodness of fit
  (:func:`tasks.analytics.stats.srm_test`);
- ``missing_outcomes``: does the share of campaign clients without an outcome record differ
  between groups? Chi-square test of group x missing (:func:`tasks.analytics.stats.equal_shares_test`).
  Not applicable when missing rows count as non-responses (``missing_responses=non_responder``):
  then a missing row is an outcome, not a loss;
- ``undelivered``: where the responses say which offers were delivered, does the share of
  undelivered offers differ between the offered groups (targeted above the cutoff,
  random_target)?
- ``control_contacted``: control clients marked as delivered an offer (any is a failure: the
  control group no longer shows what happens without the offer).

Every test uses one level, ``srm_alpha`` (default :data:`tasks.analytics.stats.SRM_ALPHA`).
:func:`run_checks` returns each check's verdict (``pass`` / ``fail`` / ``not_applicable``), its
statistic, a one-line ``detail`` and the names of the failed checks.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from tasks.analytics import stats

GROUPS = ("targeted", "random_target", "control")
LABELS = {
    "sample_ratio": "sample ratio of the clients analysed",
    "missing_outcomes": "missing outcome records",
    "undelivered": "undelivered offers",
    "control_contacted": "control clients contacted",
}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _p(p: float) -> str:
    return f"{p:.3g}"


def srm_check(counts: Mapping[str, int], planned: Mapping[str, float], alpha: float) -> dict[str, Any]:
    """Sample-ratio check of ``counts`` per group against the planned shares.

    Groups planned with share 0 are left out of the chi-square test; any client in such a group
    is itself a mismatch. ``mismatch`` is True when the p-value is below ``alpha``; None (not
    run) with fewer than two planned groups.
    """
    out: dict[str, Any] = {"observed": dict(counts), "expected_share": dict(planned), "alpha": alpha}
    positive = {g: float(s) for g, s in planned.items() if s and s > 0}
    if len(positive) < 2 or sum(int(counts.get(g, 0)) for g in positive) == 0:
        return dict(out, chi2=None, p_value=None, mismatch=None,
                    note="fewer than two groups with a planned share and clients")
    total = sum(positive.values())
    chi2, p = stats.srm_test({g: int(counts.get(g, 0)) for g in positive},
                             {g: s / total for g, s in positive.items()})
    unplanned = {g: n for g, n in counts.items() if g not in positive and n > 0}
    out.update(chi2=chi2, p_value=p, mismatch=bool(p < alpha or unplanned))
    if unplanned:
        out["note"] = f"clients in groups without a planned share: {unplanned}"
    return out


def _verdict(name: str, failed: bool | None, detail: str, **extra: Any) -> dict[str, Any]:
    status = "not_applicable" if failed is None else ("fail" if failed else "pass")
    return {"name": name, "label": LABELS[name], "status": status, "detail": detail, **extra}


def sample_ratio(joined: pd.DataFrame, planned: Mapping[str, float], alpha: float, analysed: np.ndarray) -> dict:
    """``sample_ratio`` on the clients analysed (``analysed``: a mask of ``joined``)."""
    group = joined["group"].to_numpy()
    counts = {g: int((analysed & (group == g)).sum()) for g in GROUPS}
    srm = srm_check(counts, {g: float(planned.get(g, 0.0)) for g in GROUPS}, alpha)
    if srm["p_value"] is None:
        return _verdict("sample_ratio", None, f"not run: {srm.get('note')}", **srm)
    shares = ", ".join(f"{g} {counts[g]:,} ({_pct(counts[g] / max(sum(counts.values()), 1))} vs "
                       f"{_pct(float(planned.get(g, 0)))})" for g in GROUPS)
    detail = (f"clients analysed per group: {shares}; chi-square {srm['chi2']:.2f}, p {_p(srm['p_value'])}"
              f" ({'below' if srm['mismatch'] else 'not below'} {alpha})")
    if srm.get("note"):
        detail += f"; {srm['note']}"
    return _verdict("sample_ratio", bool(srm["mismatch"]), detail, **srm)


def missing_outcomes(joined: pd.DataFrame, alpha: float, policy: str) -> dict:
    """``missing_outcomes``: the share of clients without an outcome record, compared across groups."""
    group = joined["group"].to_numpy()
    absent = ~joined["has_outcome"].to_numpy(dtype=bool)
    miss = {g: int((absent & (group == g)).sum()) for g in GROUPS}
    total = {g: int((group == g).sum()) for g in GROUPS}
    shares = {g: (miss[g] / total[g] if total[g] else None) for g in GROUPS}
    base = {"missing": miss, "assigned": total, "share": shares, "alpha": alpha}
    text = ", ".join(f"{g} {miss[g]:,} of {total[g]:,} ({_pct(shares[g] or 0.0)})" for g in GROUPS)
    if policy == "non_responder":
        return _verdict("missing_outcomes", None,
                        f"missing rows count as non-responses (evaluate.missing_responses=non_responder), so "
                        f"their share is an outcome, not a loss; missing: {text}", chi2=None, p_value=None, **base)
    chi2, p = stats.equal_shares_test(miss, total)
    if sum(miss.values()) == 0:
        return _verdict("missing_outcomes", False, "every client of the campaign has an outcome record",
                        chi2=chi2, p_value=p, **base)
    return _verdict("missing_outcomes", p < alpha,
                    f"clients without an outcome record: {text}; chi-square {chi2:.2f}, p {_p(p)} "
                    f"({'below' if p < alpha else 'not below'} {alpha})", chi2=chi2, p_value=p, **base)


def undelivered(joined: pd.DataFrame, alpha: float, offered_groups: Mapping[str, np.ndarray]) -> dict:
    """``undelivered``: among offered clients whose delivery is known, is the undelivered share the
    same in every offered group? ``offered_groups``: name -> mask of ``joined``."""
    delivered = joined["delivered"].to_numpy(dtype="float64") if "delivered" in joined else np.full(len(joined), np.nan)
    known = ~np.isnan(delivered)
    lost = {g: int((m & known & (delivered == 0)).sum()) for g, m in offered_groups.items()}
    total = {g: int((m & known).sum()) for g, m in offered_groups.items()}
    base = {"undelivered": lost, "known": total, "alpha": alpha}
    if sum(total.values()) == 0:
        return _verdict("undelivered", None, "the responses do not say which offers were delivered",
                        chi2=None, p_value=None, **base)
    chi2, p = stats.equal_shares_test(lost, total)
    text = ", ".join(f"{g} {lost[g]:,} of {total[g]:,} ({_pct(lost[g] / total[g] if total[g] else 0.0)})"
                     for g in offered_groups)
    return _verdict("undelivered", p < alpha, f"undelivered offers: {text}; chi-square {chi2:.2f}, p {_p(p)} "
                    f"({'below' if p < alpha else 'not below'} {alpha})", chi2=chi2, p_value=p, **base)


def control_contacted(joined: pd.DataFrame) -> dict:
    """``control_contacted``: control clients the responses mark as delivered an offer."""
    if "delivered" not in joined or joined["delivered"].isna().all():
        return _verdict("control_contacted", None, "the responses do not say which offers were delivered", count=None)
    hit = ((joined["group"] == "control") & (joined["delivered"] == 1)).to_numpy()
    ids = joined.loc[hit, "client_id"].head(5).tolist()
    detail = ("no control client is marked as delivered an offer" if not hit.any() else
              f"{int(hit.sum()):,} control client(s) marked as delivered an offer (e.g. client ids {ids}): "
              "the control group no longer shows what happens without it")
    return _verdict("control_contacted", bool(hit.any()), detail, count=int(hit.sum()))


def run_checks(joined: pd.DataFrame, planned: Mapping[str, float], alpha: float, policy: str,
               analysed: np.ndarray, offered_groups: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Every check of the module docstring: ``{"alpha", "items": {name: verdict}, "failed": [names]}``."""
    items = {
        "sample_ratio": sample_ratio(joined, planned, alpha, analysed),
        "missing_outcomes": missing_outcomes(joined, alpha, policy),
        "undelivered": undelivered(joined, alpha, offered_groups),
        "control_contacted": control_contacted(joined),
    }
    return {"alpha": alpha, "items": items, "failed": [k for k, v in items.items() if v["status"] == "fail"]}


def failure_line(checks: Mapping[str, Any]) -> str:
    """One line naming each failed check and why (for ``evaluate.strict``)."""
    parts = [f"{name} ({checks['items'][name]['detail']})" for name in checks["failed"]]
    return "evaluation check(s) failed: " + "; ".join(parts)
