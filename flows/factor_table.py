"""The factor table as a Prefect task, for flows and deployments that want one on disk.

The logic is :func:`tasks.campaign.factor_table.build_factor_table` (writes Parquet, returns
a small summary); this module only wraps it.
"""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.campaign.factor_table import build_factor_table

compute_factor_table = task(name="compute-factor-table", cache_policy=NO_CACHE)(build_factor_table)
