"""The frozen files of a campaign, verified before anything uses them.

A campaign is frozen when its folder holds ``manifest.json`` (written last) and
``campaign.parquet``. The manifest records the table's sha256 (``campaign_sha256``) and its
own (``manifest_sha256``: the hash of the manifest without that field, so a changed value is
caught, not only broken JSON). Every reader goes through this module: the campaign run (is it
frozen, may it be reused), ``flows.simulate_responses`` and the evaluation. Files that do not
verify stop the reader with one :class:`~tasks.core.errors.StateError` that says how to
recover: delete the frozen files to recompute them from the stage checkpoints (the same
campaign when its checkpoints and settings are unchanged), or calculate it under a new id.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tasks.core.errors import NotFoundError, StateError
from tasks.core.io import json_text, sha256_file, stable_hash
from tasks.core.layout import CampaignPaths

TABLE_HASH = "campaign_sha256"
MANIFEST_HASH = "manifest_sha256"


def manifest_hash(manifest: dict) -> str:
    """The hash a manifest records of itself: of its JSON form without :data:`MANIFEST_HASH`."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    return stable_hash(json.loads(json_text(body)))


def seal_manifest(manifest: dict) -> dict:
    """``manifest`` with its own hash added (call last, before writing it)."""
    return {**manifest, MANIFEST_HASH: manifest_hash(manifest)}


def _recovery(paths: CampaignPaths, problem: str) -> StateError:
    cid = paths.folder.name
    return StateError(
        f"campaign '{cid}': the frozen files in {paths.folder} do not verify ({problem}); they were changed "
        f"or damaged after the freeze. To recompute them from the stage checkpoints, delete "
        f"{paths.manifest.name}, {paths.table.name} and {paths.summary.name} there and rerun the same "
        f"`python -m flows.campaign ...` command (same checkpoints and settings give the same campaign); "
        f"or calculate it under a new id (campaign.id={cid}_v2)")


def verified_manifest(paths: CampaignPaths) -> dict | None:
    """The verified manifest of the frozen campaign in ``paths``; None when it is not frozen.

    Not frozen means no ``manifest.json`` (a run killed before the freeze finished leaves
    none). A manifest that cannot be read, does not match its own hash, or whose
    campaign.parquet is missing or differs from the recorded sha256 raises :class:`StateError`
    with the way to recover.
    """
    if not paths.manifest.exists():
        return None
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _recovery(paths, f"{paths.manifest.name} is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get(TABLE_HASH), str):
        raise _recovery(paths, f"{paths.manifest.name} records no {TABLE_HASH}")
    recorded = manifest.get(MANIFEST_HASH)
    if recorded is not None and recorded != manifest_hash(manifest):
        raise _recovery(paths, f"{paths.manifest.name} does not match its own {MANIFEST_HASH}")
    if not paths.table.exists():
        raise _recovery(paths, f"{paths.table.name} is missing")
    actual = sha256_file(paths.table)
    if actual != manifest[TABLE_HASH]:
        raise _recovery(paths, f"{paths.table.name} has sha256 {actual[:12]}..., the manifest records "
                               f"{manifest[TABLE_HASH][:12]}...")
    return manifest


def require_frozen(paths: CampaignPaths) -> dict:
    """The verified manifest of a campaign that must be frozen (to simulate or evaluate it).

    No folder: :class:`NotFoundError`; a folder without both frozen files: :class:`StateError`
    saying to finish the campaign first; files that do not verify: see :func:`verified_manifest`.
    """
    cid = paths.folder.name
    if not paths.folder.is_dir():
        raise NotFoundError(
            f"campaign '{cid}': folder {paths.folder} does not exist; calculate it "
            f"with `python -m flows.campaign campaign=<name>` (the campaign config whose id is {cid}); "
            "`python -m flows.campaigns` lists the campaigns there are")
    missing = [p.name for p in (paths.table, paths.manifest) if not p.exists()]
    if missing:
        raise StateError(
            f"campaign '{cid}' is not frozen: {', '.join(missing)} missing in {paths.folder}; "
            f"finish `python -m flows.campaign campaign=<name>` (the campaign config whose id is {cid}) first")
    manifest = verified_manifest(paths)
    assert manifest is not None  # the manifest exists
    return manifest


def read_frozen_campaign(paths: CampaignPaths | str | Path,
                         columns: list[str] | None = None) -> tuple[dict, pd.DataFrame]:
    """``(manifest, table)`` of a frozen campaign, both verified (see :func:`require_frozen`)."""
    paths = paths if isinstance(paths, CampaignPaths) else CampaignPaths(Path(paths))
    manifest = require_frozen(paths)
    return manifest, pd.read_parquet(paths.table, columns=columns)
