"""The data profile as a report: findings, Markdown and a self-contained HTML page.

:func:`build_report` assembles the table profiles and the factor-table profile
(:mod:`tasks.profile.profiles`) into ordered blocks (headings, text, lists, tables, images)
with a findings summary at the top; :func:`render_markdown` and :func:`render_html` (the
shared renderers of :mod:`tasks.core.report`) render the blocks. The flow (``flows/profile.py``) writes the result.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from tasks.core.report import Block, Report, fmt_value, md_table, render_html, render_markdown
from tasks.modelling.guards import LEAK_AUC, LEAK_AUC_CERTAIN, LEAK_RATIO, NEAR_COPY
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import AnalysisProfile, TableProfile


def _pct(share: float) -> str:
    return f"{100 * share:.2f}%"


def _table_blocks(t: TableProfile, cfg: ProfileConfig) -> list[Block]:
    b: list[Block] = [Block("heading", f"Table `{t.name}`", level=2)]
    lines = [f"{t.n_rows} rows, {t.n_columns} columns."]
    if t.sampled:
        lines.append(
            f"Distributions below are computed on a seeded random sample of {t.profiled_rows} rows "
            f"(profile.max_rows={cfg.max_rows}, seed {cfg.seed}); counts, missing values and duplicates on all rows."
        )
    dup = t.duplicates
    dup_text = f"Full-row duplicates: {dup['full_row']}."
    if dup["key_rows"] is not None:
        dup_text += f" Rows sharing a key ({', '.join(t.key)}): {dup['key_rows']}."
    lines.append(dup_text)
    b.append(Block("text", " ".join(lines)))
    miss = t.missing[t.missing["missing"] > 0]
    b.append(Block("heading", "Missing values", level=3))
    b.append(Block("table", table=miss) if len(miss) else Block("text", "No missing values."))
    if len(t.numeric):
        b.append(Block("heading", "Numeric columns", level=3))
        b.append(Block("table", table=t.numeric))
        if t.histograms is not None:
            shown = "" if t.plotted_columns == len(t.numeric) else f" ({t.plotted_columns} of {len(t.numeric)}; identifiers and columns beyond profile.max_plot_columns left out)"
            b.append(Block("image", f"Histograms of the numeric columns of {t.name}{shown}", image=f"{t.name}_histograms.png"))
    if t.categorical:
        b.append(Block("heading", f"Categorical columns (top {cfg.top_values} values)", level=3))
        for col, top in t.categorical.items():
            b.append(Block("text", f"**{col}** ({t.n_unique.get(col, len(top))} distinct values)"))
            b.append(Block("table", table=top))
    if len(t.datetimes):
        b.append(Block("heading", "Date columns", level=3))
        b.append(Block("table", table=t.datetimes))
    b.append(Block("heading", f"Constant and almost constant columns (top value share >= {cfg.near_constant_share})", level=3))
    b.append(Block("table", table=t.constants) if len(t.constants) else Block("text", "None."))
    for arm in t.arms:
        b.append(Block("heading", f"Arms of `{arm.column}`", level=3))
        b.append(Block("table", table=arm.counts))
        b.append(Block("text", _arm_verdict(arm.chi2, arm.p_value, cfg, cfg.expected_arm_shares)))
        if arm.rates is not None:
            b.append(Block("text", f"Rate of `{arm.outcome}` per arm:"))
            b.append(Block("table", table=arm.rates))
    return b


def _arm_verdict(chi2: float, p: float, cfg: ProfileConfig, shares: dict | None = None,
                 source: str = "profile.expected_arm_shares") -> str:
    """One line on an arm-size test: against the design shares when known, equal shares otherwise."""
    if shares:
        expected = "the design shares (" + ", ".join(f"{k}: {float(v):.3g}" for k, v in shares.items()) + f", {source})"
    else:
        expected = f"equal shares (no {source} given)"
    verdict = (
        "consistent with the intended randomisation"
        if p >= cfg.srm_alpha
        else f"**not** consistent with {expected} (possible sample-ratio mismatch)"
    )
    return (f"Arm sizes against {expected}: chi-square {fmt_value(chi2)}, p-value {fmt_value(p)} "
            f"(flagged below {cfg.srm_alpha}, the level of the evaluation's checks): {verdict}.")


def _analysis_blocks(a: AnalysisProfile, cfg: ProfileConfig) -> list[Block]:
    b: list[Block] = [Block("heading", "Factor table", level=2)]
    head = f"{a.description} {a.n_rows} rows, {len(a.factors)} factors, target `{a.target}`"
    head += f", treatment `{a.treatment}`." if a.treatment else "."
    if a.sampled:
        head += (
            f" Everything in this section is computed on a seeded random sample of {a.profiled_rows} rows "
            f"(profile.max_rows={cfg.max_rows}, seed {cfg.seed})."
        )
    b.append(Block("text", head.strip()))
    b.append(Block("heading", "Target balance", level=3))
    b.append(Block("table", table=a.target_balance))
    if a.treatment and a.treatment_balance is not None and a.uplift is not None:
        u = a.uplift
        b.append(Block("heading", "Treatment balance and outcome by arm", level=3))
        b.append(Block("table", table=a.treatment_balance))
        b.append(Block("text", _arm_verdict(float(a.arm_chi2), float(a.arm_p_value), cfg,
                                               {{"0": "control", "1": "treated"}[k]: v for k, v in a.arm_shares.items()}
                                               if a.arm_shares else None, "data.treatment_shares")))
        b.append(Block("text", "Target (rows) by treatment (columns):"))
        b.append(Block("table", table=a.crosstab.reset_index(names="target")))
        b.append(Block("table", table=a.rates))
        level = int(round(100 * (1 - cfg.alpha)))
        b.append(Block(
            "text",
            f"Naive uplift (treated rate {_pct(u.rate_treated)} minus control rate {_pct(u.rate_control)}): "
            f"{fmt_value(u.uplift)}, {level}% CI [{fmt_value(u.ci_low)}, {fmt_value(u.ci_high)}], p-value {fmt_value(u.p_value)}.",
        ))
        if a.by_group is not None:
            b.append(Block("text", f"Per `{a.group}` (each its own randomisation):"))
            b.append(Block("table", table=a.by_group))
    b.append(Block("heading", "Possible leaks: univariate strength of each factor", level=3))
    expl = (
        f"ROC-AUC of each numeric factor used alone as a score for `{a.target}`. A factor is flagged as a "
        f"possible leak (a factor that knows the outcome) by the rule training uses: alone it reaches ROC-AUC "
        f"{LEAK_AUC} or more (or {1 - LEAK_AUC:.2f} or less) and its distance from 0.5 is at least {LEAK_RATIO} "
        f"times the next best factor's (copies of it, |r| > {NEAR_COPY}, aside), or it reaches {LEAK_AUC_CERTAIN} "
        f"whatever the others do."
    )
    if a.treatment:
        expl += (
            " `uplift_diff` is the uplift (treated minus control response rate) among rows in the factor's "
            "top half minus the uplift in its bottom half; `qini` is the normalised Qini AUC of the factor "
            "used alone as an uplift score (0 = random, negative = the lower values respond more to the offer)."
        )
    b.append(Block("text", expl))
    if a.leaks:
        b.append(Block("list", items=[f"possible leak: `{f}`" for f in a.leaks]))
    else:
        b.append(Block("text", "No factor is flagged by the leak rule."))
    if len(a.strength):
        b.append(Block("table", table=a.strength))
    b.append(Block("heading", f"Constant and almost constant factors (top value share >= {cfg.near_constant_share})", level=3))
    b.append(Block("table", table=a.constants) if len(a.constants) else Block("text", "None."))
    b.append(Block("heading", "Correlations", level=3))
    if a.heatmap is not None:
        note = ""
        if a.heatmap_columns < len(a.correlation):
            note = f" (first {a.heatmap_columns} of {len(a.correlation)} varying numeric factors)"
        b.append(Block("image", f"Correlation heatmap{note}", image="factor_correlation.png"))
    if len(a.correlated_pairs):
        b.append(Block("text", f"Pairs with |r| >= {cfg.high_correlation}:"))
        b.append(Block("table", table=a.correlated_pairs))
    else:
        b.append(Block("text", f"No pair of factors has |r| >= {cfg.high_correlation}."))
    b.append(Block("heading", f"Multicollinearity (VIF, limit {fmt_value(cfg.vif_limit)})", level=3))
    if len(a.collinear):
        b.append(Block("list", items=[f"`{r.column}`: VIF {fmt_value(r.vif)}" + (f" ({r.note})" if r.note else "")
                                      for r in a.collinear.itertuples()]))
    else:
        b.append(Block("text", "No factor reaches the VIF limit."))
    if len(a.vif):
        b.append(Block("table", table=a.vif))
    b.append(Block("heading", "Factor distributions", level=3))
    miss = a.missing[a.missing["missing"] > 0]
    b.append(Block("table", table=miss) if len(miss) else Block("text", "No missing values in the factors."))
    if len(a.numeric):
        b.append(Block("table", table=a.numeric))
    if a.histograms is not None:
        b.append(Block("image", "Histograms of the factors", image="factor_histograms.png"))
    return b


def _json_safe(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, numpy scalars Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _name_list(names: Sequence[str], limit: int = 12) -> str:
    if not names:
        return "none"
    text = ", ".join(f"`{n}`" for n in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def build_report(
    dataset: str,
    as_of: str,
    tables: Sequence[TableProfile],
    analysis: AnalysisProfile | None,
    cfg: ProfileConfig,
    notes: Sequence[str] = (),
) -> Report:
    """Assemble the profiles into one report with a findings summary at the top."""
    images: dict[str, bytes] = {}
    for t in tables:
        if t.histograms is not None:
            images[f"{t.name}_histograms.png"] = t.histograms
    if analysis is not None:
        if analysis.histograms is not None:
            images["factor_histograms.png"] = analysis.histograms
        if analysis.heatmap is not None:
            images["factor_correlation.png"] = analysis.heatmap
    sampled = [t.name for t in tables if t.sampled] + (["factor table"] if analysis is not None and analysis.sampled else [])
    findings: dict[str, Any] = {
        "dataset": dataset,
        "as_of": as_of,
        "row_counts": {t.name: t.n_rows for t in tables},
        "sampled": sampled,
        "max_rows": cfg.max_rows,
        "arm_tests": {f"{t.name}.{a.column}": {"chi2": a.chi2, "p_value": a.p_value} for t in tables for a in t.arms},
    }
    summary: list[str] = []
    for t in tables:
        extra = f" (profiled on a sample of {t.profiled_rows})" if t.sampled else ""
        summary.append(f"`{t.name}`: {t.n_rows} rows, {t.n_columns} columns{extra}; "
                       f"{t.duplicates['full_row']} full-row duplicates"
                       + (f", {t.duplicates['key_rows']} rows with a duplicate key" if t.duplicates["key_rows"] else ""))
        for a in t.arms:
            summary.append(f"`{t.name}.{a.column}` arms: chi-square p-value {fmt_value(a.p_value)} "
                           f"({'balanced' if a.p_value >= cfg.srm_alpha else 'imbalanced'} at {cfg.srm_alpha})")
    if analysis is not None:
        findings.update(
            possible_leaks=analysis.leaks,
            constant_factors=analysis.constants["column"].tolist(),
            collinear_factors=analysis.collinear["column"].tolist(),
            target_rate=float(analysis.target_balance.set_index("value")["share"].get("1", 0.0)),
        )
        summary.append(f"target `{analysis.target}` rate {_pct(findings['target_rate'])}")
        if analysis.uplift is not None:
            findings["naive_uplift"] = analysis.uplift.uplift
            findings["treatment_arm_test"] = {"chi2": analysis.arm_chi2, "p_value": analysis.arm_p_value}
            if analysis.by_group is not None:
                findings["arm_tests_by_group"] = {
                    r.group: {"chi2": r.chi2, "p_value": r.p_value, "uplift": r.uplift}
                    for r in analysis.by_group.itertuples()
                }
            summary.append(f"naive uplift {fmt_value(analysis.uplift.uplift)} "
                           f"(treatment arms chi-square p-value {fmt_value(analysis.arm_p_value)})")
            if analysis.by_group is not None:
                summary.append(f"treatment arms chi-square p-value per `{analysis.group}`: " + ", ".join(
                    f"{r.group} {fmt_value(r.p_value, missing='n/a')}" for r in analysis.by_group.itertuples()))
        summary.append("possible leaks: " + _name_list(analysis.leaks))
        summary.append("constant or almost constant factors: " + _name_list(findings["constant_factors"]))
        summary.append(f"factors with VIF >= {fmt_value(cfg.vif_limit)}: " + _name_list(findings["collinear_factors"]))
    if sampled:
        summary.append(f"sampled (above profile.max_rows={cfg.max_rows}): {', '.join(sampled)}")
    title = f"Data profile: {dataset} ({as_of})"
    blocks: list[Block] = [Block("heading", title, level=1)]
    blocks.extend(Block("text", n) for n in notes)
    blocks.append(Block("heading", "Summary", level=2))
    blocks.append(Block("list", items=summary))
    for t in tables:
        blocks.extend(_table_blocks(t, cfg))
    if analysis is not None:
        blocks.extend(_analysis_blocks(analysis, cfg))
    return Report(title, blocks, images, _json_safe(findings))
