"""Deciding a single client's offer under a named campaign's threshold policy.

A campaign is named by its YAML file (``<campaign conf dir>/<name>.yaml``, read and validated
by :func:`tasks.campaign.config.load_campaign_config`) or by the id of a campaign already
calculated under the artifacts root. The score cutoff comes from the frozen manifest
(``threshold.score_cutoff``, on the raw score) when the campaign is frozen; before that it
follows from the policy itself only for ``score_cutoff`` (the configured cutoff) and ``profit``
(offer when the served model's calibrated uplift x margin > contact cost), see
:func:`tasks.campaign.policy.config_cutoff`.
``top_fraction`` and ``budget`` depend on the whole ranked base, so their cutoff is unknown
until the campaign is frozen (409). The decision itself is
:func:`tasks.campaign.policy.offer_mask`.
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from api.errors import ApiError
from tasks.campaign.config import CampaignConfig, load_campaign_config
from tasks.campaign.policy import config_cutoff, is_strict, offer_mask
from tasks.core.errors import UpliftError
from tasks.core.io import read_json
from tasks.core.layout import Layout

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class CampaignPolicy:
    """The rule that turns a score into an offer for one campaign."""

    campaign: str
    campaign_id: str
    kind: str
    score_cutoff: float | None  # None with frozen=True: nobody got the offer
    strict: bool  # profit: offer when score > cutoff; otherwise score >= cutoff
    source: str  # "manifest" or "config"
    frozen_at: str | None = None
    model_version: str | None = None

    def decide(self, scores: np.ndarray, calibrated: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Offer decisions for raw ``scores``. A profit cutoff taken from the config is in uplift
        units, so it is compared with ``calibrated(scores)`` (the served model's calibration);
        a frozen manifest's cutoff is already on the raw score."""
        if self.kind == "profit" and self.source == "config" and calibrated is not None:
            return offer_mask(calibrated(scores), self.score_cutoff, self.strict)
        return offer_mask(scores, self.score_cutoff, self.strict)

    def describe(self) -> dict:
        """JSON form for responses."""
        return {"name": self.campaign, "campaign_id": self.campaign_id, "policy": self.kind,
                "score_cutoff": self.score_cutoff, "threshold_source": self.source,
                "frozen_at": self.frozen_at, "campaign_model_version": self.model_version}


def _manifest_cutoff(value: Any, campaign: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ApiError(409, "bad_campaign_config",
                       f"campaign {campaign!r}: threshold.score_cutoff must be a number, got {value!r}", "campaign")
    return float(value)


def _from_manifest(name: str, manifest: dict, kind: str | None) -> CampaignPolicy:
    threshold = manifest.get("threshold") or {}
    policy = manifest.get("policy") or {}
    kind = kind or str(policy.get("kind") or "score_cutoff")
    return CampaignPolicy(
        campaign=name, campaign_id=str(manifest.get("campaign_id") or name), kind=kind,
        score_cutoff=_manifest_cutoff(threshold.get("score_cutoff"), name), strict=is_strict(kind),
        source="manifest", frozen_at=str(manifest["frozen_at"]),
        model_version=(manifest.get("model") or {}).get("version"))


def _campaign_config(name: str, conf_file: Path) -> CampaignConfig | None:
    """The validated campaign of ``conf_file`` (its id defaults to ``name``), None when absent."""
    if not conf_file.is_file():
        return None
    try:
        return load_campaign_config(conf_file, default_id=name, required=("policy",))
    except UpliftError as exc:
        raise ApiError(409, "bad_campaign_config", f"campaign {name!r}: {exc}", "campaign") from None


def resolve_policy(name: str, conf_dir: Path, artifacts: Path) -> CampaignPolicy:
    """The offer rule of campaign ``name``; :class:`ApiError` 404/409/422 when it has none."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(422, "invalid_campaign",
                       f"campaign: {name!r} is not a campaign name (letters, digits, '_', '-', '.')", "campaign")
    conf_file = Path(conf_dir) / f"{name}.yaml"
    cfg = _campaign_config(name, conf_file)
    campaign_id = cfg.id if cfg is not None else name
    paths = Layout(artifacts).campaign(campaign_id)
    manifest: dict | None = None
    if paths.manifest.is_file():
        try:
            manifest = read_json(paths.manifest)
        except (OSError, ValueError):
            manifest = None
    if cfg is None and manifest is None:
        raise ApiError(404, "unknown_campaign",
                       f"campaign {name!r} not found: no {conf_file} and no calculated campaign "
                       f"{paths.folder}", "campaign")
    if manifest is not None and manifest.get("frozen_at"):
        return _from_manifest(name, manifest, cfg.policy.kind if cfg is not None else None)
    if cfg is None:
        raise ApiError(409, "threshold_unknown",
                       f"campaign {name!r}: the calculated campaign {paths.folder} is not frozen yet, "
                       "so its score cutoff is unknown", "campaign")
    kind = cfg.policy.kind
    cutoff = config_cutoff(cfg.policy)
    if cutoff is not None:
        return CampaignPolicy(name, campaign_id, kind, cutoff, strict=is_strict(kind), source="config")
    raise ApiError(409, "threshold_unknown",
                   f"campaign {name!r}: policy {kind} sets its score cutoff from the whole ranked client "
                   f"base, so the cutoff is unknown until the campaign is frozen; run "
                   f"`python -m flows.campaign campaign={name}` first", "campaign")


class PolicyCache:
    """Resolved policies kept for ``ttl`` seconds, so a request does not re-read YAML."""

    def __init__(self, conf_dir: Path, artifacts: Path, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conf_dir = Path(conf_dir)
        self.artifacts = Path(artifacts)
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, CampaignPolicy | ApiError]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CampaignPolicy:
        """The policy of campaign ``name`` (errors are cached for ``ttl`` as well)."""
        now = self.clock()
        hit = self._cache.get(name)
        if hit is None or now - hit[0] >= self.ttl:
            try:
                value: CampaignPolicy | ApiError = resolve_policy(name, self.conf_dir, self.artifacts)
            except ApiError as exc:
                value = exc
            with self._lock:
                if len(self._cache) > 1000:
                    self._cache.clear()
                self._cache[name] = (now, value)
            hit = (now, value)
        if isinstance(hit[1], ApiError):
            raise hit[1]
        return hit[1]
