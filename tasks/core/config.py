"""Typed configuration schemas and the bridge from conf/ to them.

The YAML files under conf/ are the only source of default values: users read and edit
conf/*.yaml. The config dataclasses of every area declare the fields, their types and what
they mean, but no default values (except a field with no home in the YAML: an optional
field of a list item such as ``FilterSpec.value``). Code below the flows receives plain
dataclasses, never a raw ``DictConfig``:

- :func:`to_dataclass` validates a composed node (Hydra's, in the flows);
- :func:`from_conf` builds one straight from a conf/ file, with keyword overrides, for code
  and tests that need the defaults without a Hydra composition
  (``from_conf(SyntheticDataConfig, "data/synthetic", n_clients=3000)``);
- :func:`load_conf` reads that node: a file of conf/ with its defaults list resolved the
  way Hydra resolves it (tests/test_config.py checks both give the same tree).

A missing, unknown or mistyped value becomes a :class:`~tasks.core.errors.ConfigError`
naming the key.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Type, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from tasks.core.errors import ConfigError

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


@dataclass
class PathsConfig:
    """Where things live (``paths`` in ``conf/config.yaml``). Relative paths are taken from the
    current directory."""

    artifacts: str                   # every output: datasets, models, campaigns, evaluations, ...
    shared_data: str                 # the folder of the real public datasets


@dataclass
class SyntheticDataConfig:
    """The embedded synthetic retail world (``conf/data/synthetic.yaml``, which explains each key)."""

    kind: str                        # always "synthetic"
    name: str                        # folder under <artifacts>/data/
    n_clients: int
    seed: int
    start_date: str                  # first day of purchase and message history
    end_date: str                    # as-of date of the world: every event is strictly before it
    base_response_rate: float
    negative_uplift_share: float
    persuadable_share: float
    sure_thing_share: float
    past_campaign_dates: list[str]
    past_campaign_fraction: float
    past_campaign_treated_share: float
    response_window_days: int
    shift: float                     # > 0 drifts behaviour
    uplift_noise: float
    schema_version: int


@dataclass
class RunnerConfig:
    """How flow stages execute (``conf/runner/<kind>.yaml``): ``local`` (threads in this
    process) or ``dask``."""

    kind: str                        # local | dask
    address: str | None              # dask: a scheduler's address; None starts a LocalCluster
    n_workers: int
    threads_per_worker: int
    partitions: int                  # Parquet partitions of the factor and score stages


def to_dataclass(node: Any, cls: Type[T], where: str) -> T:
    """Validate a config node against dataclass ``cls`` and return an instance.

    ``where`` names the config group for the error message (e.g. ``"data"``).
    """
    try:
        if isinstance(node, DictConfig):  # interpolations resolve in the node's own tree first
            node = OmegaConf.to_container(node, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(cls), node)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        text = str(getattr(exc, "msg", None) or exc).strip().splitlines()[0]
        if isinstance(exc, MissingMandatoryValue):
            text = "missing: every key is written in the YAML (conf/*.yaml are the defaults)"
        raise ConfigError(f"config '{where}'" + (f", key '{key}'" if key else "") + f": {text}") from None


def load_conf(source: str) -> DictConfig:
    """The node of conf/ that ``source`` names, as Hydra would compose it.

    ``source`` is a file of conf/ without ``.yaml`` (``"data/synthetic"``, ``"model/hillstrom"``,
    ``"config"``), optionally followed by ``":"`` and a dotted key for a node inside it
    (``"model/uplift:checks"``, ``"config:paths"``). The file's defaults list is resolved:
    an option of its own group (``- uplift``), ``{group: option}`` entries and ``_self_``;
    Hydra's own groups (``hydra/...``) are left out; ``${paths.*}`` interpolations resolve
    against conf/config.yaml's ``paths``, as in the composed config. Raises :class:`ConfigError` for a
    missing file or key.
    """
    name, _, key = source.partition(":")
    node, is_global = _load_option(name, source)
    if "/" in name and not is_global:
        node = _beside_paths(node, name.partition("/")[0])
    if key:
        sub = OmegaConf.select(node, key, default=None, throw_on_missing=False)
        if not isinstance(sub, DictConfig):
            raise ConfigError(f"config '{source}': conf/{name}.yaml has no section '{key}'")
        node = sub
    return node


def _beside_paths(node: DictConfig, group: str) -> DictConfig:
    """``node`` placed under ``group`` beside the primary config's ``paths``, so that an
    interpolation such as ``${paths.shared_data}`` resolves as in the composed config."""
    primary = OmegaConf.load(CONF_DIR / "config.yaml")
    root = OmegaConf.create({"paths": primary.get("paths", {}), group: node})
    return root[group]


def _load_option(name: str, source: str) -> tuple[DictConfig, bool]:
    """A conf/ file with its defaults list merged in; True when its package is ``_global_``."""
    path = CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        group = path.parent
        options = sorted(p.stem for p in group.glob("*.yaml")) if group.is_dir() else []
        raise ConfigError(f"config '{source}': no conf/{name}.yaml" + (f"; available: {options}" if options else ""))
    text = path.read_text(encoding="utf-8")
    is_global = any(line.strip().replace(" ", "") == "#@package_global_" for line in text.splitlines()[:5])
    node = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    defaults = list(node.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    group = name.rpartition("/")[0]
    parts: list[Any] = []
    for entry in defaults:
        if entry == "_self_":
            parts.append(node)
        elif isinstance(entry, str) and group:
            parts.append(_load_option(f"{group}/{entry}", source)[0])
        elif isinstance(entry, DictConfig) and len(entry) == 1:
            (sub_group, option), = entry.items()
            sub_group = str(sub_group).split()[-1]  # "override hydra/x" -> "hydra/x"
            if sub_group == "hydra" or sub_group.startswith("hydra/"):
                continue
            sub, sub_global = _load_option(f"{sub_group}/{option}", source)
            parts.append(sub if sub_global else OmegaConf.create({sub_group: sub}))
        else:
            raise ConfigError(f"config '{source}': conf/{name}.yaml, defaults entry {entry!r} is not supported here")
    merged = OmegaConf.merge(*parts)
    if not group:
        merged.pop("hydra", None)  # Hydra's own settings, not the project's
    return merged, is_global


def from_conf(cls: Type[T], source: str, **overrides: Any) -> T:
    """A ``cls`` built from the conf/ node ``source`` (see :func:`load_conf`), ``overrides`` applied.

    An override replaces the value of its key, except for a key whose field is itself a
    config dataclass: a mapping (or instance) given there overrides that section key by key,
    e.g. ``from_conf(CampaignConfig, "campaign/default", policy={"kind": "budget", "budget": 5})``.
    Unknown keys, missing and mistyped values raise :class:`ConfigError` naming the key.
    """
    try:
        node = OmegaConf.to_container(load_conf(source), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config '{source}': {exc}") from None
    return to_dataclass(_override(cls, node, overrides, source), cls, source)


def _override(cls: type, node: dict, overrides: dict[str, Any], where: str) -> dict:
    hints = typing.get_type_hints(cls)
    out = dict(node)
    for key, value in overrides.items():
        if key not in hints:
            raise ConfigError(f"config '{where}': unknown key '{key}'; the keys are {sorted(hints)}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        field_cls = hints[key]
        if dataclasses.is_dataclass(field_cls) and isinstance(value, dict) and isinstance(out.get(key), dict):
            value = _override(field_cls, out[key], value, f"{where}.{key}")
        out[key] = value
    return out


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose the project configuration with Hydra overrides, outside of a Hydra app.

    Used by tests and benchmarks; flows get theirs from ``flows._cli.run_cli``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))
