"""Append-only log of every prediction the product makes (campaign scores and API calls).

The log is a folder of Parquet segments, one per write, named by a caller-chosen unique
segment key (a campaign id, or a server batch id). Writing a segment that already exists is
a no-op, so a campaign rerun never duplicates its scores. :func:`read_predictions` reads
every segment back as one frame, optionally filtered.

A busy scoring server writes a segment every few seconds; :func:`compact_predictions`
merges such segments into one. The merged file lists the segments it holds (Parquet
metadata) and readers skip listed segments, so a crash between writing it and deleting the
originals never shows a row twice (the next compaction deletes the leftovers). Campaign
segments are never merged: their file is what makes a campaign rerun a no-op.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.errors import StateError
from tasks.core.io import ParquetChunkWriter, atomic_write, atomic_write_parquet
from tasks.core.layout import Layout
from tasks.core.locks import PidLock

COLUMNS = ["time", "source", "request_id", "campaign_id", "client_id", "score", "decision", "model_name", "model_version"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
COMPACTED_PREFIX = "compacted-"
_HOLDS = b"uplift.prediction_log.segments"


def log_dir(artifacts: str | Path) -> Path:
    """Folder of the prediction log under the artifacts root (:attr:`Layout.predictions`)."""
    return Layout(artifacts).predictions


STALE_TEMP_SECONDS = 3600.0
"""A temporary file of the log untouched this long was left by a writer that was killed (a
segment is written in well under a minute), so the next writer removes it."""


def remove_stale_temp_files(root: str | Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temporary files (``.<name>.*.tmp``) a killed write left in the log folder.

    Only files not modified for ``older_than`` seconds go: a write in progress in another
    process (the scoring API while a campaign freezes) keeps its own.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time()
    gone = []
    for tmp in root.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime >= older_than:
                tmp.unlink()
                gone.append(tmp)
        except FileNotFoundError:
            pass
    return gone


def append_predictions(root: str | Path, df: pd.DataFrame, segment: str) -> Path:
    """Write ``df`` (columns :data:`COLUMNS`) as segment ``segment`` unless it already exists;
    first remove what killed writes left behind (:func:`remove_stale_temp_files`)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"prediction log rows lack columns {missing}")
    remove_stale_temp_files(root)
    path = Path(root) / f"{_SAFE.sub('_', segment)}.parquet"
    if path.exists():
        return path
    atomic_write_parquet(df[COLUMNS].reset_index(drop=True), path)
    return path


def append_prediction_chunks(root: str | Path, chunks: Iterable[pd.DataFrame], segment: str,
                             row_group_size: int = 1 << 20) -> Path:
    """:func:`append_predictions` of rows handed over in chunks (one segment file, written a
    row group at a time); the chunks are not consumed when the segment already exists."""
    remove_stale_temp_files(root)
    path = Path(root) / f"{_SAFE.sub('_', segment)}.parquet"
    if path.exists():
        return path
    with ParquetChunkWriter(path, row_group_size) as writer:
        for df in chunks:
            missing = [c for c in COLUMNS if c not in df.columns]
            if missing:
                raise ValueError(f"prediction log rows lack columns {missing}")
            writer.write(df[COLUMNS].reset_index(drop=True))
    return path


def read_predictions(
    root: str | Path,
    campaign_id: str | None = None,
    model_version: str | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Every logged prediction, optionally filtered by campaign, model version or source."""
    files = _live_segments(Path(root))
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


def _held_segments(root: Path) -> set[str]:
    """Names of the segments merged into a compacted file."""
    held: set[str] = set()
    for f in root.glob(f"{COMPACTED_PREFIX}*.parquet"):
        meta = pq.read_schema(f).metadata or {}
        held.update(json.loads(meta.get(_HOLDS, b"[]")))
    return held


def _live_segments(root: Path) -> list[Path]:
    held = _held_segments(root)
    return sorted(f for f in root.glob("*.parquet") if f.stem not in held)


def compact_predictions(root: str | Path, prefix: str = "api-", min_segments: int = 2) -> Path | None:
    """Merge the segments whose names start with ``prefix`` into one compacted segment.

    Does nothing (returns None) with fewer than ``min_segments`` such segments, or while
    another process compacts the same log. Returns the new file's path.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    lock = PidLock(root / ".compact.lock")  # a PID lock file; stale ones are taken over
    try:
        lock.acquire()
    except StateError:
        return None
    try:
        held = _held_segments(root)
        for f in root.glob(f"{prefix}*.parquet"):  # merged by an earlier compaction cut short
            if f.stem in held:
                f.unlink(missing_ok=True)
        files = sorted(f for f in root.glob(f"{prefix}*.parquet") if f.stem not in held)
        if len(files) < max(1, min_segments):
            return None
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)[COLUMNS]
        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               _HOLDS: json.dumps([f.stem for f in files]).encode()})
        path = root / f"{COMPACTED_PREFIX}{files[-1].stem}-{uuid.uuid4().hex[:8]}.parquet"
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        for f in files:
            f.unlink(missing_ok=True)
        return path
    finally:
        lock.release()
