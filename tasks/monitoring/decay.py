"""Model monitoring: what a run reads and the checks it makes (data drift, score drift, decay).

* Data drift: a campaign's factor checkpoint (its factors stage) against the champion's
  reference distributions (:mod:`tasks.monitoring.drift`).
* Score drift: the campaign's logged scores against the earliest other logged campaign
  scored by the same model version (the prediction log).
* Decay: the champion's Qini AUC (or uplift@k) measured by evaluations of campaigns it
  scored, on random_target + control (the campaign population), against the same measure on
  the first campaign it was evaluated on (one population kind, one base rate) - or, with a
  single evaluation, against a random ranking (0); decayed only when the confidence interval
  says the latest figure is below ``min_fraction`` of the first (below 0 for a random ranking).
  The held-out figure from training is shown, not tested: it comes from other rows (past
  campaigns' clients, another base rate).

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
from scipy import stats as sps

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
    min_fraction: float                 # decayed when the CI says latest < min_fraction x first evaluation
    min_evaluations: int
    alpha: float                        # two-sided level of the interval of latest - min_fraction x first
    max_relative_drop: float | None = None  # replaced by min_fraction; set only to be told so

    def __post_init__(self) -> None:
        if self.max_relative_drop is not None:
            raise ConfigError("config 'monitor', key 'decay.max_relative_drop': replaced; use "
                              "monitor.decay.min_fraction (decay is now tested with a confidence interval "
                              "against the first evaluated campaign, e.g. min_fraction=0.7)")
        if not 0 <= self.min_fraction <= 1:
            raise ConfigError(f"config 'monitor', key 'decay.min_fraction': must be in [0, 1], got {self.min_fraction}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"config 'monitor', key 'decay.alpha': must be in (0, 1), got {self.alpha}")


@dataclass
class RetrainConfig:
    """Retraining and promotion (``monitor.retrain``)."""

    enabled: bool
    holdout_fraction: float             # share of the newest experiment held out for the comparison
    metric: str                         # held-out metric that decides promotion
    margin: float                       # the paired CI's lower bound of challenger - champion must exceed this
    n_boot: int                         # bootstrap replicates of the held-out difference
    seed: int
    min_improvement: float | None = None  # renamed to margin; set only to be told so

    def __post_init__(self) -> None:
        if self.min_improvement is not None:
            raise ConfigError("config 'monitor', key 'retrain.min_improvement': renamed; use "
                              "monitor.retrain.margin (promotion now needs the lower bound of the paired "
                              "bootstrap CI of challenger - champion above it)")
        if self.n_boot < 2:
            raise ConfigError(f"config 'monitor', key 'retrain.n_boot': {self.n_boot}; use at least 2")


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


def _evaluation_figure(e: dict, metric: str) -> dict | None:
    """One evaluation's ``metric`` with its interval and standard error (from the interval's
    width at the evaluation's level), or None when it has no estimate."""
    mq = e.get("model_quality") or {}
    m = mq.get(metric) or {}
    if m.get("estimate") is None:
        return None
    lo, hi = m.get("ci_low"), m.get("ci_high")
    alpha = float(e.get("alpha") or 0.05)
    se = (hi - lo) / (2 * float(sps.norm.ppf(1 - alpha / 2))) if lo is not None and hi is not None else None
    return {"campaign_id": e.get("campaign_id"), "campaign_date": e.get("campaign_date"), "value": float(m["estimate"]),
            "ci_low": lo, "ci_high": hi, "se": se, "n": int(mq.get("n", 0))}


def decay_check(metadata: dict, evaluations: list[dict], cfg: DecayConfig) -> dict[str, Any]:
    """The latest evaluated campaign's ``metric`` against ``min_fraction`` x the first's.

    Both are measured the same way on the same kind of population (random_target + control of
    a campaign), each with its bootstrap interval; the difference ``latest - min_fraction x
    first`` gets the normal interval of the two independent estimates, and the champion has
    decayed only when that interval lies below 0. With a single evaluation the comparison is a
    random ranking (Qini 0): decayed only when the campaign's own interval lies below 0.
    """
    training = training_figure(metadata, cfg.metric)
    figures = [f for f in (_evaluation_figure(e, cfg.metric) for e in evaluations) if f is not None]
    out: dict[str, Any] = {"metric": cfg.metric, "training_value": training, "min_fraction": cfg.min_fraction,
                           "alpha": cfg.alpha, "evaluations": figures}
    if len(figures) < max(cfg.min_evaluations, 1):
        return dict(out, observed_value=None, decayed=False,
                    note=f"{len(figures)} evaluated campaign(s) of the champion; need {max(cfg.min_evaluations, 1)}")
    latest = figures[-1]
    z = float(sps.norm.ppf(1 - cfg.alpha / 2))
    if len(figures) == 1:
        ref_value, ref_se, against = 0.0, 0.0, "a random ranking (0)"
    else:
        first = figures[0]
        ref_value, ref_se = cfg.min_fraction * first["value"], cfg.min_fraction * (first["se"] or 0.0)
        against = f"{cfg.min_fraction:g} x the first evaluated campaign {first['campaign_id']} ({first['value']:.4f})"
    if latest["se"] is None:
        return dict(out, observed_value=latest["value"], decayed=False,
                    note=f"campaign {latest['campaign_id']} has no interval of {cfg.metric}; decay not tested")
    diff = latest["value"] - ref_value
    se = math.sqrt(latest["se"] ** 2 + ref_se ** 2)
    lo, hi = diff - z * se, diff + z * se
    decayed = bool(hi < 0)
    text = (f"{cfg.metric} of campaign {latest['campaign_id']} {latest['value']:.4f} vs {against}: difference "
            f"{diff:+.4f}, {1 - cfg.alpha:.0%} CI [{lo:+.4f}, {hi:+.4f}]"
            + (": below, decayed" if decayed else ": not shown to be below"))
    return dict(out, observed_value=latest["value"], reference_value=ref_value, against=against,
                difference=diff, difference_ci_low=lo, difference_ci_high=hi, decayed=decayed, text=text)


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
        reasons.append(f"decay: {decay['text']}")
    return bool(reasons), reasons


def with_model(cfg: MonitorConfig, model_name: str) -> MonitorConfig:
    """A copy of ``cfg`` naming the model to monitor."""
    return replace(cfg, model=model_name)
