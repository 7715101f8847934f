"""Deciding a single client's offer under a named campaign's threshold policy.

A campaign is named by its YAML file (``conf/campaign/<name>.yaml``) or by the id of a
campaign already calculated under ``<artifacts>/campaigns/<id>/``. The score cutoff comes
from the frozen manifest (``threshold.score_cutoff``) when the campaign is frozen; before
that it follows from the policy itself only for ``score_cutoff`` (the configured cutoff) and
``profit`` (offer when score x margin > contact cost). ``top_fraction`` and ``budget`` depend
on the whole ranked base, so their cutoff is unknown until the campaign is frozen (409).
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
import yaml

from api.errors import ApiError
from tasks.core.io import read_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
KINDS = ("score_cutoff", "top_fraction", "budget", "profit")


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

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Offer decisions for ``scores``."""
        if self.score_cutoff is None:
            return np.zeros(len(scores), dtype=bool)
        return scores > self.score_cutoff if self.strict else scores >= self.score_cutoff

    def describe(self) -> dict:
        """JSON form for responses."""
        return {"name": self.campaign, "campaign_id": self.campaign_id, "policy": self.kind,
                "score_cutoff": self.score_cutoff, "threshold_source": self.source,
                "frozen_at": self.frozen_at, "campaign_model_version": self.model_version}


def _number(value: Any, key: str, campaign: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ApiError(409, "bad_campaign_config",
                       f"campaign {campaign!r}: policy.{key} must be a number, got {value!r}", "campaign")
    return float(value)


def _from_manifest(name: str, manifest: dict, kind: str | None) -> CampaignPolicy:
    threshold = manifest.get("threshold") or {}
    policy = manifest.get("policy") or {}
    kind = kind or str(policy.get("kind") or "score_cutoff")
    cutoff = threshold.get("score_cutoff")
    cutoff = None if cutoff is None else _number(cutoff, "threshold.score_cutoff", name)
    return CampaignPolicy(
        campaign=name, campaign_id=str(manifest.get("campaign_id") or name), kind=kind,
        score_cutoff=cutoff, strict=kind == "profit", source="manifest",
        frozen_at=str(manifest["frozen_at"]),
        model_version=(manifest.get("model") or {}).get("version"))


def resolve_policy(name: str, conf_dir: Path, artifacts: Path) -> CampaignPolicy:
    """The offer rule of campaign ``name``; :class:`ApiError` 404/409/422 when it has none."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(422, "invalid_campaign",
                       f"campaign: {name!r} is not a campaign name (letters, digits, '_', '-', '.')", "campaign")
    conf_file = Path(conf_dir) / f"{name}.yaml"
    cfg: dict | None = None
    if conf_file.is_file():
        try:
            cfg = yaml.safe_load(conf_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ApiError(409, "bad_campaign_config", f"campaign {name!r}: {conf_file} is not valid YAML: {exc}",
                           "campaign") from None
        if not isinstance(cfg, dict):
            raise ApiError(409, "bad_campaign_config", f"campaign {name!r}: {conf_file} is not a mapping", "campaign")
    campaign_id = str((cfg or {}).get("id") or name)
    manifest_path = Path(artifacts) / "campaigns" / campaign_id / "manifest.json"
    manifest: dict | None = None
    if manifest_path.is_file():
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError):
            manifest = None
    if cfg is None and manifest is None:
        raise ApiError(404, "unknown_campaign",
                       f"campaign {name!r} not found: no {conf_file} and no calculated campaign "
                       f"{manifest_path.parent}", "campaign")
    policy = (cfg or {}).get("policy")
    if cfg is not None and not isinstance(policy, dict):
        raise ApiError(409, "bad_campaign_config",
                       f"campaign {name!r}: {conf_file} has no 'policy' section "
                       f"(kind: one of {list(KINDS)})", "campaign")
    kind = str(policy.get("kind")) if policy else None
    if kind is not None and kind not in KINDS:
        raise ApiError(409, "bad_campaign_config",
                       f"campaign {name!r}: policy.kind {kind!r} is not one of {list(KINDS)}", "campaign")
    if manifest is not None and manifest.get("frozen_at"):
        return _from_manifest(name, manifest, kind)
    if policy is None:
        raise ApiError(409, "threshold_unknown",
                       f"campaign {name!r}: the calculated campaign {manifest_path.parent} is not frozen yet, "
                       "so its score cutoff is unknown", "campaign")
    if kind == "score_cutoff":
        cutoff = _number(policy.get("score_cutoff"), "score_cutoff", name)
        return CampaignPolicy(name, campaign_id, kind, cutoff, strict=False, source="config")
    if kind == "profit":
        margin = _number(policy.get("margin"), "margin", name)
        cost = _number(policy.get("contact_cost"), "contact_cost", name)
        if margin <= 0:
            raise ApiError(409, "bad_campaign_config",
                           f"campaign {name!r}: policy.margin must be positive, got {margin}", "campaign")
        return CampaignPolicy(name, campaign_id, kind, cost / margin, strict=True, source="config")
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
