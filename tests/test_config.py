"""Composition of the Hydra configuration and its typed schemas."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.core.config import PROJECT_ROOT, RunnerConfig, SyntheticDataConfig, compose_config, to_dataclass
from tasks.core.errors import ConfigError


def test_defaults_compose_with_every_group():
    cfg = compose_config()
    for group in ("data", "factors", "model", "campaign", "runner", "paths"):
        assert group in cfg, group
    assert cfg.data.kind == "synthetic"
    assert cfg.runner.kind == "local"


def test_overrides_reach_the_typed_schema():
    cfg = compose_config(["data.n_clients=1234", "data.seed=9", "data.name=tiny", "runner=dask"])
    data = to_dataclass(cfg.data, SyntheticDataConfig, "data")
    assert (data.n_clients, data.seed, data.name) == (1234, 9, "tiny")
    runner = to_dataclass(cfg.runner, RunnerConfig, "runner")
    assert runner.kind == "dask" and runner.n_workers == 2


def test_yaml_defaults_match_the_dataclass_defaults():
    cfg = compose_config()
    from_yaml = to_dataclass(cfg.data, SyntheticDataConfig, "data")
    assert from_yaml == SyntheticDataConfig()


def test_mistyped_value_is_a_config_error_naming_the_key():
    cfg = compose_config(["data.n_clients=lots"])
    with pytest.raises(ConfigError, match=r"config 'data', key 'n_clients'"):
        to_dataclass(cfg.data, SyntheticDataConfig, "data")


def test_unknown_key_is_a_config_error():
    cfg = compose_config(["+data.n_clientz=5"])
    with pytest.raises(ConfigError, match="n_clientz"):
        to_dataclass(cfg.data, SyntheticDataConfig, "data")


def test_unknown_group_option_fails_on_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.generate", "data=nonexistent", f"paths.artifacts={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "nonexistent" in proc.stderr
