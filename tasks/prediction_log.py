"""Append-only log of every prediction the product makes (campaign scores and API calls).

The log is a folder of Parquet segments, one per write, named by a caller-chosen unique
segment key (a campaign id, or a server batch id). Writing a segment that already exists is
a no-op, so a campaign rerun never duplicates its scores. :func:`read_predictions` reads
every segment back as one frame, optionally filtered.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from tasks.io import atomic_write_parquet

COLUMNS = ["time", "source", "request_id", "campaign_id", "client_id", "score", "decision", "model_name", "model_version"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def log_dir(artifacts: str | Path) -> Path:
    """Folder of the prediction log under the artifacts root."""
    return Path(artifacts) / "predictions"


def append_predictions(root: str | Path, df: pd.DataFrame, segment: str) -> Path:
    """Write ``df`` (columns :data:`COLUMNS`) as segment ``segment`` unless it already exists."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"prediction log rows lack columns {missing}")
    path = Path(root) / f"{_SAFE.sub('_', segment)}.parquet"
    if path.exists():
        return path
    atomic_write_parquet(df[COLUMNS].reset_index(drop=True), path)
    return path


def read_predictions(
    root: str | Path,
    campaign_id: str | None = None,
    model_version: str | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Every logged prediction, optionally filtered by campaign, model version or source."""
    files = sorted(Path(root).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if campaign_id is not None:
        df = df[df["campaign_id"] == campaign_id]
    if model_version is not None:
        df = df[df["model_version"] == model_version]
    if source is not None:
        df = df[df["source"] == source]
    return df.reset_index(drop=True)
