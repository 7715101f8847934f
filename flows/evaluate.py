"""Evaluate a frozen campaign against its random control group.

    python -m flows.evaluate campaign_id=<id> [responses=<path.csv|path.parquet>] [evaluate.strict=true]

Writes ``<artifacts>/evaluations/<id>/``: the PNG plots, report.md and, last, metrics.json
(its presence marks a complete evaluation), publishes the report as a Prefect artifact and
prints where the report went. With ``evaluate.strict=true`` a failed check (sample ratio,
missing outcomes, undelivered offers, control contacted) ends the command with exit code 3
and one line naming the check, after the report is written.
"""
from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.core.config import from_conf, to_dataclass
from tasks.core.errors import ConfigError, StateError
from tasks.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tasks.core.layout import Layout
from tasks.evaluation import readout as ev
from tasks.evaluation.checks import failure_line
from tasks.evaluation.report import make_plots, render_report, render_report_html
from tasks.evaluation.responses import join_responses, read_responses_file

EXIT_CHECK_FAILED = 3


@task(cache_policy=NONE, persist_result=False)
def join_campaign_responses(artifacts: str, campaign_id: str, responses: str | None,
                            cfg: ev.EvaluateConfig) -> tuple[pd.DataFrame, dict, str]:
    """Read the frozen campaign and its responses and join them (errors name the bad rows)."""
    paths = Layout(artifacts).campaign(campaign_id)
    campaign, manifest = ev.load_frozen_campaign(paths.folder)
    path = Path(responses) if responses else paths.responses
    joined = join_responses(campaign, read_responses_file(path), cfg.missing_responses, cfg.positive, path)
    return joined, manifest, str(path)


@task(cache_policy=NONE, persist_result=False)
def estimate_effects(joined: pd.DataFrame, manifest: dict, cfg: ev.EvaluateConfig) -> tuple[dict, pd.DataFrame]:
    """Every estimand and the uplift-by-decile table."""
    analysed = joined[ev.analysed_mask(joined, cfg.missing_responses)]
    return ev.evaluate_campaign(joined, manifest, cfg), ev.decile_table(analysed, cfg.bins, cfg.alpha, cfg.small_cell)


@task(cache_policy=NONE, persist_result=False)
def write_evaluation(out_dir: str, joined: pd.DataFrame, result: dict, deciles: pd.DataFrame,
                     currency: str = "") -> str:
    """Write plots, report.md, report.html and metrics.json; publish the report as a Prefect artifact."""
    out = Path(out_dir)
    plots = make_plots(joined, result, deciles)
    for name, data in plots.items():
        atomic_write_bytes(data, out / name)
    report = render_report(result, deciles, plots, currency)
    atomic_write_text(report, out / "report.md")
    atomic_write_text(render_report_html(result, deciles, plots, currency), out / "report.html")
    payload = dict(result, deciles=deciles.to_dict(orient="records"))
    atomic_write_json(payload, out / "metrics.json")
    key = "evaluation-" + "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in str(result["campaign_id"]).lower())
    create_markdown_artifact(markdown=report, key=key[:100], description="Campaign evaluation")
    return str(out / "metrics.json")


@flow(name="evaluate-campaign")
def evaluate_campaign_flow(campaign_id: str, artifacts: str = "artifacts", responses: str | None = None,
                           settings: dict[str, Any] | None = None) -> dict:
    """Evaluate campaign ``campaign_id``; returns the metrics (also in metrics.json).

    ``settings`` override conf/evaluate/default.yaml key by key (the command line passes them all).
    """
    cfg = from_conf(ev.EvaluateConfig, "evaluate/default:evaluate", **(settings or {}))
    joined, manifest, resp_path = join_campaign_responses(artifacts, campaign_id, responses, cfg)
    manifest = dict(manifest, campaign_id=manifest.get("campaign_id", campaign_id))
    result, deciles = estimate_effects(joined, manifest, cfg)
    result.update(
        campaign_date=manifest.get("campaign_date"), data=manifest.get("data"),
        responses_path=str(Path(resp_path).resolve()), evaluated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(),
        settings=asdict(cfg),
    )
    out = Layout(artifacts).evaluation(campaign_id)
    write_evaluation(str(out), joined, result, deciles, cfg.currency)
    for name in result["checks"]["failed"]:
        get_run_logger().warning("check failed: %s", result["checks"]["items"][name]["detail"])
    result["report_path"] = str((out / "report.md").resolve())
    return result


def run(cfg: DictConfig, raise_on_failed_checks: bool = False) -> dict:
    """The CLI body: read ``campaign_id``, ``responses`` and ``evaluate.*`` from the config.

    ``raise_on_failed_checks`` (deployments): under ``evaluate.strict=true`` a failed check
    raises :class:`StateError` after the report is written, so the Prefect run fails.
    """
    campaign_id = cfg.get("campaign_id")
    if not campaign_id:
        raise ConfigError("config key 'campaign_id' is required: python -m flows.evaluate campaign_id=<id>")
    settings = OmegaConf.to_container(cfg.evaluate, resolve=True)
    # fail fast, before Prefect starts, on a bad config or an unknown / unfrozen campaign
    to_dataclass(settings, ev.EvaluateConfig, "evaluate")
    ev.check_frozen(Layout(cfg.paths.artifacts).campaign(str(campaign_id)).folder)
    result = evaluate_campaign_flow(str(campaign_id), str(cfg.paths.artifacts), cfg.get("responses"), settings)
    if raise_on_failed_checks and result["checks"]["failed"] and result["settings"]["strict"]:
        raise StateError(failure_line(result["checks"]) + " (evaluate.strict=true)")
    return result


def main() -> None:
    """``python -m flows.evaluate``: run, say where the report went; exit 3 on a failed check under strict."""
    from flows._cli import run_cli

    done: dict[str, Any] = {}
    run_cli(lambda cfg: done.update(result=run(cfg)))
    result = done.get("result")
    if not result:
        return
    report = Path(result["report_path"])
    print(f"evaluation of campaign {result['campaign_id']}: {report} and {report.with_suffix('.html')}")
    checks = result["checks"]
    if checks["failed"] and result["settings"]["strict"]:
        print(f"error: {failure_line(checks)} (evaluate.strict=true)", file=sys.stderr, flush=True)
        sys.exit(EXIT_CHECK_FAILED)


if __name__ == "__main__":
    main()
