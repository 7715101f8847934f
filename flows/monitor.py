"""Monitor the champion: data drift, score drift, decay; retrain and promote when a limit is crossed.

    python -m flows.monitor [monitor.campaign_id=<id>] [monitor.drift.max_drifted_share=0.3] ...

Every run writes ``<artifacts>/monitoring/<timestamp>.json`` and ``.md`` with each decision
and its numbers, and publishes the Markdown as a Prefect artifact.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.monitoring import drift
from tasks.monitoring import decay as mon
from tasks.core.config import to_dataclass
from tasks.data.tables import dataset_dir, read_table
from tasks.core.io import atomic_write_json, atomic_write_text
from tasks.monitoring.prediction_log import log_dir, read_predictions
from tasks.modelling.registry import ModelRegistry


def monitoring_dir(artifacts: str | Path) -> Path:
    """``<artifacts>/monitoring``."""
    return Path(artifacts) / "monitoring"


def _data_dir(artifacts: str, manifest: dict) -> Path:
    data = manifest.get("data") or {}
    if data.get("dir") and Path(data["dir"]).is_dir():
        return Path(data["dir"])
    return dataset_dir(artifacts, data.get("name", "synthetic"))


@task(cache_policy=NONE, persist_result=False)
def check_data_drift(artifacts: str, campaign_id: str, reference: dict, cfg: drift.DriftConfig) -> dict:
    """Drift of the campaign's factor checkpoint against the champion's reference."""
    factors = mon.load_factor_checkpoint(artifacts, campaign_id)
    table = drift.drift_table(reference, factors, cfg, where=f"factors of campaign {campaign_id}")
    summary = drift.drift_summary(table, cfg)
    summary["factors"] = table.to_dict(orient="records")
    get_run_logger().info("data drift of %s: %d of %d factors drifted, alarm %s", campaign_id,
                          summary["n_drifted"], summary["n_factors"], summary["alarm"])
    return summary


@task(cache_policy=NONE, persist_result=False)
def check_score_drift(artifacts: str, campaign_id: str, model_version: str, bins: int) -> dict:
    """Scores of the campaign against the earliest other campaign scored by the same model version."""
    logged = read_predictions(log_dir(artifacts), model_version=model_version)
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


@task(cache_policy=NONE, persist_result=False)
def check_model_decay(artifacts: str, name: str, version: str, metadata: dict, cfg: mon.DecayConfig) -> dict:
    """Evaluated campaigns of the champion against its training figure."""
    return mon.decay_check(metadata, mon.evaluations_of(artifacts, name, version), cfg)


@task(cache_policy=NONE, persist_result=False)
def retrain_challenger(artifacts: str, name: str, cfg: mon.MonitorConfig, model_settings: dict) -> dict:
    """Train a challenger on history plus fresh experiments, compare on held-out clients, maybe promote."""
    from factors import factor_set
    from tasks.modelling.config import ModelConfig
    from tasks.modelling.training import register, train_uplift
    from tasks.modelling.training_set import build_training_set

    log = get_run_logger()
    registry = ModelRegistry(Path(artifacts) / "models")
    champion = registry.load(name)
    evaluations = mon.evaluations_of(artifacts, name)
    experiments = []
    for ev in evaluations:
        folder = Path(artifacts) / "campaigns" / str(ev["campaign_id"])
        resp_path = Path(ev.get("responses_path") or folder / "responses.parquet")
        if not (folder / "campaign.parquet").exists() or not resp_path.exists():
            continue
        campaign = pd.read_parquet(folder / "campaign.parquet", columns=["client_id", "group"])
        experiments.append((ev, mon.experiment_rows(campaign, pd.read_parquet(resp_path), str(ev["campaign_id"]),
                                                    str(ev["campaign_date"]))))
    if not experiments:
        return {"skipped": "no evaluated campaign with random_target/control outcomes to hold out; "
                           "evaluate one with `python -m flows.evaluate campaign_id=<id>`"}
    newest_ev, newest = experiments[-1]
    fresh_train, holdout = mon.holdout_split(newest, cfg.retrain.holdout_fraction, cfg.retrain.seed)
    data_dir = _data_dir(artifacts, {"data": newest_ev.get("data") or {}})
    history = read_table(data_dir, "campaign_history")
    cols = ["client_id", "campaign_id", "campaign_date", "treatment", "response", "revenue"]
    train_rows = pd.concat([history[cols]] + [rows[cols] for _, rows in experiments[:-1]] + [fresh_train[cols]],
                           ignore_index=True)
    names = factor_set(champion.factor_set) if champion.factor_set else champion.features
    model_cfg = to_dataclass(model_settings, ModelConfig, "model")
    X, t, y = build_training_set(data_dir, train_rows, names)
    result = train_uplift(X, t, y, model_cfg, seed=cfg.retrain.seed)
    X_h, t_h, y_h = build_training_set(data_dir, holdout, names)
    comparison = mon.compare_on_holdout(
        champion.predict(X_h), result.model.predict(X_h), y_h, t_h, metric=cfg.retrain.metric, k=model_cfg.k,
        min_improvement=cfg.retrain.min_improvement, n_boot=cfg.retrain.n_boot, seed=cfg.retrain.seed)
    version = register(result, registry, name, replace(model_cfg, promote="never"),
                       dataset=str(data_dir.name), factor_set=champion.factor_set,
                       extra_files={"monitoring_comparison.json": json.dumps(comparison, indent=2, default=str)})
    if comparison["promote"]:
        registry.promote(name, version)
    log.info("challenger %s: %s", version, comparison["reason"])
    return {"challenger_version": version, "champion_version": champion.version, "comparison": comparison,
            "promoted": comparison["promote"], "holdout_campaign": str(newest_ev["campaign_id"]),
            "n_history_rows": int(len(history)), "n_experiment_rows": int(sum(len(r) for _, r in experiments)),
            "n_train_rows": int(len(train_rows)), "approach": result.approach}


@task(cache_policy=NONE, persist_result=False)
def write_monitoring_record(artifacts: str, record: dict) -> str:
    """``<timestamp>.md`` then ``<timestamp>.json`` under ``<artifacts>/monitoring``."""
    out = monitoring_dir(artifacts)
    stamp = record["time"].replace(":", "").replace("-", "").replace("+0000", "Z")
    md = mon.render_record(record)
    atomic_write_text(md, out / f"{stamp}.md")
    atomic_write_json(record, out / f"{stamp}.json")
    key = "monitoring-" + "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in record["model"].lower())
    create_markdown_artifact(markdown=md, key=key[:100], description="Monitoring decisions")
    return str(out / f"{stamp}.json")


@flow(name="monitor-models")
def monitor_flow(artifacts: str = "artifacts", settings: dict[str, Any] | None = None,
                 model_settings: dict[str, Any] | None = None) -> dict:
    """One monitoring run; returns the record written to ``<artifacts>/monitoring``."""
    cfg = to_dataclass(settings or {}, mon.MonitorConfig, "monitor")
    model_settings = dict(model_settings or {})
    name = cfg.model or model_settings.get("name") or "synthetic_uplift"
    registry = ModelRegistry(Path(artifacts) / "models")
    champion = registry.load(name)
    manifest = mon.pick_campaign(artifacts, cfg.campaign_id)
    cid = str(manifest["campaign_id"])
    now = _dt.datetime.now(_dt.timezone.utc)
    record: dict[str, Any] = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000", "model": name,
                              "champion_before": champion.version, "campaign_id": cid,
                              "settings": asdict(cfg)}
    reference = champion.metadata.get("reference") or {}
    record["drift"] = check_data_drift(artifacts, cid, reference, cfg.drift)
    record["score_drift"] = check_score_drift(artifacts, cid, champion.version, cfg.score_bins)
    record["decay"] = check_model_decay(artifacts, name, champion.version, champion.metadata, cfg.decay)
    needed, reasons = mon.needs_retraining(record["drift"], record["decay"])
    record.update(retrain_needed=needed, reasons=reasons)
    if needed:
        if cfg.retrain.enabled:
            record["retrain"] = retrain_challenger(artifacts, name, cfg, dict(model_settings, name=name))
        else:
            record["retrain"] = {"skipped": "monitor.retrain.enabled is false"}
    record["champion_after"] = registry.champion(name)
    write_monitoring_record(artifacts, record)
    return record


def run(cfg: DictConfig) -> dict:
    """The CLI body."""
    settings = OmegaConf.to_container(cfg.monitor, resolve=True)
    model_settings = OmegaConf.to_container(cfg.model, resolve=True)
    # fail fast, before Prefect starts, on a bad config, a missing champion or no campaign
    mcfg = to_dataclass(settings, mon.MonitorConfig, "monitor")
    ModelRegistry(Path(cfg.paths.artifacts) / "models").metadata(mcfg.model or model_settings.get("name"))
    mon.pick_campaign(cfg.paths.artifacts, mcfg.campaign_id)
    return monitor_flow(str(cfg.paths.artifacts), settings, model_settings)


def main() -> None:
    from flows._cli import run_cli

    run_cli(run)


if __name__ == "__main__":
    main()
