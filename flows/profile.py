"""Profile a dataset before anyone trusts a model on it.

    python -m flows.profile data=<dataset> [factors=<set>] [profile.as_of=YYYY-MM-DD] [profile.max_rows=N]
    python -m flows.profile data=table data.path=<file> data.target=<column> [data.treatment=<column>]

Writes ``<artifacts>/profiles/<dataset>/<date>/``: ``plots/*.png``, ``findings.json``, a
self-contained ``report.html`` (plots embedded) and, last, ``report.md``; publishes the
report as a Prefect markdown artifact. ``<date>`` is ``profile.as_of``, else the synthetic
world's as-of date, else today's date.

What is read from a synthetic world or a real dataset, and how it is profiled, is in
:mod:`tasks.profile.datasets`; the statistics, plots and report in the rest of
:mod:`tasks.profile`. This module is the wiring: Prefect tasks, the flow and the CLI.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from factors.sets import validate_names
from tasks.core.config import SyntheticDataConfig, from_conf
from tasks.core.errors import ConfigError
from tasks.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tasks.core.layout import Layout
from tasks.data.datasets import dataset_name, tabular_config
from tasks.data.tables import read_manifest
from tasks.profile import datasets
from tasks.profile.config import ProfileConfig
from tasks.profile.profiles import AnalysisProfile, TableProfile
from tasks.profile.report import Report, build_report, render_html, render_markdown


def _check_date(value: str, key: str) -> str:
    try:
        return str(pd.Timestamp(value).date())
    except (ValueError, TypeError):
        raise ConfigError(f"config 'profile', key '{key}': {value!r} is not a date (use YYYY-MM-DD)") from None


@task(cache_policy=NONE, persist_result=False)
def profile_world_tables(data_dir: str, as_of: str, world_as_of: str, cfg: ProfileConfig) -> list[TableProfile]:
    """Profile the raw tables of a synthetic world (never its truth table)."""
    return datasets.profile_world_tables(Path(data_dir), pd.Timestamp(as_of), pd.Timestamp(world_as_of), cfg)


@task(cache_policy=NONE, persist_result=False)
def profile_world_factors(
    data_dir: str, as_of: str, world_as_of: str, factor_names: list[str], factor_set: str, cfg: ProfileConfig,
    treated_share: float | None = None,
) -> AnalysisProfile:
    """Profile the campaign history as uplift data with point-in-time factors."""
    return datasets.profile_world_factors(Path(data_dir), pd.Timestamp(as_of), pd.Timestamp(world_as_of),
                                          factor_names, factor_set, cfg, treated_share)


@task(cache_policy=NONE, persist_result=False)
def profile_tabular(data_settings: dict, shared_data: str, cfg: ProfileConfig) -> tuple[list[TableProfile], AnalysisProfile]:
    """Profile a wide dataset (``data_settings`` over conf/data/<kind>.yaml): its source files
    as read and its wide factor table."""
    return datasets.profile_tabular(tabular_config(data_settings), Path(shared_data), cfg)


@task(cache_policy=NONE, persist_result=False)
def write_profile(out_dir: str, report: Report) -> str:
    """Write plots, findings.json, report.html and report.md; publish a Prefect artifact."""
    out = Path(out_dir)
    for name, data in report.images.items():
        atomic_write_bytes(data, out / "plots" / name)
    atomic_write_json(report.findings, out / "findings.json")
    atomic_write_text(render_html(report), out / "report.html")
    markdown = render_markdown(report, image_dir="plots")
    atomic_write_text(markdown, out / "report.md")
    key = "profile-" + "".join(ch if ch.isalnum() else "-" for ch in str(report.findings["dataset"]).lower())
    artifact = render_markdown(Report(report.title, [b for b in report.blocks if b.kind != "image"], {}, {}))
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
    """Profile dataset ``data`` (a data config) and write the report; returns its findings.

    ``settings`` override conf/profile/default.yaml key by key (the CLI passes the composed
    ``profile``)."""
    cfg = from_conf(ProfileConfig, "profile/default", **(settings or {}))
    kind = str(data.get("kind", ""))
    name = str(data.get("name") or kind) if kind == "synthetic" else dataset_name(tabular_config(data))
    notes: list[str] = []
    if kind == "synthetic":
        world = from_conf(SyntheticDataConfig, "data/synthetic", **data)
        data_dir = Layout(artifacts).dataset(world.name)
        world_as_of = _check_date(str(read_manifest(data_dir).get("as_of", world.end_date)), "as_of")
        as_of = _check_date(cfg.as_of, "as_of") if cfg.as_of else world_as_of
        if pd.Timestamp(as_of) > pd.Timestamp(world_as_of):
            raise ConfigError(f"config 'profile', key 'as_of': {as_of} is after the world's as-of date {world_as_of}")
        factor_names = list((factors or {}).get("factors") or [])
        if factor_names:
            validate_names(factor_names, f"factor set {(factors or {}).get('name')!r}")
        tables = profile_world_tables(str(data_dir), as_of, world_as_of, cfg)
        # the world's past campaigns were randomised with this treated share: their design
        analysis = profile_world_factors(str(data_dir), as_of, world_as_of, factor_names,
                                         str((factors or {}).get("name", "")), cfg, world.past_campaign_treated_share)
        notes.append(f"Synthetic world `{world.name}` at {data_dir}; events strictly before {as_of}.")
    else:
        as_of = _check_date(cfg.as_of, "as_of") if cfg.as_of else str(_dt.date.today())
        tables, analysis = profile_tabular(data, shared_data, cfg)
        where = data.get("path") or Path(shared_data) / str(data.get("folder", ""))
        notes.append(f"Wide dataset `{name}` ({kind}) from {where}; profiled on {as_of}.")
    report = build_report(name, as_of, tables, analysis, cfg, notes)
    path = write_profile(str(Layout(artifacts).profile(name, as_of)), report)
    return dict(report.findings, report=path)


def run(cfg: DictConfig) -> dict:
    """The CLI body: profile ``cfg.data`` with ``cfg.factors`` and ``cfg.profile``."""
    container = OmegaConf.to_container(cfg, resolve=True)
    findings = data_profile_flow(
        container["data"], str(cfg.paths.artifacts), str(cfg.paths.shared_data),
        container.get("factors"), profile_settings(container),
    )
    report = Path(findings["report"]).resolve()
    print(f"data profile: {report.with_suffix('.html')} (and {report.name}, findings.json, plots/)")
    return findings


def profile_settings(container: dict) -> dict:
    """The ``profile`` settings of a composed config, with ``srm_alpha`` taken from
    ``evaluate.srm_alpha``: one level for every sample-ratio check of the product."""
    return dict(container.get("profile") or {}, srm_alpha=container["evaluate"]["srm_alpha"])


def main() -> None:
    from flows._cli import run_cli

    run_cli(run)


if __name__ == "__main__":
    main()
