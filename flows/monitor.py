"""Monitor the champion: data drift, score drift, decay; retrain and promote when a limit is crossed.

    python -m flows.monitor [campaign_id=<id>] [monitor.drift.max_drifted_share=0.3] ...

Every run writes ``<artifacts>/monitoring/<timestamp>.json`` and ``.md`` with each decision
and its numbers, and publishes the Markdown as a Prefect artifact. The checks, retraining and
the record are plain functions in ``tasks/monitoring``; this module wraps them as Prefect tasks
and holds the CLI.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.core.config import from_conf, to_dataclass
from tasks.core.layout import Layout
from tasks.modelling.config import ModelConfig
from tasks.modelling.registry import ModelRegistry
from tasks.monitoring import decay as mon
from tasks.monitoring import drift
from tasks.monitoring.record import write_record
from tasks.monitoring.retrain import retrain_challenger as retrain


@task(cache_policy=NONE, persist_result=False)
def check_data_drift(artifacts: str, campaign_id: str, reference: dict, cfg: drift.DriftConfig) -> dict:
    """Drift of the campaign's factor checkpoint against the champion's reference."""
    summary = mon.campaign_data_drift(artifacts, campaign_id, reference, cfg)
    get_run_logger().info("data drift of %s: %d of %d factors drifted, alarm %s", campaign_id,
                          summary["n_drifted"], summary["n_factors"], summary["alarm"])
    return summary


@task(cache_policy=NONE, persist_result=False)
def check_score_drift(artifacts: str, campaign_id: str, model_version: str, bins: int) -> dict:
    """Scores of the campaign against the earliest other campaign scored by the same model version."""
    return mon.campaign_score_drift(artifacts, campaign_id, model_version, bins)


@task(cache_policy=NONE, persist_result=False)
def check_model_decay(artifacts: str, name: str, version: str, metadata: dict, cfg: mon.DecayConfig) -> dict:
    """Evaluated campaigns of the champion against its training figure."""
    return mon.champion_decay(artifacts, name, version, metadata, cfg)


@task(cache_policy=NONE, persist_result=False)
def retrain_challenger(artifacts: str, name: str, cfg: mon.MonitorConfig, model_cfg: ModelConfig) -> dict:
    """Train a challenger on history plus fresh experiments, compare on held-out clients, maybe promote."""
    return retrain(artifacts, name, cfg.retrain, model_cfg, log=get_run_logger().info)


@task(cache_policy=NONE, persist_result=False)
def write_monitoring_record(artifacts: str, record: dict) -> str:
    """``<timestamp>.md`` then ``<timestamp>.json`` under ``<artifacts>/monitoring``."""
    path, md = write_record(artifacts, record)
    key = "monitoring-" + "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in record["model"].lower())
    create_markdown_artifact(markdown=md, key=key[:100], description="Monitoring decisions")
    return str(path)


@flow(name="monitor-models")
def monitor_flow(artifacts: str = "artifacts", settings: dict[str, Any] | None = None,
                 model_settings: dict[str, Any] | None = None, campaign_id: str | None = None) -> dict:
    """One monitoring run; returns the record written to ``<artifacts>/monitoring``.

    ``settings`` override conf/monitor/default.yaml key by key, ``model_settings`` the model
    conf/model/uplift.yaml (the CLI passes the composed ``monitor`` and ``model``);
    ``campaign_id`` is the campaign whose factors are checked (None: the latest frozen one).
    """
    cfg = from_conf(mon.MonitorConfig, "monitor/default", **(settings or {}))
    model_cfg = from_conf(ModelConfig, "model/uplift", **(model_settings or {}))
    name = cfg.model or model_cfg.name
    registry = ModelRegistry(Layout(artifacts).models)
    champion = registry.load(name)
    manifest = mon.pick_campaign(artifacts, campaign_id)
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
            record["retrain"] = retrain_challenger(artifacts, name, cfg, replace(model_cfg, name=name))
        else:
            record["retrain"] = {"skipped": "monitor.retrain.enabled is false"}
    record["champion_after"] = registry.champion(name)
    record["record_path"] = write_monitoring_record(artifacts, record)
    return record


def run(cfg: DictConfig) -> dict:
    """The CLI body."""
    settings = OmegaConf.to_container(cfg.monitor, resolve=True)
    model_settings = OmegaConf.to_container(cfg.model, resolve=True)
    # fail fast, before Prefect starts, on a bad config, a missing champion or no campaign
    mcfg = to_dataclass(settings, mon.MonitorConfig, "monitor")
    to_dataclass(model_settings, ModelConfig, "model")
    ModelRegistry(Layout(cfg.paths.artifacts).models).metadata(mcfg.model or model_settings["name"])
    mon.pick_campaign(cfg.paths.artifacts, cfg.campaign_id)
    record = monitor_flow(str(cfg.paths.artifacts), settings, model_settings, cfg.campaign_id)
    verdict = "retraining needed: " + "; ".join(record["reasons"]) if record.get("retrain_needed") else "healthy"
    print(f"monitoring of {record['model']}: {verdict}; champion {record.get('champion_after')}; "
          f"record -> {Path(record['record_path']).resolve()} (and .md)")
    return record


def main() -> None:
    from flows._cli import run_cli

    run_cli(run)


if __name__ == "__main__":
    main()
