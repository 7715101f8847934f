"""The one place that knows where things live under the artifacts root.

Every path a run reads or writes below ``<artifacts>/`` is built here; no other module spells
``"campaigns"``, ``"stages/04_factors.parquet"`` or ``"manifest.json"`` itself. The layout::

    <artifacts>/
      data/<dataset>/                      clients.parquet ... manifest.json
      models/<name>/<version>/             model.joblib, metadata.json, report.md, *.png
      models/<name>/champion               the champion's version
      campaigns/<id>/                      campaign.parquet, manifest.json, summary.md, .lock,
                                           responses.parquet, stages/NN_<stage>.parquet (a
                                           file, or for factors and score a folder of
                                           part-NNNNN.parquet + _checkpoint.json),
                                           offers.csv (the exported offer list)
      evaluations/<id>/                    metrics.json, report.md, report.html, *.png
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
OFFER_LIST = "offers"  # offers.<format>: the offer list for the sending system
EVALUATION_METRICS = "metrics.json"
EVALUATION_REPORTS = ("report.html", "report.md")


def stage_file(index: int, stage: str) -> str:
    """File name of the checkpoint of the ``index``-th stage (from 0): ``NN_<stage>.parquet``."""
    return f"{index + 1:02d}_{stage}.parquet"


class _Under:
    """A path below the base folder of the object it is read on: ``getattr(obj, base) / name``."""

    def __init__(self, base: str, name: str) -> None:
        self.base, self.name = base, name

    def __get__(self, obj: object, owner: type) -> "Path | _Under":
        return self if obj is None else getattr(obj, self.base) / self.name


@dataclass(frozen=True)
class CampaignPaths:
    """Files of one campaign folder ``<artifacts>/campaigns/<id>/``."""

    folder: Path

    table = _Under("folder", CAMPAIGN_TABLE)
    manifest = _Under("folder", CAMPAIGN_MANIFEST)
    summary = _Under("folder", CAMPAIGN_SUMMARY)
    lock = _Under("folder", CAMPAIGN_LOCK)
    responses = _Under("folder", RESPONSES)
    stage_dir = _Under("folder", STAGE_DIR)

    def stage(self, index: int, stage: str) -> Path:
        """Checkpoint of the ``index``-th stage (from 0) named ``stage`` (a file or a part folder)."""
        return self.stage_dir / stage_file(index, stage)

    def offer_list(self, fmt: str = "csv") -> Path:
        """The exported offer list in format ``fmt`` (``offers.csv``), beside campaign.parquet."""
        return self.folder / f"{OFFER_LIST}.{fmt}"

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
    data_root = _Under("root", "data")

    def dataset(self, name: str) -> Path:
        return self.data_root / name

    def dataset_manifest(self, name: str) -> Path:
        return self.dataset(name) / DATASET_MANIFEST

    # models
    models = _Under("root", "models")

    # campaigns
    campaigns = _Under("root", "campaigns")

    def campaign(self, campaign_id: str) -> CampaignPaths:
        return CampaignPaths(self.campaigns / campaign_id)

    def campaign_folders(self) -> list[CampaignPaths]:
        """Every campaign folder, frozen or not, by name."""
        if not self.campaigns.is_dir():
            return []
        return [CampaignPaths(p) for p in sorted(self.campaigns.iterdir()) if p.is_dir()]

    def frozen_campaigns(self) -> list[CampaignPaths]:
        """Every campaign folder holding a frozen campaign, by name."""
        if not self.campaigns.is_dir():
            return []
        return [CampaignPaths(p) for p in sorted(self.campaigns.iterdir())
                if p.is_dir() and CampaignPaths(p).is_frozen()]

    # evaluation, monitoring, predictions, profiles
    def evaluation(self, campaign_id: str) -> Path:
        return self.evaluations / campaign_id

    evaluations = _Under("root", "evaluations")

    def evaluation_metrics(self, campaign_id: str) -> Path:
        """metrics.json of a campaign's evaluation (written last: its presence marks a complete one)."""
        return self.evaluation(campaign_id) / EVALUATION_METRICS

    monitoring = _Under("root", "monitoring")

    predictions = _Under("root", "predictions")

    def profile(self, dataset: str, date: str) -> Path:
        return self.root / "profiles" / dataset / date
