"""The evaluation of a campaign as a Markdown report and PNG plots.

Renders the result of :func:`tasks.evaluation.readout.evaluate_campaign` and the table of
:func:`tasks.evaluation.readout.decile_table`; computes nothing new except the Qini curve it
plots. Numbers are formatted with :func:`tasks.core.report.fmt_value` (missing as ``n/a``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.analytics import metrics
from tasks.core.report import fmt_value, md_table, png_bytes

EFFECTS = (("targeted_vs_control", "targeted >= cutoff vs control >= cutoff"),
           ("random_target_vs_control", "random_target vs control"),
           ("targeted_group_vs_control", "whole targeted group vs control"),
           ("model_value_per_offer", "model vs random targeting, per offer"))


def _num(x: Any, digits: int = 4) -> str:
    return fmt_value(x, digits, missing="n/a")


def _ci(low: Any, high: Any, digits: int = 4) -> str:
    return f"[{_num(low, digits)}, {_num(high, digits)}]"


def _effects_table(result: dict[str, Any]) -> str:
    rows = []
    for key, label in EFFECTS:
        for col in ("response", "revenue"):
            e = result[key][col]
            rows.append({"comparison": f"{label} ({col})", "n treated": e["n_t"], "n control": e["n_c"],
                         "mean treated": _num(e["mean_t"]), "mean control": _num(e["mean_c"]),
                         "effect": _num(e["estimate"]), "CI": _ci(e["ci_low"], e["ci_high"]),
                         "p-value": _num(e["p_value"], 3)})
    return md_table(pd.DataFrame(rows), fmt=_num)


def _profit_table(result: dict[str, Any]) -> str:
    rows = []
    for arm in ("targeted", "random_target"):
        p = result["profit"][arm]
        for m in ("by_margin_total", "by_revenue_total"):
            if m in p:
                rows.append({"arm": arm, "offers": p["offers"], "measure": m.replace("_total", "").replace("_", " "),
                             "total": _num(p[m]["estimate"]), "CI": _ci(p[m]["ci_low"], p[m]["ci_high"])})
    return md_table(pd.DataFrame(rows, columns=["arm", "offers", "measure", "total", "CI"]), fmt=_num)


def _decile_table(deciles: pd.DataFrame) -> str:
    rows = [{"bin": r.bin, "score range": f"{_num(r.score_min, 3)} .. {_num(r.score_max, 3)}",
             "n random_target": r.n_random_target, "n control": r.n_control,
             "rate random_target": _num(r.rate_random_target), "rate control": _num(r.rate_control),
             "uplift": _num(r.uplift), "CI": _ci(r.ci_low, r.ci_high)} for r in deciles.itertuples()]
    return md_table(pd.DataFrame(rows), fmt=_num)


def render_report(result: dict[str, Any], deciles: pd.DataFrame, plots: list[str]) -> str:
    """The evaluation as Markdown (report.md and the Prefect artifact)."""
    lvl = int(round((1 - result["alpha"]) * 100))
    srm = result["srm"]
    mq = result["model_quality"]
    a = result["targeted_vs_control"]
    responses, revenue = a["incremental_responses_total"], a["incremental_revenue_total"]
    lines = [
        f"# Evaluation of campaign {result['campaign_id']}",
        "",
        f"Clients: {result['n_clients']} ({', '.join(f'{g} {n}' for g, n in result['groups'].items())}); "
        f"score cutoff {_num(result['score_cutoff'])}; offers to targeted clients: {result['offers']['targeted']}.",
        "",
        f"## Effects ({lvl}% confidence intervals)",
        "",
        _effects_table(result),
        "",
        f"Incremental responses from the targeted offers: {_num(responses['estimate'])} "
        f"{_ci(responses['ci_low'], responses['ci_high'])}; incremental revenue {_num(revenue['estimate'])} "
        f"{_ci(revenue['ci_low'], revenue['ci_high'])}.",
        "",
        "## Profit after contact costs",
        "",
        f"Margin per incremental response: {_num(result['profit']['margin'])}; contact cost per offer: "
        f"{_num(result['profit']['contact_cost'])}.",
        "",
        _profit_table(result),
        "",
        "## Sample-ratio check",
        "",
    ]
    if srm.get("p_value") is None:
        lines.append(f"Not run: {srm.get('note')}.")
    else:
        verdict = "**MISMATCH**: group sizes do not match the configured proportions" if srm["mismatch"] \
            else "group sizes match the configured proportions"
        lines.append(f"Observed {srm['observed']} vs shares {srm['expected_share']}: chi2 {_num(srm['chi2'])}, "
                     f"p {_num(srm['p_value'], 3)} (flag below {srm['alpha']}): {verdict}.")
    lines += ["", "## Model quality on random_target + control", ""]
    for name in ("qini_auc", "uplift_at_k"):
        m = mq[name]
        label = name if name == "qini_auc" else f"uplift@{mq['k']}"
        if m.get("estimate") is None:
            lines.append(f"- {label}: not available ({m.get('error')})")
        else:
            lines.append(f"- {label}: {_num(m['estimate'])} {_ci(m['ci_low'], m['ci_high'])}")
    lines += ["", "## Uplift by score bin (random_target vs control)", "", _decile_table(deciles)]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def make_plots(joined: pd.DataFrame, result: dict[str, Any], deciles: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes of the uplift-by-decile bars, the Qini curve and the group comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    err = np.vstack([deciles["uplift"] - deciles["ci_low"], deciles["ci_high"] - deciles["uplift"]])
    ax.bar(deciles["bin"], deciles["uplift"], yerr=np.nan_to_num(err), capsize=3, color="tab:blue")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("score bin (1 = highest scores)")
    ax.set_ylabel("response rate: random_target - control")
    ax.set_title("Uplift by score decile")
    plots["uplift_by_decile.png"] = png_bytes(fig)

    sub = joined[joined["group"].isin(["random_target", "control"])]
    t = (sub["group"] == "random_target").to_numpy(dtype=float)
    if 0 < t.sum() < len(t):
        x, q = metrics.qini_curve(sub["response"].to_numpy(dtype=float), sub["score"].to_numpy(dtype=float), t)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x, q, label="model")
        ax.plot([0, x[-1]], [0, q[-1]], "--", color="grey", label="random")
        ax.set_xlabel("clients targeted (random_target + control, by score)")
        ax.set_ylabel("incremental responses")
        ax.set_title("Qini curve")
        ax.legend()
        plots["qini_curve.png"] = png_bytes(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    labels, est, lo, hi = [], [], [], []
    for key, label in (("targeted_vs_control", "targeted>=cutoff\nvs control>=cutoff"),
                       ("random_target_vs_control", "random_target\nvs control"),
                       ("model_value_per_offer", "model minus\nrandom, per offer")):
        e = result[key]["response"]
        labels.append(label)
        est.append(e["estimate"])
        lo.append(e["estimate"] - e["ci_low"])
        hi.append(e["ci_high"] - e["estimate"])
    ax.bar(range(len(labels)), est, yerr=[lo, hi], capsize=5, color=["tab:green", "tab:orange", "tab:purple"])
    ax.set_xticks(range(len(labels)), labels)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("incremental response rate")
    ax.set_title(f"Group comparison ({int(round((1 - result['alpha']) * 100))}% CI)")
    plots["group_comparison.png"] = png_bytes(fig)
    return plots
