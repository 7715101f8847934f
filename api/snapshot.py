"""The factor snapshot used when /predict is asked to score clients by id.

By default the snapshot is built from the checkpoints of the ``factors`` stage
(:func:`tasks.campaign.stages.stage_checkpoint`) of the frozen campaigns scored with the
served model (any version; a manifest naming no model counts too): each client's factors come
from the newest of them that holds the client (latest ``campaign_date``, ties broken by the
latest ``frozen_at``). Only campaigns over the same dataset as the newest one are used, and
only those whose checkpoint has all of the newest one's columns. So a campaign run on a random
20% of the base does not hide the other 80% computed by an earlier campaign, and the table
held in memory has one row per client whatever the number of campaigns. A configured Parquet
file (client_id + factor columns) replaces all of this. The table is kept sorted by client id,
so a batch of ids is found with one vectorised search.
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


@dataclass(frozen=True)
class SnapshotSource:
    """One frozen campaign's factor checkpoint."""

    path: Path
    campaign_id: str
    campaign_date: str
    frozen_at: str
    dataset: str | None
    model: str | None = None


def frozen_factor_sources(artifacts: str | Path) -> list[SnapshotSource]:
    """The frozen campaigns' factor checkpoints, newest first (campaign date, then freeze time)."""
    layout = Layout(artifacts)
    found: list[SnapshotSource] = []
    if not layout.campaigns.is_dir():
        return found
    for folder in sorted(layout.campaigns.iterdir()):
        paths = layout.campaign(folder.name)
        if not paths.manifest.is_file():
            continue
        try:
            meta = read_json(paths.manifest)
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or not meta.get("frozen_at"):
            continue
        path = stage_checkpoint(paths, FACTOR_STAGE)
        if path.exists():
            data, model = meta.get("data"), meta.get("model")
            found.append(SnapshotSource(
                path=path, campaign_id=str(meta.get("campaign_id") or folder.name),
                campaign_date=str(meta.get("campaign_date") or ""), frozen_at=str(meta["frozen_at"]),
                dataset=str(data.get("name")) if isinstance(data, dict) and data.get("name") else None,
                model=str(model.get("name")) if isinstance(model, dict) and model.get("name") else None))
    found.sort(key=lambda s: (s.campaign_date, s.frozen_at), reverse=True)
    return found


def snapshot_sources(artifacts: str | Path, model_name: str | None = None) -> list[SnapshotSource]:
    """The sources a snapshot is built from, newest first: campaigns of ``model_name`` (or
    naming no model) over the dataset of the newest of them."""
    found = [s for s in frozen_factor_sources(artifacts) if model_name is None or s.model in (None, model_name)]
    return [s for s in found if s.dataset == found[0].dataset] if found else []


def find_factor_snapshot(artifacts: str | Path) -> tuple[Path, str] | None:
    """(path, campaign id) of the newest frozen campaign's factor checkpoint, or None."""
    found = frozen_factor_sources(artifacts)
    return (found[0].path, found[0].campaign_id) if found else None


def _read_client_table(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    if "client_id" not in frame.columns:
        raise ApiError(409, "bad_snapshot", f"factor snapshot {path} has no client_id column", None)
    return frame.drop_duplicates("client_id", keep="first")


@dataclass
class FactorSnapshot:
    """An in-memory factor table sorted by client id."""

    path: Path
    campaign_id: str | None
    ids: np.ndarray
    frame: pd.DataFrame
    loaded_at: float = field(default_factory=time.time)
    sources: list[dict] = field(default_factory=list)
    signature: tuple = ()
    _matrices: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, campaign_id: str | None = None) -> "FactorSnapshot":
        """Read a Parquet factor table (must have an integer ``client_id`` column)."""
        frame = _read_client_table(path).sort_values("client_id", kind="stable").reset_index(drop=True)
        ids = frame["client_id"].to_numpy(dtype=np.int64)
        return cls(path=Path(path), campaign_id=campaign_id, ids=ids, frame=frame,
                   sources=[{"path": str(path), "campaign_id": campaign_id, "clients": int(len(ids))}])

    @classmethod
    def merge(cls, sources: list[SnapshotSource]) -> "FactorSnapshot":
        """One table from several campaigns' checkpoints (newest first): a client's row comes
        from the first source that holds it; a source lacking a column of the first is skipped."""
        parts: list[pd.DataFrame] = []
        seen = np.empty(0, dtype=np.int64)
        columns: list[str] | None = None
        used: list[dict] = []
        for src in sources:
            try:
                frame = _read_client_table(src.path)
            except ApiError:
                if columns is None:
                    raise
                used.append({"path": str(src.path), "campaign_id": src.campaign_id, "skipped": "no client_id column"})
                continue
            if columns is None:
                columns = list(frame.columns)
            else:
                missing = [c for c in columns if c not in frame.columns]
                if missing:
                    used.append({"path": str(src.path), "campaign_id": src.campaign_id,
                                 "skipped": f"lacks column {missing[0]!r} of the newest campaign"})
                    continue
                frame = frame[columns]
            ids = frame["client_id"].to_numpy(dtype=np.int64)
            fresh = ~np.isin(ids, seen, assume_unique=True)
            frame = frame[fresh]
            seen = np.union1d(seen, ids[fresh])
            parts.append(frame)
            used.append({"path": str(src.path), "campaign_id": src.campaign_id, "campaign_date": src.campaign_date,
                         "clients": int(fresh.sum())})
        merged = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        merged = merged.sort_values("client_id", kind="stable").reset_index(drop=True)
        return cls(path=sources[0].path, campaign_id=sources[0].campaign_id,
                   ids=merged["client_id"].to_numpy(dtype=np.int64), frame=merged, sources=used)

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
            campaigns = [s["campaign_id"] for s in self.sources if s.get("campaign_id") and "skipped" not in s]
            where = (f"the factor snapshot of the frozen campaign(s) {', '.join(campaigns[:5])}"
                     + (" ..." if len(campaigns) > 5 else "") if campaigns else f"the factor snapshot {self.path}")
            raise ApiError(
                404, "unknown_client",
                f"client_ids[{i}]: client {int(ids[i])} is not in {where}"
                + (f"; {n} of {len(ids)} ids are unknown" if n > 1 else "")
                + "; send its factor values in 'clients' instead", f"client_ids[{i}]")
        if isinstance(values, np.ndarray):
            return values[pos]
        sub = values.iloc[pos]
        return {f: sub[f].tolist() for f in schema.features}


class SnapshotWatcher:
    """Finds, loads and refreshes the factor snapshot (checked at most once per interval)."""

    def __init__(self, artifacts: Path, path: Path | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, model_name: str | None = None) -> None:
        self.artifacts = Path(artifacts)
        self.model_name = model_name
        self.configured = Path(path) if path else None
        self.interval = interval
        self.clock = clock
        self.snapshot: FactorSnapshot | None = None
        self.error: str | None = None
        self._last_check = -float("inf")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _locate(self) -> list[SnapshotSource] | None:
        if self.configured is not None:
            if not self.configured.exists():
                return None
            return [SnapshotSource(self.configured, "", "", "", None)]
        return snapshot_sources(self.artifacts, self.model_name) or None

    @staticmethod
    def _signature(sources: list[SnapshotSource]) -> tuple:
        sig = []
        for s in sources:
            st = os.stat(s.path)
            sig.append((str(s.path), st.st_mtime_ns, st.st_size, s.campaign_date, s.frozen_at))
        return tuple(sig)

    def refresh(self) -> None:
        """Rebuild the snapshot when a source file changed or another campaign was frozen."""
        with self._lock:
            self._last_check = self.clock()
            found = self._locate()
            if found is None:
                self.error = (f"factor snapshot {self.configured} not found" if self.configured else
                              f"no frozen campaign of model {self.model_name} with a factor checkpoint under "
                              f"{Layout(self.artifacts).campaigns}")
                return
            snap = self.snapshot
            try:
                sig = self._signature(found)
                if snap is not None and snap.signature == sig:
                    return
                if self.configured is not None:
                    new = FactorSnapshot.read(self.configured, None)
                else:
                    new = FactorSnapshot.merge(found)
                new.signature = sig
                self.snapshot = new
                self.error = None
                log.info("factor snapshot loaded: %d clients from %s", len(new.ids),
                         ", ".join(f"{s.get('campaign_id') or s['path']} ({s.get('clients', s.get('skipped'))})"
                                   for s in new.sources))
            except ApiError as exc:
                self.error = exc.message
            except Exception as exc:  # unreadable file: keep the previous snapshot
                self.error = f"factor snapshot could not be read: {type(exc).__name__}: {exc}"
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
