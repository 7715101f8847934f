"""Stage checkpoints of a campaign.

A campaign folder (:class:`tasks.core.layout.CampaignPaths`) holds one Parquet checkpoint per
checkpointed stage (``stages/NN_<stage>.parquet``, :func:`tasks.core.layout.stage_file`). Each checkpoint carries its own record in the Parquet file
metadata: the stage key (a hash of the stage name, its config slice, the upstream
checkpoint's fingerprint and, where relevant, the model version and checksum and the data
manifest), the fingerprint of its rows and a small ``info`` dict for the summary. Because the
record travels inside the same atomically written file, a checkpoint is either complete and
self-describing or absent; a rerun reuses it exactly when the key it would compute now equals
the stored one.

The campaign folder's ``.lock`` is a :class:`tasks.core.locks.PidLock`.
"""
from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from tasks.core.io import atomic_write_parquet, frame_fingerprint, stable_hash
from tasks.core.layout import CampaignPaths, Layout

ATTRS_KEY = "uplift_checkpoint"
FAULT_ENV = "UPLIFT_FAULT_STAGE"


def campaign_dir(artifacts: str | Path, campaign_id: str) -> Path:
    """Folder of campaign ``campaign_id`` under the artifacts root.

    Kept for callers outside the campaign package; new code asks
    ``Layout(artifacts).campaign(campaign_id)`` for the folder and its files.
    """
    return Layout(artifacts).campaign(campaign_id).folder


def stage_key(stage: str, config_slice: Any, upstream: str | None, extra: Any = None) -> str:
    """The validity key of a stage: a hash of everything its output depends on."""
    return stable_hash({"stage": stage, "config": config_slice, "upstream": upstream, "extra": extra})


def fault_point(stage: str) -> None:
    """Kill this process with SIGKILL when ``UPLIFT_FAULT_STAGE`` names ``stage``.

    Called after a stage computed its result and before it is committed, so fault tests can
    interrupt a run at any stage the hard way; a no-op unless the variable is set.
    """
    if os.environ.get(FAULT_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Checkpoint:
    """The stored record of one stage's checkpoint (the rows stay on disk)."""

    stage: str
    path: Path
    key: str
    fingerprint: str
    rows: int
    seconds: float
    info: dict = field(default_factory=dict)


class CheckpointStore:
    """Reads and writes the stage checkpoints of one campaign folder.

    ``stages`` are the checkpointed stages in order; a stage's file is numbered by its
    position (``stages/NN_<stage>.parquet``, NN from 01).
    """

    def __init__(self, folder: CampaignPaths | str | Path, stages: list[str]) -> None:
        self.paths = folder if isinstance(folder, CampaignPaths) else CampaignPaths(Path(folder))
        self.root = self.paths.folder
        self.stages = list(stages)

    @property
    def stage_dir(self) -> Path:
        return self.paths.stage_dir

    def path(self, stage: str) -> Path:
        """Checkpoint file of ``stage``."""
        if stage not in self.stages:
            raise KeyError(f"unknown stage {stage!r}; stages are {self.stages}")
        return self.paths.stage(self.stages.index(stage), stage)

    def record(self, stage: str) -> Checkpoint | None:
        """The checkpoint record of ``stage`` read from file metadata, or None when absent/unreadable."""
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            meta = pq.read_schema(path).metadata or {}
            raw = json.loads(meta[b"PANDAS_ATTRS"])[ATTRS_KEY]
        except (OSError, KeyError, ValueError, TypeError):
            return None
        return Checkpoint(stage, path, raw["key"], raw["fingerprint"], int(raw["rows"]),
                          float(raw["seconds"]), dict(raw.get("info", {})))

    def valid(self, stage: str, key: str) -> Checkpoint | None:
        """The checkpoint of ``stage`` when it exists and was made with ``key``; else None."""
        rec = self.record(stage)
        return rec if rec is not None and rec.key == key else None

    def read(self, stage: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of ``stage``'s checkpoint."""
        df = pd.read_parquet(self.path(stage), columns=columns)
        df.attrs = {}
        return df

    def remove_partial_files(self) -> list[Path]:
        """Delete temporary files a killed write left behind (call while holding the lock)."""
        gone = []
        for folder in (self.root, self.stage_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
                    gone.append(tmp)
        return gone

    def write(self, stage: str, key: str, df: pd.DataFrame, seconds: float,
              info: dict | None = None) -> Checkpoint:
        """Commit ``df`` as the checkpoint of ``stage`` atomically, with its record embedded."""
        fault_point(stage)
        out = df.reset_index(drop=True)
        if out is df:
            out = df.copy(deep=False)
        fp = frame_fingerprint(out)
        raw = {"key": key, "fingerprint": fp, "rows": int(len(out)), "seconds": round(float(seconds), 4),
               "info": info or {}}
        out.attrs = {ATTRS_KEY: json.loads(json.dumps(raw, default=_json_default))}
        atomic_write_parquet(out, self.path(stage))
        return Checkpoint(stage, self.path(stage), key, fp, len(out), float(seconds), raw["info"])


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
