"""Model monitoring: what a run reads and the checks it makes (data drift, score drift, decay).

* Data drift: a campaign's factor checkpoint (its factors stage) against the champion's
  reference distributions (:mod:`tasks.monitoring.drift`).
* Score drift: the campaign's logged scores against the earliest other logged campaign
  scored by the same model version (the prediction log).
* Decay: the champion's Qini AUC (or uplift@k) measured by evaluations of campaigns it
  scored, on random_target + control, against its held-out figure from training; decayed
  when the relative drop exceeds the configured limit.

When drift or decay crosses its limit (:func:`needs_retraining`) a challenger is trained and
compared with the champion (:mod:`tasks.monitoring.retrain`); the run is recorded by
:mod:`tasks.monitoring.record`. Every path comes from :class:`tasks.core.layout.Layout`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.io import read_json
from tasks.core.layout import Layout
from tasks.monitoring import drift
from tasks.monitoring.drift import DriftConfig
from tasks.monitoring.prediction_log import read_predictions

DECAY_METRICS = ("qini_auc", "uplift_at_k")
FACTORS_STAGE = (3, "factors")  # the campaign stage whose checkpoint holds the clients' factors
EVALUATION_METRICS = "metrics.json"  # the file an evaluation writes last, in its folder


@dataclass
class DecayConfig:
    """When the champion counts as decayed (``monitor.decay``)."""

    metric: str                         # qini_auc | uplift_at_k
    max_relative_drop: float            # decayed when (training - observed) / |training| exceeds this
    min_evaluations: int


@dataclass
class RetrainConfig:
    """Retraining and promotion (``monitor.retrain``)."""

    enabled: bool
    holdout_fraction: float             # share of the newest experiment held out for the comparison
    metric: str                         # held-out metric that decides promotion
    min_improvement: float              # the challenger must beat the champion by more than this
    n_boot: int                         # bootstrap replicates of the held-out difference
    seed: int


@dataclass
class MonitorConfig:
    """``conf/monitor/default.yaml`` (key ``monitor``). The campaign whose factors are checked
    is the flows' shared top-level ``campaign_id``, not a monitor setting."""

    model: str | None                   # registry model name; None = model.name
    drift: DriftConfig
    decay: DecayConfig
    retrain: RetrainConfig
    score_bins: int                     # quantile bins of the score-drift PSI

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
    found = []
    for campaign in Layout(artifacts).frozen_campaigns():
        m = read_json(campaign.manifest)
        m.setdefault("campaign_id", campaign.folder.name)
        found.append(m)
    return sorted(found, key=lambda m: (str(m.get("frozen_at", "")), m["campaign_id"]))


def pick_campaign(artifacts: str | Path, campaign_id: str | None) -> dict:
    """The named frozen campaign's manifest, or the most recently frozen one."""
    campaigns = frozen_campaigns(artifacts)
    root = Layout(artifacts).campaigns
    if campaign_id is None:
        if not campaigns:
            raise NotFoundError(
                f"no frozen campaign under {root}; calculate one with `python -m flows.campaign`"
            )
        return campaigns[-1]
    for m in campaigns:
        if m["campaign_id"] == campaign_id:
            return m
    raise NotFoundError(
        f"campaign {campaign_id!r} is not frozen under {root}; "
        f"frozen campaigns: {[m['campaign_id'] for m in campaigns] or 'none'}"
    )


def load_factor_checkpoint(artifacts: str | Path, campaign_id: str) -> pd.DataFrame:
    """The factor table of a campaign's clients (the checkpoint of its factors stage)."""
    path = Layout(artifacts).campaign(campaign_id).stage(*FACTORS_STAGE)
    if not path.exists():
        raise NotFoundError(f"campaign {campaign_id!r}: factor checkpoint {path} does not exist")
    return pd.read_parquet(path)


def evaluations_of(artifacts: str | Path, model_name: str, version: str | None = None) -> list[dict]:
    """metrics.json of every evaluated campaign scored by ``model_name`` (and ``version``), oldest first."""
    root = Layout(artifacts).evaluations
    out = []
    for path in sorted(root.glob(f"*/{EVALUATION_METRICS}")) if root.is_dir() else []:
        m = read_json(path)
        model = m.get("model") or {}
        if model.get("name") == model_name and (version is None or model.get("version") == version):
            out.append(m)
    return sorted(out, key=lambda m: (str(m.get("campaign_date", "")), str(m.get("evaluated_at", ""))))


# --------------------------------------------------------------------------- the checks of one campaign


def campaign_data_drift(artifacts: str | Path, campaign_id: str, reference: dict, cfg: DriftConfig) -> dict:
    """Drift of the campaign's factor checkpoint against the champion's reference: the
    summary of :func:`tasks.monitoring.drift.drift_summary` with every factor's row."""
    factors = load_factor_checkpoint(artifacts, campaign_id)
    table = drift.drift_table(reference, factors, cfg, where=f"factors of campaign {campaign_id}")
    summary = drift.drift_summary(table, cfg)
    summary["factors"] = table.to_dict(orient="records")
    return summary


def campaign_score_drift(artifacts: str | Path, campaign_id: str, model_version: str, bins: int) -> dict:
    """Scores of the campaign against the earliest other campaign scored by the same model version."""
    logged = read_predictions(Layout(artifacts).predictions, model_version=model_version)
    logged = logged[logged["source"] == "campaign"] if len(logged) else logged
    current = logged[logged["campaign_id"] == campaign_id] if len(logged) else logged
    others = logged[logged["campaign_id"] != campaign_id] if len(logged) else logged
    if len(current) < 2 or len(others) < 2:
        return {"psi": None, "current": campaign_id,
                "note": f"the prediction log holds no other campaign scored by {model_version} to compare with"}
    first = others.sort_values("time").iloc[0]["campaign_id"]
    base = others[others["campaign_id"] == first]
    out = drift.score_drift(base["score"].to_numpy(), current["score"].to_numpy(), bins)
    return dict(out, baseline=str(first), current=campaign_id)


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


def champion_decay(artifacts: str | Path, name: str, version: str, metadata: dict, cfg: DecayConfig) -> dict[str, Any]:
    """:func:`decay_check` of version ``version`` of model ``name`` on its evaluated campaigns."""
    return decay_check(metadata, evaluations_of(artifacts, name, version), cfg)


# --------------------------------------------------------------------------- the decision


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
