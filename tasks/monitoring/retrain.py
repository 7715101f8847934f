"""Retraining: a challenger trained on history plus fresh experiments, compared with the
champion on held-out clients, promoted only when better.

The training rows are the campaign history plus the evaluated campaigns' random_target
(treatment 1) and control (treatment 0) outcomes. A stratified share of the newest experiment
is held out; the challenger is trained on everything else, then challenger and champion are
scored on the same held-out clients (the champion was trained before those campaigns, so
neither has seen them). The challenger is promoted only when the lower bound of the paired
bootstrap interval of challenger - champion exceeds ``margin`` (:mod:`tasks.modelling.promotion`,
the rule training's ``promote=auto`` uses too).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from factors import factor_set
from tasks.analytics import metrics
from tasks.core.errors import DataValidationError, NotFoundError
from tasks.core.layout import Layout
from tasks.data.tables import read_table
from tasks.modelling.config import ModelConfig
from tasks.modelling.guards import promotion_blockers
from tasks.modelling.promotion import promotion_evidence
from tasks.modelling.reference import reference_distributions
from tasks.modelling.registry import ModelRegistry
from tasks.modelling.training import register_version, train_uplift
from tasks.modelling.training_set import build_training_set, campaign_propensity
from tasks.monitoring.decay import RetrainConfig, evaluations_of, load_factor_checkpoint

HISTORY_COLUMNS = ["client_id", "campaign_id", "campaign_date", "treatment", "response", "revenue"]


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


# --------------------------------------------------------------------------- champion against challenger


def _metric_fn(metric: str, k: float) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    if metric == "qini_auc":
        return lambda y, u, t: metrics.qini_auc(y, u, t)
    return lambda y, u, t: metrics.uplift_at_k(y, u, t, k=k)


def compare_on_holdout(champion_scores: np.ndarray, challenger_scores: np.ndarray, y: np.ndarray,
                       treatment: np.ndarray, metric: str = "qini_auc", k: float = 0.3,
                       margin: float = 0.0, n_boot: int = 200, seed: int = 0,
                       champion: str = "champion") -> dict[str, Any]:
    """Both models' ``metric`` on the same held-out clients and the promotion decision of
    :func:`tasks.modelling.promotion.promotion_evidence`: promote only when the lower bound of the
    paired bootstrap interval of challenger - champion exceeds ``margin``."""
    return promotion_evidence(metric, _metric_fn(metric, k), np.asarray(y, dtype=float), champion_scores,
                              challenger_scores, np.asarray(treatment, dtype=float), margin=margin,
                              n_boot=n_boot, seed=seed, champion=champion)


def hold_back_blocked(comparison: dict[str, Any], metadata: dict) -> dict[str, Any]:
    """``comparison`` with the challenger's promotion blockers (an unacknowledged suspected leak,
    no signal: :func:`tasks.modelling.guards.promotion_blockers`) under ``blockers``; a
    challenger that beat the champion but has one is not promoted, and the reason says why."""
    blockers = promotion_blockers(metadata)
    out = {**comparison, "blockers": blockers}
    if out["promote"] and blockers:
        out["promote"] = False
        out["reason"] += f"; not promoted: {'; '.join(blockers)}"
    return out


# --------------------------------------------------------------------------- the challenger


def experiments_of(artifacts: str | Path, model_name: str) -> list[tuple[dict, pd.DataFrame]]:
    """``(evaluation metrics, experiment rows)`` of every evaluated campaign of ``model_name``
    whose campaign table and responses are still on disk, oldest first."""
    layout = Layout(artifacts)
    out = []
    for ev in evaluations_of(artifacts, model_name):
        campaign = layout.campaign(str(ev["campaign_id"]))
        resp_path = Path(ev.get("responses_path") or campaign.responses)
        if not campaign.table.exists() or not resp_path.exists():
            continue
        groups = pd.read_parquet(campaign.table, columns=["client_id", "group"])
        out.append((ev, experiment_rows(groups, pd.read_parquet(resp_path), str(ev["campaign_id"]),
                                        str(ev["campaign_date"]))))
    return out


def experiment_data_dir(artifacts: str | Path, evaluation: dict) -> Path:
    """The dataset folder an evaluated campaign was calculated from (its recorded ``data.dir``
    when that still exists, else ``data.name`` under the artifacts root)."""
    data = evaluation.get("data") or {}
    if data.get("dir") and Path(data["dir"]).is_dir():
        return Path(data["dir"])
    return Layout(artifacts).dataset(data.get("name", "synthetic"))


def drift_reference_from_campaign(result: Any, artifacts: str | Path, campaign_id: str, seed: int) -> None:
    """The challenger's drift reference: the factor snapshot of the newest evaluated campaign
    (the eligible base it scored, at its date) in place of the training rows, when the snapshot
    holds every feature of the challenger."""
    try:
        snapshot = load_factor_checkpoint(artifacts, campaign_id)
    except NotFoundError:
        return
    if not set(result.features) <= set(snapshot.columns):
        return
    result.reference = reference_distributions(snapshot[list(result.features)], seed=seed)
    result.extras["drift_reference"] = {"population": f"factor snapshot of campaign {campaign_id}",
                                        "rows": int(len(snapshot))}


def retrain_challenger(artifacts: str | Path, name: str, cfg: RetrainConfig, model_cfg: ModelConfig,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train a challenger on history plus fresh experiments, compare on held-out clients, maybe promote.

    The challenger is registered (never promoted by the registration rule) with the
    comparison as ``monitoring_comparison.json``; it becomes champion only when
    :func:`compare_on_holdout` says so. Returns what happened, or ``{"skipped": reason}``.
    """
    registry = ModelRegistry(Layout(artifacts).models)
    champion = registry.load(name)
    experiments = experiments_of(artifacts, name)
    if not experiments:
        return {"skipped": "no evaluated campaign with random_target/control outcomes to hold out; "
                           "evaluate one with `python -m flows.evaluate campaign_id=<id>`"}
    newest_ev, newest = experiments[-1]
    fresh_train, holdout = holdout_split(newest, cfg.holdout_fraction, cfg.seed)
    data_dir = experiment_data_dir(artifacts, newest_ev)
    history = read_table(data_dir, "campaign_history")
    cols = HISTORY_COLUMNS
    train_rows = pd.concat([history[cols]] + [rows[cols] for _, rows in experiments[:-1]] + [fresh_train[cols]],
                           ignore_index=True)
    names = factor_set(champion.factor_set) if champion.factor_set else champion.features
    X, t, y = build_training_set(data_dir, train_rows, names)
    # each campaign's own treated share: the history's and the experiments' designs differ
    result = train_uplift(X, t, y, model_cfg, seed=cfg.seed, propensity=campaign_propensity(train_rows),
                          groups=train_rows["client_id"].to_numpy(), dates=train_rows["campaign_date"].to_numpy())
    drift_reference_from_campaign(result, artifacts, str(newest_ev["campaign_id"]), cfg.seed)
    X_h, t_h, y_h = build_training_set(data_dir, holdout, names)
    comparison = compare_on_holdout(
        champion.predict(X_h), result.model.predict(X_h), y_h, t_h, metric=cfg.metric, k=model_cfg.k,
        margin=cfg.margin, n_boot=cfg.n_boot, seed=cfg.seed, champion=f"champion {champion.version}")
    version, _, _ = register_version(
        result, registry, name, replace(model_cfg, promote="never"), dataset=str(data_dir.name),
        factor_set=champion.factor_set,
        extra_files={"monitoring_comparison.json": json.dumps(comparison, indent=2, default=str)})
    comparison = hold_back_blocked(comparison, registry.metadata(name, version))
    if comparison["promote"]:
        registry.promote(name, version)
    if log is not None:
        log(f"challenger {version}: {comparison['reason']}")
    return {"challenger_version": version, "champion_version": champion.version, "comparison": comparison,
            "promoted": comparison["promote"], "holdout_campaign": str(newest_ev["campaign_id"]),
            "n_history_rows": int(len(history)), "n_experiment_rows": int(sum(len(r) for _, r in experiments)),
            "n_train_rows": int(len(train_rows)), "approach": result.approach}
