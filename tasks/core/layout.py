"""The one place that knows where things live under the artifacts root.

Every path a run reads or writes below ``<artifacts>/`` is built here; no other module spells
``"campaigns"``, ``"stages/04_factors.parquet"`` or ``"manifest.json"`` itself. The layout::

    <artifacts>/
      data/<dataset>/                      clients.parquet ... manifest.json
      models/<name>/<version>/             model.joblib, metadata.json, report.md, *.png
      models/<name>/champion               the champion's version
      campaigns/<id>/                      campaign.parquet, manifest.json, summary.md, .lock,
                                           responses.parquet, stages/NN_<stage>.parquet
      evaluations/<id>/                    metrics.json, report.md, *.png
      monitoring/                          one JSON + Markdown record per monitor run
      predictions/                         the prediction log (Parquet segments)
      profiles/<dataset>/<date>/           report.md, report.html, findings.json, plots/
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATASET_MANIFEST = "manifest.json"
CAMPAIGN_TABLE = "campaign.parquet"
CAMPAIGN_MANIFEST = "manifest.json"
CAMPAIGN_SUMMARY = "summary.md"
CAMPAIGN_LOCK = ".lock"
RESPONSES = "responses.parquet"
STAGE_DIR = "stages"


def stage_file(index: int, stage: str) -> str:
    """File name of the checkpoint of the ``index``-th stage (from 0): ``NN_<stage>.parquet``."""
    return f"{index + 1:02d}_{stage}.parquet"


@dataclass(frozen=True)
class CampaignPaths:
    """Files of one campaign folder ``<artifacts>/campaigns/<id>/``."""

    folder: Path

    @property
    def table(self) -> Path:
        return self.folder / CAMPAIGN_TABLE

    @property
    def manifest(self) -> Path:
        return self.folder / CAMPAIGN_MANIFEST

    @property
    def summary(self) -> Path:
        return self.folder / CAMPAIGN_SUMMARY

    @property
    def lock(self) -> Path:
        return self.folder / CAMPAIGN_LOCK

    @property
    def responses(self) -> Path:
        return self.folder / RESPONSES

    @property
    def stage_dir(self) -> Path:
        return self.folder / STAGE_DIR

    def stage(self, index: int, stage: str) -> Path:
        """Checkpoint of the ``index``-th stage (from 0) named ``stage``."""
        return self.stage_dir / stage_file(index, stage)

    def is_frozen(self) -> bool:
        """True when the campaign table and its manifest both exist."""
        return self.table.exists() and self.manifest.exists()


@dataclass(frozen=True)
class Layout:
    """Paths under one artifacts root (relative roots are taken from the current directory)."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    # datasets
    @property
    def data_root(self) -> Path:
        return self.root / "data"

    def dataset(self, name: str) -> Path:
        return self.data_root / name

    def dataset_manifest(self, name: str) -> Path:
        return self.dataset(name) / DATASET_MANIFEST

    # models
    @property
    def models(self) -> Path:
        """Root of the model registry."""
        return self.root / "models"

    # campaigns
    @property
    def campaigns(self) -> Path:
        return self.root / "campaigns"

    def campaign(self, campaign_id: str) -> CampaignPaths:
        return CampaignPaths(self.campaigns / campaign_id)

    def frozen_campaigns(self) -> list[CampaignPaths]:
        """Every campaign folder holding a frozen campaign, by name."""
        if not self.campaigns.is_dir():
            return []
        return [CampaignPaths(p) for p in sorted(self.campaigns.iterdir())
                if p.is_dir() and CampaignPaths(p).is_frozen()]

    # evaluation, monitoring, predictions, profiles
    def evaluation(self, campaign_id: str) -> Path:
        return self.root / "evaluations" / campaign_id

    @property
    def evaluations(self) -> Path:
        return self.root / "evaluations"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def profile(self, dataset: str, date: str) -> Path:
        return self.root / "profiles" / dataset / date
