"""The scoring service without the web layer: settings, champion, snapshot, policies, log.

:class:`PredictionService` answers one /predict request as a plain dict. It is created by
:func:`api.app.create_app` and started / stopped by the app's lifespan, so importing this
module has no side effects.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.auth import ApiToken
from api.errors import ApiError
from api.features import rows_to_values
from api.logbuffer import PredictionLogBuffer
from api.policy import CampaignPolicy, PolicyCache
from api.schemas import PredictRequest
from api.scoring import ChampionWatcher, ServedModel
from api.snapshot import SnapshotWatcher
from tasks.core.config import CONF_DIR
from tasks.core.errors import ConfigError
from tasks.core.layout import Layout
from tasks.modelling.registry import ModelRegistry

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
METADATA_KEYS = ("name", "version", "kind", "approach", "created_at", "dataset", "factor_set", "features",
                 "feature_dtypes", "metrics", "threshold_suggestions", "training_fingerprint",
                 "library_versions", "model_sha256", "signal", "signal_test", "validation")


@dataclass
class ApiSettings:
    """Everything the service needs to know; ``python -m api --help`` documents each."""

    artifacts: Path = Path("artifacts")
    model_name: str = "synthetic_uplift"
    factor_snapshot: Path | None = None
    campaign_conf_dir: Path = field(default_factory=lambda: CONF_DIR / "campaign")
    default_campaign: str | None = None
    max_batch: int = 10_000
    reload_interval: float = 1.0
    snapshot_interval: float = 10.0
    policy_ttl: float = 1.0
    log_predictions: bool = True
    prediction_log_dir: Path | None = None
    log_flush_rows: int = 5000
    log_flush_seconds: float = 2.0
    tokens: tuple[ApiToken, ...] = ()  # empty: no authentication (loopback only, see api.__main__)
    access_log: bool = False  # one log line per request, with the caller's token name

    def __post_init__(self) -> None:
        self.tokens = tuple(self.tokens)
        self.artifacts = Path(self.artifacts)
        self.campaign_conf_dir = Path(self.campaign_conf_dir)
        if self.factor_snapshot is not None:
            self.factor_snapshot = Path(self.factor_snapshot)
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {self.max_batch}")
        if not _MODEL_NAME.match(str(self.model_name)):
            raise ConfigError(f"model name {self.model_name!r} is not valid: use letters, digits, '_', '-', '.'")
        if self.factor_snapshot is not None and not self.factor_snapshot.is_file():
            raise ConfigError(f"factor snapshot {self.factor_snapshot} is not a file")


def new_request_id(header: str | None) -> str:
    """The caller's X-Request-ID when it is a short safe token, else a fresh random id."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class PredictionService:
    """Scores requests with the current champion and logs every prediction."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(Layout(settings.artifacts).models)
        self.watcher = ChampionWatcher(self.registry, settings.model_name, settings.reload_interval)
        self.snapshots = SnapshotWatcher(settings.artifacts, settings.factor_snapshot, settings.snapshot_interval,
                                         model_name=settings.model_name)
        self.policies = PolicyCache(settings.campaign_conf_dir, settings.artifacts, settings.policy_ttl)
        self.log = PredictionLogBuffer(
            settings.prediction_log_dir or Layout(settings.artifacts).predictions,
            settings.log_flush_rows, settings.log_flush_seconds) if settings.log_predictions else None
        self.started_at = time.time()
        self.requests = 0
        self.predictions = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load the champion and the snapshot (failures are reported by /health) and start the log."""
        self.watcher.reload_now()
        self.snapshots.refresh()
        if self.log is not None:
            self.log.start()

    def close(self) -> None:
        """Flush the prediction log."""
        self.watcher.wait_idle(5)
        if self.log is not None:
            self.log.close()

    # ------------------------------------------------------------------ queries
    def served(self) -> ServedModel:
        """The current champion (503 when none could be loaded)."""
        self.watcher.poll()
        served = self.watcher.current
        if served is None:
            raise ApiError(503, "no_model", f"no model to serve: {self.watcher.error or 'not loaded yet'}")
        return served

    def model_info(self) -> dict:
        """Champion metadata for GET /model (without the large drift reference)."""
        served = self.served()
        meta = served.loaded.metadata
        info = {k: meta.get(k) for k in METADATA_KEYS if k in meta}
        # the guards' verdicts: a champion forced past them (promote=always) still shows them
        info["suspected_leaks"] = (meta.get("checks") or {}).get("suspected_leaks") or []
        info.update(name=served.name, version=served.version, kind=served.loaded.kind,
                    features=list(served.scorer.schema.features), loaded_at=served.loaded_at,
                    scoring_path=served.scorer.path)
        return info

    def health(self, detailed: bool = True) -> tuple[int, dict]:
        """(status code, body) for GET /health: 200 while a model is served, else 503.

        ``detailed`` False (a caller without a token on a service that has tokens) gives the
        status alone: paths, versions and errors are for authenticated callers.
        """
        self.watcher.poll()
        served = self.watcher.current
        snap = self.snapshots.snapshot
        status = "ok" if served is not None else "no_model"
        if served is not None and self.watcher.refusal is not None:
            status = "degraded"
        code = 200 if served is not None else 503
        if not detailed:
            return code, {"status": status}
        body: dict[str, Any] = {
            "status": status,
            "model": None if served is None else {
                "name": served.name, "version": served.version, "kind": served.loaded.kind,
                "loaded_at": served.loaded_at, "scoring_path": served.scorer.path},
            "model_error": self.watcher.error,
            "refused": self.watcher.refusal,
            "reloads": self.watcher.reloads,
            "factor_snapshot": None if snap is None else {
                "path": str(snap.path), "campaign_id": snap.campaign_id, "clients": int(len(snap.ids)),
                "sources": snap.sources},
            "factor_snapshot_error": self.snapshots.error,
            "prediction_log": None if self.log is None else self.log.status(),
            "requests": self.requests,
            "predictions": self.predictions,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "authentication": {"tokens": [t.name for t in self.settings.tokens]} if self.settings.tokens else None,
        }
        return code, body

    # ------------------------------------------------------------------ predict
    def _campaign(self, body: PredictRequest, query: str | None) -> CampaignPolicy | None:
        if query is not None and body.campaign is not None and query != body.campaign:
            raise ApiError(422, "conflicting_campaign",
                           f"campaign: the query names {query!r} but the body names {body.campaign!r}", "campaign")
        name = query if query is not None else body.campaign
        name = name if name is not None else self.settings.default_campaign
        return self.policies.get(name) if name else None

    def predict(self, body: PredictRequest, campaign_query: str | None = None,
                request_id: str | None = None) -> dict:
        """Score the request; raises :class:`ApiError` for anything the caller must fix."""
        t_ns = time.time_ns()
        request_id = request_id or uuid.uuid4().hex
        if body.clients is not None and body.client_ids is not None:
            raise ApiError(422, "ambiguous_input", "clients: send either 'clients' (factor values) or "
                           "'client_ids', not both", "clients")
        if body.clients is None and body.client_ids is None:
            raise ApiError(422, "no_clients", "clients: send 'clients' (factor values) or 'client_ids'", "clients")
        key = "clients" if body.clients is not None else "client_ids"
        items = body.clients if body.clients is not None else body.client_ids
        if len(items) == 0:
            raise ApiError(422, "empty_batch", f"{key}: the list is empty", key)
        if len(items) > self.settings.max_batch:
            raise ApiError(413, "batch_too_large", f"{key}: {len(items)} clients in one request; the limit is "
                           f"{self.settings.max_batch}; split the batch", key)
        policy = self._campaign(body, campaign_query)
        served = self.served()
        schema = served.scorer.schema
        if body.clients is not None:
            ids, values = rows_to_values(body.clients, schema)
        else:
            ids = list(body.client_ids)
            values = self.snapshots.get().lookup(np.asarray(ids, dtype=np.int64), schema)
        scores = served.scorer.score(values)
        offers = policy.decide(scores, served.loaded.calibrated) if policy is not None else None
        if self.log is not None:
            self.log.add(t_ns, request_id, policy.campaign_id if policy else None, ids, scores, offers,
                         served.name, served.version)
        self.requests += 1
        self.predictions += len(ids)
        score_list = scores.tolist()
        offer_list = offers.tolist() if offers is not None else [None] * len(ids)
        return {
            "request_id": request_id,
            "model": {"name": served.name, "version": served.version, "kind": served.loaded.kind},
            "campaign": policy.describe() if policy is not None else None,
            "predictions": [{"client_id": c, "score": s, "offer": o}
                            for c, s, o in zip(ids, score_list, offer_list)],
        }
