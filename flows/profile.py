"""Profile a dataset before anyone trusts a model on it.

    python -m flows.profile data=<dataset> [factors=<set>] [profile.as_of=YYYY-MM-DD] [profile.max_rows=N]

Writes ``<artifacts>/profiles/<dataset>/<date>/``: ``plots/*.png``, ``findings.json``, a
self-contained ``report.html`` (plots embedded) and, last, ``report.md``; publishes the
report as a Prefect markdown artifact. ``<date>`` is ``profile.as_of``, else the synthetic
world's as-of date, else today's date.

For the synthetic world the raw tables are clients, purchases, messages and
campaign_history (the truth table is never read), and the factor table is the campaign
history (treatment, response) joined with the factor set computed as of each campaign's
date. For the real datasets (hillstrom, ifood, one_click) the raw tables are the source
files as read and the factor table is the loader's wide table, including the columns the
data config drops from training, so the report shows why they are dropped.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.profile import report as pr
from tasks.core.config import SyntheticDataConfig, to_dataclass
from tasks.core.contracts import CONTRACTS
from tasks.data.point_in_time import factors_as_of_rows
from tasks.data.tables import dataset_dir, read_manifest, read_table
from tasks.core.errors import ConfigError, DataValidationError
from tasks.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text

WORLD_TABLES = ("clients", "purchases", "messages", "campaign_history")
_EVENT_FILTERS = {"purchases": "timestamp", "messages": "timestamp", "campaign_history": "campaign_date"}


def profile_dir(artifacts: str | Path, dataset: str, date: str) -> Path:
    """``<artifacts>/profiles/<dataset>/<date>``."""
    return Path(artifacts) / "profiles" / dataset / date


def _check_date(value: str, key: str) -> str:
    try:
        return str(pd.Timestamp(value).date())
    except (ValueError, TypeError):
        raise ConfigError(f"config 'profile', key '{key}': {value!r} is not a date (use YYYY-MM-DD)") from None


def read_world_table(data_dir: Path, table: str, as_of: pd.Timestamp, world_as_of: pd.Timestamp) -> pd.DataFrame:
    """One table of a synthetic world, limited to what was known before ``as_of``.

    At the world's own as-of date the contract check covers it; for an earlier date the
    events from ``as_of`` on (and clients registered after it) are left out.
    """
    if as_of >= world_as_of:
        return read_table(data_dir, table, as_of=as_of)
    df = read_table(data_dir, table)
    if table == "clients":
        return df[df["registration_date"] <= as_of].reset_index(drop=True)
    col = _EVENT_FILTERS.get(table)
    return df[df[col] < as_of].reset_index(drop=True) if col else df


def point_in_time_factor_table(
    data_dir: Path, history: pd.DataFrame, factor_names: list[str]
) -> pd.DataFrame:
    """Campaign history rows joined with the factors computed as of each row's campaign date.

    With no factor names the clients' own numeric and boolean columns stand in for factors.
    """
    keep = ["client_id", "campaign_id", "campaign_date", "treatment", "response"]
    if not factor_names:
        clients = read_table(data_dir, "clients")
        cols = [c for c in clients.columns if c != "client_id" and pr.column_kind(clients[c]) in ("numeric", "bool")]
        return history[keep].merge(clients[["client_id", *cols]], on="client_id", how="left")
    rows = history[keep].reset_index(drop=True)
    return pd.concat([rows, factors_as_of_rows(data_dir, rows, factor_names)], axis=1)


@task(cache_policy=NONE, persist_result=False)
def profile_world_tables(data_dir: str, as_of: str, world_as_of: str, cfg: pr.ProfileConfig) -> list[pr.TableProfile]:
    """Profile the raw tables of a synthetic world (never its truth table)."""
    out = []
    for table in WORLD_TABLES:
        df = read_world_table(Path(data_dir), table, pd.Timestamp(as_of), pd.Timestamp(world_as_of))
        key = list(cfg.table_keys.get(table) or CONTRACTS[table].unique)
        out.append(pr.profile_table(df, table, cfg, key=key, outcome="response"))
    return out


@task(cache_policy=NONE, persist_result=False)
def profile_world_factors(
    data_dir: str, as_of: str, world_as_of: str, factor_names: list[str], factor_set: str, cfg: pr.ProfileConfig
) -> pr.AnalysisProfile:
    """Profile the campaign history as uplift data with point-in-time factors."""
    history = read_world_table(Path(data_dir), "campaign_history", pd.Timestamp(as_of), pd.Timestamp(world_as_of))
    if history.empty:
        raise DataValidationError("campaign_history", "campaign_date", f"no campaign before the as-of date {as_of}")
    # Sampling before the factor computation keeps large worlds fast.
    sample, _ = pr.sample_rows(history, cfg.max_rows, cfg.seed)
    table = point_in_time_factor_table(Path(data_dir), sample, factor_names)
    names = factor_names or [c for c in table.columns if c not in ("client_id", "campaign_id", "campaign_date", "treatment", "response")]
    source = f"factor set `{factor_set}`" if factor_names else "the clients' numeric columns (no factor set chosen)"
    description = (
        f"Campaign history (treatment, response) joined with {source}, computed as of each campaign's date."
    )
    return pr.profile_analysis(table, names, "response", cfg, treatment="treatment",
                               description=description, population_rows=len(history), group="campaign_id")


def _raw_key(table: str, raw: pd.DataFrame, id_column: str, cfg: pr.ProfileConfig) -> list[str] | None:
    """The key of a raw table: ``profile.table_keys`` when it names the table, else the id column."""
    if table in cfg.table_keys:
        key = list(cfg.table_keys[table])
        missing = [k for k in key if k not in raw.columns]
        if missing:
            raise ConfigError(f"config 'profile', key 'table_keys.{table}': column(s) {missing} not in table '{table}'")
        return key
    return [id_column] if id_column in raw.columns else None


@task(cache_policy=NONE, persist_result=False)
def profile_tabular(data_settings: dict, shared_data: str, cfg: pr.ProfileConfig) -> tuple[list[pr.TableProfile], pr.AnalysisProfile]:
    """Profile a real dataset: its source files as read and its wide factor table."""
    from tasks.data.datasets import TabularDataConfig, feature_frame, load_tabular_dataset

    dcfg = to_dataclass(data_settings, TabularDataConfig, "data")
    ds = load_tabular_dataset(dcfg, Path(shared_data))
    tables = [pr.profile_table(raw, name, cfg, key=_raw_key(name, raw, ds.id_column, cfg), outcome=ds.target)
              for name, raw in ds.raw_tables.items()]
    shown = replace(ds, not_features=[c for c in ds.not_features if c not in set(dcfg.drop)])
    X = feature_frame(shown, engineer=dcfg.feature_engineering)
    frame = X.assign(**{ds.target: ds.frame[ds.target].to_numpy()})
    if ds.treatment:
        frame[ds.treatment] = ds.frame[ds.treatment].to_numpy()
    description = f"The {ds.kind} wide table, categoricals one-hot encoded"
    if ds.treatment and dcfg.kind == "hillstrom":
        description += f"; treatment 1 = {dcfg.treatment_arm}, 0 = {dcfg.control_arm}"
    if dcfg.drop:
        description += f"; it includes the columns training drops ({', '.join(dcfg.drop)})"
    return tables, pr.profile_analysis(frame, list(X.columns), ds.target, cfg, treatment=ds.treatment,
                                       description=description + ".")


@task(cache_policy=NONE, persist_result=False)
def write_profile(out_dir: str, report: pr.Report) -> str:
    """Write plots, findings.json, report.html and report.md; publish a Prefect artifact."""
    out = Path(out_dir)
    for name, data in report.images.items():
        atomic_write_bytes(data, out / "plots" / name)
    atomic_write_json(report.findings, out / "findings.json")
    atomic_write_text(pr.render_html(report), out / "report.html")
    markdown = pr.render_markdown(report, image_dir="plots")
    atomic_write_text(markdown, out / "report.md")
    key = "profile-" + "".join(ch if ch.isalnum() else "-" for ch in str(report.findings["dataset"]).lower())
    artifact = pr.render_markdown(pr.Report(report.title, [b for b in report.blocks if b.kind != "image"], {}, {}))
    create_markdown_artifact(
        markdown=artifact + f"\nFull report with plots: {(out / 'report.html').resolve()}\n",
        key=key[:100], description=f"Data profile of {report.findings['dataset']}",
    )
    return str(out / "report.md")


@flow(name="data-profile")
def data_profile_flow(
    data: dict[str, Any],
    artifacts: str = "artifacts",
    shared_data: str = "../shared/data",
    factors: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict:
    """Profile dataset ``data`` (a data config) and write the report; returns its findings."""
    cfg = to_dataclass(settings or {}, pr.ProfileConfig, "profile")
    kind = str(data.get("kind", ""))
    name = str(data.get("name") or kind)
    notes: list[str] = []
    if kind == "synthetic":
        world = to_dataclass(data, SyntheticDataConfig, "data")
        data_dir = dataset_dir(artifacts, world.name)
        world_as_of = _check_date(str(read_manifest(data_dir).get("as_of", world.end_date)), "as_of")
        as_of = _check_date(cfg.as_of, "as_of") if cfg.as_of else world_as_of
        if pd.Timestamp(as_of) > pd.Timestamp(world_as_of):
            raise ConfigError(f"config 'profile', key 'as_of': {as_of} is after the world's as-of date {world_as_of}")
        factor_names = list((factors or {}).get("factors") or [])
        if factor_names:
            from factors.sets import validate_names

            validate_names(factor_names, f"factor set {(factors or {}).get('name')!r}")
        tables = profile_world_tables(str(data_dir), as_of, world_as_of, cfg)
        analysis = profile_world_factors(str(data_dir), as_of, world_as_of, factor_names,
                                         str((factors or {}).get("name", "")), cfg)
        notes.append(f"Synthetic world `{world.name}` at {data_dir}; events strictly before {as_of}.")
    else:
        as_of = _check_date(cfg.as_of, "as_of") if cfg.as_of else str(_dt.date.today())
        tables, analysis = profile_tabular(data, shared_data, cfg)
        notes.append(f"Real dataset `{name}` ({kind}) from {shared_data}; profiled on {as_of}.")
    report = pr.build_report(name, as_of, tables, analysis, cfg, notes)
    path = write_profile(str(profile_dir(artifacts, name, as_of)), report)
    return dict(report.findings, report=path)


def run(cfg: DictConfig) -> dict:
    """The CLI body: profile ``cfg.data`` with ``cfg.factors`` and ``cfg.profile``."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return data_profile_flow(
        container["data"], str(cfg.paths.artifacts), str(cfg.paths.shared_data),
        container.get("factors"), container.get("profile"),
    )


def main() -> None:
    from flows._cli import run_cli

    run_cli(run)


if __name__ == "__main__":
    main()
