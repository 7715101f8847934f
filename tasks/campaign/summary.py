"""Markdown of a campaign: summary.md of a frozen campaign and the per-stage summaries.

summary.md also states what the design can detect (:func:`design_power`): from the group sizes
and the base response rate of the dataset's past campaigns (their control arms), the smallest
effect on the response rate each comparison of the evaluation detects with 80% power at the 5%
level, and a warning, with the control share that would do, when the control group is too
small for the effect the model expects (the mean predicted uplift of the offered clients).

Cells are formatted by the shared report helpers (:mod:`tasks.core.report`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.analytics.stats import mde_from_se
from tasks.campaign.config import GROUPS, LEGACY_BALANCE, BalanceConfig
from tasks.campaign.policy import is_strict, offer_mask
from tasks.campaign.stages import StageOutcome
from tasks.core.report import fmt_value, md_table

POWER = 0.8
ALPHA = 0.05


def _fmt(v: Any) -> str:
    return fmt_value(v, missing="none")


def _table(rows: list[dict], columns: list[str]) -> str:
    return md_table(pd.DataFrame(rows, columns=columns), fmt=_fmt)


def _balance_limits(manifest: dict) -> BalanceConfig:
    """The limits the split was checked with (a manifest frozen before they were settings has none)."""
    recorded = (manifest.get("config") or {}).get("balance")
    return BalanceConfig(**recorded) if recorded else LEGACY_BALANCE


def history_base_rate(data_dir: str | Path) -> float | None:
    """Response rate of the control arms of the dataset's past campaigns (``campaign_history``);
    None when the dataset has no campaign history or no control client in it."""
    from tasks.data.tables import table_path

    path = table_path(data_dir, "campaign_history")
    if not path.exists():
        return None
    history = pd.read_parquet(path, columns=["treatment", "response"]) if path.suffix == ".parquet" \
        else pd.read_csv(path, usecols=["treatment", "response"])
    control = history.loc[history["treatment"] == 0, "response"]
    return float(control.mean()) if len(control) else None


def design_power(manifest: dict, table: pd.DataFrame, base_rate: float | None,
                 alpha: float = ALPHA, power: float = POWER) -> dict[str, Any]:
    """Minimum detectable effects (absolute response-rate differences) of the evaluation's
    comparisons for this campaign's groups, with both arms' variance at ``base_rate``.

    ``targeted_vs_control``: offered targeted clients against control clients above the cutoff;
    ``random_target_vs_control``, ``targeted_group_vs_control``; ``model_value_per_offer``: the
    difference of the first two, sharing the control group. ``expected_effect``: the mean score of
    the offered targeted clients for an uplift model (its predicted uplift), None otherwise;
    ``control_too_small``: the first comparison's MDE exceeds it; ``suggested_control_share``:
    the control share (taken from targeted) at which that MDE equals it, None when no share would do.
    """
    group = table["group"].to_numpy()
    cutoff = (manifest.get("threshold") or {}).get("score_cutoff")
    strict = is_strict(str((manifest.get("policy") or {}).get("kind", "")))
    above = offer_mask(table["score"].to_numpy(dtype=float), cutoff, strict)
    n = {"t_above": int(((group == "targeted") & table["offer"].to_numpy(dtype=bool)).sum()),
         "c_above": int(((group == "control") & above).sum()),
         **{g: int((group == g).sum()) for g in GROUPS}}
    out: dict[str, Any] = {"base_rate": base_rate, "alpha": alpha, "power": power, "sizes": n, "mde": {},
                           "expected_effect": None, "control_too_small": None, "suggested_control_share": None}
    if base_rate is None or not 0 < base_rate < 1:
        return out
    v = base_rate * (1 - base_rate)

    def inv(k: int) -> float:
        return 1.0 / k if k > 0 else math.inf

    se = {"targeted_vs_control": math.sqrt(v * (inv(n["t_above"]) + inv(n["c_above"]))),
          "random_target_vs_control": math.sqrt(v * (inv(n["random_target"]) + inv(n["control"]))),
          "targeted_group_vs_control": math.sqrt(v * (inv(n["targeted"]) + inv(n["control"]))),
          "model_value_per_offer": math.sqrt(v * max(inv(n["t_above"]) + inv(n["c_above"]) + inv(n["random_target"])
                                                     - inv(n["control"]), 0.0))}
    out["mde"] = {k: (mde_from_se(x, alpha, power) if math.isfinite(x) else None) for k, x in se.items()}
    if n["t_above"] and not n["c_above"]:
        out["control_too_small"] = True  # no control client above the cutoff: no primary comparison at all
        return out
    if (manifest.get("model") or {}).get("kind") == "uplift" and n["t_above"]:
        offered = (group == "targeted") & table["offer"].to_numpy(dtype=bool)
        expected = float(table["score"].to_numpy(dtype=float)[offered].mean())
        out["expected_effect"] = expected
        mde = out["mde"]["targeted_vs_control"]
        if expected > 0 and mde is not None:
            out["control_too_small"] = bool(mde > expected)
            # control above the cutoff needed so that the MDE equals the expected effect, with the
            # offered targeted clients as they are; the control group keeps its share above the cutoff
            room = (expected / mde_from_se(1.0, alpha, power)) ** 2 / v - 1.0 / n["t_above"]
            share_above = n["c_above"] / n["control"] if n["control"] else 0.0
            if room > 0 and share_above > 0:
                out["suggested_control_share"] = min(1.0, (1.0 / room) / share_above / len(table))
    return out


def _power_lines(power: dict[str, Any] | None) -> list[str]:
    if power is None:
        return []
    lines = ["", "## What the design can detect", ""]
    if not power["mde"]:
        return lines + ["No base response rate is known (the dataset has no campaign history with a control "
                        "arm), so the minimum detectable effects are not computed."]
    n = power["sizes"]
    labels = {"targeted_vs_control": f"offered targeted ({n['t_above']:,}) vs control above the cutoff ({n['c_above']:,})",
              "random_target_vs_control": f"random_target ({n['random_target']:,}) vs control ({n['control']:,})",
              "targeted_group_vs_control": f"whole targeted group ({n['targeted']:,}) vs control ({n['control']:,})",
              "model_value_per_offer": "model vs random targeting, per offer"}
    rows = [{"comparison": labels[k], "minimum detectable effect": "n/a" if v is None else f"{100 * v:.2f} pp"}
            for k, v in power["mde"].items()]
    lines += [f"Smallest difference of response rates each comparison detects with {power['power']:.0%} power at the "
              f"{power['alpha']:.0%} level (two-sided), both arms' variance at the base rate "
              f"{100 * power['base_rate']:.2f}% (control arms of the dataset's past campaigns):", "",
              _table(rows, ["comparison", "minimum detectable effect"])]
    exp = power["expected_effect"]
    if power["control_too_small"] and not n["c_above"]:
        lines += ["", "**Warning: no control client is above the cutoff**, so the primary comparison (offered "
                      "targeted vs control above the cutoff) cannot be made: raise `campaign.groups.control`."]
    elif exp is not None:
        lines += ["", f"The model expects an uplift of {100 * exp:.2f} pp on the offered clients (their mean score)."]
        if power["control_too_small"]:
            share = power["suggested_control_share"]
            hint = (f" A control share of about {share:.2f} (`campaign.groups.control`, taken from targeted) would "
                    "make the two equal." if share is not None else
                    " No control share would detect it with these offers: offer to more clients.")
            lines.append(f"**Warning: the control group is too small** for that effect: the primary comparison "
                         f"detects {100 * power['mde']['targeted_vs_control']:.2f} pp or more.{hint}")
        elif power["control_too_small"] is False:
            lines.append("The control group is large enough to detect it.")
    return lines


def render_summary(manifest: dict, power: dict[str, Any] | None = None) -> str:
    """summary.md of a frozen campaign from its manifest and its :func:`design_power`."""
    m = manifest
    data = m["data"]["name"] + (f" (client table {m['data']['path']}, sha256 {m['data']['sha256'][:12]}...)"
                                if m["data"].get("kind") == "table" else "")
    lines = [f"# Campaign {m['campaign_id']}", "",
             f"- date: {m['campaign_date']}; data: {data}; model: {m['model']['name']} "
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
    lines += _power_lines(power)
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
