"""Evaluate a frozen campaign against its random control group.

    python -m flows.evaluate campaign_id=<id> [responses=<path>] [evaluate.missing_responses=non_responder]

Writes ``<artifacts>/evaluations/<id>/``: the PNG plots, report.md and, last, metrics.json
(its presence marks a complete evaluation), and publishes the report as a Prefect artifact.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.core.config import to_dataclass
from tasks.core.errors import ConfigError
from tasks.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tasks.core.layout import Layout
from tasks.evaluation import readout as ev
from tasks.evaluation.report import make_plots, render_report


@task(cache_policy=NONE, persist_result=False)
def join_campaign_responses(artifacts: str, campaign_id: str, responses: str | None,
                            missing_responses: str) -> tuple[pd.DataFrame, dict, str]:
    """Read the frozen campaign and its responses and join them (errors name the bad rows)."""
    paths = Layout(artifacts).campaign(campaign_id)
    campaign, manifest = ev.load_frozen_campaign(paths.folder)
    path = Path(responses) if responses else paths.responses
    joined = ev.join_responses(campaign, ev.read_responses(path), missing_responses)
    return joined, manifest, str(path)


@task(cache_policy=NONE, persist_result=False)
def estimate_effects(joined: pd.DataFrame, manifest: dict, cfg: ev.EvaluateConfig) -> tuple[dict, pd.DataFrame]:
    """Every estimand and the uplift-by-decile table."""
    return ev.evaluate_campaign(joined, manifest, cfg), ev.decile_table(joined, cfg.bins, cfg.alpha)


@task(cache_policy=NONE, persist_result=False)
def write_evaluation(out_dir: str, joined: pd.DataFrame, result: dict, deciles: pd.DataFrame) -> str:
    """Write plots, report.md and metrics.json; publish the report as a Prefect artifact."""
    out = Path(out_dir)
    plots = make_plots(joined, result, deciles)
    for name, data in plots.items():
        atomic_write_bytes(data, out / name)
    report = render_report(result, deciles, sorted(plots))
    atomic_write_text(report, out / "report.md")
    payload = dict(result, deciles=deciles.to_dict(orient="records"))
    atomic_write_json(payload, out / "metrics.json")
    key = "evaluation-" + "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in str(result["campaign_id"]).lower())
    create_markdown_artifact(markdown=report, key=key[:100], description="Campaign evaluation")
    return str(out / "metrics.json")


@flow(name="evaluate-campaign")
def evaluate_campaign_flow(campaign_id: str, artifacts: str = "artifacts", responses: str | None = None,
                           settings: dict[str, Any] | None = None) -> dict:
    """Evaluate campaign ``campaign_id``; returns the metrics (also in metrics.json)."""
    cfg = to_dataclass(settings or {}, ev.EvaluateConfig, "evaluate")
    joined, manifest, resp_path = join_campaign_responses(artifacts, campaign_id, responses, cfg.missing_responses)
    manifest = dict(manifest, campaign_id=manifest.get("campaign_id", campaign_id))
    result, deciles = estimate_effects(joined, manifest, cfg)
    result.update(
        campaign_date=manifest.get("campaign_date"), data=manifest.get("data"),
        responses_path=str(Path(resp_path).resolve()), evaluated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(),
        settings=asdict(cfg),
    )
    write_evaluation(str(Layout(artifacts).evaluation(campaign_id)), joined, result, deciles)
    return result


def run(cfg: DictConfig) -> dict:
    """The CLI body: read ``campaign_id``, ``responses`` and ``evaluate.*`` from the config."""
    campaign_id = cfg.get("campaign_id")
    if not campaign_id:
        raise ConfigError("config key 'campaign_id' is required: python -m flows.evaluate campaign_id=<id>")
    settings = OmegaConf.to_container(cfg.evaluate, resolve=True)
    # fail fast, before Prefect starts, on a bad config or an unknown / unfrozen campaign
    to_dataclass(settings, ev.EvaluateConfig, "evaluate")
    ev.check_frozen(Layout(cfg.paths.artifacts).campaign(str(campaign_id)).folder)
    return evaluate_campaign_flow(str(campaign_id), str(cfg.paths.artifacts), cfg.get("responses"), settings)


def main() -> None:
    from flows._cli import run_cli

    run_cli(run)


if __name__ == "__main__":
    main()
