"""The factor table as a Prefect task, for flows and deployments that want one on disk.

The logic is :func:`tasks.campaign.factor_table.build_factor_table`; this module only wraps it.
"""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.campaign.factor_table import build_factor_table


@task(name="compute-factor-table", cache_policy=NO_CACHE)
def compute_factor_table(
    data_dir: str,
    as_of: str,
    factor_names: list[str],
    out_path: str,
    client_ids_path: str | None = None,
) -> dict:
    """Prefect task: :func:`build_factor_table` (writes Parquet, returns a small summary)."""
    return build_factor_table(data_dir, as_of, factor_names, out_path, client_ids_path)
