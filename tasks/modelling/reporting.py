"""Plots (PNG bytes) and the Markdown report of a trained model version, and the short
summary of a training run."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.analytics import metrics as M
from tasks.core.report import fmt_ci, md_table, png_bytes
from tasks.modelling.guards import guard_messages


def four_decimals(v: Any) -> str:
    """A table cell: floats with four decimals, anything else as ``str``."""
    return f"{v:.4f}" if isinstance(v, (float, np.floating)) else str(v)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def qini_plot(y: np.ndarray, score: np.ndarray, t: np.ndarray) -> bytes:
    """Qini curve of the model against random targeting and the perfect ranking."""
    plt = _plt()
    x, q = M.qini_curve(y, score, t)
    xp, qp = M.perfect_qini_curve(y, t)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, q, label=f"model (Qini AUC {M.qini_auc(y, score, t):.4f})")
    ax.plot(xp, qp, label="perfect", alpha=0.6)
    ax.plot([0, x[-1]], [0, q[-1]], "--", label="random", color="grey")
    ax.set_xlabel("clients targeted (held-out, by score)")
    ax.set_ylabel("incremental responses")
    ax.set_title("Qini curve")
    ax.legend()
    return png_bytes(fig)


def decile_plot(table: pd.DataFrame) -> bytes:
    """Uplift per score decile with its confidence interval."""
    plt = _plt()
    rows = table.drop(index="total", errors="ignore")
    fig, ax = plt.subplots(figsize=(6, 4))
    pos = np.arange(len(rows))
    err = np.vstack([rows["uplift"] - rows["ci_low"], rows["ci_high"] - rows["uplift"]])
    ax.bar(pos, rows["uplift"], yerr=err, capsize=3)
    ax.axhline(float(table.loc["total", "uplift"]) if "total" in table.index else 0.0, color="grey", ls="--",
               label="average uplift")
    ax.set_xticks(pos, rows.index, rotation=45)
    ax.set_xlabel("score percentile (best first)")
    ax.set_ylabel("treated - control response rate")
    ax.set_title("Uplift by decile (held-out)")
    ax.legend()
    return png_bytes(fig)


def calibration_plot(calibration: dict, kind: str) -> bytes:
    """Observed vs predicted per score decile (held-out) with CIs, the diagonal, and for an
    uplift model the fitted calibration line."""
    plt = _plt()
    table = pd.DataFrame(calibration["table"])
    fig, ax = plt.subplots(figsize=(5, 4.5))
    x = table["predicted"].to_numpy()
    err = np.clip(np.vstack([table["observed"] - table["ci_low"], table["ci_high"] - table["observed"]]), 0, None)
    ax.errorbar(x, table["observed"], yerr=err, fmt="o", capsize=3, label="observed per decile (95% CI)")
    lo, hi = float(min(x.min(), table["ci_low"].min())), float(max(x.max(), table["ci_high"].max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey", label="perfect calibration")
    if kind == "uplift" and "slope" in calibration:
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, calibration["intercept"] + calibration["slope"] * grid, color="C1",
                label=f"calibration: {calibration['intercept']:+.4f} + {calibration['slope']:.3f} x score")
    what = "uplift" if kind == "uplift" else "response rate"
    ax.set_xlabel(f"predicted {what} (mean in decile)")
    ax.set_ylabel(f"observed {what}")
    ax.set_title(f"Calibration (held-out), ECE {calibration['ece']:.4f}")
    ax.legend(fontsize=7)
    return png_bytes(fig)


def calibration_section(calibration: dict | None, kind: str) -> list[str]:
    """The report's calibration lines and decile table (empty without a calibration)."""
    if not calibration:
        return []
    if "skipped" in calibration:
        return ["", "## Calibration (held-out)", "", f"Not fitted: {calibration['skipped']}"]
    lines = ["", "## Calibration (held-out)", ""]
    if kind == "uplift":
        lines += [f"Money decisions (the profit policy, the API's profit rule) use the calibrated uplift "
                  f"{calibration['intercept']:+.5f} + {calibration['slope']:.4f} x score "
                  f"(slope with 95% CI {fmt_ci(calibration['slope'], calibration['slope_ci_low'], calibration['slope_ci_high'])}; "
                  f"{calibration['method']}). A slope CI covering 1 says the raw score is already on the uplift "
                  "scale; one covering 0, that it does not rank.",
                  f"Expected calibration error (size-weighted mean |observed - predicted| over deciles): raw "
                  f"{calibration['ece']:.5f}, calibrated {calibration['ece_calibrated']:.5f} (fitted on these rows).", ""]
        cols = ["percentile", "n_treatment", "n_control", "predicted", "calibrated", "observed", "ci_low", "ci_high"]
    else:
        lines += [f"Probabilities: {calibration['method']}; mean predicted {calibration['mean_predicted']:.4f} vs "
                  f"base rate {calibration['base_rate']:.4f}; expected calibration error {calibration['ece']:.5f}.", ""]
        cols = ["percentile", "n", "predicted", "observed", "ci_low", "ci_high"]
    lines.append(md_table(pd.DataFrame(calibration["table"])[cols], four_decimals))
    return lines


def shap_plot(shap: pd.DataFrame, top: int = 15) -> bytes:
    """Mean absolute SHAP contribution of the top features."""
    plt = _plt()
    s = shap.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(s) + 1)))
    ax.barh(s["feature"], s["mean_abs_shap"])
    ax.set_xlabel("mean |SHAP| (log-odds)")
    ax.set_title("Feature importance (TreeSHAP)")
    return png_bytes(fig)


def segmentation_table(proba: np.ndarray, profit: np.ndarray, p_cut: float, profit_cut: float) -> pd.DataFrame:
    """Clients by probability of the target (e.g. activity decline) x profit, four segments.

    Segments: ``high risk / high profit`` (retain first), ``high risk / low profit``,
    ``low risk / high profit``, ``low risk / low profit``.
    """
    risk = np.where(np.asarray(proba) >= p_cut, "high risk", "low risk")
    value = np.where(np.asarray(profit) >= profit_cut, "high profit", "low profit")
    seg = pd.Series(risk, dtype=object) + " / " + pd.Series(value, dtype=object)
    df = pd.DataFrame({"segment": seg, "proba": proba, "profit": profit})
    out = df.groupby("segment").agg(clients=("proba", "size"), mean_probability=("proba", "mean"),
                                    mean_profit=("profit", "mean"), total_profit=("profit", "sum"))
    out["share"] = out["clients"] / out["clients"].sum()
    return out.reset_index()


def segmentation_plot(proba: np.ndarray, profit: np.ndarray, p_cut: float, profit_cut: float) -> bytes:
    """Scatter of probability x profit with the segment cut lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(proba, profit, s=6, alpha=0.5)
    ax.axvline(p_cut, color="red", ls="--")
    ax.axhline(profit_cut, color="red", ls="--")
    ax.set_xlabel("predicted probability of activity decline")
    ax.set_ylabel("profit (last 3 months)")
    ax.set_title("Segments: probability x profit")
    return png_bytes(fig)


def render_plots(result: Any) -> dict[str, bytes]:
    """PNG files of a TrainResult: Qini and decile plots (uplift), SHAP importance (all)."""
    files: dict[str, bytes] = {"shap_importance.png": shap_plot(result.shap)}
    if result.kind == "uplift":
        files["qini_curve.png"] = qini_plot(result.test_y, result.test_scores, result.test_treatment)
        files["uplift_by_decile.png"] = decile_plot(result.by_decile)
    if result.calibration and "table" in result.calibration:
        files["calibration.png"] = calibration_plot(result.calibration, result.kind)
    return files


def render_report(result: Any, meta: dict, name: str, promotion: str, pngs: list[str]) -> str:
    """report.md of a model version."""
    parts = [f"# Model {name}: {result.kind} ({result.approach})", "",
             f"Dataset `{meta['dataset']}`, {result.n_train} training rows, {result.n_test} held-out rows, "
             f"{len(result.features)} features, seed {result.seed}.", "",
             f"Promotion: {promotion}.", ""]
    parts += guards_section(meta)
    parts += ["## Held-out metrics (95% bootstrap CI)", ""]
    for k, v in result.heldout.items():
        if isinstance(v, dict):
            parts.append(f"- {k}: {fmt_ci(v['value'], v['ci_low'], v['ci_high'])}")
        else:
            parts.append(f"- {k}: {v}")
    parts += validation_section(meta.get("validation") or {})
    parts += data_section(getattr(result, "data", None) or {})
    parts += ["", "## Candidates (cross-validation on the training split)", ""]
    cv = result.cv.copy()
    cv["params"] = cv["params"].map(lambda p: ", ".join(f"{k}={v}" for k, v in sorted(p.items())
                                                         if k not in ("verbose", "n_jobs")))
    parts.append(md_table(cv, four_decimals))
    parts += ["", "## Feature checks", ""]
    ch = result.checks
    parts.append(f"- constant: {ch.constant or 'none'}")
    parts.append(f"- sum of other columns: {ch.sum_of_others or 'none'}")
    parts.append(f"- near-perfect single predictors: {ch.single_predictor or 'none'}")
    parts.append(f"- dropped: {ch.dropped or 'none'}; flagged: {ch.flagged or 'none'}")
    leaks = ", ".join(f"{d['column']} (ROC-AUC {d['auc']:.3f}{', acknowledged' if d.get('acknowledged') else ''})"
                      for d in ch.suspected_leaks)
    parts.append(f"- suspected leaks (one column predicts the target far better than the rest, on the training "
                 f"split): {leaks or 'none'}")
    if result.by_decile is not None:
        parts += ["", "## Uplift by decile (held-out)", ""]
        parts.append(md_table(result.by_decile.reset_index()[
            ["percentile", "n_treatment", "n_control", "response_rate_treatment", "response_rate_control",
             "uplift", "ci_low", "ci_high"]], four_decimals))
    parts += calibration_section(result.calibration, result.kind)
    parts += ["", "## Threshold suggestions", ""]
    for k, v in result.threshold_suggestions.items():
        parts.append(f"- {k}: {v}")
    parts += ["", "## SHAP importance (mean |contribution|, log-odds)", "", md_table(result.shap.head(20), four_decimals)]
    for key, text in result.extras.get("report_sections", {}).items():
        parts += ["", f"## {key}", "", text]
    if pngs:
        parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pngs]
    return "\n".join(parts) + "\n"


def guards_section(meta: dict) -> list[str]:
    """The report's warnings in plain words (suspected leaks, no signal), or the all-clear."""
    messages = guard_messages(meta)
    if not messages:
        test = meta.get("signal_test") or {}
        if not test:
            return []
        lo, hi = test.get("ci", [float("nan")] * 2)
        return ["## Guards", "", f"Signal present: held-out {test.get('metric')} {test.get('estimate'):.4f}, CI "
                f"[{lo:.4f}, {hi:.4f}] excludes {test.get('no_signal_value')}; no suspected leak.", ""]
    return ["## Guards: read before using this model", ""] + [f"- **{m}**" for m in messages] + [""]


def validation_section(validation: dict) -> list[str]:
    """How the rows were split, the out-of-time hold-out beside the random one, the refit."""
    if not validation:
        return []
    lines = ["", "## Validation", "", f"- split: {validation.get('split')}"]
    if "clients_in_both" in validation:
        lines.append(f"- clients: {validation['train_clients']:,} training, {validation['test_clients']:,} held out, "
                     f"{validation['clients_in_both']} in both")
    oot = validation.get("out_of_time")
    if oot is None:
        lines.append("- out-of-time hold-out: none (fewer than two campaign dates)")
    elif "skipped" in oot:
        lines.append(f"- out-of-time hold-out ({oot.get('date')}): skipped, {oot['skipped']}")
    else:
        shown = "; ".join(f"{k} {fmt_ci(v['value'], v['ci_low'], v['ci_high'])}" for k, v in oot.items()
                          if isinstance(v, dict))
        lines.append(f"- out-of-time hold-out: the latest campaign ({oot['date']}, {oot['n']:,} rows), the chosen "
                     f"configuration fitted on the {oot['train_rows']:,} earlier rows: {shown}")
    if validation.get("refit_rows"):
        lines.append(f"- registered model: the chosen configuration refitted on all {validation['refit_rows']:,} "
                     "rows; the held-out figures above are those of the fit that did not see them")
    return lines


def data_section(data: dict) -> list[str]:
    """The report's "Data" lines: source, arms, target values, the columns excluded from the
    features and why, missing values per column (left to LightGBM)."""
    if not data:
        return []
    lines = ["", "## Data", ""]
    if data.get("path"):
        sha = f", sha256 {str(data['sha256'])[:12]}..." if data.get("sha256") else ""
        lines.append(f"- source: `{data['path']}` ({data.get('rows', '?'):,} rows read{sha})")
    lines.append(f"- rows used: {data.get('rows_used', '?'):,}")
    for value, n in (data.get("excluded_rows") or {}).items():
        lines.append(f"- rows left out (data.exclude_arms): {n:,} with {data['arms']['column']} = {value!r}")
    arms = data.get("arms")
    if arms:
        lines.append(f"- treatment `{arms['column']}`: 1 = {', '.join(arms['treated'])}; "
                     f"0 = {', '.join(arms['control'])}")
    if data.get("target_values"):
        lines.append(f"- target `{data.get('target')}` values: {data['target_values']}")
    excluded = data.get("excluded_columns") or {}
    if "known_after" in excluded:
        lines.append(f"- excluded as known only after the decision (data.known_after): "
                     f"{', '.join(excluded['known_after']) or 'none'}")
    if "drop" in excluded:
        lines.append(f"- dropped (data.drop and the dataset's extras): {', '.join(excluded['drop']) or 'none'}")
    missing = data.get("missing_values") or {}
    if not missing:
        lines.append("- missing values: none")
        return lines
    lines += ["", "Missing values per column, left as they are: LightGBM sends them to the side of each split "
              "that fits the training data best.", ""]
    table = pd.DataFrame([{"column": c, "missing": v["count"], "share": v["share"]}
                          for c, v in sorted(missing.items(), key=lambda kv: -kv[1]["count"])])
    lines.append(md_table(table.head(30), four_decimals))
    if len(table) > 30:
        lines += ["", f"... and {len(table) - 30} more column(s) with missing values (metadata.json, data.missing_values)."]
    return lines


def render_summary(name: str, version: str, champion: str | None, reason: str, result: Any) -> str:
    """Short Markdown summary of a training run (published as a Prefect artifact)."""
    lines = [f"# Trained `{name}` {version}", "",
             f"Approach {result.approach}; {result.n_train} training rows, {result.n_test} held-out rows.",
             f"Champion: {champion} ({reason}).", ""]
    for k, v in result.heldout.items():
        if isinstance(v, dict):
            lines.append(f"- held-out {k}: {fmt_ci(v['value'], v['ci_low'], v['ci_high'])}")
    if result.checks.dropped:
        lines.append(f"- dropped by checks: {result.checks.dropped}")
    meta = {"checks": result.checks.as_dict(), "signal": result.signal.get("signal"), "signal_test": result.signal}
    lines += [f"- **{m}**" for m in guard_messages(meta)]
    return "\n".join(lines) + "\n"
