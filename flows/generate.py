"""Generate the embedded synthetic retail world.

    python -m flows.generate data.n_clients=200000 data.seed=7 data.name=big [paths.artifacts=...]

Writes clients, purchases, messages, campaign_history and truth as Parquet, plus
manifest.json, to ``<artifacts>/data/<name>/``. Each table group is simulated and written by
its own task; only paths and row counts pass through Prefect. The tables are built in a
staging folder that replaces the dataset folder only when every table is written.
"""
from __future__ import annotations

import re
import shutil
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows._progress import heartbeat
from tasks.core.config import SyntheticDataConfig, from_conf, to_dataclass
from tasks.core.layout import Layout
from tasks.data.synthetic.traits import validate_config
from tasks.data.synthetic.world import TABLES, generate_group, publish_staged_world, staging_dir


def _generate_logged(group: str, cfg: SyntheticDataConfig, stage: str) -> dict[str, int]:
    """One table group, logging its row counts and time (and a heartbeat while it runs)."""
    log = get_run_logger()
    t0 = time.perf_counter()
    with heartbeat(log.info, f"{group} tables of {cfg.n_clients:,} clients"):
        counts = generate_group(group, cfg, stage)
    log.info("%s: %s; %.1f s", group, ", ".join(f"{t} {n:,} rows" for t, n in counts.items()),
             time.perf_counter() - t0)
    return counts


@task(cache_policy=NO_CACHE)
def simulate_purchases(cfg: SyntheticDataConfig, stage: str) -> dict[str, int]:
    """Ground truth, past randomised campaigns and purchase transactions."""
    return _generate_logged("purchases", cfg, stage)


@task(cache_policy=NO_CACHE)
def simulate_contacts(cfg: SyntheticDataConfig, stage: str) -> dict[str, int]:
    """Message events and the client table (opt-outs depend on unsubscribes)."""
    return _generate_logged("contacts", cfg, stage)


@task(cache_policy=NO_CACHE)
def publish_world(cfg: SyntheticDataConfig, stage: str, out_dir: str, counts: dict[str, int]) -> dict[str, Any]:
    """Write manifest.json and swap the staging folder in as the dataset folder."""
    return publish_staged_world(cfg, stage, out_dir, counts)


def summary_markdown(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    """Short Markdown summary of a generated world."""
    lines = [
        f"# Synthetic world `{manifest['name']}`",
        "",
        f"{manifest['n_clients']:,} clients, seed {manifest['seed']}, history "
        f"{manifest['start_date']} to {manifest['as_of']} (as-of), generated in {seconds:.1f} s "
        f"into `{out_dir}`.",
        "",
        "| table | rows |",
        "|---|---:|",
    ]
    lines += [f"| {t} | {n:,} |" for t, n in manifest["row_counts"].items()]
    lines += ["", "Past campaigns: " + ", ".join(
        f"{c['campaign_id']} ({c['campaign_date']})" for c in manifest["past_campaigns"])]
    return "\n".join(lines) + "\n"


@flow(name="generate")
def generate(data: dict[str, Any] | None = None, artifacts: str = "artifacts") -> dict[str, Any]:
    """Generate a synthetic world from the ``data`` config values (overriding
    conf/data/synthetic.yaml's) under ``<artifacts>/data/<name>/``; return its manifest."""
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", **(data or {}))
    validate_config(cfg)
    out_dir = Layout(artifacts).dataset(cfg.name)
    started = time.perf_counter()
    stage = staging_dir(out_dir)
    try:
        counts: dict[str, int] = {}
        counts.update(simulate_purchases(cfg, str(stage)))
        counts.update(simulate_contacts(cfg, str(stage)))
        manifest = publish_world(cfg, str(stage), str(out_dir), {t: counts[t] for t in TABLES})
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    key = re.sub(r"[^a-z0-9-]+", "-", f"synthetic-world-{cfg.name}".lower()).strip("-")
    create_markdown_artifact(markdown=summary_markdown(manifest, str(out_dir), seconds), key=key,
                             description=f"synthetic world {cfg.name}")
    return manifest


def _body(cfg: DictConfig) -> None:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    # validate before Prefect starts so bad values fail fast with one message
    validate_config(to_dataclass(data, SyntheticDataConfig, "data"))
    manifest = generate(data=data, artifacts=str(cfg.paths.artifacts))
    out_dir = Layout(cfg.paths.artifacts).dataset(manifest["name"])
    print(f"synthetic world '{manifest['name']}' written to {out_dir.resolve()}")
    for table, rows in manifest["row_counts"].items():
        print(f"  {table:<17} {rows:>12,} rows")


def main() -> None:
    """Command-line entry: ``python -m flows.generate [hydra overrides]``."""
    from flows._cli import run_cli

    run_cli(_body)


if __name__ == "__main__":
    main()
