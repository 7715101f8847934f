"""A campaign run killed with SIGKILL inside any stage resumes at that stage and ends identical.

For every stage a subprocess runs the campaign with ``UPLIFT_FAULT_STAGE=<stage>``, which
makes it SIGKILL itself after the stage computed its result and before the result is
committed. The rerun must reuse every earlier checkpoint untouched, recompute from the
killed stage on, recover the dead run's lock, and produce a campaign.parquet equal to that
of a run that was never interrupted. The subprocesses run the plain pipeline (the Prefect
flow is a thin wrapper over the same stage calls and is exercised in test_campaign.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from tasks.campaign.checkpoints import FAULT_ENV
from tasks.campaign.run import run_campaign
from tasks.campaign.stages import STAGES
from tasks.core.io import sha256_file
from tasks.core.layout import Layout
from tests.test_campaign import checkpoint_state, build_world, campaign, link_root

PROJECT_ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import json, sys
from tasks.campaign.config import CampaignConfig
from tasks.campaign.run import run_campaign
from tasks.core.config import to_dataclass
cfg = to_dataclass(json.loads(sys.argv[1]), CampaignConfig, "campaign")
run_campaign(cfg, sys.argv[2], partitions=2)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault_world")
    build_world(root, n_clients=2000, seed=3)
    return root


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory) -> pd.DataFrame:
    root = link_root(world, tmp_path_factory.mktemp("fault_ref") / "artifacts")
    res = run_campaign(campaign("fault"), root)
    return pd.read_parquet(res.folder / "campaign.parquet")


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: checkpoint_state(p) for p in sorted((folder / "stages").glob("*.parquet"))}


@pytest.mark.parametrize("stage", STAGES)
def test_killed_run_resumes_at_that_stage_with_identical_result(stage, world, reference, tmp_path):
    root = link_root(world, tmp_path / "artifacts")
    cfg = campaign("fault")
    env = {**os.environ, FAULT_ENV: stage}
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(asdict(cfg)), str(root)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = Layout(root).campaign("fault").folder
    k = STAGES.index(stage)
    before = _files(folder)
    assert len(before) == k, before  # stages before the killed one are committed, it is not
    assert not (folder / "manifest.json").exists() and not (folder / "campaign.parquet").exists()
    assert (folder / ".lock").exists()  # left behind by the killed run; its process is gone

    res = run_campaign(cfg, root)
    assert res.computed == STAGES[k:]
    assert [o.status for s, o in res.outcomes.items() if STAGES.index(s) < k] == ["reused"] * k
    after = _files(folder)
    assert {n: after[n] for n in before} == before
    result = pd.read_parquet(folder / "campaign.parquet")
    pd.testing.assert_frame_equal(result, reference)
    assert not (folder / ".lock").exists()
