"""Snapshot a shop's PostgreSQL database into a dataset folder.

    python -m flows.ingest source.url=postgresql://user@host:5432/shop data.name=shop
    python -m flows.ingest source.url=... data.name=shop source.as_of=2025-12-01 \\
        source.queries.clients='SELECT id AS client_id, ... FROM customers'

Reads clients, purchases, messages and campaign_history (one SQL query each, in one
read-only transaction), checks them against the data contracts batch by batch and writes
``<artifacts>/data/<name>/`` (Parquet + manifest.json), which ``flows.train data.name=<name>``
and ``flows.campaign campaign.data=<name>`` read like a synthetic world. Each step is a
Prefect task (check_queries, copy_<table>, check_tables, publish); see
:mod:`tasks.data.ingest`. A password given in the URL is moved to ``PGPASSWORD`` of this
process before the flow starts, so Prefect never records it.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.core.config import to_dataclass
from tasks.core.layout import Layout
from tasks.data.ingest import TABLES, SourceConfig, ingest, validate_source
from tasks.data.postgres import open_session, split_url


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="{label}")
def ingest_step(label: str, fn: Callable[..., Any], args: tuple) -> Any:
    """One step of the snapshot (the steps of :mod:`tasks.data.ingest`)."""
    return fn(*args)


def summary_markdown(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    """Short Markdown summary of a snapshot."""
    src = manifest["source"]
    lines = [f"# Snapshot `{manifest['name']}` of {src['url']}", "",
             f"{src['server']}; as-of {manifest['as_of']} ({manifest['as_of_rule']}); {seconds:.1f} s; "
             f"into `{out_dir}`.", "",
             "| table | rows | after the as-of date (left out) | query |", "|---|---:|---:|---|"]
    lines += [f"| {t} | {manifest['row_counts'][t]:,} | {manifest['rows_after_as_of'][t]:,} | "
              f"`{src['queries'][t]}` |" for t in TABLES]
    return "\n".join(lines) + "\n"


@flow(name="ingest")
def ingest_database(source: dict[str, Any], name: str, artifacts: str = "artifacts") -> dict[str, Any]:
    """Snapshot the database of ``source['url']`` into ``<artifacts>/data/<name>/``; return the manifest."""
    cfg = to_dataclass(source, SourceConfig, "source")
    logger = get_run_logger()
    out_dir = Layout(artifacts).dataset(name)
    started = time.perf_counter()
    manifest = ingest(cfg, name, out_dir, log=logger.info, step=ingest_step)
    seconds = time.perf_counter() - started
    key = re.sub(r"[^a-z0-9-]+", "-", f"snapshot-{name}".lower()).strip("-")
    create_markdown_artifact(markdown=summary_markdown(manifest, str(out_dir), seconds), key=key,
                             description=f"database snapshot {name}")
    return manifest


def _body(cfg: DictConfig) -> None:
    source = OmegaConf.to_container(cfg.source, resolve=True)
    url, password = split_url(str(source.get("url") or ""))
    if password is not None:
        os.environ["PGPASSWORD"] = password  # libpq reads it; Prefect records only the bare URL
    source["url"] = url
    checked = to_dataclass(source, SourceConfig, "source")
    validate_source(checked)  # fail fast, before Prefect starts: the settings, then the connection
    open_session(url, None, checked.connect_timeout).close()
    name = str(cfg.data.name)
    manifest = ingest_database(source=source, name=name, artifacts=str(cfg.paths.artifacts))
    out_dir = Layout(cfg.paths.artifacts).dataset(name)
    print(f"snapshot '{name}' of {manifest['source']['url']} (as-of {manifest['as_of']}) written to {out_dir.resolve()}")
    for table in TABLES:
        left = manifest["rows_after_as_of"][table]
        print(f"  {table:<17} {manifest['row_counts'][table]:>12,} rows"
              + (f"  ({left:,} after the as-of date left out)" if left else ""))
    print(f"next: python -m flows.train data.name={name}   then   "
          f"python -m flows.campaign campaign.data={name} campaign.id={name}_campaign")


def main() -> None:
    """Command-line entry: ``python -m flows.ingest [hydra overrides]``."""
    from flows._cli import run_cli

    run_cli(_body)


if __name__ == "__main__":
    main()
