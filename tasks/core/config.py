"""Typed configuration schemas and the bridge from Hydra's config tree to them.

The YAML files under conf/ are the source of truth; code below the flows receives plain
dataclasses built by :func:`to_dataclass`, never a raw ``DictConfig``. A missing or
mistyped value becomes a :class:`~tasks.core.errors.ConfigError` naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Type, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tasks.core.errors import ConfigError

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


@dataclass
class PathsConfig:
    """Where things live. Relative paths are taken from the current directory."""

    artifacts: str = "artifacts"
    shared_data: str = "../shared/data"


@dataclass
class SyntheticDataConfig:
    """The embedded synthetic retail world (``conf/data/synthetic.yaml``)."""

    kind: str = "synthetic"
    name: str = "synthetic"
    n_clients: int = 20_000
    seed: int = 42
    start_date: str = "2024-01-01"
    end_date: str = "2026-01-01"
    base_response_rate: float = 0.03
    negative_uplift_share: float = 0.10
    persuadable_share: float = 0.25
    sure_thing_share: float = 0.15
    past_campaign_dates: list[str] = field(default_factory=lambda: ["2025-06-01", "2025-09-01"])
    past_campaign_fraction: float = 0.5
    past_campaign_treated_share: float = 0.5
    response_window_days: int = 30
    shift: float = 0.0
    uplift_noise: float = 0.15
    schema_version: int = 1


@dataclass
class RunnerConfig:
    """How flow stages execute: ``local`` (threads in this process) or ``dask``."""

    kind: str = "local"
    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    partitions: int = 1


def to_dataclass(node: Any, cls: Type[T], where: str) -> T:
    """Validate a config node against dataclass ``cls`` and return an instance.

    ``where`` names the config group for the error message (e.g. ``"data"``).
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), node)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        raise ConfigError(f"config '{where}'" + (f", key '{key}'" if key else "") + f": {exc.msg if hasattr(exc, 'msg') else exc}") from None


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
