"""Options of the data profile (``conf/profile/default.yaml``, key ``profile``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.analytics.stats import SRM_ALPHA
from tasks.core.errors import ConfigError


@dataclass
class ProfileConfig:
    """Options of the data profile (``conf/profile/default.yaml``)."""

    max_rows: int                   # above this many rows a table is profiled on a seeded sample
    seed: int                       # seed of that sample
    as_of: str | None               # report date; None = the data's as-of date (or today)
    top_values: int                 # most frequent values listed per categorical column
    histogram_bins: int
    max_plot_columns: int           # histograms per table
    max_heatmap_columns: int        # factors shown in the correlation heatmap
    vif_limit: float                # factors with VIF at or above are highly collinear
    high_correlation: float         # factor pairs with |r| at or above are listed
    near_constant_share: float      # top value share at or above: almost constant
    arm_columns: list[str]          # raw-table columns holding experiment arms
    table_keys: dict[str, list[str]]  # raw tables keyed by other columns than the dataset's id
    expected_arm_shares: dict[Any, float] | None  # None = equal shares
    alpha: float                    # 1 - confidence level of intervals
    srm_alpha: float | None = None  # no YAML home: flows.profile sets evaluate.srm_alpha (one level for all checks); None: stats.SRM_ALPHA

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ConfigError(f"config 'profile', key 'max_rows': must be >= 1, got {self.max_rows}")
        if not 0.0 < self.near_constant_share <= 1.0:
            raise ConfigError(
                f"config 'profile', key 'near_constant_share': must be in (0, 1], got {self.near_constant_share}"
            )
        if self.vif_limit <= 1.0:
            raise ConfigError(f"config 'profile', key 'vif_limit': must be > 1, got {self.vif_limit}")
        if self.srm_alpha is None:
            self.srm_alpha = SRM_ALPHA
        if not 0.0 < self.srm_alpha < 1.0:
            raise ConfigError(f"config 'profile', key 'srm_alpha': must be in (0, 1), got {self.srm_alpha}")
