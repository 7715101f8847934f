"""Deployment entry points: every flow, with its Hydra overrides as the one parameter.

prefect.yaml points its deployments here. Each entry composes conf/ with the given
overrides, exactly as ``python -m flows.<name> <overrides>`` would, and runs the product
flow as a subflow, so a deployment run shows the same stages, logs and artifacts in the UI
as a command-line run. Example::

    prefect deployment run 'run-campaign/spring-sale' \
        --param overrides='["campaign=spring_sale", "campaign.sample_fraction=0.2"]'
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from prefect import flow

from tasks.core.config import compose_config


def _compose(overrides: list[str] | None) -> DictConfig:
    return compose_config(list(overrides or []))


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True)


@flow(name="run-generate")
def run_generate(overrides: list[str] | None = None) -> dict:
    """Generate a synthetic world (overrides such as ``data.n_clients=200000``)."""
    from flows.generate import generate

    cfg = _compose(overrides)
    manifest = generate(data=_container(cfg.data), artifacts=str(cfg.paths.artifacts))
    return {"name": manifest["name"], "row_counts": manifest["row_counts"]}


@flow(name="run-train")
def run_train(overrides: list[str] | None = None) -> dict:
    """Train and register a model (overrides such as ``data=hillstrom model=hillstrom``)."""
    from flows.train import train_model

    cfg = _compose(overrides)
    return train_model(_container(cfg.data), _container(cfg.model), _container(cfg.factors),
                       str(cfg.paths.artifacts), str(cfg.paths.shared_data), _container(cfg.campaign))


@flow(name="run-campaign")
def run_campaign(overrides: list[str] | None = None) -> dict:
    """Calculate or resume a campaign (``campaign=<name>``, ``conf=<file>``, ``campaign.*=...``)."""
    from flows.campaign import campaign_flow, resolve_campaign, split_argv

    conf_path, held, rest, unknown = split_argv(list(overrides or []))
    cfg = _compose(rest)
    campaign, _ = resolve_campaign(cfg, conf_path, held, unknown)
    return campaign_flow(campaign=campaign, artifacts=str(cfg.paths.artifacts), runner=_container(cfg.runner))


@flow(name="run-simulate-responses")
def run_simulate_responses(overrides: list[str] | None = None) -> dict:
    """Draw synthetic responses for a frozen campaign (``campaign_id=<id>``)."""
    from flows.simulate_responses import simulate_responses_flow, simulation_target

    cfg = _compose(overrides)
    cid, seed = simulation_target(cfg)
    return simulate_responses_flow(campaign_id=cid, artifacts=str(cfg.paths.artifacts), seed=seed)


@flow(name="run-evaluate")
def run_evaluate(overrides: list[str] | None = None) -> dict:
    """Evaluate a frozen campaign against its responses (``campaign_id=<id>``); with
    ``evaluate.strict=true`` a failed check fails the run (after the report is written)."""
    from flows.evaluate import run

    return run(_compose(overrides), raise_on_failed_checks=True)


@flow(name="run-monitor")
def run_monitor(overrides: list[str] | None = None) -> dict:
    """Check drift and decay of the champion; retrain and promote when a limit is crossed."""
    from flows.monitor import run

    return run(_compose(overrides))


@flow(name="run-profile")
def run_profile(overrides: list[str] | None = None) -> dict:
    """Profile a dataset (``data=<dataset>``)."""
    from flows.profile import run

    return run(_compose(overrides))


@flow(name="run-ingest")
def run_ingest(overrides: list[str] | None = None) -> dict:
    """Snapshot a shop's PostgreSQL database (``source.url=postgresql://user@host:5432/db``,
    ``data.name=<name>``). The password comes from the worker's PGPASSWORD or ~/.pgpass: a
    deployment's overrides are recorded by Prefect, so a password in the URL is refused."""
    from flows.ingest import ingest_database
    from tasks.core.errors import ConfigError
    from tasks.data.postgres import split_url

    cfg = _compose(overrides)
    source = _container(cfg.source)
    url, password = split_url(str(source.get("url") or ""))
    if password is not None:
        raise ConfigError(f"config 'source', key 'url': a deployment's overrides are stored by Prefect; give "
                          f"source.url={url} and the password in the worker's PGPASSWORD or ~/.pgpass")
    manifest = ingest_database(source=source, name=str(cfg.data.name), artifacts=str(cfg.paths.artifacts))
    return {"name": manifest["name"], "as_of": manifest["as_of"], "row_counts": manifest["row_counts"]}
