"""Simulate a frozen campaign's outcomes on synthetic data: ``python -m flows.simulate_responses campaign_id=<id>``.

Each client of the campaign responds with the truth table's ``p_treated`` when the campaign
gave them the offer and ``p_control`` otherwise (revenue drawn for responders), seeded.
Writes ``<artifacts>/campaigns/<id>/responses.parquet`` (client_id, response, revenue).

``campaign_id=<id>`` (default: the id of the selected campaign config) and ``seed=<int>``
(default: derived from the campaign's seed) are the top-level keys of conf/config.yaml, the
same ``campaign_id`` every flow reads; other overrides (``paths.artifacts=...``) work as usual.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows._cli import run_cli
from tasks.campaign.frozen import read_frozen_campaign, require_frozen
from tasks.campaign.transforms import derive_seed
from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.io import atomic_write_parquet
from tasks.core.layout import Layout
from tasks.data.synthetic.truth import draw_responses
from tasks.data.tables import read_table, table_path


def simulate_outcomes(campaign: pd.DataFrame, truth: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Responses and revenue of the campaign's clients drawn from ``truth`` (offer -> p_treated)."""
    out = draw_responses(truth, campaign["client_id"].to_numpy(), campaign["offer"].to_numpy(dtype=bool), seed)
    return out[["client_id", "response", "revenue"]]


def simulate_campaign_responses(artifacts: str | Path, campaign_id: str, seed: int | None = None) -> Path:
    """Draw and write responses.parquet for a frozen campaign; returns its path."""
    manifest, table = read_frozen_campaign(Layout(artifacts).campaign(campaign_id), columns=["client_id", "offer"])
    if manifest["data"].get("kind") == "table":
        raise NotFoundError(
            f"campaign {campaign_id!r} was calculated over the client table {manifest['data'].get('path')}, which "
            f"has no ground truth to draw responses from (synthetic worlds only); evaluate it with the responses "
            f"you got back: python -m flows.evaluate campaign_id={campaign_id} responses=<file.csv>")
    # By name under this artifacts root: the recorded dir may be relative to another cwd.
    data_dir = Layout(artifacts).dataset(manifest["data"]["name"])
    if not table_path(data_dir, "truth").exists():
        raise NotFoundError(
            f"campaign {campaign_id!r}: dataset {manifest['data']['name']!r} has no truth table "
            f"({table_path(data_dir, 'truth')}); responses can only be simulated on synthetic worlds")
    truth = read_table(data_dir, "truth")
    if seed is None:
        seed = derive_seed(int(manifest["config"]["seed"]), "responses")
    responses = simulate_outcomes(table, truth, int(seed))
    return atomic_write_parquet(responses, Layout(artifacts).campaign(campaign_id).responses)


@task(name="draw_responses", cache_policy=NO_CACHE, persist_result=False)
def draw_responses_task(artifacts: str, campaign_id: str, seed: int | None) -> dict:
    """Draw the responses of a frozen campaign and publish a short summary."""
    path = simulate_campaign_responses(artifacts, campaign_id, seed)
    df = pd.read_parquet(path)
    _, offers = read_frozen_campaign(Layout(artifacts).campaign(campaign_id), columns=["client_id", "group", "offer"])
    joined = offers.merge(df, on="client_id")
    rates = joined.groupby("group")[["response", "revenue"]].mean().round(5)
    md = f"### Simulated responses of {campaign_id}\n\n{len(df)} clients, {int(df['response'].sum())} responses.\n\n"
    md += "| group | response rate | revenue per client |\n|---|---|---|\n"
    md += "\n".join(f"| {g} | {r.response} | {r.revenue} |" for g, r in rates.iterrows()) + "\n"
    create_markdown_artifact(key=f"responses-{campaign_id}".lower().replace("_", "-").replace(".", "-"), markdown=md)
    get_run_logger().info("wrote %s (%d rows)", path, len(df))
    return {"path": str(path), "rows": int(len(df)), "responses": int(df["response"].sum())}


@flow(name="simulate-responses")
def simulate_responses_flow(campaign_id: str, artifacts: str = "artifacts", seed: int | None = None) -> dict:
    """Simulate the outcomes of frozen campaign ``campaign_id`` from the synthetic truth."""
    return draw_responses_task(artifacts, campaign_id, seed)


def simulation_target(cfg: DictConfig) -> tuple[str, int | None]:
    """The campaign (``campaign_id``, else ``campaign.id``) and the seed (``seed``) of the draw."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"config key 'seed': {seed!r} is not an integer (e.g. seed=7)")
    return str(cfg.get("campaign_id") or cfg.campaign.id), seed


def _body(cfg: DictConfig) -> None:
    cid, seed = simulation_target(cfg)
    require_frozen(Layout(cfg.paths.artifacts).campaign(cid))  # verified, before an orchestrator run starts
    result = simulate_responses_flow(campaign_id=cid, artifacts=str(cfg.paths.artifacts), seed=seed)
    print(f"campaign {cid}: {result['responses']} responses among {result['rows']} clients -> {result['path']}")


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    # Prefect's ephemeral server gets 20 s to start by default, too little on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    run_cli(_body)


if __name__ == "__main__":
    main()
