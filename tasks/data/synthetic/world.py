"""The whole synthetic world: generated in one go or by table group, validated, written and published.

A world is written into a private staging folder next to its dataset folder and swapped in
only when every table and the manifest are written, so readers never see a half-built world
and a failed run leaves the previous one untouched.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from tasks.core.config import SyntheticDataConfig
from tasks.core.contracts import CONTRACTS, validate_table
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.io import ParquetChunkWriter, atomic_write_json, atomic_write_parquet, sha256_file
from tasks.core.layout import DATASET_MANIFEST
from tasks.data.synthetic.behaviour import iter_messages, simulate_clients, simulate_messages
from tasks.data.synthetic.purchases import CHUNK_CLIENTS, iter_purchases, simulate_purchases
from tasks.data.synthetic.traits import simulate_traits, validate_config
from tasks.data.synthetic.truth import past_campaign_ids, simulate_campaign_history, simulate_truth
from tasks.data.tables import table_path

TABLES = ("clients", "purchases", "messages", "campaign_history", "truth")

# Tables generated together by :func:`generate_group` (a flow runs each group as one step).
GROUPS: dict[str, tuple[str, ...]] = {
    "purchases": ("truth", "campaign_history", "purchases"),
    "contacts": ("clients", "messages"),
}

_ROW_GROUP = 1_000_000  # rows per Parquet row group of a written table


def generate_world(cfg: SyntheticDataConfig) -> dict[str, pd.DataFrame]:
    """All tables of a world (clients, purchases, messages, campaign_history, truth).

    Deterministic in ``cfg.seed`` and the sizes; every table passes its contract with
    as_of = ``cfg.end_date``.
    """
    validate_config(cfg)
    traits = simulate_traits(cfg)
    truth = simulate_truth(cfg, traits)
    history = simulate_campaign_history(cfg, traits, truth)
    purchases = simulate_purchases(cfg, traits, history)
    messages, unsubscribed = simulate_messages(cfg, traits)
    clients = simulate_clients(cfg, traits, unsubscribed)
    return {
        "clients": clients,
        "purchases": purchases,
        "messages": messages,
        "campaign_history": history,
        "truth": truth,
    }


def generate_group(group: str, cfg: SyntheticDataConfig, out_dir: str | Path,
                   chunk_clients: int = CHUNK_CLIENTS) -> dict[str, int]:
    """Generate and write one group of tables (see :data:`GROUPS`) into ``out_dir``.

    Groups are independent (each rebuilds the cheap latent traits from the seed), so a flow
    can run them as separate steps. The event tables (purchases, messages) are generated and
    written in chunks (client chunks, runs of mailings), so memory is bounded by the
    per-client tables and a chunk, not by the events of the whole base. The tables are
    identical to those of :func:`generate_world`. Returns row counts.
    """
    if group not in GROUPS:
        raise ConfigError(f"unknown table group {group!r}; known groups: {sorted(GROUPS)}")
    traits = simulate_traits(cfg)
    counts: dict[str, int] = {}

    def write(name: str, df: pd.DataFrame) -> None:
        write_table(name, df, out_dir, cfg)
        counts[name] = len(df)

    if group == "contacts":
        unsubscribed: dict = {}
        counts["messages"] = write_table_chunks("messages", iter_messages(cfg, traits, unsubscribed), out_dir, cfg)
        write("clients", simulate_clients(cfg, traits, unsubscribed))
    else:
        # truth and history hold a row or two per client; purchases are streamed
        truth = simulate_truth(cfg, traits)
        history = simulate_campaign_history(cfg, traits, truth)
        write("truth", truth)
        write("campaign_history", history)
        del truth
        counts["purchases"] = write_table_chunks(
            "purchases", iter_purchases(cfg, traits, history, chunk_clients), out_dir, cfg)
    return counts


# --------------------------------------------------------------------------------------
# writing and publishing


def check_table(name: str, df: pd.DataFrame, cfg: SyntheticDataConfig) -> None:
    """Validate one generated table against its contract as of ``cfg.end_date``.

    Event tables may be empty (a world of a handful of clients can lack purchases); the
    client and truth tables never are.
    """
    validate_table(df, CONTRACTS[name], as_of=cfg.end_date,
                   allow_empty=name in ("purchases", "messages", "campaign_history"))


def write_table(name: str, df: pd.DataFrame, out_dir: str | Path, cfg: SyntheticDataConfig) -> Path:
    """Validate and write one table as ``<out_dir>/<name>.parquet`` (atomic, pyarrow)."""
    check_table(name, df, cfg)
    return atomic_write_parquet(df, table_path(out_dir, name), engine="pyarrow",
                                row_group_size=_ROW_GROUP)


def write_table_chunks(name: str, frames: Iterable[pd.DataFrame], out_dir: str | Path,
                       cfg: SyntheticDataConfig) -> int:
    """Validate and write the chunks of one table as ``<out_dir>/<name>.parquet`` (atomic,
    row groups as :func:`write_table` writes them); return the row count.

    Each chunk is checked against the contract; keys unique across chunks (transaction_id)
    are so by construction (consecutive ranges).
    """
    with ParquetChunkWriter(table_path(out_dir, name), _ROW_GROUP) as writer:
        for df in frames:
            check_table(name, df, cfg)
            writer.write(df)
    return writer.rows


def build_manifest(cfg: SyntheticDataConfig, row_counts: dict[str, int],
                   tables_dir: str | Path | None = None) -> dict[str, Any]:
    """The manifest.json content of a synthetic world.

    With ``tables_dir``, the manifest also holds the sha256 of every table file, so anything
    keyed on the manifest (campaign checkpoints) notices a world regenerated with other content.
    """
    hashes = {}
    if tables_dir is not None:
        hashes = {t: sha256_file(table_path(tables_dir, t)) for t in TABLES
                  if table_path(tables_dir, t).exists()}
    return {
        "name": cfg.name,
        "kind": "synthetic",
        "seed": cfg.seed,
        "n_clients": cfg.n_clients,
        "schema_version": cfg.schema_version,
        "as_of": str(pd.Timestamp(cfg.end_date).date()),
        "start_date": str(pd.Timestamp(cfg.start_date).date()),
        "past_campaigns": past_campaign_ids(cfg),
        "row_counts": {k: int(row_counts[k]) for k in TABLES if k in row_counts},
        "config": asdict(cfg),
        "table_sha256": hashes,
    }


def staging_dir(out_dir: str | Path) -> Path:
    """A fresh private folder next to ``out_dir`` to build a world in before publishing it."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def publish_dir(stage: str | Path, out_dir: str | Path) -> Path:
    """Replace ``out_dir`` by the completed ``stage`` folder (the old world is removed only
    after the new one is in place, so readers never see a mix)."""
    stage, out = Path(stage), Path(out_dir)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def publish_staged_world(cfg: SyntheticDataConfig, stage: str | Path, out_dir: str | Path,
                         row_counts: dict[str, int]) -> dict[str, Any]:
    """Write manifest.json into the completed ``stage`` folder and swap it in as ``out_dir``;
    return the manifest."""
    manifest = build_manifest(cfg, row_counts, stage)
    atomic_write_json(manifest, Path(stage) / DATASET_MANIFEST)
    publish_dir(stage, out_dir)
    return manifest


def write_world(tables: dict[str, pd.DataFrame], out_dir: str | Path, cfg: SyntheticDataConfig) -> dict[str, Any]:
    """Validate and write every table as Parquet plus manifest.json; return the manifest.

    Tables are written to a staging folder first and the folder is swapped in at the end, so
    a failed run leaves the previous world untouched.
    """
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise DataValidationError(missing[0], None, f"world lacks table(s) {missing}")
    stage = staging_dir(out_dir)
    try:
        counts = {}
        for name in TABLES:
            write_table(name, tables[name], stage, cfg)
            counts[name] = len(tables[name])
        manifest = publish_staged_world(cfg, stage, out_dir, counts)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest

