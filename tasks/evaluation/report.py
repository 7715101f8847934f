"""The evaluation of a campaign as a report (Markdown and one self-contained HTML page) and PNG plots.

:func:`build_report` turns the result of :func:`tasks.evaluation.readout.evaluate_campaign`
and the table of :func:`tasks.evaluation.readout.decile_table` into blocks
(:class:`tasks.core.report.Report`): a plain-language summary of the primary effect with its
interval, the checks as pass / fail lines, the primary endpoint, rates per arm, the Holm-adjusted
secondary comparisons, missing outcomes, the per-protocol view, money, model quality, the
uplift by score bin, the plots and a glossary. :func:`render_report` (Markdown) and
:func:`render_report_html` render them. Nothing new is computed here except the Qini curve
that is plotted.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.analytics import metrics
from tasks.core.report import Block, Report, fmt_number, png_bytes, render_html, render_markdown
from tasks.evaluation.readout import COMPARISONS, PRIMARY

PLOT_CAPTIONS = {
    "group_comparison.png": "Effect on the response rate of each comparison, with its confidence interval",
    "uplift_by_decile.png": "Uplift of random_target over control by score bin (1 = highest scores)",
    "qini_curve.png": "Qini curve of the model's scores on random_target + control",
}

GLOSSARY = [
    "**Intention to treat (ITT)**: every client is counted in the group the random split put them in, "
    "whether or not the offer reached them. It keeps the comparison randomised, so it measures what sending "
    "the campaign does.",
    "**Primary endpoint**: the one comparison fixed before looking at the data (targeted clients above the "
    "cutoff against control clients above the cutoff, response rate). The campaign is judged on it.",
    "**Secondary comparisons**: everything else; their p-values are Holm-adjusted so that, together, the chance "
    "of any false finding stays at the stated level.",
    "**Confidence interval (CI)**: the range of effects the data are compatible with at the stated level. An "
    "interval that leaves out 0 is a finding; one that includes 0 is not.",
    "**pp (percentage points)**: the difference of two rates, e.g. 3% to 5% is +2 pp.",
    "**Score cutoff**: the lowest model score that got an offer; clients at or above it in the targeted group "
    "were offered, control clients above it are the ones the policy would have offered.",
    "**Sample ratio check**: do the clients analysed split between groups as designed? A mismatch means "
    "clients went missing unevenly and the groups may no longer be comparable.",
    "**Missing outcomes**: campaign clients without a row in the responses. If they go missing more in one "
    "group, the estimates can be biased.",
    "**Per protocol**: only offers that were delivered. Not randomised (delivery is not random), so descriptive only.",
    "**Wilson / Newcombe intervals**: intervals for a rate and a difference of rates that stay valid with few "
    "responders, where the usual (Wald) interval fails.",
    "**Bootstrap interval**: the interval of revenue effects from resampling the clients of each group many "
    "times; it holds for heavy-tailed amounts such as baskets.",
    "**Qini AUC / uplift@k**: how well the model's ranking separates clients who respond because of the "
    "offer, measured on random_target + control (a fresh randomised experiment). uplift@k: the uplift in the "
    "top k share by score.",
]


def _pct(x: Any) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * float(x):.2f}%"


def _pp(x: Any, sign: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{100 * float(x):+.2f} pp" if sign else f"{100 * float(x):.2f} pp"


def _money(x: Any, currency: str = "", decimals: int = 0) -> str:
    text = fmt_number(x, decimals)
    return f"{currency}{text}" if currency and text != "n/a" else text


def _ci(e: dict, fmt: Any) -> str:
    return f"{fmt(e['ci_low'])} to {fmt(e['ci_high'])}"


def _p(p: Any) -> str:
    return "n/a" if p is None else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _summary(result: dict[str, Any], currency: str) -> list[Block]:
    lvl = int(round((1 - result["alpha"]) * 100))
    prim = result["targeted_vs_control"]["response"]
    inc = result["targeted_vs_control"]["incremental_responses_total"]
    n = result["primary"]["offers"]
    verdict = (f"The interval leaves out 0: the offer {'raised' if prim['estimate'] > 0 else 'lowered'} the response "
               "rate of the clients the model chose." if result["primary"]["significant"] else
               "The interval includes 0: these data do not show an effect of the offer on the clients the model chose.")
    text = (f"Offering to the {n:,} targeted clients above the score cutoff changed their response rate from "
            f"{_pct(prim['mean_c'])} (control clients above the cutoff) to {_pct(prim['mean_t'])}: "
            f"{_pp(prim['estimate'])} ({lvl}% CI {_ci(prim, _pp)}), about {fmt_number(inc['estimate'], 0)} "
            f"{'more' if inc['estimate'] >= 0 else 'fewer'} responders ({lvl}% CI {_ci(inc, lambda v: fmt_number(v, 0))}). "
            + verdict)
    money = result["profit"]
    t = money["targeted"]
    if "profit" in t:
        pr = t["profit"]
        text += (f" After contact costs that is {_money(pr['estimate'], currency)} in profit ({lvl}% CI "
                 f"{_ci(pr, lambda v: _money(v, currency))}; margin {_money(money['margin'], currency, 2)} per response, "
                 f"{_money(money['contact_cost'], currency, 2)} per offer).")
    elif "incremental_revenue" in t:
        rv = t["incremental_revenue"]
        text += (f" No margin is configured, so there is no profit figure: incremental revenue "
                 f"{_money(rv['estimate'], currency)} ({lvl}% CI {_ci(rv, lambda v: _money(v, currency))}), "
                 f"{_money(t['revenue_net_of_contact_cost']['estimate'], currency)} net of contact costs.")
    head = ("**Primary endpoint** (fixed before the data; intention to treat): response rate of the targeted "
            "clients above the score cutoff against the control clients above the same cutoff.")
    return [Block("text", head), Block("text", text)]


def _checks(result: dict[str, Any]) -> list[Block]:
    c = result["checks"]
    blocks = [Block("heading", "Checks", level=2),
              Block("text", f"Each check tests at level {c['alpha']}; with `evaluate.strict=true` a failed check "
                            "ends `python -m flows.evaluate` with exit code 3.")]
    blocks += [Block("check", f"{item['label']}: {item['detail']}", status=item["status"]) for item in c["items"].values()]
    return blocks


def _effect_row(name: str, e: dict, outcome: str, currency: str) -> dict[str, Any]:
    rate = outcome == "response"
    fmt = _pp if rate else (lambda v: _money(v, currency, 2))
    mean = _pct if rate else (lambda v: _money(v, currency, 2))
    two_effects = name == COMPARISONS["model_value_per_offer"]  # its "means" are the effects (a) and (b)
    return {"comparison": name, "outcome": outcome, "n treated": fmt_number(e["n_t"]), "n control": fmt_number(e["n_c"]),
            "treated": fmt(e["mean_t"]) + " (a)" if two_effects else mean(e["mean_t"]),
            "control": fmt(e["mean_c"]) + " (b)" if two_effects else mean(e["mean_c"]), "effect": fmt(e["estimate"]),
            "CI": _ci(e, fmt), "p": _p(e["p_value"]), "Holm p": _p(e.get("p_holm")) if "p_holm" in e else "primary",
            "method": e["method"]}


def _effects(result: dict[str, Any], currency: str) -> list[Block]:
    lvl = int(round((1 - result["alpha"]) * 100))
    prim = result[PRIMARY[0]][PRIMARY[1]]
    blocks = [Block("heading", f"Primary endpoint ({lvl}% CI)", level=2),
              Block("table", table=pd.DataFrame([_effect_row(COMPARISONS[PRIMARY[0]], prim, "response", currency)]))]
    rows = [_effect_row(COMPARISONS[c], result[c][o], o, currency) for c in COMPARISONS for o in ("response", "revenue")
            if (c, o) != PRIMARY and result[c].get(o) is not None]
    blocks += [Block("heading", "Secondary comparisons (Holm-adjusted)", level=2),
               Block("text", f"{len(rows)} comparisons adjusted together (Holm, family-wise level {result['alpha']}); "
                             "a comparison counts as a finding when its Holm p-value is at most that level. The model's "
                             "value per offer is (a) targeted vs control above the cutoff minus (b) random_target vs "
                             "control; n treated / n control there are the offers of (a) and (b)."),
               Block("table", table=pd.DataFrame(rows))]
    if result["targeted_vs_control"].get("revenue") is None:
        blocks.append(Block("text", "The responses have no revenue column, so revenue is not compared."))
    rates = pd.DataFrame([{"arm": r["arm"], "clients": fmt_number(r["clients"]), "responders": fmt_number(r["responders"]),
                           "rate": _pct(r["rate"]), f"{lvl}% CI (Wilson)": f"{_pct(r['ci_low'])} to {_pct(r['ci_high'])}"}
                          for r in result["group_rates"]])
    blocks += [Block("heading", "Response rate per arm", level=2), Block("table", table=rates)]
    return blocks


def _outcomes(result: dict[str, Any]) -> list[Block]:
    o = result["outcomes"]
    policy = result["missing_responses"]
    lines = [f"Estimand: {result['estimand']}.",
             f"Clients in the campaign: {result['n_clients']:,}; with an outcome record: {o['with_record']:,}; "
             f"without: {o['without_record']:,}."]
    if policy == "observed":
        lines.append("Clients without an outcome record are left out of the estimates (`evaluate.missing_responses="
                     "observed`): unbiased when records went missing alike in every group, which the missing-outcome "
                     "and sample-ratio checks test.")
    elif policy == "non_responder":
        lines.append(f"Clients without an outcome record count as non-responders with no revenue "
                     f"(`evaluate.missing_responses=non_responder`): {o['counted_as_non_responders']:,} filled in.")
    blocks = [Block("heading", "Who is analysed", level=2), Block("text", " ".join(lines))]
    b = result.get("missing_sensitivity")
    if b:
        blocks.append(Block("text", f"Worst-case bounds of the primary effect over the missing outcomes "
                                    f"({b['missing_treated']:,} targeted and {b['missing_control']:,} control clients above "
                                    f"the cutoff): {_pp(b['lower'])} to {_pp(b['upper'])} ({b['note']})."))
    pp = result.get("per_protocol")
    if pp:
        rows = []
        for comp in ("targeted_vs_control", "random_target_vs_control"):
            e = pp.get(comp)
            if e:
                rows.append({"comparison": comp, "delivered offers": fmt_number(e["delivered"]),
                             "delivery unknown": fmt_number(e["unknown_delivery"]),
                             "effect (response)": _pp(e["response"]["estimate"]), "CI": _ci(e["response"], _pp)})
        blocks += [Block("heading", "Per protocol: delivered offers only (not randomised)", level=3),
                   Block("text", pp["note"] + "."), Block("table", table=pd.DataFrame(rows))]
    return blocks


def _money_blocks(result: dict[str, Any], currency: str) -> list[Block]:
    p = result["profit"]
    lvl = int(round((1 - result["alpha"]) * 100))
    title = "Profit after contact costs" if p["measure"] == "profit" else "Revenue (no margin configured: no profit)"
    text = (f"Margin per incremental response: {_money(p['margin'], currency, 2)}; contact cost per offer: "
            f"{_money(p['contact_cost'], currency, 2)}. Profit = incremental responses x margin - offers x contact cost."
            if p["measure"] == "profit" else
            f"No margin per response is known (set `evaluate.margin` or the campaign's `policy.margin`), so the "
            f"figures below are revenue, not profit; contact cost per offer {_money(p['contact_cost'], currency, 2)}.")
    rows = []
    for arm in ("targeted", "random_target"):
        a = p[arm]
        for key, label in (("incremental_responses", "incremental responses"), ("profit", "profit"),
                           ("incremental_revenue", "incremental revenue"),
                           ("revenue_net_of_contact_cost", "revenue net of contact costs")):
            if key in a:
                fmt = (lambda v: fmt_number(v, 0)) if key == "incremental_responses" else (lambda v: _money(v, currency))
                rows.append({"offers of": arm, "offers": fmt_number(a["offers"]), "measure": label,
                             "total": fmt(a[key]["estimate"]), f"{lvl}% CI": _ci(a[key], fmt)})
    return [Block("heading", title, level=2), Block("text", text), Block("table", table=pd.DataFrame(rows))]


def _quality(result: dict[str, Any], deciles: pd.DataFrame) -> list[Block]:
    mq = result["model_quality"]
    items = []
    for name in ("qini_auc", "uplift_at_k"):
        m = mq[name]
        label = "Qini AUC" if name == "qini_auc" else f"uplift@{mq['k']}"
        if m.get("estimate") is None:
            items.append(f"{label}: not available ({m.get('error')})")
        else:
            ci = "" if m.get("ci_low") is None else f" (CI {m['ci_low']:.4f} to {m['ci_high']:.4f})"
            items.append(f"{label}: {m['estimate']:.4f}{ci}")
    rows = [{"bin": int(r.bin), "score range": f"{r.score_min:.4f} to {r.score_max:.4f}",
             "n random_target": fmt_number(r.n_random_target), "n control": fmt_number(r.n_control),
             "rate random_target": _pct(r.rate_random_target), "rate control": _pct(r.rate_control),
             "uplift": _pp(r.uplift), "CI": f"{_pp(r.ci_low)} to {_pp(r.ci_high)}"} for r in deciles.itertuples()]
    return [Block("heading", f"Model quality on random_target + control ({mq['n']:,} clients)", level=2),
            Block("list", items=items),
            Block("heading", "Uplift by score bin (random_target vs control)", level=2),
            Block("table", table=pd.DataFrame(rows))]


def build_report(result: dict[str, Any], deciles: pd.DataFrame, plots: dict[str, bytes],
                 currency: str = "") -> Report:
    """The evaluation as report blocks (see the module docstring)."""
    counts = ", ".join(f"{g} {n:,}" for g, n in result["groups"].items())
    blocks = [Block("heading", f"Evaluation of campaign {result['campaign_id']}", level=1),
              Block("text", f"Clients: {result['n_clients']:,} ({counts}); score cutoff {result['score_cutoff']:.4f}; "
                            f"offers to targeted clients: {result['offers']['targeted']:,}.")]
    blocks += _summary(result, currency) + _checks(result) + _effects(result, currency) + _outcomes(result)
    blocks += _money_blocks(result, currency) + _quality(result, deciles)
    if plots:
        blocks.append(Block("heading", "Plots", level=2))
        blocks += [Block("image", PLOT_CAPTIONS.get(name, name), image=name) for name in sorted(plots)]
    blocks += [Block("heading", "Glossary", level=2), Block("list", items=GLOSSARY)]
    findings = {"primary": result["primary"], "failed_checks": result["checks"]["failed"]}
    return Report(f"Evaluation of campaign {result['campaign_id']}", blocks, dict(plots), findings)


def render_report(result: dict[str, Any], deciles: pd.DataFrame, plots: dict[str, bytes] | list[str],
                  currency: str = "") -> str:
    """The evaluation as Markdown (report.md and the Prefect artifact); plots linked beside it."""
    images = plots if isinstance(plots, dict) else {p: b"" for p in plots}
    return render_markdown(build_report(result, deciles, images, currency), image_dir="")


def render_report_html(result: dict[str, Any], deciles: pd.DataFrame, plots: dict[str, bytes],
                       currency: str = "") -> str:
    """The evaluation as one self-contained HTML page (plots embedded; no external links)."""
    return render_html(build_report(result, deciles, plots, currency))


def make_plots(joined: pd.DataFrame, result: dict[str, Any], deciles: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes of the uplift-by-decile bars, the Qini curve and the group comparison
    (clients with an outcome only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    joined = joined[joined["response"].notna()]
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
    for key, label in (("targeted_vs_control", "targeted>=cutoff\nvs control>=cutoff\n(primary)"),
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
