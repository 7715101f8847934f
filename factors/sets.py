"""Named factor sets: ``conf/factors/<name>.yaml`` lists the factors a model uses."""
from __future__ import annotations

from pathlib import Path

import yaml

from factors.registry import all_factors
from tasks.core.config import CONF_DIR
from tasks.core.errors import ConfigError, NotFoundError

SETS_DIR = CONF_DIR / "factors"


def available_sets(sets_dir: Path = SETS_DIR) -> list[str]:
    """Names of the factor sets found in ``sets_dir``."""
    return sorted(p.stem for p in Path(sets_dir).glob("*.yaml"))


def validate_names(names: list[str], where: str) -> list[str]:
    """Return ``names`` when every one is a registered factor, listed once.

    Raises :class:`NotFoundError` naming the unknown factor(s) and ``where`` they came from,
    :class:`ConfigError` for a name listed twice.
    """
    known = all_factors()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NotFoundError(f"{where}: unknown factor(s) {unknown}; see docs/factors.md for the catalogue")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"{where}: factor(s) listed more than once: {dups}")
    return list(names)


def factor_set(name: str, sets_dir: Path = SETS_DIR) -> list[str]:
    """The factor names of set ``name`` (``conf/factors/<name>.yaml``), validated.

    Raises :class:`NotFoundError` for a missing set or an unknown factor in it,
    :class:`ConfigError` for a malformed file.
    """
    path = Path(sets_dir) / f"{name}.yaml"
    if not path.is_file():
        raise NotFoundError(f"factor set {name!r} not found ({path}); available: {available_sets(sets_dir)}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"factor set {name!r} ({path}): not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("factors"), list) or not doc["factors"]:
        raise ConfigError(f"factor set {name!r} ({path}): expected a mapping with a non-empty list 'factors'")
    names = doc["factors"]
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"factor set {name!r} ({path}): every entry of 'factors' must be a name")
    return validate_names(names, f"factor set {name!r}")


def names_from_config(node: object) -> list[str]:
    """The validated factor names of a composed ``factors`` config node (``cfg.factors``).

    Flows use it so that command-line overrides (``factors=rfm`` or
    ``factors.factors=[age,tenure_days]``) are honoured. Raises :class:`ConfigError` for a
    malformed node, :class:`NotFoundError` for an unknown factor.
    """
    from omegaconf import DictConfig, OmegaConf

    doc = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(doc, dict) or not isinstance(doc.get("factors"), list) or not doc["factors"]:
        raise ConfigError("config 'factors', key 'factors': expected a non-empty list of factor names")
    names = doc["factors"]
    if not all(isinstance(n, str) for n in names):
        raise ConfigError("config 'factors', key 'factors': every entry must be a factor name")
    return validate_names(names, f"factor set {doc.get('name', '?')!r}")
