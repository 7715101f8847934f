"""Model monitoring: data drift, score drift, model decay, retraining and promotion.

* Data drift: a campaign's factor checkpoint (``stages/04_factors.parquet``) against the
  champion's reference distributions (:mod:`tasks.monitoring.drift`).
* Score drift: the latest campaign's logged scores against the earliest logged campaign
  scored by the same model version (the prediction log).
* Decay: the champion's Qini AUC (or uplift@k) measured by evaluations of campaigns it
  scored, on random_target + control, against its held-out figure from training; decayed
  when the relative drop exceeds the configured limit.
* Retraining (when drift or decay crosses its limit): campaign history plus the evaluated
  campaigns' random_target (treatment 1) and control (treatment 0) outcomes. A stratified
  share of the newest experiment is held out; the challenger is trained on everything else,
  then challenger and champion are scored on the same held-out clients (the champion was
  trained before those campaigns, so neither has seen them). The challenger is promoted only
  when its held-out metric beats the champion's by more than ``min_improvement``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from tasks.analytics import metrics
from tasks.monitoring.drift import DriftConfig
from tasks.core.errors import ConfigError, DataValidationError, NotFoundError
from tasks.core.io import read_json

DECAY_METRICS = ("qini_auc", "uplift_at_k")
FACTORS_CHECKPOINT = "stages/04_factors.parquet"


@dataclass
class DecayConfig:
    """When the champion counts as decayed (``monitor.decay``)."""

    metric: str = "qini_auc"            # qini_auc | uplift_at_k
    max_relative_drop: float = 0.3      # decayed when (training - observed) / |training| exceeds this
    min_evaluations: int = 1


@dataclass
class RetrainConfig:
    """Retraining and promotion (``monitor.retrain``)."""

    enabled: bool = True
    holdout_fraction: float = 0.3       # share of the newest experiment held out for the comparison
    metric: str = "qini_auc"            # held-out metric that decides promotion
    min_improvement: float = 0.0        # the challenger must beat the champion by more than this
    n_boot: int = 200                   # bootstrap replicates of the held-out difference
    seed: int = 0


@dataclass
class MonitorConfig:
    """``conf/monitor/default.yaml`` (key ``monitor``)."""

    model: str | None = None            # registry model name; null = model.name
    campaign_id: str | None = None      # campaign whose factors are checked; null = the latest frozen one
    drift: DriftConfig = field(default_factory=DriftConfig)
    decay: DecayConfig = field(default_factory=DecayConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    score_bins: int = 10

    def __post_init__(self) -> None:
        for where, metric in (("decay.metric", self.decay.metric), ("retrain.metric", self.retrain.metric)):
            if metric not in DECAY_METRICS:
                raise ConfigError(f"config 'monitor', key '{where}': {metric!r}; use one of {list(DECAY_METRICS)}")
        if not 0 < self.retrain.holdout_fraction < 1:
            raise ConfigError(f"config 'monitor', key 'retrain.holdout_fraction': must be in (0, 1), "
                              f"got {self.retrain.holdout_fraction}")
        if self.decay.max_relative_drop <= 0:
            raise ConfigError(f"config 'monitor', key 'decay.max_relative_drop': must be positive, "
                              f"got {self.decay.max_relative_drop}")


# --------------------------------------------------------------------------- campaigns and evaluations


def frozen_campaigns(artifacts: str | Path) -> list[dict]:
    """Manifests of every frozen campaign, oldest freeze first."""
    root = Path(artifacts) / "campaigns"
    found = []
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        if (folder / "manifest.json").exists() and (folder / "campaign.parquet").exists():
            m = read_json(folder / "manifest.json")
            m.setdefault("campaign_id", folder.name)
            found.append(m)
    return sorted(found, key=lambda m: (str(m.get("frozen_at", "")), m["campaign_id"]))


def pick_campaign(artifacts: str | Path, campaign_id: str | None) -> dict:
    """The named frozen campaign's manifest, or the most recently frozen one."""
    campaigns = frozen_campaigns(artifacts)
    if campaign_id is None:
        if not campaigns:
            raise NotFoundError(
                f"no frozen campaign under {Path(artifacts) / 'campaigns'}; calculate one with `python -m flows.campaign`"
            )
        return campaigns[-1]
    for m in campaigns:
        if m["campaign_id"] == campaign_id:
            return m
    raise NotFoundError(
        f"campaign {campaign_id!r} is not frozen under {Path(artifacts) / 'campaigns'}; "
        f"frozen campaigns: {[m['campaign_id'] for m in campaigns] or 'none'}"
    )


def load_factor_checkpoint(artifacts: str | Path, campaign_id: str) -> pd.DataFrame:
    """The factor table of a campaign's clients (its stage-4 checkpoint)."""
    path = Path(artifacts) / "campaigns" / campaign_id / FACTORS_CHECKPOINT
    if not path.exists():
        raise NotFoundError(f"campaign {campaign_id!r}: factor checkpoint {path} does not exist")
    return pd.read_parquet(path)


def evaluations_of(artifacts: str | Path, model_name: str, version: str | None = None) -> list[dict]:
    """metrics.json of every evaluated campaign scored by ``model_name`` (and ``version``), oldest first."""
    root = Path(artifacts) / "evaluations"
    out = []
    for path in sorted(root.glob("*/metrics.json")) if root.is_dir() else []:
        m = read_json(path)
        model = m.get("model") or {}
        if model.get("name") == model_name and (version is None or model.get("version") == version):
            out.append(m)
    return sorted(out, key=lambda m: (str(m.get("campaign_date", "")), str(m.get("evaluated_at", ""))))


# --------------------------------------------------------------------------- decay


def training_figure(metadata: dict, metric: str) -> float | None:
    """The champion's held-out ``metric`` from training (``metrics.heldout.<metric>.value``)."""
    held = (metadata.get("metrics") or {}).get("heldout") or {}
    value = held.get(metric)
    if isinstance(value, dict):
        value = value.get("value")
    return None if value is None else float(value)


def decay_check(metadata: dict, evaluations: list[dict], cfg: DecayConfig) -> dict[str, Any]:
    """Observed metric (evaluations pooled, weighted by their random_target + control size)
    against the training figure; ``decayed`` when the relative drop exceeds the limit."""
    baseline = training_figure(metadata, cfg.metric)
    observed = [(e["model_quality"][cfg.metric].get("estimate"), e["model_quality"].get("n", 0), e.get("campaign_id"))
                for e in evaluations if (e.get("model_quality") or {}).get(cfg.metric)]
    observed = [(v, n, c) for v, n, c in observed if v is not None and n]
    out: dict[str, Any] = {"metric": cfg.metric, "training_value": baseline, "limit": cfg.max_relative_drop,
                           "evaluations": [{"campaign_id": c, "value": v, "n": n} for v, n, c in observed]}
    if baseline is None or len(observed) < cfg.min_evaluations:
        reason = ("the champion's metadata has no held-out " + cfg.metric) if baseline is None else \
            f"{len(observed)} evaluated campaign(s) of the champion; need {cfg.min_evaluations}"
        return dict(out, observed_value=None, relative_drop=None, decayed=False, note=reason)
    total = sum(n for _, n, _ in observed)
    value = sum(v * n for v, n, _ in observed) / total
    drop = (baseline - value) / abs(baseline) if baseline != 0 else (math.inf if value < 0 else 0.0)
    return dict(out, observed_value=value, relative_drop=drop, decayed=bool(drop > cfg.max_relative_drop))


# --------------------------------------------------------------------------- retraining data


def experiment_rows(campaign: pd.DataFrame, responses: pd.DataFrame, campaign_id: str,
                    campaign_date: str) -> pd.DataFrame:
    """random_target (treatment 1) and control (treatment 0) clients with their outcomes,
    in the campaign-history layout."""
    sub = campaign.loc[campaign["group"].isin(["random_target", "control"]), ["client_id", "group"]]
    joined = sub.merge(responses[["client_id", "response", "revenue"]], on="client_id", how="inner")
    if len(joined) < len(sub):
        raise DataValidationError(
            "responses", "client_id",
            f"campaign {campaign_id!r}: {len(sub) - len(joined)} random_target/control client(s) have no response row",
        )
    return pd.DataFrame({
        "client_id": joined["client_id"].astype("int64"),
        "campaign_id": campaign_id,
        "campaign_date": pd.Timestamp(campaign_date),
        "treatment": (joined["group"] == "random_target").astype("int64"),
        "response": joined["response"].astype("int64"),
        "revenue": joined["revenue"].astype("float64"),
    })


def holdout_split(rows: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)``: a share of the rows stratified by treatment x response."""
    rng = np.random.default_rng(seed)
    strata = (2 * rows["treatment"].to_numpy() + rows["response"].to_numpy())
    hold = np.zeros(len(rows), dtype=bool)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        take = int(round(fraction * len(idx)))
        hold[rng.choice(idx, size=take, replace=False)] = True
    return rows.loc[~hold].reset_index(drop=True), rows.loc[hold].reset_index(drop=True)


# --------------------------------------------------------------------------- champion vs challenger


def _metric_fn(metric: str, k: float) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    if metric == "qini_auc":
        return lambda y, u, t: metrics.qini_auc(y, u, t)
    return lambda y, u, t: metrics.uplift_at_k(y, u, t, k=k)


def compare_on_holdout(champion_scores: np.ndarray, challenger_scores: np.ndarray, y: np.ndarray,
                       treatment: np.ndarray, metric: str = "qini_auc", k: float = 0.3,
                       min_improvement: float = 0.0, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """Both models' ``metric`` on the same held-out clients and the promotion decision.

    ``promote`` is True only when challenger - champion > ``min_improvement``. The paired
    bootstrap interval of the difference (same resampled clients for both) is reported.
    """
    y = np.asarray(y, dtype=float)
    t = np.asarray(treatment, dtype=float)
    fn = _metric_fn(metric, k)
    champ = fn(y, champion_scores, t)
    chall = fn(y, challenger_scores, t)
    diff = chall - champ
    out: dict[str, Any] = {"metric": metric, "n_holdout": int(len(y)), "champion": champ, "challenger": chall,
                           "difference": diff, "min_improvement": min_improvement}
    if n_boot >= 2:
        u = np.column_stack([champion_scores, challenger_scores])
        _, lo, hi = metrics.bootstrap_ci(lambda yy, uu, tt: fn(yy, uu[:, 1], tt) - fn(yy, uu[:, 0], tt),
                                         y, u, t, n_boot=n_boot, seed=seed, stratify=t)
        out.update(difference_ci_low=lo, difference_ci_high=hi)
    out["promote"] = bool(diff > min_improvement)
    out["reason"] = (f"challenger {metric} {chall:.4f} vs champion {champ:.4f} on {len(y)} held-out clients: "
                     + ("better, promote" if out["promote"] else "not better by more than "
                        f"{min_improvement}, keep the champion"))
    return out


def needs_retraining(drift_summary: dict | None, decay: dict | None) -> tuple[bool, list[str]]:
    """Whether drift or decay crossed its limit, with the reasons in words."""
    reasons = []
    if drift_summary and drift_summary.get("alarm"):
        reasons.append(f"data drift: {drift_summary['n_drifted']} of {drift_summary['n_factors']} factors drifted "
                       f"({drift_summary['drifted_share']:.1%} > limit {drift_summary['limit']:.1%})")
    if decay and decay.get("decayed"):
        reasons.append(f"decay: {decay['metric']} {decay['observed_value']:.4f} vs training "
                       f"{decay['training_value']:.4f} (relative drop {decay['relative_drop']:.1%} > limit {decay['limit']:.1%})")
    return bool(reasons), reasons


def with_model(cfg: MonitorConfig, model_name: str) -> MonitorConfig:
    """A copy of ``cfg`` naming the model to monitor."""
    return replace(cfg, model=model_name)


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
        lines.append(f"{dec['metric']}: training {dec['training_value']:.4f}, evaluated campaigns "
                     f"{dec['observed_value']:.4f} (relative drop {dec['relative_drop']:.1%}, limit {dec['limit']:.1%}); "
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
                      f"Challenger {r['challenger_version']}: {c['reason']}"
                      + (f" (difference CI [{c['difference_ci_low']:.4f}, {c['difference_ci_high']:.4f}])"
                         if "difference_ci_low" in c else "") + ".",
                      f"Champion after this run: **{record['champion_after']}**."]
    return "\n".join(lines) + "\n"
