"""The record of a monitoring run: one Markdown and one JSON file per run under
``<artifacts>/monitoring/``, named by the run's time."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.core.io import atomic_write_json, atomic_write_text
from tasks.core.layout import Layout


def render_record(record: dict[str, Any]) -> str:
    """A monitoring run as Markdown."""
    lines = [f"# Monitoring {record['model']} (champion {record['champion_before']}) at {record['time']}", ""]
    d = record.get("drift")
    if d:
        lines += [f"## Data drift: campaign {record['campaign_id']}", "",
                  f"{d['n_drifted']} of {d['n_factors']} factors drifted ({d['drifted_share']:.1%}; limit "
                  f"{d['limit']:.1%}; BH FDR {d['fdr']}, PSI limit {d['psi_limit']}); "
                  f"alarm: **{'yes' if d['alarm'] else 'no'}**."
                  + (f" Drifted but excluded from the share: {d['excluded_drifted']}." if d.get("excluded_drifted") else ""),
                  "",
                  "| factor | kind | p-value | q-value | PSI | drifted |", "|---|---|---|---|---|---|"]
        for r in d["top"]:
            lines.append(f"| {r['feature']} | {r['kind']} | {r['p_value']:.3g} | {r['q_value']:.3g} | "
                         f"{r['psi']:.3f} | {'yes' if r['drifted'] else 'no'} |")
        lines.append("")
    s = record.get("score_drift")
    lines += ["## Score drift", ""]
    if s and s.get("psi") is not None:
        lines.append(f"Scores of {s['current']} vs {s['baseline']}: KS {s['ks_statistic']:.3f} (p {s['p_value']:.3g}), "
                     f"PSI {s['psi']:.3f}, mean {s['mean_baseline']:.4g} -> {s['mean_current']:.4g}.")
    else:
        lines.append(f"Not measured: {(s or {}).get('note', 'no logged scores')}.")
    dec = record.get("decay") or {}
    lines += ["", "## Decay", ""]
    if dec.get("observed_value") is None:
        lines.append(f"Not measured: {dec.get('note')}.")
    else:
        training = "none" if dec.get("training_value") is None else f"{dec['training_value']:.4f}"
        lines.append(f"{dec.get('text', dec['metric'])} (held-out figure from training, other rows: {training}); "
                     f"decayed: **{'yes' if dec['decayed'] else 'no'}**.")
    lines += ["", "## Decision", ""]
    if not record["retrain_needed"]:
        lines.append("No limit crossed: no retraining.")
    else:
        lines.append("Retraining because " + "; ".join(record["reasons"]) + ".")
        r = record.get("retrain") or {}
        if r.get("skipped"):
            lines.append(f"Skipped: {r['skipped']}.")
        elif r:
            c = r["comparison"]
            lines += ["", f"Training rows: {r['n_train_rows']} (history {r['n_history_rows']}, fresh experiment "
                      f"{r['n_experiment_rows']}); held out: {c['n_holdout']}.",
                      f"Challenger {r['challenger_version']}: {c['reason']}.",
                      f"Champion after this run: **{record['champion_after']}**."]
    return "\n".join(lines) + "\n"


def write_record(artifacts: str | Path, record: dict[str, Any]) -> tuple[Path, str]:
    """``<timestamp>.md`` then ``<timestamp>.json`` under the monitoring folder; returns the
    JSON file's path and the Markdown."""
    out = Layout(artifacts).monitoring
    stamp = record["time"].replace(":", "").replace("-", "").replace("+0000", "Z")
    md = render_record(record)
    atomic_write_text(md, out / f"{stamp}.md")
    atomic_write_json(record, out / f"{stamp}.json")
    return out / f"{stamp}.json", md
