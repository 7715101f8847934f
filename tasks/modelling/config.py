"""The model config (``conf/model/<name>.yaml``) and its consistency checks."""
from __future__ import annotations

from dataclasses import dataclass, replace

from tasks.core.config import load_conf
from tasks.core.errors import ConfigError
from tasks.modelling.checks import ChecksConfig
from tasks.modelling.models import (
    BASE_APPROACHES,
    ENSEMBLE,
    UPLIFT_APPROACHES,
)

PROMOTE_MODES = ("auto", "always", "never")


@dataclass
class ModelConfig:
    """conf/model/<name>.yaml (every option inherits conf/model/uplift.yaml's keys)."""

    name: str                       # registry model name
    kind: str                       # uplift | response
    approaches: list[str]           # uplift approaches tried (candidates = approaches x grid)
    lgbm: dict                      # base LightGBM parameters
    grid: list[dict]                # variants merged over lgbm, chosen by CV
    ensemble: list[str]             # ensemble member pool
    ensemble_top: int | None        # members = the best N of the pool by CV (None: all)
    cv_folds: int
    dr_folds: int                   # cross-fitting folds of the DR-learner's outcome models
    test_size: float
    k: float                        # uplift@k fraction
    select_metric: str              # qini_auc | uplift_at_k | roc_auc | f1
    class_weight: str | None        # response models: balanced | None
    seed: int
    n_boot: int
    checks: ChecksConfig
    promote: str                    # auto | always | never
    promote_margin: float           # auto: the paired CI's lower bound of new - champion must exceed this
    margin: float | None            # value of one incremental response (None: no profit suggestion)
    contact_cost: float | None      # cost of one offer (None: no profit suggestion)
    max_rows: int | None            # cap on training rows (random subsample)
    segment_quantile: float         # one_click segmentation: probability split
    version: str | None             # +action=promote: the version to promote


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ConfigError on an inconsistent model config."""
    if cfg.kind not in ("uplift", "response"):
        raise ConfigError(f"config 'model', key 'kind': {cfg.kind!r}; use uplift or response")
    if cfg.kind == "uplift":
        bad = [a for a in cfg.approaches if a not in UPLIFT_APPROACHES]
        if bad or not cfg.approaches:
            raise ConfigError(f"config 'model', key 'approaches': {bad or 'empty'}; use some of {list(UPLIFT_APPROACHES)}")
        if ENSEMBLE in cfg.approaches:
            bad = [a for a in cfg.ensemble if a not in BASE_APPROACHES]
            if bad or not cfg.ensemble:
                raise ConfigError(f"config 'model', key 'ensemble': {bad or 'empty'}; use some of {list(BASE_APPROACHES)}")
        if cfg.select_metric not in ("qini_auc", "uplift_at_k"):
            raise ConfigError(f"config 'model', key 'select_metric': {cfg.select_metric!r}; use qini_auc or uplift_at_k")
    elif cfg.select_metric not in ("roc_auc", "f1"):
        raise ConfigError(f"config 'model', key 'select_metric': {cfg.select_metric!r}; use roc_auc or f1")
    if cfg.cv_folds < 2:
        raise ConfigError(f"config 'model', key 'cv_folds': {cfg.cv_folds}; use at least 2")
    if cfg.dr_folds < 2:
        raise ConfigError(f"config 'model', key 'dr_folds': {cfg.dr_folds}; use at least 2")
    if not 0 < cfg.test_size < 1:
        raise ConfigError(f"config 'model', key 'test_size': {cfg.test_size}; use a fraction in (0, 1)")
    if cfg.promote not in PROMOTE_MODES:
        raise ConfigError(f"config 'model', key 'promote': {cfg.promote!r}; use one of {list(PROMOTE_MODES)}")
    if not cfg.grid:
        raise ConfigError("config 'model', key 'grid': give at least one entry ({} = the base parameters)")
    for key in ("constant", "sum_of_others", "single_predictor"):
        if getattr(cfg.checks, key) not in ("drop", "flag", "off"):
            raise ConfigError(f"config 'model', key 'checks.{key}': use drop, flag or off")



GENERIC_OPTIONS = ("uplift", "response")
"""The model options that fit any dataset (conf/model/uplift.yaml, response.yaml)."""


def name_for_dataset(cfg: ModelConfig, dataset: str | None, data_kind: str | None) -> ModelConfig:
    """``cfg`` with the registry name a model trained on ``dataset`` gets.

    The generic options carry the synthetic world's names (``synthetic_uplift``,
    ``response``); trained on another kind of dataset (a table, one_click) under that name,
    a model would sit beside, and compete with, models of other data. There it is named
    ``<dataset>_<kind>`` (``bank-full_response``); a name given with ``model.name=...`` stays.
    """
    if data_kind == "synthetic" or not dataset:
        return cfg
    generic = {str(load_conf(f"model/{option}").get("name")) for option in GENERIC_OPTIONS}
    if cfg.name not in generic:
        return cfg
    return replace(cfg, name=f"{dataset}_{cfg.kind}")
