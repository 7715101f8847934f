"""Markdown of a campaign: summary.md of a frozen campaign and the per-stage summaries.

Cells are formatted by the shared report helpers (:mod:`tasks.core.report`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.campaign.config import GROUPS, LEGACY_BALANCE, BalanceConfig
from tasks.campaign.stages import StageOutcome
from tasks.core.report import fmt_value, md_table


def _fmt(v: Any) -> str:
    return fmt_value(v, missing="none")


def _table(rows: list[dict], columns: list[str]) -> str:
    return md_table(pd.DataFrame(rows, columns=columns), fmt=_fmt)


def _balance_limits(manifest: dict) -> BalanceConfig:
    """The limits the split was checked with (a manifest frozen before they were settings has none)."""
    recorded = (manifest.get("config") or {}).get("balance")
    return BalanceConfig(**recorded) if recorded else LEGACY_BALANCE


def render_summary(manifest: dict) -> str:
    """summary.md of a frozen campaign from its manifest."""
    m = manifest
    lines = [f"# Campaign {m['campaign_id']}", "",
             f"- date: {m['campaign_date']}; data: {m['data']['name']}; model: {m['model']['name']} "
             f"{m['model']['version']} ({m['model'].get('kind', '')})",
             f"- policy: {m['policy']['kind']} {m['policy']['params']}; threshold score_cutoff: "
             f"{_fmt(m['threshold']['score_cutoff'])}", ""]
    lines += ["## Stages", "",
              _table([{"stage": s, "rows": v["rows"], "seconds": f"{v['seconds']:.2f}"} for s, v in m["stages"].items()],
                     ["stage", "rows", "seconds"])]
    lines += ["", "## Base filters", ""]
    if m["filters"]:
        lines.append(_table([{"filter": f["name"], "rule": f"{f['column']} {f['op']} {f['value']}",
                              "before": f["before"], "removed": f["removed"], "after": f["after"]}
                             for f in m["filters"]], ["filter", "rule", "before", "removed", "after"]))
    else:
        lines.append("No base filters.")
    sub = m["subset"]
    lines += ["", "## Random subset", "",
              (f"{sub['kept']} of {sub['before']} clients kept ({sub['rule']})." if sub["rule"] != "none"
               else f"No subset: all {sub['before']} clients kept.")]
    c = m["counts"]
    groups = [{"group": g, "share": m["groups"].get(g, 0), "clients": c["groups"][g], "offers": c["offers"][g]}
              for g in GROUPS]
    groups.append({"group": "total", "share": 1, "clients": c["clients"], "offers": c["offers_total"]})
    lines += ["", "## Groups and offers", "", _table(groups, ["group", "share", "clients", "offers"]), ""]
    dist_cols = ["group", "n", "mean", "min", "p10", "median", "p90", "max"]
    lines += ["## Score distribution", "", _table(m["score_distribution"], dist_cols)]
    b = m["balance"]
    limits = _balance_limits(m)
    verdict = "balanced" if b["balanced"] else "NOT balanced: check the split"
    lines += ["", "## Balance check", "",
              f"Split is {verdict}: largest |SMD| {b['max_abs_smd']:.4f}; limits per pair "
              f"{b['smd_limits']} ({_fmt(b['smd_limit'])} or {_fmt(limits.smd_z)} standard errors of chance, "
              f"whichever is larger); {len(b['flagged'])} factor(s) flagged; "
              f"sample-ratio chi-square {b['srm_chi2']:.4f}, p = {b['srm_p_value']:.4f} (alarm below {b['srm_alpha']}).", ""]
    if b["smd"]:
        keys = [k for k in b["smd"][0] if k != "factor"]
        top = sorted(b["smd"], key=lambda r: -max((abs(r[k]) for k in keys if np.isfinite(r[k])), default=0))[:10]
        lines.append(_table([{"factor": r["factor"], **{k: f"{r[k]:+.4f}" for k in keys}} for r in top],
                            ["factor", *keys]))
    return "\n".join(lines) + "\n"


def stage_summary(outcome: StageOutcome) -> str:
    """A short Markdown summary of one stage's outcome (published as a Prefect artifact)."""
    head = f"### {outcome.stage}: {outcome.status}\n\nrows: {outcome.rows}; seconds: {outcome.seconds:.2f}\n"
    info = {k: v for k, v in outcome.info.items() if k != "summary"}
    if outcome.stage == "filters" and info.get("filters"):
        rows = [{"filter": f["name"], "before": f["before"], "removed": f["removed"], "after": f["after"]}
                for f in info["filters"]]
        return head + "\n" + _table(rows, ["filter", "before", "removed", "after"]) + "\n"
    if outcome.stage == "split" and "balance" in info:
        b = info["balance"]
        return head + (f"\ngroups: {info['groups']}; balanced: {b['balanced']}; max |SMD| {b['max_abs_smd']:.4f}; "
                       f"SRM p = {b['srm_p_value']:.4f}\n")
    if outcome.stage == "freeze":
        return outcome.info.get("summary", head)
    if info:
        return head + "\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    return head
