"""The configuration: conf/*.yaml is the one home of every default value.

The config dataclasses declare keys and types; the YAML gives the values. Proven here on every
option of every group: each composes into its dataclass with every key the dataclass needs
written in the YAML, no dataclass default repeats a YAML value, and ``from_conf`` /
``load_conf`` (the defaults without a Hydra composition) read conf/ exactly as Hydra does.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import subprocess
import sys
import typing
from typing import Any

import pytest
from omegaconf import OmegaConf

import tasks
from tasks.campaign.config import CampaignConfig
from tasks.core.config import (
    CONF_DIR, PROJECT_ROOT, PathsConfig, RunnerConfig, SyntheticDataConfig, compose_config, from_conf, load_conf,
    to_dataclass,
)
from tasks.core.errors import ConfigError
from tasks.data.datasets import OneClickDataConfig, TabularDataConfig
from tasks.data.ingest import SourceConfig
from tasks.evaluation.readout import EvaluateConfig
from tasks.modelling.checks import ChecksConfig
from tasks.modelling.config import ModelConfig
from tasks.monitoring.decay import MonitorConfig
from tasks.profile.config import ProfileConfig

# group -> its dataclass, or one per option where the options differ in kind
SCHEMAS: dict[str, Any] = {
    "data": {"synthetic": SyntheticDataConfig, "table": TabularDataConfig, "hillstrom": TabularDataConfig,
             "ifood": TabularDataConfig, "one_click": OneClickDataConfig},
    "model": ModelConfig,
    "campaign": CampaignConfig,
    "runner": RunnerConfig,
    "monitor": MonitorConfig,
    "profile": ProfileConfig,
    "evaluate": EvaluateConfig,
    "source": SourceConfig,
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def schema(group: str, option: str) -> type:
    s = SCHEMAS[group]
    return s[option] if isinstance(s, dict) else s


def composed(group: str, option: str) -> dict:
    """The group's node of the composed configuration with ``group=option``."""
    return OmegaConf.to_container(compose_config([f"{group}={option}"])[group], resolve=True)


CASES = [(g, o) for g in SCHEMAS for o in options(g)]
NODES = [(schema(g, o), composed(g, o), f"{g}/{o}") for g, o in CASES]
NODES.append((PathsConfig, OmegaConf.to_container(compose_config().paths), "config:paths"))


def walk(cls: type, node: Any, where: str):
    """(dataclass, node, where) for ``cls`` and every config dataclass inside it (sections and
    list items), following the YAML node."""
    yield cls, node, where
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value, hint = node.get(f.name) if isinstance(node, dict) else None, hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            yield from walk(hint, value, f"{where}.{f.name}")
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
        if dataclasses.is_dataclass(item) and isinstance(value, list):
            for i, v in enumerate(value):
                yield from walk(item, v, f"{where}.{f.name}[{i}]")


def has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def config_dataclasses() -> set[type]:
    """Every dataclass named ``*Config`` or ``*Spec`` defined under tasks/."""
    found = set()
    for mod in pkgutil.walk_packages(tasks.__path__, "tasks."):
        module = importlib.import_module(mod.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == mod.name
                    and obj.__name__.endswith(("Config", "Spec"))):
                found.add(obj)
    return found


# --------------------------------------------------------------------------- one home per default
def test_every_config_dataclass_is_checked_here():
    covered = {cls for top, node, where in NODES for cls, _, _ in walk(top, node, where)}
    assert config_dataclasses() == covered


@pytest.mark.parametrize("cls, node, where", NODES, ids=[w for _, _, w in NODES])
def test_every_option_writes_every_key_its_dataclass_needs(cls, node, where):
    to_dataclass(node, cls, where)  # composes: nothing missing, nothing unknown, types right
    for sub, sub_node, sub_where in walk(cls, node, where):
        needed = [f.name for f in dataclasses.fields(sub) if not has_default(f)]
        assert [k for k in needed if k not in sub_node] == [], f"{sub_where}: keys the YAML must write"


@pytest.mark.parametrize("cls, node, where", NODES, ids=[w for _, _, w in NODES])
def test_no_dataclass_default_repeats_a_yaml_value(cls, node, where):
    for sub, sub_node, sub_where in walk(cls, node, where):
        for f in dataclasses.fields(sub):
            if not has_default(f):
                continue
            # a default stays only where a value has no YAML home: None for a key an option leaves out
            assert default_of(f) is None, f"{sub.__name__}.{f.name} = {default_of(f)!r}: write it in the YAML"
            assert f.name not in sub_node or sub_node[f.name] is not None, (
                f"{sub_where}.{f.name}: the YAML repeats the dataclass default None")


def test_the_check_above_fires_on_a_default_that_repeats_the_yaml():
    @dataclasses.dataclass
    class Repeats:
        n_workers: int = 1
        address: str | None = None

    with pytest.raises(AssertionError, match="write it in the YAML"):
        test_no_dataclass_default_repeats_a_yaml_value(Repeats, {"n_workers": 1, "address": None}, "runner/x")

    @dataclasses.dataclass
    class NoneRepeated:
        address: str | None = None

    with pytest.raises(AssertionError, match="repeats the dataclass default None"):
        test_no_dataclass_default_repeats_a_yaml_value(NoneRepeated, {"address": None}, "runner/x")
    with pytest.raises(ConfigError, match="config 'runner/x', key 'address': missing"):
        test_every_option_writes_every_key_its_dataclass_needs(RunnerConfig, {"kind": "local"}, "runner/x")


def test_options_inherit_their_base_through_the_defaults_list():
    # conf/model/hillstrom.yaml writes neither checks nor dr_folds: they come from uplift.yaml
    hill = from_conf(ModelConfig, "model/hillstrom")
    assert hill.checks == from_conf(ChecksConfig, "model/uplift:checks") and hill.dr_folds == 3
    assert from_conf(ModelConfig, "model/ifood").class_weight == "balanced"  # via response.yaml
    assert from_conf(ModelConfig, "model/uplift").class_weight is None
    # the runner: each option says its own value
    assert from_conf(RunnerConfig, "runner/local").n_workers == 1
    assert from_conf(RunnerConfig, "runner/dask").n_workers == 2


# --------------------------------------------------------------------------- from_conf and load_conf
@pytest.mark.parametrize("group, option", CASES + [("factors", o) for o in options("factors")])
def test_load_conf_reads_every_option_as_hydra_composes_it(group, option):
    mine = OmegaConf.to_container(load_conf(f"{group}/{option}"), resolve=True)
    hydra = OmegaConf.to_container(compose_config([f"{group}={option}"]), resolve=True)
    if group == "evaluate":  # a _global_ package: its keys are at the top
        assert mine == {k: hydra[k] for k in mine}
    else:
        assert mine == hydra[group]
    if group in SCHEMAS:
        cls = schema(group, option)
        node = mine["evaluate"] if group == "evaluate" else mine
        assert to_dataclass(node, cls, group) == to_dataclass(hydra[group], cls, group)


def test_load_conf_of_the_primary_config_is_the_default_composition():
    assert OmegaConf.to_container(load_conf("config")) == OmegaConf.to_container(compose_config())
    assert from_conf(PathsConfig, "config:paths") == PathsConfig(artifacts="artifacts", shared_data="../shared/data")


def test_from_conf_overrides_and_sections():
    cfg = from_conf(SyntheticDataConfig, "data/synthetic", n_clients=3000, seed=11, name="blind")
    assert (cfg.n_clients, cfg.seed, cfg.name, cfg.end_date) == (3000, 11, "blind", "2026-01-01")
    assert from_conf(ChecksConfig, "model/uplift:checks") == from_conf(ModelConfig, "model/uplift").checks
    # a section is overridden key by key; any other value (a dict, a list) is replaced whole
    camp = from_conf(CampaignConfig, "campaign/default", id="x", policy={"kind": "budget", "budget": 5},
                     groups={"targeted": 0.9, "control": 0.1}, filters=[])
    assert (camp.policy.kind, camp.policy.budget, camp.policy.top_fraction) == ("budget", 5, 0.3)
    assert camp.groups == {"targeted": 0.9, "control": 0.1} and camp.filters == []
    model = from_conf(ModelConfig, "model/uplift", lgbm={"n_estimators": 5}, checks={"constant": "flag"})
    assert model.lgbm == {"n_estimators": 5} and model.checks.constant == "flag" and model.checks.max_rows == 20000
    # an instance works like its mapping
    assert from_conf(ModelConfig, "model/uplift", checks=model.checks).checks == model.checks


@pytest.mark.parametrize("call, match", [
    (lambda: from_conf(RunnerConfig, "runner/local", n_workerz=3), "config 'runner/local': unknown key 'n_workerz'"),
    (lambda: from_conf(CampaignConfig, "campaign/default", policy={"kindd": "budget"}),
     "config 'campaign/default.policy': unknown key 'kindd'"),
    (lambda: from_conf(RunnerConfig, "runner/local", n_workers="many"), "key 'n_workers'"),
    (lambda: from_conf(RunnerConfig, "runner/kubernetes"), r"no conf/runner/kubernetes.yaml; available: \['dask', 'local'\]"),
    (lambda: from_conf(ChecksConfig, "model/uplift:nothing"), "has no section 'nothing'"),
    (lambda: from_conf(RunnerConfig, "data/synthetic"), r"config 'data/synthetic', key '(name|n_clients)'"),
    (lambda: to_dataclass({k: v for k, v in composed("runner", "dask").items() if k != "partitions"},
                          RunnerConfig, "runner"), "config 'runner', key 'partitions'"),
])
def test_from_conf_rejects_unknown_missing_and_mistyped_keys(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# --------------------------------------------------------------------------- composition
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


def test_campaign_id_is_one_top_level_key_for_every_flow():
    cfg = compose_config(["campaign_id=spring_sale_2026", "seed=7"])
    assert (cfg.campaign_id, cfg.seed) == ("spring_sale_2026", 7)
    assert compose_config().campaign_id is None
    assert "campaign_id" not in compose_config().monitor and "campaign_id" not in compose_config().evaluate
    assert not any(f.name == "campaign_id" for f in dataclasses.fields(MonitorConfig))


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
