"""A campaign's configuration: the dataclasses, their validation and where a campaign comes from.

A campaign is described by ``conf/campaign/<name>.yaml`` (composed by Hydra, with
``campaign.<key>=<value>`` overrides) or by a YAML file elsewhere (``conf=<file>``); both
become a validated :class:`CampaignConfig` here (:func:`resolve_campaign_config`). The
scoring API reads a named campaign's file with :func:`load_campaign_config`.

The offer policy's own settings (:class:`~tasks.campaign.policy.PolicyConfig`) and their
checks live with the policy in :mod:`tasks.campaign.policy`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tasks.campaign.policy import PolicyConfig, validate_policy
from tasks.core.config import CONF_DIR, load_conf, to_dataclass
from tasks.core.errors import ConfigError, NotFoundError
from tasks.core.io import stable_hash

GROUPS = ("targeted", "random_target", "control")
OWN_KEYS = ("id", "description")  # what a campaign file never takes from conf/campaign/default.yaml

FILTER_OPS: dict[str, Callable[[pd.Series, Any], pd.Series]] = {
    "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v,
    ">": lambda s, v: s > v,
    ">=": lambda s, v: s >= v,
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
    "in": lambda s, v: s.isin(list(v)),
    "not in": lambda s, v: ~s.isin(list(v)),
}


@dataclass
class FilterSpec:
    """One base filter: keep clients whose ``column`` ``op`` ``value`` holds."""

    name: str
    column: str
    op: str                         # one of FILTER_OPS
    value: Any = None               # a list item's optional field: None is reported as missing


@dataclass
class BalanceConfig:
    """Limits of the split's balance check (``campaign.balance``).

    A factor is flagged when its |SMD| between two groups is above ``smd_limit`` and above
    ``smd_z`` standard errors of a random split of those sizes; the split's group sizes fail
    the sample-ratio test when its p-value is below ``srm_alpha``.
    """

    smd_limit: float
    smd_z: float
    srm_alpha: float


@dataclass
class ClientTableConfig:
    """``campaign.client_table``: the clients and their features from one table
    (:mod:`tasks.campaign.client_table`; conf/campaign/default.yaml explains each key)."""

    path: str | None                # CSV or Parquet file, or folder of Parquet files; None = campaign.data
    id_column: str                  # the column of client ids (whole numbers, one row per client)
    sep: str | None                 # CSV separator; None = detected
    categorical: list[str] | None   # columns one-hot encoded besides the text ones, as at training


@dataclass
class CampaignConfig:
    """A campaign as described in ``conf/campaign/<name>.yaml`` (which explains each key)."""

    id: str                         # names the folder under <artifacts>/campaigns/
    date: str | None                # as-of date of the factors; None = the dataset's
    data: str                       # dataset name under <artifacts>/data/ (unused with a client table)
    model: str                      # registry model name
    model_version: str              # champion or an explicit version
    filters: list[FilterSpec]       # base filters, applied in order
    sample_fraction: float | None
    sample_size: int | None
    groups: dict[str, float]        # share of each group
    policy: PolicyConfig
    balance_factors: list[str] | None
    balance: BalanceConfig
    seed: int
    description: str
    client_table: ClientTableConfig  # clients and features from a table in place of the dataset folder


# The limits every campaign used before they became settings. Not a default (those are in
# conf/campaign/*.yaml) but a fixed point of the campaign's identity: a campaign with these
# limits keeps them out of its config hash and its split checkpoint's key, so campaigns frozen
# before the limits existed stay frozen, and a manifest without limits was checked with them.
LEGACY_BALANCE = BalanceConfig(smd_limit=0.1, smd_z=3.5, srm_alpha=0.001)


def validate_campaign_config(cfg: CampaignConfig) -> None:
    """Raise :class:`ConfigError` naming the first inconsistent campaign setting."""
    if not cfg.id or not all(ch.isalnum() or ch in "_-." for ch in cfg.id) or cfg.id.startswith("."):
        raise ConfigError(f"campaign.id {cfg.id!r}: use letters, digits, '_', '-', '.' (it names a folder)")
    if cfg.date is not None:
        try:
            pd.Timestamp(cfg.date)
        except (ValueError, TypeError):
            raise ConfigError(f"campaign.date {cfg.date!r} is not a date (use YYYY-MM-DD)") from None
    names = set()
    for i, f in enumerate(cfg.filters):
        where = f"campaign.filters[{i}] ({f.name!r})"
        if f.op not in FILTER_OPS:
            raise ConfigError(f"{where}: unknown op {f.op!r}; use one of {sorted(FILTER_OPS)}")
        if f.op in ("in", "not in") and not isinstance(f.value, (list, tuple)):
            raise ConfigError(f"{where}: op {f.op!r} needs a list value, got {f.value!r}")
        if f.value is None:
            raise ConfigError(f"{where}: value is missing")
        if f.name in names:
            raise ConfigError(f"{where}: duplicate filter name")
        names.add(f.name)
    if cfg.sample_fraction is not None and cfg.sample_size is not None:
        raise ConfigError("campaign: set sample_fraction or sample_size, not both")
    if cfg.sample_fraction is not None and not 0 < cfg.sample_fraction <= 1:
        raise ConfigError(f"campaign.sample_fraction must be in (0, 1], got {cfg.sample_fraction}")
    if cfg.sample_size is not None and cfg.sample_size < 1:
        raise ConfigError(f"campaign.sample_size must be a positive count, got {cfg.sample_size}")
    unknown = sorted(set(cfg.groups) - set(GROUPS))
    if unknown:
        raise ConfigError(f"campaign.groups: unknown group(s) {unknown}; the groups are {list(GROUPS)}")
    bad = {g: p for g, p in cfg.groups.items() if not 0 <= p <= 1}
    if bad:
        raise ConfigError(f"campaign.groups: proportions must be within [0, 1], got {bad}")
    total = float(sum(cfg.groups.values()))
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"campaign.groups: proportions {dict(cfg.groups)} sum to {total:g}, not 1")
    if cfg.groups.get("targeted", 0) <= 0:
        raise ConfigError("campaign.groups.targeted must be above 0")
    validate_policy(cfg.policy)
    if cfg.client_table.path and not cfg.client_table.id_column:
        raise ConfigError("campaign.client_table.id_column is empty; name the table's column of client ids")
    b = cfg.balance
    if not b.smd_limit > 0 or not b.smd_z > 0:
        raise ConfigError(f"campaign.balance.smd_limit ({b.smd_limit}) and smd_z ({b.smd_z}) must be above 0")
    if not 0 < b.srm_alpha < 1:
        raise ConfigError(f"campaign.balance.srm_alpha must be in (0, 1), got {b.srm_alpha}")


def group_shares(cfg: CampaignConfig) -> dict[str, float]:
    """The configured share of every group (0 for a group the config leaves out)."""
    return {g: float(cfg.groups.get(g, 0.0)) for g in GROUPS}


def nondefault_balance(cfg: CampaignConfig) -> dict | None:
    """``campaign.balance`` as a dict when it differs from :data:`LEGACY_BALANCE`, else None.

    The balance limits joined the config after campaigns had been frozen and checkpointed;
    leaving the limits of that time out of the config hash and of the split stage's key keeps
    those campaigns frozen and their checkpoints valid.
    """
    return None if cfg.balance == LEGACY_BALANCE else asdict(cfg.balance)


def campaign_config_hash(cfg: CampaignConfig) -> str:
    """Hash of the resolved campaign config (what makes a frozen campaign 'the same').

    Like the default balance limits, ``client_table`` stays out while no table is set, so
    campaigns frozen before it existed stay frozen.
    """
    resolved = asdict(cfg)
    if nondefault_balance(cfg) is None:
        del resolved["balance"]
    if not cfg.client_table.path:
        del resolved["client_table"]
    return stable_hash(resolved)


# --------------------------------------------------------------------------- where a campaign comes from
def available_campaigns(conf_dir: Path = CONF_DIR) -> list[str]:
    """Names of the campaigns in ``<conf_dir>/campaign/``."""
    return sorted(p.stem for p in (Path(conf_dir) / "campaign").glob("*.yaml"))


def _read_campaign_file(path: str | Path) -> DictConfig:
    """The keys a campaign file sets itself (at the top, or under ``campaign:``)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"campaign file {p} does not exist (conf={path})")
    try:
        node = OmegaConf.load(p)
    except Exception as exc:  # the YAML parser's own error types vary
        raise ConfigError(f"campaign file {p}: not valid YAML: {exc}") from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"campaign file {p}: expected a mapping of campaign settings")
    if "campaign" in node and "id" not in node:
        node = node.campaign
        if not isinstance(node, DictConfig):
            raise ConfigError(f"campaign file {p}: expected a mapping of campaign settings under 'campaign'")
    return node


def _over_the_default_campaign(own: DictConfig) -> DictConfig:
    """A campaign file's keys over conf/campaign/default.yaml's, except its :data:`OWN_KEYS`."""
    base = load_conf("campaign/default")
    for key in OWN_KEYS:
        base.pop(key, None)
    node = OmegaConf.merge(base, own)
    if "description" not in node:
        node.description = ""
    return node


def load_campaign_file(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """A campaign node from a YAML file with ``campaign.<key>=<value>`` overrides applied.

    The file holds the campaign's keys at the top (as conf/campaign/*.yaml) or under
    ``campaign:``; a key it leaves out takes the value of conf/campaign/default.yaml
    (``policy``, ``balance`` and ``groups`` key by key, ``filters`` whole), except the
    campaign's own ``id`` (required) and ``description`` (empty when left out). Raises
    :class:`NotFoundError` for a missing file and :class:`ConfigError` for one that is not a
    YAML mapping or overrides that do not apply.
    """
    node = _over_the_default_campaign(_read_campaign_file(path))
    dots = [a.lstrip("+~").split(".", 1)[1] for a in overrides]
    if dots:
        try:
            node = OmegaConf.merge(node, OmegaConf.from_dotlist(dots))
        except Exception as exc:
            raise ConfigError(f"campaign overrides {list(overrides)}: {exc}") from None
    return node


def campaign_from_node(node: Any) -> tuple[dict[str, Any], CampaignConfig]:
    """A campaign node as a plain dict and as its validated dataclass."""
    try:
        campaign = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config 'campaign': {exc}") from None
    cfg = to_dataclass(campaign, CampaignConfig, "campaign")
    validate_campaign_config(cfg)
    return campaign, cfg


def load_campaign_config(path: str | Path, default_id: str | None = None,
                         required: Sequence[str] = ()) -> CampaignConfig:
    """The validated campaign of a YAML file.

    ``default_id`` stands in for a missing ``id``; each key of ``required`` must be set in
    the file itself (not left to conf/campaign/default.yaml, see :func:`load_campaign_file`).
    Errors as :func:`load_campaign_file`, and :class:`ConfigError` for settings that do not
    validate.
    """
    node = _read_campaign_file(path)
    for key in required:
        if not isinstance(node.get(key), DictConfig):
            raise ConfigError(f"campaign file {path} has no {key!r} section")
    if default_id is not None and node.get("id") in (None, ""):
        node.id = default_id
    return campaign_from_node(_over_the_default_campaign(node))[1]


def resolve_campaign_config(composed: Any, conf_path: str | Path | None, overrides: Sequence[str] = (),
                            unknown: str | None = None,
                            conf_dir: Path = CONF_DIR) -> tuple[dict[str, Any], CampaignConfig]:
    """The campaign to run, as a plain dict and as its validated dataclass.

    ``composed`` is the campaign node Hydra composed from conf/ (used unless ``conf_path``
    names a campaign file, to which ``overrides`` then apply); ``unknown`` is a
    ``campaign=<name>`` that names no file in ``<conf_dir>/campaign/``: a clear
    :class:`NotFoundError` listing the campaigns there.
    """
    if unknown is not None:
        raise NotFoundError(
            f"unknown campaign {unknown!r}: no conf/campaign/{unknown}.yaml; available: "
            f"{available_campaigns(conf_dir)}; a campaign file elsewhere runs with conf=path/to/it.yaml")
    node = load_campaign_file(conf_path, overrides) if conf_path else composed
    return campaign_from_node(node)
