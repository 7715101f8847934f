"""The factor snapshot used when /predict is asked to score clients by id.

By default the snapshot is the checkpoint of the ``factors`` stage
(:func:`tasks.campaign.stages.stage_checkpoint`) of the newest frozen campaign (largest
``frozen_at`` in its manifest.json); a configured Parquet file (client_id + factor columns)
replaces that choice. The table is kept in memory sorted by client id, so a batch of ids is
found with one vectorised search.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from api.errors import ApiError
from api.features import FeatureSchema
from tasks.campaign.stages import stage_checkpoint
from tasks.core.io import read_json
from tasks.core.layout import Layout

log = logging.getLogger("uplift.api")
FACTOR_STAGE = "factors"


def find_factor_snapshot(artifacts: str | Path) -> tuple[Path, str] | None:
    """(path, campaign id) of the newest frozen campaign's factor checkpoint, or None."""
    layout = Layout(artifacts)
    best: tuple[str, Path, str] | None = None
    if not layout.campaigns.is_dir():
        return None
    for folder in sorted(layout.campaigns.iterdir()):
        paths = layout.campaign(folder.name)
        if not paths.manifest.is_file():
            continue
        try:
            meta = read_json(paths.manifest)
        except (OSError, ValueError):
            continue
        frozen = meta.get("frozen_at") if isinstance(meta, dict) else None
        path = stage_checkpoint(paths, FACTOR_STAGE)
        if frozen and path.exists():
            key = (str(frozen), path, str(meta.get("campaign_id") or folder.name))
            if best is None or key[0] > best[0]:
                best = key
    return (best[1], best[2]) if best else None


@dataclass
class FactorSnapshot:
    """An in-memory factor table sorted by client id."""

    path: Path
    campaign_id: str | None
    ids: np.ndarray
    frame: pd.DataFrame
    loaded_at: float = field(default_factory=time.time)
    _matrices: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, campaign_id: str | None = None) -> "FactorSnapshot":
        """Read a Parquet factor table (must have an integer ``client_id`` column)."""
        frame = pd.read_parquet(path)
        if "client_id" not in frame.columns:
            raise ApiError(409, "bad_snapshot", f"factor snapshot {path} has no client_id column", None)
        frame = frame.drop_duplicates("client_id", keep="first").sort_values("client_id", kind="stable")
        frame = frame.reset_index(drop=True)
        ids = frame["client_id"].to_numpy(dtype=np.int64)
        return cls(path=Path(path), campaign_id=campaign_id, ids=ids, frame=frame)

    def _values(self, schema: FeatureSchema) -> np.ndarray | pd.DataFrame:
        key = schema.features
        if key not in self._matrices:
            missing = [f for f in schema.features if f not in self.frame.columns]
            if missing:
                raise ApiError(
                    409, "snapshot_lacks_feature",
                    f"factor snapshot {self.path} lacks feature {missing[0]!r} the champion needs "
                    f"({len(missing)} missing); run a campaign with the champion's factor set or "
                    "send factor values instead of client ids", missing[0])
            sub = self.frame[list(schema.features)]
            if schema.numeric:
                self._matrices[key] = sub.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                self._matrices[key] = sub
        return self._matrices[key]

    def lookup(self, client_ids: np.ndarray, schema: FeatureSchema) -> np.ndarray | dict[str, list[Any]]:
        """Feature values of ``client_ids`` in request order; 404 naming the first unknown id."""
        values = self._values(schema)
        ids = np.asarray(client_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (pos < len(self.ids)) & (self.ids[pos_c] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            n = int((~found).sum())
            raise ApiError(
                404, "unknown_client",
                f"client_ids[{i}]: client {int(ids[i])} is not in the factor snapshot "
                f"{self.path}" + (f" (campaign {self.campaign_id})" if self.campaign_id else "")
                + (f"; {n} of {len(ids)} ids are unknown" if n > 1 else ""),
                f"client_ids[{i}]")
        if isinstance(values, np.ndarray):
            return values[pos]
        sub = values.iloc[pos]
        return {f: sub[f].tolist() for f in schema.features}


class SnapshotWatcher:
    """Finds, loads and refreshes the factor snapshot (checked at most once per interval)."""

    def __init__(self, artifacts: Path, path: Path | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.artifacts = Path(artifacts)
        self.configured = Path(path) if path else None
        self.interval = interval
        self.clock = clock
        self.snapshot: FactorSnapshot | None = None
        self.error: str | None = None
        self._last_check = -float("inf")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _locate(self) -> tuple[Path, str | None] | None:
        if self.configured is not None:
            return (self.configured, None) if self.configured.exists() else None
        return find_factor_snapshot(self.artifacts)

    def refresh(self) -> None:
        """Load the snapshot when its file changed (or a newer campaign was frozen)."""
        with self._lock:
            self._last_check = self.clock()
            found = self._locate()
            if found is None:
                self.error = (f"factor snapshot {self.configured} not found" if self.configured else
                              f"no frozen campaign with a factor checkpoint under {Layout(self.artifacts).campaigns}")
                return
            path, cid = found
            snap = self.snapshot
            try:
                mtime = os.stat(path).st_mtime
                if snap is not None and snap.path == path and snap.loaded_at >= mtime:
                    return
                self.snapshot = FactorSnapshot.read(path, cid)
                self.error = None
                log.info("factor snapshot %s loaded (%d clients)", path, len(self.snapshot.ids))
            except ApiError as exc:
                self.error = exc.message
            except Exception as exc:  # unreadable file: keep the previous snapshot
                self.error = f"factor snapshot {path} could not be read: {type(exc).__name__}: {exc}"
                log.error(self.error)

    def get(self) -> FactorSnapshot:
        """The current snapshot; refreshed when the check interval has passed."""
        if self.clock() - self._last_check >= self.interval:
            if self.snapshot is None:
                self.refresh()
            elif self._thread is None or not self._thread.is_alive():
                self._last_check = self.clock()
                self._thread = threading.Thread(target=self.refresh, daemon=True, name="snapshot-refresh")
                self._thread.start()
        if self.snapshot is None:
            raise ApiError(409, "no_snapshot",
                           f"cannot look clients up by id: {self.error or 'no factor snapshot'}; "
                           "freeze a campaign (python -m flows.campaign), start the server with "
                           "--factor-snapshot <parquet>, or send factor values in 'clients'", "client_ids")
        return self.snapshot
