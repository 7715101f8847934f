"""The campaign command line: conf= campaign files, Hydra overrides, clear errors, and a run
killed through the real Prefect flow that resumes on the next command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.campaign import split_argv
from tasks.campaign.checkpoints import FAULT_ENV
from tasks.campaign.config import CampaignConfig, load_campaign_file, validate_campaign_config
from tasks.campaign.run import run_campaign
from tasks.core.config import compose_config, to_dataclass
from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.layout import Layout
from tests.test_campaign import build_world, campaign, link_root

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _cli(args: list[str], env_extra: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    """Run the campaign CLI in its own process group; output goes to files, not pipes.

    A run that SIGKILLs itself leaves Prefect's ephemeral server (its child) orphaned and
    holding inherited pipes, so output is captured in files and the group is ended after.
    """
    env = {**os.environ, **(env_extra or {})}
    env.pop("PREFECT_API_URL", None)  # ephemeral mode, whatever the test session uses
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # a busy machine starts slowly
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flows.campaign", *args], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, code, out.read(), err.read())


def test_split_argv_keeps_campaign_overrides_for_a_conf_file():
    conf, held, rest, unknown = split_argv(["conf=my.yaml", "campaign.seed=3", "paths.artifacts=/x", "+campaign.x=1"])
    assert (conf, held, rest, unknown) == ("my.yaml", ["campaign.seed=3", "+campaign.x=1"], ["paths.artifacts=/x"], None)
    conf, held, rest, unknown = split_argv(["campaign=spring_sale", "campaign.seed=3"])
    assert (conf, held, rest, unknown) == (None, [], ["campaign=spring_sale", "campaign.seed=3"], None)
    assert split_argv(["campaign=no_such_campaign"])[3] == "no_such_campaign"


def test_load_campaign_file_applies_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(asdict(campaign("mine"))))
    node = load_campaign_file(path, ["campaign.seed=99", "campaign.policy.top_fraction=0.2"])
    cfg = to_dataclass(node, CampaignConfig, "campaign")
    assert (cfg.id, cfg.seed, cfg.policy.top_fraction) == ("mine", 99, 0.2)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_campaign_file(tmp_path / "missing.yaml", [])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_campaign_file(tmp_path / "list.yaml", [])


def test_a_campaign_file_takes_what_it_leaves_out_from_the_default_campaign(tmp_path):
    (tmp_path / "short.yaml").write_text("id: short\npolicy: {kind: budget, budget: 40}\ngroups: {control: 0.2, targeted: 0.7}\n")
    cfg = to_dataclass(load_campaign_file(tmp_path / "short.yaml", ["campaign.seed=5"]), CampaignConfig, "campaign")
    default = to_dataclass(compose_config().campaign, CampaignConfig, "campaign")
    assert (cfg.id, cfg.seed, cfg.policy.kind, cfg.policy.budget) == ("short", 5, "budget", 40)
    assert cfg.groups == {"targeted": 0.7, "random_target": 0.1, "control": 0.2}  # key by key
    assert (cfg.filters, cfg.balance, cfg.data, cfg.model) == (default.filters, default.balance, default.data, default.model)
    assert cfg.description == ""  # the default campaign's words are not this one's
    (tmp_path / "anonymous.yaml").write_text("policy: {kind: budget, budget: 40}\n")
    with pytest.raises(ConfigError, match="key 'id': missing"):
        to_dataclass(load_campaign_file(tmp_path / "anonymous.yaml"), CampaignConfig, "campaign")


def test_shipped_campaigns_compose_and_validate():
    for name in ("default", "spring_sale"):
        cfg = compose_config([f"campaign={name}"])
        validate_campaign_config(to_dataclass(cfg.campaign, CampaignConfig, "campaign"))
    spring = to_dataclass(compose_config(["campaign=spring_sale", "campaign.sample_fraction=0.2"]).campaign,
                          CampaignConfig, "campaign")
    assert spring.sample_fraction == 0.2 and spring.policy.kind == "profit"


def test_bad_input_exits_with_one_clear_message(tmp_path):
    res = _cli(["campaign=no_such_campaign", f"paths.artifacts={tmp_path}"])
    assert res.returncode == 2 and "unknown campaign 'no_such_campaign'" in res.stderr
    assert "spring_sale" in res.stderr
    res = _cli(["campaign=spring_sale", "campaign.groups.control=0.3", f"paths.artifacts={tmp_path}"])
    assert res.returncode == 2 and "sum to 1.2, not 1" in res.stderr
    assert not (tmp_path / "campaigns").exists()


def test_cli_run_killed_in_a_stage_resumes_through_prefect(tmp_path_factory):
    world = tmp_path_factory.mktemp("cli_world")
    build_world(world, n_clients=1500, seed=5)
    root = link_root(world, tmp_path_factory.mktemp("cli") / "artifacts")
    conf = root.parent / "outside.yaml"
    conf.write_text(yaml.safe_dump(asdict(campaign("cli", seed=1))))
    args = [f"conf={conf}", "campaign.seed=11", f"paths.artifacts={root}", "runner.partitions=2"]

    killed = _cli(args, {FAULT_ENV: "split"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    folder = Layout(root).campaign("cli").folder
    assert sorted(p.name for p in (folder / "stages").glob("*.parquet"))[-1] == "06_sort.parquet"

    done = _cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("client_base reused, filters reused, subset reused, factors reused, score reused, sort reused, "
            "split computed, offer computed, freeze computed") in done.stdout
    again = _cli(args)
    assert again.returncode == 0 and "nothing to do" in again.stdout

    reference = run_campaign(campaign("cli"), link_root(world, tmp_path_factory.mktemp("cli_ref") / "artifacts"))
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "campaign.parquet"),
                                  pd.read_parquet(reference.folder / "campaign.parquet"))
