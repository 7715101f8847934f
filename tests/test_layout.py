"""Every path under the artifacts root comes from one place."""
from __future__ import annotations

from pathlib import Path

from tasks.core.layout import CampaignPaths, Layout, stage_file


def test_paths_under_the_root(tmp_path: Path):
    lay = Layout(tmp_path)
    assert lay.dataset("w") == tmp_path / "data" / "w"
    assert lay.dataset_manifest("w") == tmp_path / "data" / "w" / "manifest.json"
    assert lay.models == tmp_path / "models"
    assert lay.evaluation("c") == tmp_path / "evaluations" / "c"
    assert (lay.monitoring, lay.predictions) == (tmp_path / "monitoring", tmp_path / "predictions")
    assert lay.profile("w", "2026-01-01") == tmp_path / "profiles" / "w" / "2026-01-01"
    c = lay.campaign("c")
    assert c.folder == tmp_path / "campaigns" / "c"
    assert (c.table.name, c.manifest.name, c.summary.name, c.lock.name, c.responses.name) == (
        "campaign.parquet", "manifest.json", "summary.md", ".lock", "responses.parquet")
    assert c.stage(3, "factors") == c.folder / "stages" / "04_factors.parquet" and stage_file(0, "x") == "01_x.parquet"


def test_frozen_campaigns_are_the_folders_with_table_and_manifest(tmp_path: Path):
    lay = Layout(tmp_path)
    assert lay.frozen_campaigns() == []
    for cid, files in (("a", ["campaign.parquet", "manifest.json"]), ("b", ["campaign.parquet"]), ("c", [])):
        (lay.campaigns / cid).mkdir(parents=True)
        for f in files:
            (lay.campaigns / cid / f).write_text("x")
    assert lay.frozen_campaigns() == [CampaignPaths(lay.campaigns / "a")]
    assert not lay.campaign("b").is_frozen()
